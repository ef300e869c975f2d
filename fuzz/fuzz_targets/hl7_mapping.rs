//! Fuzzes what the MLLP listener does with a message beyond parsing: mapping ADT and ORU messages
//! to validated events, and writing the acknowledgement (also for a message that cannot be
//! parsed). None of it may panic.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sluice_producers::hl7::{
    ack::{Acknowledged, Receiver, acknowledgement},
    local_codes::LocalCodes,
    map::map_message,
    message::Message,
};

/// A local code table for the sender the prefixed input names, so table look-ups are fuzzed too.
static CODES: LazyLock<LocalCodes> = LazyLock::new(|| {
    LocalCodes::from_toml(
        "[senders.\"PAS^RR8\".treatment_function]\nMED = \"300\"\n\
         [senders.\"PAS^RR8\".observation]\nK = { system = \"LN\", code = \"2823-3\", display = \"Potassium\" }\n",
    )
    .expect("a valid table")
});

fuzz_target!(|bytes: &[u8]| {
    let now = chrono::DateTime::from_timestamp(1_780_000_000, 0).expect("a valid instant");
    let receiver = Receiver { application: "SLUICE".into(), facility: "X26".into() };
    let mut input = b"MSH|^~\\&|PAS|RR8|SLUICE|X26|20260105093012||".to_vec();
    input.extend_from_slice(bytes);
    for candidate in [bytes, &input[..]] {
        match Message::parse(candidate) {
            Ok(message) => {
                let outcome = map_message(&message, now, &CODES);
                let ack = acknowledgement(
                    &receiver,
                    &Acknowledged::from_message(&message),
                    outcome.as_ref().map(|mapped| mapped.warnings.as_slice()),
                    "A1",
                    now,
                );
                if let Err(error) = Message::parse(&ack) {
                    panic!("an ACK must always be valid HL7: {error:?}");
                }
            }
            Err(_) => {
                let _ = acknowledgement(&receiver, &Acknowledged::salvage(candidate), Ok(&[]), "A1", now);
            }
        }
    }
});
