//! Fuzzes what the MLLP listener does with a message beyond parsing: mapping ADT and ORU messages
//! to validated events, and writing the acknowledgement (also for a message that cannot be
//! parsed). None of it may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_producers::hl7::{
    ack::{Acknowledged, Receiver, acknowledgement},
    map::map_message,
    message::Message,
};

fuzz_target!(|bytes: &[u8]| {
    let now = chrono::DateTime::from_timestamp(1_780_000_000, 0).expect("a valid instant");
    let receiver = Receiver { application: "SLUICE".into(), facility: "X26".into() };
    let mut input = b"MSH|^~\\&|PAS|RR8|SLUICE|X26|20260105093012||".to_vec();
    input.extend_from_slice(bytes);
    for candidate in [bytes, &input[..]] {
        match Message::parse(candidate) {
            Ok(message) => {
                let outcome = map_message(&message, now).map(|_| ());
                let ack = acknowledgement(
                    &receiver,
                    &Acknowledged::from_message(&message),
                    outcome.as_ref().map(|_| ()),
                    "A1",
                    now,
                );
                if let Err(error) = Message::parse(&ack) {
                    panic!("an ACK must always be valid HL7: {error:?}");
                }
            }
            Err(_) => {
                let _ = acknowledgement(&receiver, &Acknowledged::salvage(candidate), Ok(()), "A1", now);
            }
        }
    }
});
