//! Proptest strategies for clinical events that pass [`ClinicalEvent::check`] at [`now`],
//! in the normalised form [`ValidEvent::into_record`](super::ValidEvent::into_record) writes (upper-case postcodes with one
//! space, timestamps in whole microseconds). Test-only.

use chrono::{DateTime, NaiveDate, Utc};
use proptest::{option, prelude::*, sample::select};
use sluice_schemas::NhsNumber;
use uuid::Uuid;

use super::validate::{is_icd10_code, is_loinc_code, is_snomed_ct_id};
use super::{
    AdministrativeSex, AdtEvent, AdtEventType, AvroEnum, ClinicalEvent, ConsentEvent, ConsentScope,
    DiagnosisCodeSystem, DiagnosisEvent, Interpretation, ObservationCodeSystem, ObservationEvent, PatientClass,
    PatientIdentity, Provenance, ReferenceRange, ResultDecimal,
};

/// The time of receipt the generated events are valid at: 2026-06-01T00:00:00Z.
pub(crate) fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_272_000, 0).expect("in range")
}

/// Any valid event of any subject.
pub(crate) fn valid_event() -> impl Strategy<Value = ClinicalEvent> {
    prop_oneof![adt(), observation(), diagnosis(), consent()]
}

/// Any variant of a model enum: every symbol of its schema enum (the schema check keeps the
/// two one to one), so a symbol added to the model is generated without a change here.
fn variant<T: AvroEnum>() -> impl Strategy<Value = T> {
    select(T::SYMBOLS.iter().map(|(variant, _)| *variant).collect::<Vec<T>>())
}

/// 1900-01-01T00:00:00Z, the earliest timestamp validation accepts.
const EARLIEST_MICROS: i64 = -2_208_988_800_000_000;

fn timestamp() -> impl Strategy<Value = DateTime<Utc>> {
    (EARLIEST_MICROS..=now().timestamp_micros())
        .prop_map(|micros| DateTime::from_timestamp_micros(micros).expect("in range"))
}

/// A date from 1880 to [`now`]; [`clamp_dates`] keeps it at or before the event.
fn date() -> impl Strategy<Value = NaiveDate> {
    let earliest = NaiveDate::from_ymd_opt(1880, 1, 1).expect("valid date");
    (0..=now().date_naive().signed_duration_since(earliest).num_days())
        .prop_map(move |days| earliest + chrono::TimeDelta::days(days))
}

fn clamp(date: Option<NaiveDate>, event_at: DateTime<Utc>) -> Option<NaiveDate> {
    date.map(|date| date.min(event_at.date_naive()))
}

/// Optional free text: no control characters, any script.
fn text() -> impl Strategy<Value = Option<String>> {
    option::of("\\PC{0,30}")
}

/// Text that is not blank.
fn required_text() -> BoxedStrategy<String> {
    "[A-Za-z0-9]\\PC{0,30}".boxed()
}

fn nhs_number() -> impl Strategy<Value = NhsNumber> {
    proptest::array::uniform9(0u8..10).prop_filter_map("no check digit exists", NhsNumber::from_first_nine)
}

fn ods_code() -> impl Strategy<Value = String> {
    "[A-Z0-9]{3,10}"
}

/// `body` completed with the one check digit that makes `valid` accept it.
fn with_check_digit(body: &str, separator: &str, valid: fn(&str) -> bool) -> String {
    (0..10).map(|digit| format!("{body}{separator}{digit}")).find(|code| valid(code)).expect("one digit fits")
}

fn provenance() -> impl Strategy<Value = Provenance> {
    (any::<u128>(), timestamp(), timestamp(), ods_code(), required_text()).prop_map(
        |(id, occurred_at, recorded_at, source_organisation, source_system)| Provenance {
            event_id: Uuid::from_u128(id),
            occurred_at,
            recorded_at,
            source_organisation,
            source_system,
        },
    )
}

fn patient() -> impl Strategy<Value = PatientIdentity> {
    (
        option::of(nhs_number()),
        option::of("[A-Z0-9]{1,12}"),
        text(),
        text(),
        option::of(date()),
        option::of(variant::<AdministrativeSex>()),
        option::of("[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][A-Z]{2}"),
    )
        .prop_map(|(nhs_number, local_patient_id, family_name, given_name, date_of_birth, sex, postcode)| {
            PatientIdentity {
                // A valid event names the patient by NHS number, local id or both.
                local_patient_id: match (&nhs_number, local_patient_id) {
                    (None, None) => Some("H0000001".to_owned()),
                    (_, local) => local,
                },
                nhs_number,
                family_name,
                given_name,
                date_of_birth,
                sex,
                postcode,
                address_line: None,
            }
        })
}

