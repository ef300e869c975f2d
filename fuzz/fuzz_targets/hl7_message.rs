//! Fuzzes the HL7 v2 parser with arbitrary message bytes: parsing, character-set decoding and
//! field access by path must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_producers::hl7::message::Message;

fuzz_target!(|bytes: &[u8]| {
    // Most inputs get a valid MSH start so the fuzzer spends its time past the header check.
    let mut input = b"MSH|^~\\&|".to_vec();
    input.extend_from_slice(bytes);
    for candidate in [bytes, &input[..]] {
        if let Ok(message) = Message::parse(candidate) {
            for path in ["MSH-9.2", "MSH-10", "MSH-18", "PID-3.1", "PID-5.2.1", "OBX-5"] {
                let _ = message.get(path);
            }
        }
    }
});
