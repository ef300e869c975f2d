//! [`ValidEvent`]: an event that passed validation, and the [`SubjectRecord`] made from one,
//! which is all a publisher takes.

use std::ops::Deref;

use apache_avro::types::Value;
use chrono::{DateTime, Utc};

use super::{ClinicalEvent, ValidationError, WriteError};
use crate::SchemaVersion;

/// An event that passed [`ClinicalEvent::validate`]. It can only be made by validating, so code
/// that holds one knows the rules were applied; it derefs to the event for reading.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidEvent(ClinicalEvent);

impl ClinicalEvent {
    /// Checks the event against every rule of [`super::validate`], `now` being the time of
    /// receipt, and gives it back as a [`ValidEvent`], or the first rule it breaks.
    pub fn validate(self, now: DateTime<Utc>) -> Result<ValidEvent, ValidationError> {
        self.check(now)?;
        Ok(ValidEvent(self))
    }
}

impl ValidEvent {
    /// The event.
    pub fn event(&self) -> &ClinicalEvent {
        &self.0
    }

    /// The event, giving up the proof that it is valid.
    pub fn into_event(self) -> ClinicalEvent {
        self.0
    }

    /// The record of this event under the newest schema version of its subject, with its
    /// Kafka key.
    pub fn into_record(self) -> SubjectRecord {
        let version = self.0.latest_version();
        SubjectRecord {
            subject: self.0.subject(),
            version: version.version(),
            key: self.0.record_key(),
            value: self.0.to_avro(),
        }
    }

    /// The record of this event under an older `version` of its subject's schema (for sources
    /// that still write it): the fields of that version only. Fails when `version` is of
    /// another subject, or has a field the model does not know.
    pub fn into_record_as(self, version: &SchemaVersion) -> Result<SubjectRecord, WriteError> {
        let value = self.0.to_avro_as(version)?;
        Ok(SubjectRecord { subject: self.0.subject(), version: version.version(), key: self.0.record_key(), value })
    }
}

impl Deref for ValidEvent {
    type Target = ClinicalEvent;

    fn deref(&self) -> &ClinicalEvent {
        &self.0
    }
}

impl PartialEq<ClinicalEvent> for ValidEvent {
    fn eq(&self, other: &ClinicalEvent) -> bool {
        self.0 == *other
    }
}

impl From<ValidEvent> for ClinicalEvent {
    fn from(valid: ValidEvent) -> ClinicalEvent {
        valid.0
    }
}

/// A valid event ready for the encoder: subject, schema version, Kafka key and Avro value.
/// Made only from a [`ValidEvent`].
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectRecord {
    /// Catalogue subject.
    subject: &'static str,
    /// Schema version the value conforms to.
    version: u32,
    /// Kafka key.
    key: String,
    /// The record.
    value: Value,
}

impl SubjectRecord {
    /// Catalogue subject.
    pub fn subject(&self) -> &'static str {
        self.subject
    }

    /// Schema version the value conforms to.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Kafka key: the NHS number, or `<organisation>:<local id>` without one, so that one
    /// patient's events stay in order in one partition. Consent keys are the whole change,
    /// because the consent topic is compacted on the key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The Avro record.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The Avro record, taken out.
    pub fn into_value(self) -> Value {
        self.value
    }
}
