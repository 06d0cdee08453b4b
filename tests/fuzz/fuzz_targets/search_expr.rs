//! Search expressions: the fuzzer's text is placed between the brackets of a search segment so
//! that nearly every input exercises the expression grammar rather than failing on the path
//! prefix. Same oracle as the path target: parse → print → parse is the identity.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usp_codec::path::Path;

fuzz_target!(|expr: &str| {
    let text = format!("Device.IP.Interface.[{expr}].Status");
    if let Ok(path) = Path::parse(&text) {
        let printed = path.to_string();
        assert_eq!(
            Path::parse(&printed).as_ref(),
            Ok(&path),
            "printed as {printed:?}"
        );
    }
});
