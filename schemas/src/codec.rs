//! Encoding records into framed messages and decoding them back with the newest schema.

use std::{collections::HashMap, sync::Arc};

use apache_avro::{
    reader::datum::GenericDatumReader, schema::ResolvedSchema, types::Value, writer::datum::GenericDatumWriter,
};

use crate::{Catalogue, Error, Framing, Result, SchemaVersion, WriterSchemaRef, error::redacted_reason};

/// Writes records as framed Avro messages. Builds one Avro writer per schema version, once.
pub struct Encoder<'c> {
    /// Framing put in front of every body.
    framing: Framing,
    /// A prepared writer per schema fingerprint.
    writers: HashMap<u64, GenericDatumWriter<'c>>,
    /// Confluent schema ids of a schema registry the estate runs, by catalogued fingerprint
    /// ([`Encoder::with_schema_ids`]); empty for the catalogue's own ids.
    schema_ids: HashMap<u64, u32>,
}

impl<'c> Encoder<'c> {
    /// Prepares writers for every version in the catalogue.
    pub fn new(catalogue: &'c Catalogue, framing: Framing) -> Self {
        let writers = all_versions(catalogue)
            .map(|version| {
                let writer = GenericDatumWriter::builder(version.schema())
                    .build()
                    .expect("catalogue schemas resolve: checked when the catalogue is built");
                (version.fingerprint(), writer)
            })
            .collect();
        Encoder { framing, writers, schema_ids: HashMap::new() }
    }

    /// Frames Confluent records with a schema registry's ids (by catalogued fingerprint) instead
    /// of the catalogue's. A version without one is refused rather than framed with an id that
    /// means nothing at that registry.
    pub fn with_schema_ids(mut self, ids: impl IntoIterator<Item = (u64, u32)>) -> Self {
        self.schema_ids = ids.into_iter().collect();
        self
    }

    /// The framing this encoder writes.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Encodes a record with `version` of its subject's schema, framed.
    pub fn encode(&self, version: &SchemaVersion, value: &Value) -> Result<Vec<u8>> {
        let writer = self.writers.get(&version.fingerprint()).ok_or_else(|| Error::UnknownSubject(version.label()))?;
        let schema_id = if self.schema_ids.is_empty() {
            version.schema_id()
        } else {
            *self.schema_ids.get(&version.fingerprint()).ok_or_else(|| Error::NoRegistryId(version.label()))?
        };
        let mut out = Vec::with_capacity(256);
        self.framing.write_header(version.fingerprint(), schema_id, &mut out);
        writer.write_value_ref(&mut out, value).map_err(|error| Error::Encode {
            subject: version.subject().to_owned(),
            version: version.version(),
            reason: redacted_reason(&error),
        })?;
        Ok(out)
    }
}

/// A decoded message: the record, read with the newest version of its subject.
#[derive(Debug)]
pub struct DecodedEvent<'c> {
    /// The version the producer wrote with (recorded for lineage and audit).
    pub writer: &'c SchemaVersion,
    /// The version the record was resolved to: always the newest of the subject.
    pub reader: &'c SchemaVersion,
    /// The record, shaped by `reader`.
    pub value: Value,
}

/// Decodes framed messages of any framing and any known version, resolving each record to the
/// newest version of its subject.
pub struct Decoder<'c> {
    /// Where writer schemas are looked up.
    catalogue: &'c Catalogue,
    /// A prepared reader per writer fingerprint: (reader version, how to read).
    readers: HashMap<u64, (&'c SchemaVersion, VersionReader<'c>)>,
    /// Where Confluent schema ids are looked up when producers frame with a schema registry's
    /// own ids ([`Decoder::with_schema_ids`]); without one they are the catalogue's.
    schema_ids: Option<Arc<dyn SchemaIdResolver>>,
}

/// Finds the catalogued version a Confluent schema id names, for records framed with the ids of
/// a schema registry sluice does not run (an estate's own).
pub trait SchemaIdResolver: Send + Sync {
    /// The fingerprint of the catalogued version the id names; `Ok(None)` when it names a
    /// schema the catalogue does not hold (or none at all); `Err` with the reason when the
    /// answer cannot be had now (the registry is unreachable), which must stop the reader
    /// rather than condemn the record.
    fn catalogued_fingerprint(&self, id: u32) -> std::result::Result<Option<u64>, String>;
}

