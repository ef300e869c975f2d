//! The catalogue: every subject, every version, and how to find a version from the wire.

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    path::Path,
    sync::LazyLock,
};

use apache_avro::{Schema, rabin::Rabin};

use crate::{Error, Result, WriterSchemaRef};

include!(concat!(env!("OUT_DIR"), "/embedded_schemas.rs"));

/// Names of the subjects that sluice itself knows how to produce and land.
pub mod subjects {
    /// Patient administration events (HL7 v2 ADT).
    pub const ADT: &str = "adt";
    /// Vital signs and laboratory results.
    pub const OBSERVATION: &str = "observation";
    /// Diagnoses and problems (ICD-10 or SNOMED CT).
    pub const DIAGNOSIS: &str = "diagnosis";
    /// Consent and opt-out changes; control data, never landed as a dataset.
    pub const CONSENT: &str = "consent";
    /// Records of the audit trail, published for governance; never landed as a dataset.
    pub const AUDIT: &str = "audit";
    /// The clinical subjects, which are landed as datasets.
    pub const CLINICAL: [&str; 3] = [ADT, OBSERVATION, DIAGNOSIS];
}

/// The CRC-64-AVRO (Rabin) fingerprint of a schema's Parsing Canonical Form: what single-object
/// framing carries and what two schemas that differ only in documentation share.
pub fn fingerprint_of(schema: &Schema) -> u64 {
    u64::from_le_bytes(schema.fingerprint::<Rabin>().bytes.try_into().expect("Rabin fingerprints are 8 bytes"))
}

/// One version of one subject's schema, with the identifiers used to find it on the wire.
#[derive(Debug, Clone)]
pub struct SchemaVersion {
    /// Subject name, from the directory the file is in.
    subject: String,
    /// Version number, from the `v<N>` file name.
    version: u32,
    /// The parsed schema.
    schema: Schema,
    /// The schema file's JSON, compact, with its documentation and sensitivity labels: what a
    /// schema registry serves for this version.
    json: String,
    /// CRC-64-AVRO (Rabin) fingerprint of the Parsing Canonical Form, as used in single-object framing.
    fingerprint: u64,
    /// Schema id used in Confluent framing: the fingerprint's low 31 bits, so it is stable for a
    /// given schema without a registry and never negative.
    schema_id: u32,
}

impl SchemaVersion {
    fn parse(subject: &str, version: u32, json: &str) -> Result<Self> {
        let schema = Schema::parse_str(json).map_err(|error| Error::InvalidSchema {
            subject: subject.to_owned(),
            version,
            reason: error.to_string(),
        })?;
        let fingerprint = fingerprint_of(&schema);
        let json = serde_json::from_str::<serde_json::Value>(json)
            .map(|value| value.to_string())
            .unwrap_or_else(|_| json.to_owned());
        Ok(Self {
            subject: subject.to_owned(),
            version,
            schema,
            json,
            fingerprint,
            schema_id: (fingerprint & 0x7fff_ffff) as u32,
        })
    }

    /// The schema file's JSON, compact, documentation and sensitivity labels included.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The subject this version belongs to.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The version number (1 for the first version).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The Avro schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The id written in Confluent framing.
    pub fn schema_id(&self) -> u32 {
        self.schema_id
    }

    /// `subject vN`, for messages.
    pub fn label(&self) -> String {
        format!("{} v{}", self.subject, self.version)
    }

    /// `subject vN fingerprint`, as the audit trail and landed files name a reader schema.
    pub fn fingerprinted_label(&self) -> String {
        fingerprinted_label(&self.subject, self.version, self.fingerprint())
    }
}

/// `subject vN fingerprint` (the fingerprint as 16 hex digits): how the audit trail and landed
/// files' metadata name a schema version.
pub fn fingerprinted_label(subject: &str, version: u32, fingerprint: u64) -> String {
    format!("{subject} v{version} {fingerprint:016x}")
}

/// All subjects and their versions, oldest first.
#[derive(Debug)]
pub struct Catalogue {
    /// Versions of each subject, in version order (index 0 is v1).
    subjects: BTreeMap<String, Vec<SchemaVersion>>,
    /// (subject, index into its versions) by fingerprint.
    by_fingerprint: HashMap<u64, (String, usize)>,
    /// (subject, index into its versions) by Confluent schema id.
    by_schema_id: HashMap<u32, (String, usize)>,
}

static EMBEDDED: LazyLock<Catalogue> = LazyLock::new(|| {
    Catalogue::from_files(
        EMBEDDED_SCHEMA_FILES
            .iter()
            .map(|(subject, stem, json)| (subject.to_string(), stem.to_string(), json.to_string())),
    )
    .expect("the embedded schema catalogue is checked by this crate's tests")
});

