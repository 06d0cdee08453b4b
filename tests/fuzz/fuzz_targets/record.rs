//! Bytes from an MTP: the receive-side checks (`record::classify`), the typed Record decoder and
//! the Msg decoder. None may panic; a Record that decodes must survive an encode/decode round
//! trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usp_codec::record::{Inbound, Record, classify};

fuzz_target!(|data: &[u8]| {
    if let Inbound::Reject { reply } = classify(data, "proto::agent") {
        // What the agent would send back must itself be a valid Record.
        assert_eq!(Record::decode(&reply.encode()).as_ref(), Ok(&reply));
    }
    if let Ok(record) = Record::decode(data) {
        let again = Record::decode(&record.encode());
        assert_eq!(again.as_ref(), Ok(&record));
        let _ = record.msg();
    }
});