/// How the records of one writer version are read.
enum VersionReader<'c> {
    /// One apache-avro datum reader that decodes and, for an older version, resolves.
    Resolving(GenericDatumReader<'c>),
    /// For an older version with `decimal` fields: decode as written, widen every decimal to
    /// `decimal_bytes`, then resolve to `reader`. The Avro specification lets a writer put a
    /// decimal in its shortest two's-complement form (Java's and Python's Avro libraries do), and
    /// apache-avro refuses a decimal whose byte length holds fewer digits than the reader's
    /// precision when it resolves, though the value fits; sign extension keeps the value.
    WideningDecimals {
        writer: GenericDatumReader<'c>,
        reader: &'c apache_avro::Schema,
        /// The reader schema's named types, built once: `Value::resolve` would rebuild them for
        /// every record.
        reader_names: ResolvedSchema<'c>,
        decimal_bytes: usize,
    },
}

impl<'c> Decoder<'c> {
    /// Prepares a resolving reader for every version in the catalogue. Records written with the
    /// newest version (most of them) are read as written: resolving a record to the schema it
    /// was written with would rebuild every value for nothing.
    pub fn new(catalogue: &'c Catalogue) -> Self {
        let readers = all_versions(catalogue)
            .map(|writer| {
                let reader = catalogue.latest(writer.subject()).expect("subject of a listed version");
                let built = "catalogue schemas resolve: checked when the catalogue is built";
                let version_reader = if writer.fingerprint() == reader.fingerprint() {
                    VersionReader::Resolving(GenericDatumReader::builder(writer.schema()).build().expect(built))
                } else if let Some(precision) = largest_decimal_precision(writer.schema()) {
                    VersionReader::WideningDecimals {
                        writer: GenericDatumReader::builder(writer.schema()).build().expect(built),
                        reader: reader.schema(),
                        reader_names: ResolvedSchema::new(reader.schema()).expect(built),
                        decimal_bytes: bytes_for_precision(
                            precision.max(largest_decimal_precision(reader.schema()).unwrap_or_default()),
                        ),
                    }
                } else {
                    VersionReader::Resolving(
                        GenericDatumReader::builder(writer.schema())
                            .reader_schema(reader.schema())
                            .build()
                            .expect(built),
                    )
                };
                (writer.fingerprint(), (reader, version_reader))
            })
            .collect();
        Decoder { catalogue, readers, schema_ids: None }
    }

    /// Reads Confluent schema ids through `resolver` (a schema registry's own ids) instead of as
    /// the catalogue's.
    pub fn with_schema_ids(mut self, resolver: Arc<dyn SchemaIdResolver>) -> Self {
        self.schema_ids = Some(resolver);
        self
    }

    /// The catalogued version a message was written with, from its framing header.
    /// [`Error::SchemaRegistry`] means the answer cannot be had now: hold the message.
    pub fn writer_of(&self, message: &[u8]) -> Result<&'c SchemaVersion> {
        let (writer_ref, _) = Framing::split(message)?;
        self.writer(writer_ref)
    }

    fn writer(&self, writer_ref: WriterSchemaRef) -> Result<&'c SchemaVersion> {
        match (writer_ref, &self.schema_ids) {
            (WriterSchemaRef::SchemaId(id), Some(resolver)) => match resolver.catalogued_fingerprint(id) {
                Ok(Some(fingerprint)) => self.catalogue.resolve(WriterSchemaRef::Fingerprint(fingerprint)),
                Ok(None) => Err(Error::NotCataloguedAtRegistry(id)),
                Err(reason) => Err(Error::SchemaRegistry { id, reason }),
            },
            (writer_ref, _) => self.catalogue.resolve(writer_ref),
        }
    }

    /// Decodes one message. Fails without panicking on any input: unknown framing, unknown
    /// writer schema, a truncated or corrupt body, or bytes left over after the record.
    pub fn decode(&self, message: &[u8]) -> Result<DecodedEvent<'c>> {
        let (writer_ref, body) = Framing::split(message)?;
        let writer = self.writer(writer_ref)?;
        let (reader, datum_reader) = &self.readers[&writer.fingerprint()];
        let decode_error =
            |reason: String| Error::Decode { subject: writer.subject().to_owned(), version: writer.version(), reason };
        let mut remaining = TruncationDetectingReader { rest: body, read_past_end: false };
        let read = match datum_reader {
            VersionReader::Resolving(datum_reader) => datum_reader.read_value(&mut remaining),
            VersionReader::WideningDecimals { writer, reader, reader_names, decimal_bytes } => {
                writer.read_value(&mut remaining).and_then(|mut value| {
                    widen_decimals(&mut value, *decimal_bytes);
                    value.resolve_with_names(reader, reader_names.get_names())
                })
            }
        };
        let value = read.map_err(|error| decode_error(redacted_reason(&error)))?;
        if remaining.read_past_end {
            return Err(decode_error("body is truncated".to_owned()));
        }
        if !remaining.rest.is_empty() {
            return Err(decode_error(format!("{} bytes left after the record", remaining.rest.len())));
        }
        Ok(DecodedEvent { writer, reader, value })
    }
}

