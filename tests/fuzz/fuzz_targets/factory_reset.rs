//! The obuspa-compatible factory-reset parser on arbitrary text, then the mapping of legacy
//! names to TR-181 2.19: no panic, every reported line number is within the text, and every
//! entry's path is non-empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usp_agent::factory_reset::{legacy, parse};

fuzz_target!(|text: &str| {
    let lines = text.lines().count().max(1);
    let parsed = parse(text);
    for entry in &parsed.entries {
        assert!(
            entry.line >= 1 && entry.line <= lines,
            "entry line {}",
            entry.line
        );
        assert!(!entry.path.is_empty());
    }
    for error in &parsed.errors {
        assert!(
            error.line >= 1 && error.line <= lines,
            "error line {}",
            error.line
        );
    }
    let migrated = legacy::migrate(parsed.entries);
    for entry in &migrated.entries {
        assert!(entry.line >= 1 && entry.line <= lines && !entry.path.is_empty());
    }
    for note in &migrated.notes {
        assert!(
            note.line >= 1 && note.line <= lines,
            "note line {}",
            note.line
        );
    }
});
