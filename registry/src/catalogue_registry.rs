//! The registry's answers, worked out from the catalogue alone: pure functions, no HTTP.

use std::collections::BTreeMap;

use sluice_schemas::{Catalogue, SchemaVersion, WriterSchemaRef, apache_avro::Schema, compatibility, fingerprint_of};

use crate::{Error, Result};

/// The compatibility level the catalogue is held to (`sluice schemas check`).
pub const COMPATIBILITY: &str = "BACKWARD_TRANSITIVE";

/// Suffix of a record value's subject under Confluent's topic-name strategy.
pub const VALUE_SUFFIX: &str = "-value";

/// A catalogued schema version as the registry names it.
#[derive(Debug, Clone, Copy)]
pub struct Registered<'c> {
    /// The registry subject, e.g. `clinical.adt-value`.
    pub subject: &'c str,
    /// The catalogued version.
    pub version: &'c SchemaVersion,
}

impl Registered<'_> {
    /// The id the registry gives it: the catalogue's Confluent schema id (the low 31 bits of its
    /// fingerprint), so records sluice frames with Confluent framing carry ids this registry knows.
    pub fn id(&self) -> u32 {
        self.version.schema_id()
    }
}

/// The catalogue seen as a Confluent Schema Registry: one registry subject per topic
/// (`<topic>-value`), holding the versions of the catalogue subject that topic carries.
#[derive(Debug)]
pub struct CatalogueRegistry {
    /// The reviewed catalogue: the only source of schemas.
    catalogue: &'static Catalogue,
    /// Registry subject -> catalogue subject, e.g. `clinical.adt-value` -> `adt`.
    subjects: BTreeMap<String, String>,
}

impl CatalogueRegistry {
    /// A registry of `catalogue` for topics named by `topic_subjects` (topic -> catalogue
    /// subject). A topic whose subject is not catalogued is left out.
    pub fn new(catalogue: &'static Catalogue, topic_subjects: impl IntoIterator<Item = (String, String)>) -> Self {
        let subjects = topic_subjects
            .into_iter()
            .filter(|(_, subject)| catalogue.versions(subject).is_ok())
            .map(|(topic, subject)| (format!("{topic}{VALUE_SUFFIX}"), subject))
            .collect();
        CatalogueRegistry { catalogue, subjects }
    }

    /// Every registry subject, sorted.
    pub fn subjects(&self) -> Vec<&str> {
        self.subjects.keys().map(String::as_str).collect()
    }