fn adt() -> impl Strategy<Value = ClinicalEvent> {
    (
        provenance(),
        patient(),
        text(),
        variant::<AdtEventType>(),
        option::of(variant::<PatientClass>()),
        text(),
        option::of("[0-9]{3}"),
    )
        .prop_map(
            |(
                provenance,
                mut patient,
                address_line,
                event_type,
                patient_class,
                location_code,
                treatment_function_code,
            )| {
                patient.address_line = address_line;
                patient.date_of_birth = clamp(patient.date_of_birth, provenance.occurred_at);
                ClinicalEvent::Adt(AdtEvent {
                    provenance,
                    patient,
                    event_type,
                    patient_class,
                    location_code,
                    treatment_function_code,
                })
            },
        )
}

fn observation() -> impl Strategy<Value = ClinicalEvent> {
    let code = prop_oneof![
        "[0-9]{1,7}".prop_map(|n| (ObservationCodeSystem::Loinc, with_check_digit(&n, "-", is_loinc_code))),
        "[1-9][0-9]{4,16}".prop_map(|n| (ObservationCodeSystem::SnomedCt, with_check_digit(&n, "", is_snomed_ct_id))),
    ];
    (
        provenance(),
        patient(),
        code,
        required_text(),
        option::of(any::<f64>().prop_filter("finite", |v| v.is_finite())),
        text(),
        text(),
        option::of(variant::<Interpretation>()),
        (
            option::of(result_decimal()),
            option::of((option::of(result_decimal()), option::of(result_decimal()), text())),
            option::of(proptest::collection::vec("[!-~]{1,20}", 0..4)),
        ),
    )
        .prop_map(
            |(
                provenance,
                mut patient,
                (code_system, code),
                display,
                value,
                unit,
                comment,
                interpretation,
                (value_decimal, range, interpretation_codes),
            )| {
                patient.date_of_birth = clamp(patient.date_of_birth, provenance.occurred_at);
                ClinicalEvent::Observation(ObservationEvent {
                    provenance,
                    patient,
                    code_system,
                    code,
                    display,
                    value,
                    unit,
                    comment,
                    interpretation,
                    value_decimal,
                    reference_range: range.map(|(low, high, text)| ReferenceRange { low, high, text }),
                    interpretation_codes,
                })
            },
        )
}

fn result_decimal() -> impl Strategy<Value = ResultDecimal> {
    (-999_999_999_999_999_999i64..=999_999_999_999_999_999).prop_map(|n| ResultDecimal::from_unscaled(n).unwrap())
}

fn diagnosis() -> impl Strategy<Value = ClinicalEvent> {
    let code = prop_oneof![
        "[A-Z][0-9]{2}\\.?[0-9A-Z]{0,4}"
            .prop_filter("ICD-10 shape", |c| is_icd10_code(c))
            .prop_map(|c| (DiagnosisCodeSystem::Icd10, c)),
        "[1-9][0-9]{4,16}".prop_map(|n| (DiagnosisCodeSystem::SnomedCt, with_check_digit(&n, "", is_snomed_ct_id))),
    ];
    (provenance(), patient(), code, required_text(), any::<bool>(), option::of(date())).prop_map(
        |(provenance, mut patient, (code_system, code), display, is_primary, onset_date)| {
            patient.date_of_birth = clamp(patient.date_of_birth, provenance.occurred_at);
            let onset_date = clamp(onset_date, provenance.occurred_at);
            ClinicalEvent::Diagnosis(DiagnosisEvent {
                provenance,
                patient,
                code_system,
                code,
                display,
                is_primary,
                onset_date,
            })
        },
    )
}

fn consent() -> impl Strategy<Value = ClinicalEvent> {
    // Study ids and purposes in canonical spellings, a study change limited to purposes naming
    // its own study: what every adapter publishes (`validate::canonical_consent`).
    let study = "[A-Z0-9][A-Z0-9._-]{0,15}".prop_map(|id| sluice_schemas::StudyId::parse(&id).unwrap().into_string());
    let scope = prop_oneof![
        Just(ConsentScope::NationalDataOptOut),
        Just(ConsentScope::Type1OptOut),
        study.prop_map(ConsentScope::Study),
    ];
    let purposes = proptest::sample::subsequence(vec!["direct-care", "planning", "research"], 0..=3);
    // Some changes are time-limited: they end up to about four months after they take effect.
    let lasts = proptest::option::of(1i64..=10_000_000_000_000);
    (any::<u128>(), timestamp(), timestamp(), ods_code(), nhs_number(), scope, any::<bool>(), purposes, lasts).prop_map(
        |(id, effective_at, recorded_at, source_organisation, nhs_number, scope, deny, purposes, lasts)| {
            let mut purposes: Vec<String> = purposes.into_iter().map(str::to_owned).collect();
            if let ConsentScope::Study(id) = &scope
                && !purposes.is_empty()
            {
                purposes.push(format!("study:{id}"));
            }
            ClinicalEvent::Consent(ConsentEvent {
                event_id: Uuid::from_u128(id),
                effective_at,
                effective_until: lasts.map(|micros| effective_at + chrono::TimeDelta::microseconds(micros)),
                recorded_at,
                source_organisation,
                nhs_number,
                scope,
                deny,
                purposes,
            })
        },
    )
}
