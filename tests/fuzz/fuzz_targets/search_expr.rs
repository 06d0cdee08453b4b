//! Search expressions: the fuzzer's text is placed between the brackets of a search segment so
//! that nearly every input exercises the expression grammar rather than failing on the path
//! prefix. Same oracle as the path target: parse → print → parse is the identity, for every
//! printed form within the parser's length limit (printing escapes `%` as `%25`, so a path near
//! the limit can print longer than the limit and is then rightly refused).
#![no_main]

use libfuzzer_sys::fuzz_target;
use usp_codec::path::parse::MAX_PATH_LEN;
use usp_codec::path::Path;

fuzz_target!(|expr: &str| {
    let text = format!("Device.IP.Interface.[{expr}].Status");
    if let Ok(path) = Path::parse(&text) {
        let printed = path.to_string();
        if printed.len() <= MAX_PATH_LEN {
            assert_eq!(
                Path::parse(&printed).as_ref(),
                Ok(&path),
                "printed as {printed:?}"
            );
        }
    }
});