    /// The catalogued versions of a registry subject, oldest first.
    pub fn versions(&self, subject: &str) -> Result<Vec<Registered<'_>>> {
        let (subject, catalogued) =
            self.subjects.get_key_value(subject).ok_or_else(|| Error::SubjectNotFound(subject.to_owned()))?;
        let versions = self.catalogue.versions(catalogued).expect("only catalogued subjects are listed");
        Ok(versions.iter().map(|version| Registered { subject, version }).collect())
    }

    /// One version of a registry subject: a number, or `latest` (also `-1`).
    pub fn version(&self, subject: &str, version: &str) -> Result<Registered<'_>> {
        let versions = self.versions(subject)?;
        let found = match version {
            "latest" | "-1" => versions.last().copied(),
            number => {
                let number: u32 = number.parse().map_err(|_| Error::InvalidVersion(version.to_owned()))?;
                versions.into_iter().find(|registered| registered.version.version() == number)
            }
        };
        found.ok_or_else(|| Error::VersionNotFound { subject: subject.to_owned(), version: version.to_owned() })
    }

    /// Every registry subject and version a schema id names (one catalogued version may be
    /// carried by more than one topic).
    pub fn by_id(&self, id: u32) -> Result<Vec<Registered<'_>>> {
        let version = self.catalogue.resolve(WriterSchemaRef::SchemaId(id)).map_err(|_| Error::SchemaIdNotFound(id))?;
        let registered: Vec<Registered<'_>> = self
            .subjects
            .iter()
            .filter(|(_, catalogued)| *catalogued == version.subject())
            .map(|(subject, _)| Registered { subject, version })
            .collect();
        if registered.is_empty() {
            return Err(Error::SchemaIdNotFound(id));
        }
        Ok(registered)
    }

    /// The schema JSON of an id.
    pub fn schema(&self, id: u32) -> Result<&str> {
        Ok(self.by_id(id)?[0].version.json())
    }

    /// The catalogued version of `subject` whose Parsing Canonical Form is that of `schema`
    /// (documentation, sensitivity labels, defaults and field order of JSON keys aside): what
    /// both registering and looking up a schema return. A schema that is not catalogued under
    /// that subject is refused, saying how schemas change.
    pub fn find(&self, subject: &str, schema: &str) -> Result<Registered<'_>> {
        let versions = self.versions(subject)?;
        let parsed = Schema::parse_str(schema).map_err(|error| Error::InvalidSchema(error.to_string()))?;
        let fingerprint = fingerprint_of(&parsed);
        versions.into_iter().find(|registered| registered.version.fingerprint() == fingerprint).ok_or_else(|| {
            Error::NotCatalogued { subject: subject.to_owned(), catalogued: self.subjects[subject].clone() }
        })
    }

    /// Whether `schema` could be added as the next version of `subject` (`version` `latest`) or
    /// read data of one version (a number): BACKWARD_TRANSITIVE, so against every version up to
    /// it. The reasons when it could not.
    pub fn compatibility(&self, subject: &str, version: &str, schema: &str) -> Result<Vec<String>> {
        let upto = self.version(subject, version)?;
        let parsed = Schema::parse_str(schema).map_err(|error| Error::InvalidSchema(error.to_string()))?;
        Ok(self
            .versions(subject)?
            .into_iter()
            .filter(|registered| registered.version.version() <= upto.version.version())
            .filter_map(|registered| {
                compatibility::can_read(registered.version.schema(), &parsed).err().map(|(field, reason)| {
                    let field = if field.is_empty() { "<record>".to_owned() } else { field };
                    format!(
                        "cannot read data written with version {}: field `{field}`: {reason}",
                        registered.version.version()
                    )
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> CatalogueRegistry {
        CatalogueRegistry::new(
            Catalogue::embedded(),
            [
                ("clinical.adt".to_owned(), "adt".to_owned()),
                ("clinical.observation".to_owned(), "observation".to_owned()),
                ("unknown.topic".to_owned(), "not-a-subject".to_owned()),
            ],
        )
    }

    #[test]
    fn subjects_follow_the_topic_name_strategy_and_versions_the_catalogue() {
        let registry = registry();
        assert_eq!(registry.subjects(), ["clinical.adt-value", "clinical.observation-value"]);
        let versions: Vec<u32> =
            registry.versions("clinical.observation-value").unwrap().iter().map(|r| r.version.version()).collect();
        assert_eq!(versions, [1, 2, 3, 4]);
        let latest = registry.version("clinical.observation-value", "latest").unwrap();
        assert_eq!(latest.version.version(), 4);
        assert_eq!(latest.id(), Catalogue::embedded().latest("observation").unwrap().schema_id());
        assert!(matches!(registry.version("clinical.adt-value", "9"), Err(Error::VersionNotFound { .. })));
        assert!(matches!(registry.version("clinical.adt-value", "x"), Err(Error::InvalidVersion(_))));
        assert!(matches!(registry.versions("clinical.adt"), Err(Error::SubjectNotFound(_))));
    }

    #[test]
    fn a_catalogued_schema_is_found_by_its_canonical_form_and_anything_else_is_refused() {
        let registry = registry();
        let v2 = Catalogue::embedded().version("adt", 2).unwrap();
        // Without documentation or labels, keys reordered: the same canonical form.
        let mut bare: serde_json::Value = serde_json::from_str(v2.json()).unwrap();
        strip(&mut bare);
        let found = registry.find("clinical.adt-value", &bare.to_string()).unwrap();
        assert_eq!((found.version.version(), found.id()), (2, v2.schema_id()));
        assert_eq!(registry.by_id(found.id()).unwrap()[0].subject, "clinical.adt-value");
        assert_eq!(registry.schema(found.id()).unwrap(), v2.json());

        // An ADT schema under the observation subject, and a changed one: refused.
        let error = registry.find("clinical.observation-value", v2.json()).unwrap_err();
        assert!(matches!(error, Error::NotCatalogued { .. }), "{error}");
        bare["fields"].as_array_mut().unwrap().pop();
        let error = registry.find("clinical.adt-value", &bare.to_string()).unwrap_err();
        assert!(error.to_string().contains("schemas/avro/adt"), "{error}");
        assert!(matches!(registry.find("clinical.adt-value", "{"), Err(Error::InvalidSchema(_))));
        assert!(matches!(registry.by_id(7), Err(Error::SchemaIdNotFound(7))));
    }

    #[test]
    fn compatibility_is_checked_against_every_version_up_to_the_one_named() {
        let registry = registry();
        let latest = Catalogue::embedded().latest("observation").unwrap();
        assert_eq!(registry.compatibility("clinical.observation-value", "latest", latest.json()).unwrap().len(), 0);
        // v1 cannot read what v3 added? It can (unknown fields are skipped), but v1 requires the
        // local id that v4 lets a writer leave out.
        let v1 = Catalogue::embedded().version("observation", 1).unwrap();
        let reasons = registry.compatibility("clinical.observation-value", "latest", v1.json()).unwrap();
        assert!(reasons.iter().any(|reason| reason.contains("local_patient_id")), "{reasons:?}");
        assert!(registry.compatibility("clinical.observation-value", "3", v1.json()).unwrap().is_empty());
    }

    /// Removes `doc` and `sensitivity` everywhere in a schema's JSON.
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.remove("doc");
                map.remove("sensitivity");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
}