/// Reads a message body and remembers whether the decoder asked for bytes past its end.
///
/// apache-avro reads a union index that hits the end of input as branch 0 (`null` in our
/// schemas) instead of failing, so a body cut short after its last non-null field would decode
/// "successfully" with nulls. This reader makes such truncation visible.
struct TruncationDetectingReader<'b> {
    /// Bytes not yet read.
    rest: &'b [u8],
    /// A read was attempted with nothing left.
    read_past_end: bool,
}

impl std::io::Read for TruncationDetectingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.rest.is_empty() && !buf.is_empty() {
            self.read_past_end = true;
        }
        self.rest.read(buf)
    }
}

/// The largest precision of any `decimal` in a schema, if it has one.
fn largest_decimal_precision(schema: &apache_avro::Schema) -> Option<usize> {
    use apache_avro::Schema;
    match schema {
        Schema::Decimal(decimal) => Some(decimal.precision),
        Schema::Record(record) => record.fields.iter().filter_map(|f| largest_decimal_precision(&f.schema)).max(),
        Schema::Union(union) => union.variants().iter().filter_map(largest_decimal_precision).max(),
        Schema::Array(array) => largest_decimal_precision(&array.items),
        Schema::Map(map) => largest_decimal_precision(&map.types),
        _ => None,
    }
}

/// The fewest bytes whose two's-complement range holds every number of `precision` digits
/// (8 for `decimal(18, s)`): 2^(8n-1) - 1 >= 10^precision - 1.
fn bytes_for_precision(precision: usize) -> usize {
    (1..=64).find(|&n| (8.0 * n as f64 - 1.0) * std::f64::consts::LOG10_2 >= precision as f64).unwrap_or(64)
}

/// Sign-extends every decimal in `value` shorter than `bytes` to `bytes` bytes (same number).
fn widen_decimals(value: &mut Value, bytes: usize) {
    match value {
        Value::Decimal(decimal) => {
            if let Ok(short) = Vec::<u8>::try_from(&*decimal)
                && short.len() < bytes
            {
                let extension = if short.first().is_some_and(|b| b & 0x80 != 0) { 0xFF } else { 0x00 };
                let mut wide = vec![extension; bytes - short.len()];
                wide.extend_from_slice(&short);
                *decimal = apache_avro::Decimal::from(wide);
            }
        }
        Value::Record(fields) => fields.iter_mut().for_each(|(_, field)| widen_decimals(field, bytes)),
        Value::Union(_, inner) => widen_decimals(inner, bytes),
        Value::Array(items) => items.iter_mut().for_each(|item| widen_decimals(item, bytes)),
        Value::Map(entries) => entries.values_mut().for_each(|entry| widen_decimals(entry, bytes)),
        _ => {}
    }
}

fn all_versions(catalogue: &Catalogue) -> impl Iterator<Item = &SchemaVersion> {
    catalogue.subject_names().flat_map(|subject| catalogue.versions(subject).expect("listed subject"))
}

