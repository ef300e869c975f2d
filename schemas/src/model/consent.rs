//! The `consent` subject: [`ConsentEvent`].

use apache_avro::types::Value;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::patient::micros;
use super::read::{Fields, Read, nhs_number};
use super::write::Datum;
use super::{AvroEnum, NhsNumber, Problem, ValidationError};

/// What a consent change is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentScope {
    /// The National Data Opt-out.
    NationalDataOptOut,
    /// A Type 1 opt-out (GP data leaving the practice).
    Type1OptOut,
    /// One named study, by its identifier (e.g. IRAS number).
    Study(String),
}

impl ConsentScope {
    /// The scope's symbol, without the study id.
    pub fn kind(&self) -> ConsentScopeKind {
        match self {
            ConsentScope::NationalDataOptOut => ConsentScopeKind::NationalDataOptOut,
            ConsentScope::Type1OptOut => ConsentScopeKind::Type1OptOut,
            ConsentScope::Study(_) => ConsentScopeKind::Study,
        }
    }

    /// The study id of a study scope.
    pub fn study_id(&self) -> Option<&str> {
        match self {
            ConsentScope::Study(id) => Some(id),
            _ => None,
        }
    }
}

/// The `ConsentScope` enum of the schema: a [`ConsentScope`] without the study id (which the
/// record carries in `study_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentScopeKind {
    /// `NATIONAL_DATA_OPT_OUT`.
    NationalDataOptOut,
    /// `TYPE_1_OPT_OUT`.
    Type1OptOut,
    /// `STUDY`.
    Study,
}

impl AvroEnum for ConsentScopeKind {
    const AVRO_NAME: &'static str = "ConsentScope";
    const SYMBOLS: &'static [(Self, &'static str)] = &[
        (ConsentScopeKind::NationalDataOptOut, "NATIONAL_DATA_OPT_OUT"),
        (ConsentScopeKind::Type1OptOut, "TYPE_1_OPT_OUT"),
        (ConsentScopeKind::Study, "STUDY"),
    ];
    const ALLOWED: &'static str = "NATIONAL_DATA_OPT_OUT, TYPE_1_OPT_OUT and STUDY";
}

/// The `ConsentDecision` enum: [`ConsentEvent::deny`] as the record writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentDecision {
    /// `PERMIT`: consent, or a withdrawn opt-out.
    Permit,
    /// `DENY`: an opt-out or dissent.
    Deny,
}

impl AvroEnum for ConsentDecision {
    const AVRO_NAME: &'static str = "ConsentDecision";
    const SYMBOLS: &'static [(Self, &'static str)] =
        &[(ConsentDecision::Permit, "PERMIT"), (ConsentDecision::Deny, "DENY")];
    const ALLOWED: &'static str = "PERMIT and DENY";
}

impl ConsentDecision {
    /// `Deny` for `true`.
    pub fn of(deny: bool) -> Self {
        if deny { ConsentDecision::Deny } else { ConsentDecision::Permit }
    }
}

/// A consent or opt-out change.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentEvent {
    /// Stable identifier of the change.
    pub event_id: Uuid,
    /// When the change takes effect; it may be in the future, and takes effect then.
    pub effective_at: DateTime<Utc>,
    /// When a time-limited change (a FHIR Consent's `provision.period.end`) stops having
    /// effect; `None` when it lasts until a later change (from version 2).
    pub effective_until: Option<DateTime<Utc>>,
    /// When the source recorded it.
    pub recorded_at: DateTime<Utc>,
    /// ODS code of the recording organisation.
    pub source_organisation: String,
    /// The patient; a consent change without one is unusable.
    pub nhs_number: NhsNumber,
    /// What it is about.
    pub scope: ConsentScope,
    /// `true` for an opt-out or dissent, `false` for consent or a withdrawn opt-out.
    pub deny: bool,
    /// Purposes the decision is limited to; empty means all the scope covers.
    pub purposes: Vec<String>,
}

impl ConsentEvent {
    /// The whole change as the record's key, so that compacting the consent topic keeps every
    /// change ([`crate::consent_record_key`]).
    pub(crate) fn record_key(&self) -> String {
        crate::consent_record_key(
            &self.nhs_number.digits(),
            self.scope.kind().symbol(),
            self.scope.study_id(),
            self.deny,
            self.effective_at.timestamp_micros(),
            self.effective_until.map(|until| until.timestamp_micros()),
            &self.purposes,
        )
    }

    /// Every field of the `consent` record, by schema name.
    pub(crate) fn fields(&self) -> Vec<(&'static str, Datum)> {
        vec![
            ("event_id", Datum::Uuid(self.event_id)),
            ("effective_at", micros(self.effective_at)),
            ("effective_until", Datum::optional(self.effective_until, micros)),
            ("recorded_at", micros(self.recorded_at)),
            ("source_organisation", Datum::String(self.source_organisation.clone())),
            ("nhs_number", Datum::String(self.nhs_number.digits())),
            ("scope", Datum::Symbol(self.scope.kind().symbol())),
            ("study_id", Datum::text(self.scope.study_id())),
            ("decision", Datum::Symbol(ConsentDecision::of(self.deny).symbol())),
            ("purposes", Datum::Array(self.purposes.iter().cloned().map(Datum::String).collect())),
        ]
    }

    /// Reads what [`fields`](Self::fields) writes. Study ids and purposes come out in their
    /// canonical spellings ([`super::validate::canonical_consent`]); a scope and study id that
    /// disagree are refused.
    pub(crate) fn read(record: &Fields<'_>) -> Read<Self> {
        let study_id = record.optional_string("study_id")?;
        let scope = match (record.symbol("scope")?, study_id) {
            (ConsentScopeKind::Study, Some(study)) => ConsentScope::Study(study),
            (ConsentScopeKind::Study, None) => return Err(ValidationError::new("study_id", Problem::Missing)),
            (_, Some(_)) => {
                return Err(ValidationError::new("study_id", Problem::NotAllowed("changes whose scope is STUDY")));
            }
            (ConsentScopeKind::NationalDataOptOut, None) => ConsentScope::NationalDataOptOut,
            (ConsentScopeKind::Type1OptOut, None) => ConsentScope::Type1OptOut,
        };
        let purposes = match record.required("purposes")? {
            Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    Value::String(purpose) => Ok(purpose.clone()),
                    _ => Err(ValidationError::new("purposes", Problem::Unreadable("string"))),
                })
                .collect::<Read<Vec<String>>>()?,
            _ => return Err(ValidationError::new("purposes", Problem::Unreadable("array of strings"))),
        };
        let nhs_number = match record.required("nhs_number")? {
            Value::String(text) => nhs_number(text)?,
            _ => return Err(ValidationError::new("nhs_number", Problem::Unreadable("string"))),
        };
        let (scope, purposes) = super::validate::canonical_consent(scope, purposes)?;
        Ok(ConsentEvent {
            event_id: record.uuid("event_id")?,
            effective_at: record.timestamp("effective_at")?,
            effective_until: record.optional_timestamp("effective_until")?,
            recorded_at: record.timestamp("recorded_at")?,
            source_organisation: record.string("source_organisation")?,
            nhs_number,
            scope,
            deny: record.symbol::<ConsentDecision>("decision")? == ConsentDecision::Deny,
            purposes,
        })
    }
}
