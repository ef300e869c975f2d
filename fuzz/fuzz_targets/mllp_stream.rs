//! Fuzzes MLLP deframing: arbitrary bytes, delivered in arbitrary chunk sizes, must never panic
//! nor hold more than the frame limit.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_producers::hl7::mllp::MllpDecoder;

fuzz_target!(|input: (u8, Vec<u8>)| {
    let (chunk, bytes) = input;
    let mut decoder = MllpDecoder::new(256);
    for piece in bytes.chunks(usize::from(chunk.max(1))) {
        decoder.extend(piece);
        for _ in 0..piece.len() + 1 {
            match decoder.next_message() {
                Ok(Some(message)) => assert!(message.len() <= 256),
                Ok(None) => break,
                Err(_) => {}
            }
        }
    }
});