#[cfg(test)]
mod tests {
    use apache_avro::types::Value;
    use proptest::prelude::*;

    use super::*;

    fn nullable(value: Option<Value>) -> Value {
        match value {
            None => Value::Union(0, Box::new(Value::Null)),
            Some(v) => Value::Union(1, Box::new(v)),
        }
    }

    /// An observation written by a version 1 source.
    fn observation_v1(value: Option<f64>, comment: Option<String>, nhs: Option<String>) -> Value {
        Value::Record(vec![
            ("event_id".into(), Value::Uuid(apache_avro::Uuid::from_u128(7))),
            ("occurred_at".into(), Value::TimestampMicros(1_700_000_000_000_000)),
            ("recorded_at".into(), Value::TimestampMicros(1_700_000_000_100_000)),
            ("source_organisation".into(), Value::String("RR8".into())),
            ("source_system".into(), Value::String("LIMS".into())),
            ("nhs_number".into(), nullable(nhs.map(Value::String))),
            ("local_patient_id".into(), Value::String("H123".into())),
            ("family_name".into(), nullable(None)),
            ("given_name".into(), nullable(None)),
            ("date_of_birth".into(), nullable(Some(Value::Date(-3000)))),
            ("sex".into(), nullable(Some(Value::Enum(1, "MALE".into())))),
            ("postcode".into(), nullable(None)),
            ("code_system".into(), Value::Enum(1, "LOINC".into())),
            ("code".into(), Value::String("8867-4".into())),
            ("display".into(), Value::String("Heart rate".into())),
            ("value".into(), nullable(value.map(Value::Double))),
            ("unit".into(), nullable(Some(Value::String("/min".into())))),
            ("comment".into(), nullable(comment.map(Value::String))),
        ])
    }

