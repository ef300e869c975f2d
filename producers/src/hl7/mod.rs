//! HL7 version 2: MLLP framing ([`mllp`]) and message parsing ([`message`]), the wire format
//! that hospital PAS/EPR and laboratory systems send. Written here rather than taken from a crate
//! so that every error is specific, no error ever quotes a field value, and both parsers can be
//! fuzzed as this project's own code.
//!
//! This is the parsing layer of the HL7 adapter; mapping ADT and ORU messages to the catalogue's
//! subjects and the MLLP listener build on it.

pub mod message;
pub mod mllp;