impl Catalogue {
    /// The catalogue compiled into this build from `schemas/avro`.
    pub fn embedded() -> &'static Catalogue {
        &EMBEDDED
    }

    /// Loads a catalogue from a directory laid out as `<subject>/v<N>.avsc`.
    pub fn load_dir(dir: &Path) -> Result<Catalogue> {
        let read_dir =
            |path: &Path| fs::read_dir(path).map_err(|source| Error::ReadSchemaFile { path: path.to_owned(), source });
        let mut files = Vec::new();
        for subject_entry in read_dir(dir)? {
            let subject_dir =
                subject_entry.map_err(|source| Error::ReadSchemaFile { path: dir.to_owned(), source })?.path();
            if !subject_dir.is_dir() {
                continue;
            }
            let subject = subject_dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
            for file_entry in read_dir(&subject_dir)? {
                let path =
                    file_entry.map_err(|source| Error::ReadSchemaFile { path: subject_dir.clone(), source })?.path();
                if path.extension().is_none_or(|ext| ext != "avsc") {
                    continue;
                }
                let stem = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
                let json =
                    fs::read_to_string(&path).map_err(|source| Error::ReadSchemaFile { path: path.clone(), source })?;
                files.push((subject.clone(), stem, json));
            }
        }
        Catalogue::from_files(files)
    }

    /// Builds a catalogue from `(subject, file stem, schema JSON)` triples.
    pub fn from_files(files: impl IntoIterator<Item = (String, String, String)>) -> Result<Catalogue> {
        let mut parsed: BTreeMap<String, BTreeMap<u32, SchemaVersion>> = BTreeMap::new();
        for (subject, stem, json) in files {
            let version = stem
                .strip_prefix('v')
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| Error::BadSchemaFileName { path: format!("{subject}/{stem}.avsc").into() })?;
            let schema = SchemaVersion::parse(&subject, version, &json)?;
            parsed.entry(subject).or_default().insert(version, schema);
        }
        let mut catalogue =
            Catalogue { subjects: BTreeMap::new(), by_fingerprint: HashMap::new(), by_schema_id: HashMap::new() };
        for (subject, versions) in parsed {
            let numbers: Vec<u32> = versions.keys().copied().collect();
            if numbers.iter().enumerate().any(|(i, n)| *n != i as u32 + 1) {
                return Err(Error::VersionGap { subject, found: numbers });
            }
            let versions: Vec<SchemaVersion> = versions.into_values().collect();
            for (index, version) in versions.iter().enumerate() {
                let entry = (subject.clone(), index);
                for (what, previous) in [
                    ("same fingerprint", catalogue.by_fingerprint.insert(version.fingerprint, entry.clone())),
                    ("same schema id", catalogue.by_schema_id.insert(version.schema_id, entry)),
                ] {
                    if let Some((other_subject, other_index)) = previous {
                        let other = match catalogue.subjects.get(&other_subject) {
                            Some(done) => done[other_index].label(),
                            None => versions[other_index].label(),
                        };
                        return Err(Error::AmbiguousSchema { first: other, second: version.label(), what });
                    }
                }
            }
            catalogue.subjects.insert(subject, versions);
        }
        Ok(catalogue)
    }

    /// Subject names, in alphabetical order.
    pub fn subject_names(&self) -> impl Iterator<Item = &str> {
        self.subjects.keys().map(String::as_str)
    }

    /// Every version of a subject, oldest first.
    pub fn versions(&self, subject: &str) -> Result<&[SchemaVersion]> {
        self.subjects.get(subject).map(Vec::as_slice).ok_or_else(|| Error::UnknownSubject(subject.to_owned()))
    }

    /// The newest version of a subject: the one consumers read every record of that subject with.
    pub fn latest(&self, subject: &str) -> Result<&SchemaVersion> {
        Ok(self.versions(subject)?.last().expect("a subject has at least one version"))
    }

    /// One numbered version of a subject.
    pub fn version(&self, subject: &str, version: u32) -> Result<&SchemaVersion> {
        self.versions(subject)?
            .get((version as usize).wrapping_sub(1))
            .ok_or_else(|| Error::UnknownSubject(format!("{subject} v{version}")))
    }

    /// Finds the version a framing header refers to.
    pub fn resolve(&self, writer: WriterSchemaRef) -> Result<&SchemaVersion> {
        let found = match writer {
            WriterSchemaRef::Fingerprint(fingerprint) => self.by_fingerprint.get(&fingerprint),
            WriterSchemaRef::SchemaId(id) => self.by_schema_id.get(&id),
        };
        let (subject, index) = found.ok_or(Error::UnknownWriterSchema(writer))?;
        Ok(&self.subjects[subject][*index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalogue_has_every_subject_with_documented_fields() {
        let catalogue = Catalogue::embedded();
        let names: Vec<&str> = catalogue.subject_names().collect();
        assert_eq!(names, ["adt", "audit", "consent", "diagnosis", "observation"]);
        for subject in &names {
            for version in catalogue.versions(subject).unwrap() {
                let Schema::Record(record) = version.schema() else { panic!("{} is not a record", version.label()) };
                assert!(record.doc.as_deref().is_some_and(|d| !d.is_empty()), "{} has no doc", version.label());
                for field in &record.fields {
                    assert!(
                        field.doc.as_deref().is_some_and(|d| d.len() > 10),
                        "{} field {} has no doc",
                        version.label(),
                        field.name
                    );
                    // Fields of nested records are documented too.
                    let inner = match &field.schema {
                        Schema::Union(union) => union.variants().iter().find(|v| !matches!(v, Schema::Null)),
                        other => Some(other),
                    };
                    if let Some(Schema::Record(nested)) = inner {
                        assert!(nested.doc.is_some(), "{} record {} has no doc", version.label(), field.name);
                        for child in &nested.fields {
                            assert!(
                                child.doc.as_deref().is_some_and(|d| d.len() > 10),
                                "{} field {}.{} has no doc",
                                version.label(),
                                field.name,
                                child.name
                            );
                        }
                    }
                }
            }
        }
        assert!(catalogue.versions("observation").unwrap().len() >= 2, "one subject evolves");
    }

    #[test]
    fn versions_resolve_by_fingerprint_and_by_schema_id() {
        let catalogue = Catalogue::embedded();
        let v1 = catalogue.version("observation", 1).unwrap();
        let v2 = catalogue.version("observation", 2).unwrap();
        assert_ne!(v1.fingerprint(), v2.fingerprint());
        let found = catalogue.resolve(WriterSchemaRef::Fingerprint(v1.fingerprint())).unwrap();
        assert_eq!((found.subject(), found.version()), ("observation", 1));
        let found = catalogue.resolve(WriterSchemaRef::SchemaId(v2.schema_id())).unwrap();
        assert_eq!((found.subject(), found.version()), ("observation", 2));
        assert!(matches!(catalogue.resolve(WriterSchemaRef::Fingerprint(42)), Err(Error::UnknownWriterSchema(_))));
    }

    #[test]
    fn fingerprint_matches_the_avro_specification_test_vector() {
        // The Avro specification's reference CRC-64-AVRO of the schema "null" is 0x63dd24e7cc258f8a.
        let null = SchemaVersion::parse("t", 1, r#""null""#).unwrap();
        assert_eq!(null.fingerprint(), 0x63dd_24e7_cc25_8f8a);
    }

    #[test]
    fn gaps_and_bad_names_are_refused() {
        let record = r#"{"type":"record","name":"R","fields":[]}"#.to_owned();
        let gap = Catalogue::from_files([
            ("s".into(), "v1".into(), record.clone()),
            ("s".into(), "v3".into(), record.clone()),
        ]);
        assert!(matches!(gap, Err(Error::VersionGap { found, .. }) if found == [1, 3]));
        let bad = Catalogue::from_files([("s".into(), "version1".into(), record)]);
        assert!(matches!(bad, Err(Error::BadSchemaFileName { .. })));
    }

    /// The `sensitivity` attribute on fields is read by landing policies. Custom attributes are
    /// not part of the Parsing Canonical Form, so labelling (or relabelling) fields must never
    /// change a fingerprint or schema id: events already on the topics must still resolve.
    #[test]
    fn sensitivity_labels_do_not_change_fingerprints() {
        for (subject, stem, json) in EMBEDDED_SCHEMA_FILES {
            let mut value: serde_json::Value = serde_json::from_str(json).unwrap();
            let fields = value["fields"].as_array_mut().unwrap();
            let mut labelled = 0;
            for field in fields.iter_mut() {
                labelled += usize::from(field.as_object_mut().unwrap().remove("sensitivity").is_some());
            }
            assert!(labelled > 0, "{subject}/{stem} labels no field");
            let version = stem[1..].parse().unwrap();
            let with = SchemaVersion::parse(subject, version, json).unwrap();
            let without = SchemaVersion::parse(subject, version, &value.to_string()).unwrap();
            assert_eq!(with.fingerprint(), without.fingerprint(), "{subject}/{stem}");
        }
    }

    #[test]
    fn identifiers_carry_their_labels_in_every_version() {
        let expected =
            [("nhs_number", crate::Sensitivity::DirectIdentifier), ("event_id", crate::Sensitivity::RecordIdentifier)];
        for subject in Catalogue::embedded().subject_names() {
            for version in Catalogue::embedded().versions(subject).unwrap() {
                let Schema::Record(record) = version.schema() else { unreachable!() };
                for (name, label) in expected {
                    if let Some(field) = record.fields.iter().find(|f| f.name == name) {
                        assert_eq!(crate::Sensitivity::of(field), Ok(Some(label)), "{} {name}", version.label());
                    }
                }
            }
        }
    }

    #[test]
    fn load_dir_reads_the_repository_files_like_the_embedded_copy() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("avro");
        let loaded = Catalogue::load_dir(&dir).unwrap();
        for subject in Catalogue::embedded().subject_names() {
            let embedded: Vec<u64> =
                Catalogue::embedded().versions(subject).unwrap().iter().map(|v| v.fingerprint()).collect();
            let on_disk: Vec<u64> = loaded.versions(subject).unwrap().iter().map(|v| v.fingerprint()).collect();
            assert_eq!(embedded, on_disk, "{subject}");
        }
    }
}
