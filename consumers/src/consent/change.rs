//! One change read from the consent topic, and what it is about.

use apache_avro::types::Value;
use sluice_schemas::model::{AvroEnum, ConsentDecision, ConsentScopeKind};
use sluice_schemas::{NhsNumber, StudyId};

use super::Purpose;
use crate::record::RecordView;

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
    /// Reads a change from a `consent` record (any version, resolved to the newest). The error
    /// names what is wrong without quoting any value.
    pub fn from_record(record: &Value) -> Result<Self, String> {
        let view = RecordView::new(record).ok_or("a consent change must be a record")?;
        let nhs_number = view
            .string("nhs_number")
            .ok_or("consent change has no NHS number")
            .and_then(|text| NhsNumber::parse(text).map_err(|_| "consent change has an invalid NHS number"))?;
        let scope = match view.enum_symbol("scope").and_then(ConsentScopeKind::from_symbol) {
            Some(ConsentScopeKind::NationalDataOptOut) => ConsentScope::NationalDataOptOut,
            Some(ConsentScopeKind::Type1OptOut) => ConsentScope::Type1OptOut,
            Some(ConsentScopeKind::Study) => {
                let id = view
                    .string("study_id")
                    .filter(|id| !id.is_empty())
                    .ok_or("a STUDY consent change needs a study_id")?;
                let id = StudyId::parse(id).map_err(|_| "the study_id of a consent change is not a study id")?;
                ConsentScope::Study(id.into_string())
            }
            _ => return Err("consent change has an unknown scope".to_owned()),
        };
        let deny = match view.enum_symbol("decision").and_then(ConsentDecision::from_symbol) {
            Some(decision) => decision == ConsentDecision::Deny,
            None => return Err("consent change has an unknown decision".to_owned()),
        };
        let effective_at = view.timestamp_micros("effective_at").ok_or("consent change has no effective_at")?;
        let effective_until = match view.get("effective_until") {
            None => None,
            Some(_) => Some(
                view.timestamp_micros("effective_until")
                    .ok_or("the effective_until of a consent change is not a time")?,
            ),
        };
        if effective_until.is_some_and(|until| until <= effective_at) {
            return Err("a consent change's effective_until is not after its effective_at".to_owned());
        }
        // Purposes in their canonical names, so that `study:iras 312456` names `study:IRAS-312456`.
        let purposes = view
            .string_array("purposes")
            .unwrap_or_default()
            .iter()
            .map(|name| name.parse::<Purpose>().map(|purpose| purpose.name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| "a consent change names a purpose sluice does not know".to_owned())?;
        if let ConsentScope::Study(id) = &scope
            && !purposes.is_empty()
            && !purposes.iter().any(|name| name.strip_prefix("study:") == Some(id.as_str()))
        {
            return Err("a study consent change limited to purposes must name its own study among them".to_owned());
        }
        Ok(ConsentChange { nhs_number, scope, deny, effective_at, effective_until, purposes })
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
