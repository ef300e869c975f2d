//! How an Avro body is framed inside a Kafka message value, so that a reader can find the
//! schema it was written with.

use std::fmt;

use crate::{Error, Result};

/// Marker that opens an Avro single-object encoded message.
const SINGLE_OBJECT_MARKER: [u8; 2] = [0xC3, 0x01];
/// Magic byte that opens a Confluent wire-format message.
const CONFLUENT_MAGIC: u8 = 0x00;
/// Header length of single-object framing: marker + 8-byte fingerprint.
const SINGLE_OBJECT_HEADER_LEN: usize = 10;
/// Header length of Confluent framing: magic + 4-byte schema id.
const CONFLUENT_HEADER_LEN: usize = 5;

/// The framing a producer writes. Readers accept both, telling them apart by the first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framing {
    /// Avro single-object encoding: `C3 01`, the 8-byte little-endian CRC-64-AVRO fingerprint
    /// of the writer schema, then the body. Self-describing without a registry.
    #[default]
    SingleObject,
    /// Confluent wire format: `00`, the 4-byte big-endian schema id, then the body. For
    /// consumers that expect a schema registry's ids.
    Confluent,
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Framing::SingleObject => "single-object",
            Framing::Confluent => "confluent",
        })
    }
}

/// How a framing header names the schema the body was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriterSchemaRef {
    /// CRC-64-AVRO fingerprint, from single-object framing.
    Fingerprint(u64),
    /// Schema id, from Confluent framing.
    SchemaId(u32),
}

impl fmt::Display for WriterSchemaRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriterSchemaRef::Fingerprint(fingerprint) => write!(f, "fingerprint {fingerprint:016x}"),
            WriterSchemaRef::SchemaId(id) => write!(f, "schema id {id}"),
        }
    }
}

impl std::str::FromStr for Framing {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        match text {
            "single-object" => Ok(Framing::SingleObject),
            "confluent" => Ok(Framing::Confluent),
            other => Err(format!("unknown framing `{other}`: expected single-object or confluent")),
        }
    }
}

impl Framing {
    /// Appends this framing's header for the given schema to `out`.
    pub(crate) fn write_header(self, fingerprint: u64, schema_id: u32, out: &mut Vec<u8>) {
        match self {
            Framing::SingleObject => {
                out.extend_from_slice(&SINGLE_OBJECT_MARKER);
                out.extend_from_slice(&fingerprint.to_le_bytes());
            }
            Framing::Confluent => {
                out.push(CONFLUENT_MAGIC);
                out.extend_from_slice(&schema_id.to_be_bytes());
            }
        }
    }

    /// Splits a message into the writer schema reference and the Avro body.
    pub fn split(message: &[u8]) -> Result<(WriterSchemaRef, &[u8])> {
        match message {
            [0xC3, 0x01, ..] => {
                let (header, body) = split_header(message, SINGLE_OBJECT_HEADER_LEN, Framing::SingleObject)?;
                let fingerprint = u64::from_le_bytes(header[2..].try_into().expect("8 bytes"));
                Ok((WriterSchemaRef::Fingerprint(fingerprint), body))
            }
            [CONFLUENT_MAGIC, ..] => {
                let (header, body) = split_header(message, CONFLUENT_HEADER_LEN, Framing::Confluent)?;
                let id = u32::from_be_bytes(header[1..].try_into().expect("4 bytes"));
                Ok((WriterSchemaRef::SchemaId(id), body))
            }
            [first_byte, ..] => Err(Error::UnknownFraming { first_byte: *first_byte }),
            [] => Err(Error::TruncatedHeader { framing: Framing::SingleObject, len: 0 }),
        }
    }
}

fn split_header(message: &[u8], header_len: usize, framing: Framing) -> Result<(&[u8], &[u8])> {
    if message.len() < header_len {
        return Err(Error::TruncatedHeader { framing, len: message.len() });
    }
    Ok(message.split_at(header_len))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn headers_round_trip(fingerprint: u64, schema_id: u32, body: Vec<u8>, confluent: bool) {
            let framing = if confluent { Framing::Confluent } else { Framing::SingleObject };
            let mut message = Vec::new();
            framing.write_header(fingerprint, schema_id, &mut message);
            message.extend_from_slice(&body);
            let (writer, rest) = Framing::split(&message).unwrap();
            let expected = if confluent {
                WriterSchemaRef::SchemaId(schema_id)
            } else {
                WriterSchemaRef::Fingerprint(fingerprint)
            };
            prop_assert_eq!(writer, expected);
            prop_assert_eq!(rest, &body[..]);
        }

        #[test]
        fn arbitrary_bytes_never_panic(message: Vec<u8>) {
            let _ = Framing::split(&message);
        }
    }

    #[test]
    fn single_object_header_is_marker_then_little_endian_fingerprint() {
        let mut out = Vec::new();
        Framing::SingleObject.write_header(0x0102_0304_0506_0708, 0, &mut out);
        assert_eq!(out, [0xC3, 0x01, 8, 7, 6, 5, 4, 3, 2, 1]);
        let mut out = Vec::new();
        Framing::Confluent.write_header(0, 0x0A0B_0C0D, &mut out);
        assert_eq!(out, [0x00, 0x0A, 0x0B, 0x0C, 0x0D]);
    }

    #[test]
    fn short_and_unknown_messages_are_named() {
        assert!(matches!(
            Framing::split(&[0xC3, 0x01, 1, 2]),
            Err(Error::TruncatedHeader { framing: Framing::SingleObject, len: 4 })
        ));
        assert!(matches!(
            Framing::split(&[0x00, 1]),
            Err(Error::TruncatedHeader { framing: Framing::Confluent, len: 2 })
        ));
        assert!(matches!(Framing::split(b"{\"json\":1}"), Err(Error::UnknownFraming { first_byte: b'{' })));
    }
}
