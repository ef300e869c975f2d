//! One change read from the consent topic, and what it is about.

use apache_avro::types::Value;
use sluice_schemas::model::{AvroEnum, ClinicalEvent, Problem, ValidationError};
use sluice_schemas::{NhsNumber, subjects};

/// What a consent change is about: the producers' model type
/// ([`sluice_schemas::model::ConsentScope`]), whose symbols come from the `consent` schema.
pub use sluice_schemas::model::ConsentScope;

/// One decoded change from the consent topic.
///
/// Its `Debug` output is safe to log: [`NhsNumber`] prints itself redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentChange {
    /// The patient.
    pub nhs_number: NhsNumber,
    /// What the change is about.
    pub scope: ConsentScope,
    /// True for an opt-out or dissent, false for a withdrawal of an opt-out or a consent.
    pub deny: bool,
    /// When the change takes effect (microseconds since the Unix epoch, UTC). A change dated
    /// after the store's clock waits until then ([`super::ConsentStore::advance_to`]).
    pub effective_at: i64,
    /// When a time-limited change stops having effect (microseconds since the Unix epoch, UTC),
    /// after `effective_at`; `None` when it lasts until a later change replaces it.
    pub effective_until: Option<i64>,
    /// Purposes the change is limited to; empty means every purpose the scope covers.
    pub purposes: Vec<String>,
}

/// The patient a consent record's Kafka key names: the key is `<NHS number>:<scope>...`, as
/// producers write it (a valid NHS number, ten digits, first). `None` for a key that does not
/// start so.
pub fn patient_of_record_key(key: &[u8]) -> Option<NhsNumber> {
    let key = std::str::from_utf8(key).ok()?;
    let (digits, _) = key.split_once(':')?;
    (digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| NhsNumber::parse(digits).ok())?
}

impl ConsentChange {
    /// Reads a change from a `consent` record (any version, resolved to the newest) with the
    /// producers' model ([`sluice_schemas::model::ClinicalEvent::from_record`]), so that the
    /// consumers read exactly the fields, symbols and canonical spellings the schema and the
    /// producers define. The error names the field and what is wrong without quoting any value.
    ///
    /// Checks that do not depend on when the record is read apply here too: a time-limited change
    /// must end after it starts. (The producers' plausibility checks against the clock do not: a
    /// change read years after it was published is still the patient's decision.)
    pub fn from_record(record: &Value) -> Result<Self, String> {
        let event = match ClinicalEvent::from_record(subjects::CONSENT, record) {
            Ok(ClinicalEvent::Consent(event)) => event,
            Ok(_) => return Err("a consent record did not read as a consent change".to_owned()),
            // The patient is what a consent change is about: say so in words an operator
            // searching the dead-letter topic for bad NHS numbers would look for.
            Err(ValidationError { problem: Problem::NhsNumber(why), .. }) => {
                return Err(format!("consent change has an invalid NHS number: {why}"));
            }
            Err(error) => return Err(format!("unreadable consent change: {error}")),
        };
        let effective_at = event.effective_at.timestamp_micros();
        let effective_until = event.effective_until.map(|until| until.timestamp_micros());
        if effective_until.is_some_and(|until| until <= effective_at) {
            return Err("a consent change's effective_until is not after its effective_at".to_owned());
        }
        Ok(ConsentChange {
            nhs_number: event.nhs_number,
            scope: event.scope,
            deny: event.deny,
            effective_at,
            effective_until,
            purposes: event.purposes,
        })
    }

    /// The Kafka key a consent record holding this change must have
    /// ([`sluice_schemas::consent_record_key`]): the whole change, so that compacting the
    /// consent topic never drops a change.
    pub fn record_key(&self) -> String {
        sluice_schemas::consent_record_key(
            &self.nhs_number.digits(),
            self.scope.kind().symbol(),
            self.scope.study_id(),
            self.deny,
            self.effective_at,
            self.effective_until,
            &self.purposes,
        )
    }

    /// Whether the change withdraws release: it is a DENY (an opt-out or a study dissent) rather
    /// than a PERMIT (the withdrawal of an opt-out, or a consent to a study).
    pub fn withdraws_release(&self) -> bool {
        self.deny
    }
}
