//! What every clinical subject starts with: the event's [`Provenance`] and the
//! [`PatientIdentity`] (the schema files' first twelve fields, and `address_line` in `adt`).

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::read::{Fields, Read, date, nhs_number};
use super::write::Datum;
use super::{AvroEnum, NhsNumber};

/// Who the event is about, as the source identified and described them. Every one of these
/// fields is identifying; the consumers' policy decides what survives.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientIdentity {
    /// The NHS number, when the source sent one (already checked by Modulus 11).
    pub nhs_number: Option<NhsNumber>,
    /// The source organisation's own patient identifier (hospital number, GP system id), when
    /// it sent one. GP systems, laboratories and many PAS feeds send the NHS number alone; an
    /// event has an NHS number, a local id or both ([`ClinicalEvent::check`](super::ClinicalEvent::check)).
    pub local_patient_id: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// Given name(s).
    pub given_name: Option<String>,
    /// Date of birth.
    pub date_of_birth: Option<NaiveDate>,
    /// Administrative sex.
    pub sex: Option<AdministrativeSex>,
    /// Postcode of the usual address.
    pub postcode: Option<String>,
    /// First line of the usual address (only the `adt` subject carries it).
    pub address_line: Option<String>,
}

/// Administrative sex (HL7 v2 PID-8, FHIR administrative-gender): the `AdministrativeSex` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdministrativeSex {
    /// F / female.
    Female,
    /// M / male.
    Male,
    /// O / other.
    Other,
    /// U / unknown.
    Unknown,
}

impl AvroEnum for AdministrativeSex {
    const AVRO_NAME: &'static str = "AdministrativeSex";
    const SYMBOLS: &'static [(Self, &'static str)] = &[
        (AdministrativeSex::Female, "FEMALE"),
        (AdministrativeSex::Male, "MALE"),
        (AdministrativeSex::Other, "OTHER"),
        (AdministrativeSex::Unknown, "UNKNOWN"),
    ];
    const ALLOWED: &'static str = "FEMALE, MALE, OTHER and UNKNOWN";
}

/// Where and when an event happened and who recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    /// Stable identifier of the event, derived from the source's own identifiers so that a
    /// resent message gets the same id.
    pub event_id: Uuid,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// When the source recorded it.
    pub recorded_at: DateTime<Utc>,
    /// ODS code of the organisation that recorded it.
    pub source_organisation: String,
    /// The sending system (e.g. HL7 MSH-3).
    pub source_system: String,
}

impl PatientIdentity {
    /// The Kafka key of a clinical event about this patient: the NHS number, or
    /// `<organisation>:<local id>` without one.
    pub(crate) fn record_key(&self, provenance: &Provenance) -> String {
        match &self.nhs_number {
            Some(nhs_number) => nhs_number.digits(),
            None => {
                format!("{}:{}", provenance.source_organisation, self.local_patient_id.as_deref().unwrap_or_default())
            }
        }
    }
}

/// The fields every clinical subject starts with, by schema name. Postcodes are written in
/// their usual form (`ls14ap` becomes `LS1 4AP`).
pub(crate) fn common_fields(provenance: &Provenance, patient: &PatientIdentity) -> Vec<(&'static str, Datum)> {
    vec![
        ("event_id", Datum::Uuid(provenance.event_id)),
        ("occurred_at", micros(provenance.occurred_at)),
        ("recorded_at", micros(provenance.recorded_at)),
        ("source_organisation", Datum::String(provenance.source_organisation.clone())),
        ("source_system", Datum::String(provenance.source_system.clone())),
        ("nhs_number", Datum::optional(patient.nhs_number, |n| Datum::String(n.digits()))),
        ("local_patient_id", Datum::text(patient.local_patient_id.as_deref())),
        ("family_name", Datum::text(patient.family_name.as_deref())),
        ("given_name", Datum::text(patient.given_name.as_deref())),
        ("date_of_birth", Datum::optional(patient.date_of_birth, date_datum)),
        ("sex", Datum::optional(patient.sex, |sex| Datum::Symbol(sex.symbol()))),
        ("postcode", Datum::optional(patient.postcode.as_deref(), |p| Datum::String(normalise_postcode(p)))),
    ]
}

/// Reads the fields [`common_fields`] writes (`address_line` is left `None`).
pub(crate) fn read_common(record: &Fields<'_>) -> Read<(Provenance, PatientIdentity)> {
    let provenance = Provenance {
        event_id: record.uuid("event_id")?,
        occurred_at: record.timestamp("occurred_at")?,
        recorded_at: record.timestamp("recorded_at")?,
        source_organisation: record.string("source_organisation")?,
        source_system: record.string("source_system")?,
    };
    let nhs_number = match record.nullable("nhs_number")? {
        None => None,
        Some(apache_avro::types::Value::String(text)) => Some(nhs_number(text)?),
        Some(_) => {
            return Err(super::ValidationError::new("nhs_number", super::Problem::Unreadable("string")));
        }
    };
    let patient = PatientIdentity {
        nhs_number,
        local_patient_id: record.optional_string("local_patient_id")?,
        family_name: record.optional_string("family_name")?,
        given_name: record.optional_string("given_name")?,
        date_of_birth: record.nullable("date_of_birth")?.map(|v| date("date_of_birth", v)).transpose()?,
        sex: record.optional_symbol("sex")?,
        postcode: record.optional_string("postcode")?,
        address_line: None,
    };
    Ok((provenance, patient))
}

/// A timestamp as microseconds since the epoch.
pub(crate) fn micros(at: DateTime<Utc>) -> Datum {
    Datum::TimestampMicros(at.timestamp_micros())
}

/// A date as days since 1970-01-01.
pub(crate) fn date_datum(date: NaiveDate) -> Datum {
    Datum::Date(date.signed_duration_since(NaiveDate::default()).num_days() as i32)
}

/// `ls14ap` and `LS1  4AP` become `LS1 4AP`.
fn normalise_postcode(postcode: &str) -> String {
    let compact: String = postcode.chars().filter(|c| *c != ' ').map(|c| c.to_ascii_uppercase()).collect();
    let split = compact.len().saturating_sub(3);
    format!("{} {}", &compact[..split], &compact[split..])
}