    fn field<'v>(record: &'v Value, name: &str) -> &'v Value {
        let Value::Record(fields) = record else { panic!("not a record") };
        &fields.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no field {name}")).1
    }

    proptest! {
        #[test]
        fn v1_records_round_trip_and_read_as_the_newest_version(
            value in proptest::option::of(-1e9f64..1e9),
            comment in proptest::option::of(".{0,40}"),
            nhs in proptest::option::of("[0-9]{10}"),
            confluent: bool,
        ) {
            let catalogue = Catalogue::embedded();
            let framing = if confluent { Framing::Confluent } else { Framing::SingleObject };
            let v1 = catalogue.version("observation", 1).unwrap();
            let record = observation_v1(value, comment.clone(), nhs.clone());
            let bytes = Encoder::new(catalogue, framing).encode(v1, &record).unwrap();
            let decoded = Decoder::new(catalogue).decode(&bytes).unwrap();
            prop_assert_eq!(decoded.writer.version(), 1);
            prop_assert_eq!(decoded.reader.version(), 4);
            // Fields of v1 come back unchanged (the local id, optional from v4, as the union's
            // string branch); the fields added by v2 and v3 take their defaults.
            if let Value::Record(original) = &record {
                for (name, original_value) in original {
                    if name == "local_patient_id" {
                        prop_assert_eq!(field(&decoded.value, name), &nullable(Some(original_value.clone())));
                    } else {
                        prop_assert_eq!(field(&decoded.value, name), original_value);
                    }
                }
            }
            for added in ["interpretation", "value_decimal", "reference_range", "interpretation_codes"] {
                prop_assert_eq!(field(&decoded.value, added), &Value::Union(0, Box::new(Value::Null)));
            }
        }

        #[test]
        fn corrupt_bodies_are_errors_not_panics(noise: Vec<u8>, cut in 0usize..200) {
            let catalogue = Catalogue::embedded();
            let v1 = catalogue.version("observation", 1).unwrap();
            let mut bytes = Encoder::new(catalogue, Framing::SingleObject)
                .encode(v1, &observation_v1(Some(1.0), None, None))
                .unwrap();
            bytes.truncate(cut.min(bytes.len()));
            bytes.extend_from_slice(&noise);
            let _ = Decoder::new(catalogue).decode(&bytes);
        }
    }

    #[test]
    fn errors_name_the_schema_but_never_a_value() {
        let catalogue = Catalogue::embedded();
        let v1 = catalogue.version("observation", 1).unwrap();
        let bytes = Encoder::new(catalogue, Framing::SingleObject)
            .encode(v1, &observation_v1(None, None, Some("9434765919".into())))
            .unwrap();
        // Cut inside the trailing nullable fields, which apache-avro alone would read as nulls.
        let error = Decoder::new(catalogue).decode(&bytes[..bytes.len() - 3]).unwrap_err().to_string();
        assert!(error.contains("observation") && error.contains("v1"), "{error}");
        assert!(error.contains("truncated"), "{error}");
        let mut trailing = bytes.clone();
        trailing.push(0);
        let error = Decoder::new(catalogue).decode(&trailing).unwrap_err().to_string();
        assert!(error.contains("1 bytes left"), "{error}");

        // A value that does not fit the schema: the error must not quote it.
        let mut wrong = observation_v1(None, None, None);
        if let Value::Record(fields) = &mut wrong {
            fields[5].1 = Value::String("9434765919".into());
        }
        let error = Encoder::new(catalogue, Framing::SingleObject).encode(v1, &wrong).unwrap_err().to_string();
        assert!(!error.contains("9434765919"), "{error}");
    }

    /// The Avro specification allows a decimal in its shortest two's-complement form (Java's
    /// and Python's Avro libraries write it so). apache-avro 0.22 refuses that form when it
    /// *resolves* a record to a newer version, so the decoder sign-extends the decimals of an
    /// older version first: v3 records (the first with decimals) resolve to the newest version
    /// with any length. sluice's producers write eight bytes for `decimal(18,6)` either way.
    #[test]
    fn decimals_in_their_shortest_form_are_read_from_an_older_version() {
        let catalogue = Catalogue::embedded();
        let v3 = catalogue.version("observation", 3).unwrap();
        let with_value = |bytes: &[u8]| {
            let mut record = observation_v1(Some(4.15), None, None);
            if let Value::Record(fields) = &mut record {
                fields.push(("interpretation".into(), nullable(None)));
                fields
                    .push(("value_decimal".into(), nullable(Some(Value::Decimal(apache_avro::Decimal::from(bytes))))));
                fields.push(("reference_range".into(), nullable(None)));
                fields.push(("interpretation_codes".into(), nullable(None)));
            }
            let encoded = Encoder::new(catalogue, Framing::SingleObject).encode(v3, &record).unwrap();
            Decoder::new(catalogue).decode(&encoded)
        };
        let eight = 4_150_000i64.to_be_bytes();
        let decoded = with_value(&eight).unwrap();
        assert_eq!(
            field(&decoded.value, "value_decimal"),
            &nullable(Some(Value::Decimal(apache_avro::Decimal::from(eight))))
        );
        let short = [0x3F, 0x52, 0xF0];
        let decoded = with_value(&short).unwrap();
        assert_eq!(decoded.reader.version(), 4, "resolved, not read as written");
        assert_eq!(
            field(&decoded.value, "value_decimal"),
            &nullable(Some(Value::Decimal(apache_avro::Decimal::from(short))))
        );
        // Negative numbers keep their sign: -0.5 is -500000 unscaled, 0xF85EE0 at its shortest.
        let decoded = with_value(&[0xF8, 0x5E, 0xE0]).unwrap();
        let Value::Union(1, read) = field(&decoded.value, "value_decimal") else { panic!("a decimal") };
        assert_eq!(crate::model::ResultDecimal::from_avro(read), crate::model::ResultDecimal::parse("-0.5"));
        let Value::Union(1, read) = field(&with_value(&short).unwrap().value, "value_decimal").clone() else {
            panic!("a decimal")
        };
        assert_eq!(crate::model::ResultDecimal::from_avro(&read), crate::model::ResultDecimal::parse("4.15"));
    }

    #[test]
    fn bytes_for_precision_is_the_fewest_that_hold_every_number_of_that_many_digits() {
        assert_eq!(bytes_for_precision(18), 8);
        assert_eq!(bytes_for_precision(19), 9);
        assert_eq!(bytes_for_precision(2), 1);
        assert_eq!(bytes_for_precision(38), 16);
    }
}
