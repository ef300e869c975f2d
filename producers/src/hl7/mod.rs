//! HL7 version 2: MLLP framing ([`mllp`]), message parsing ([`message`]), date/times
//! ([`timestamp`]), mapping ADT and ORU messages to clinical events ([`map`]) and
//! acknowledgements ([`ack`]), and the MLLP listener itself ([`listener`]) with its memory of
//! stored messages ([`seen`]). The parsers are written here rather than taken from a crate so
//! that every error is specific, no error ever quotes a field value, and both can be fuzzed as
//! this project's own code.

pub mod ack;
pub mod listener;
pub mod local_codes;
pub mod map;
pub mod message;
pub mod mllp;
pub mod seen;
pub mod timestamp;

#[cfg(test)]
mod corpus_tests;
