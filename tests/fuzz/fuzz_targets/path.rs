//! The path parser on arbitrary text: no panic, and whatever parses prints back to text that
//! parses to the same path (the agent echoes paths it resolved into responses).
#![no_main]

use libfuzzer_sys::fuzz_target;
use usp_codec::path::Path;

fuzz_target!(|text: &str| {
    if let Ok(path) = Path::parse(text) {
        let printed = path.to_string();
        assert_eq!(
            Path::parse(&printed).as_ref(),
            Ok(&path),
            "printed as {printed:?}"
        );
    }
    if let Ok(path) = Path::parse_supported(text) {
        let printed = path.to_string();
        assert_eq!(
            Path::parse_supported(&printed).as_ref(),
            Ok(&path),
            "printed as {printed:?}"
        );
    }
});
