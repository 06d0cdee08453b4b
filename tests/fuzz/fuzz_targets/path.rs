//! The path parser on arbitrary text: no panic, and whatever parses prints back to text that
//! parses to the same path (the agent echoes paths it resolved into responses), as long as the
//! printed text is within the parser's length limit: printing escapes `%` in quoted search values
//! as `%25`, so a path near the limit can print longer than the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usp_codec::path::parse::{PathError, MAX_PATH_LEN};
use usp_codec::path::Path;

fn assert_round_trip(text: &str, parse: fn(&str) -> Result<Path, PathError>) {
    if let Ok(path) = parse(text) {
        let printed = path.to_string();
        if printed.len() <= MAX_PATH_LEN {
            assert_eq!(parse(&printed).as_ref(), Ok(&path), "printed as {printed:?}");
        }
    }
}

fuzz_target!(|text: &str| {
    assert_round_trip(text, Path::parse);
    assert_round_trip(text, Path::parse_supported);
});
