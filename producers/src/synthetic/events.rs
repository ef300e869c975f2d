//! The synthetic source's events as typed [`ClinicalEvent`]s, validated and turned into records
//! the way every adapter does it.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use rand::{Rng, rngs::StdRng};
use sluice_schemas::Catalogue;
use uuid::Uuid;

use super::vocabulary::*;
use super::{DAY_MICROS, EventTruth, SyntheticEvent, SyntheticPatient};
use crate::clinical::{
    AdtEvent, AdtEventType, ClinicalEvent, ConsentEvent, ConsentScope, DiagnosisCodeSystem, DiagnosisEvent,
    Interpretation, ObservationCodeSystem, ObservationEvent, PatientClass, PatientIdentity, Provenance, ReferenceRange,
    ResultDecimal, SubjectRecord,
};

/// The `observation` version GP systems still write: v1 (no interpretation), which exercises
/// schema evolution downstream.
const GP_SYSTEM_OBSERVATION_VERSION: u32 = 1;
/// The `observation` version the trust's vital-signs feed writes: v2 (an interpretation, no
/// exact decimal). The trust's laboratory writes the newest version.
const VITAL_SIGNS_OBSERVATION_VERSION: u32 = 2;

/// The event, validated as received when it was recorded (as a live feed delivers it), as a
/// record of `version` of its subject (`None`: the newest).
fn record(event: ClinicalEvent, received_at: DateTime<Utc>, version: Option<u32>) -> SubjectRecord {
    let subject = event.subject();
    let valid = event
        .validate(received_at)
        .unwrap_or_else(|error| panic!("the synthetic source made an invalid {subject} event: {error}"));
    match version {
        None => valid.into_record(),
        Some(number) => {
            let version = Catalogue::embedded().version(subject, number).expect("a catalogued version");
            valid.into_record_as(version).unwrap_or_else(|error| panic!("{error}"))
        }
    }
}

fn at(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).expect("synthetic timestamps are in range")
}

fn date(days: i32) -> NaiveDate {
    NaiveDate::default() + TimeDelta::days(i64::from(days))
}

/// A consent change of `patient`, recorded when it takes effect.
pub(super) fn consent_change(
    patient: &SyntheticPatient,
    rng: &mut StdRng,
    effective_at: i64,
    organisation: &str,
    scope: ConsentScope,
    deny: bool,
) -> SyntheticEvent {
    let event_id = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
    let event = ClinicalEvent::Consent(ConsentEvent {
        event_id,
        effective_at: at(effective_at),
        effective_until: None,
        recorded_at: at(effective_at),
        source_organisation: organisation.to_owned(),
        nhs_number: patient.nhs_number,
        scope,
        deny,
        purposes: Vec::new(),
    });
    SyntheticEvent {
        record: record(event, at(effective_at), None),
        truth: EventTruth { patient: patient.index, event_id, gp_sourced: false, nhs_number_sent: true },
    }
}

/// One clinical event about `patient`; draws from `rng` in a fixed order, so a seed always gives
/// the same events.
pub(super) fn clinical_event(
    patient: &SyntheticPatient,
    rng: &mut StdRng,
    nhs_number_sent: bool,
    occurred_at: i64,
    recorded_at: i64,
) -> SyntheticEvent {
    let kind = rng.random_range(0..100);
    let gp_sourced = kind >= 25 && rng.random_bool(if kind < 80 { 0.3 } else { 0.5 });
    let (organisation, system) = if gp_sourced {
        (patient.gp_practice, "GP-SYSTEM")
    } else {
        (patient.trust, if kind < 25 { "PAS" } else { "LIMS" })
    };
    let event_id = Uuid::from_bytes(rng.random::<[u8; 16]>());
    let event_id = uuid::Builder::from_random_bytes(*event_id.as_bytes()).into_uuid();
    let provenance = Provenance {
        event_id,
        occurred_at: at(occurred_at),
        recorded_at: at(recorded_at),
        source_organisation: organisation.to_owned(),
        source_system: system.to_owned(),
    };
    let identity = PatientIdentity {
        nhs_number: nhs_number_sent.then_some(patient.nhs_number),
        local_patient_id: Some(patient.local_patient_id.clone()),
        family_name: Some(patient.family_name.to_owned()),
        given_name: Some(patient.given_name.to_owned()),
        date_of_birth: Some(date(patient.date_of_birth)),
        sex: Some(patient.sex),
        postcode: Some(patient.postcode.clone()),
        address_line: None,
    };
    let (event, version) = match kind {
        0..25 => (adt(patient, rng, provenance, identity), None),
        25..80 => observation(patient, rng, gp_sourced, provenance, identity),
        _ => (diagnosis(rng, gp_sourced, occurred_at, provenance, identity), None),
    };
    SyntheticEvent {
        record: record(event, at(recorded_at), version),
        truth: EventTruth { patient: patient.index, event_id, gp_sourced, nhs_number_sent },
    }
}

fn adt(
    patient: &SyntheticPatient,
    rng: &mut StdRng,
    provenance: Provenance,
    mut identity: PatientIdentity,
) -> ClinicalEvent {
    const EVENT_TYPES: [AdtEventType; 8] = [
        AdtEventType::Admit,
        AdtEventType::Transfer,
        AdtEventType::Discharge,
        AdtEventType::Register,
        AdtEventType::UpdatePatient,
        AdtEventType::CancelAdmit,
        AdtEventType::CancelDischarge,
        AdtEventType::MergePatient,
    ];
    const WEIGHTS: [u32; 8] = [25, 15, 25, 20, 11, 2, 1, 1];
    let event_type = EVENT_TYPES[weighted(rng, &WEIGHTS)];
    let patient_class = match event_type {
        AdtEventType::Register if rng.random_bool(0.5) => PatientClass::Outpatient,
        AdtEventType::Register => PatientClass::Emergency,
        _ if rng.random_bool(0.85) => PatientClass::Inpatient,
        _ => PatientClass::DayCase,
    };
    identity.address_line = Some(patient.address_line.clone());
    ClinicalEvent::Adt(AdtEvent {
        provenance,
        patient: identity,
        event_type,
        patient_class: Some(patient_class),
        location_code: Some((*pick(rng, LOCATIONS)).to_owned()),
        treatment_function_code: Some((*pick(rng, TREATMENT_FUNCTIONS)).to_owned()),
    })
}

/// An observation and the `observation` version its sender writes: GP systems still send v1,
/// the trust's vital-signs feed v2, and its laboratory the newest (exact decimal results with
/// their reference range and interpretation codes).
fn observation(
    patient: &SyntheticPatient,
    rng: &mut StdRng,
    gp: bool,
    provenance: Provenance,
    identity: PatientIdentity,
) -> (ClinicalEvent, Option<u32>) {
    let (code_system, catalogue) = if gp {
        (ObservationCodeSystem::SnomedCt, GP_OBSERVATIONS)
    } else {
        (ObservationCodeSystem::Loinc, HOSPITAL_OBSERVATIONS)
    };
    let (code, display, unit, typical, spread) = *pick(rng, catalogue);
    // Sum of three uniforms: a cheap bell curve around the typical value.
    let deviation: f64 = (0..3).map(|_| rng.random_range(-1.0..1.0)).sum::<f64>();
    let value = ((typical + deviation * spread) * 10.0).round() / 10.0;
    let comment = rng
        .random_bool(0.1)
        .then(|| pick(rng, COMMENTS).replace("{name}", &format!("{} {}", patient.given_name, patient.family_name)));
    let mut event = ObservationEvent {
        provenance,
        patient: identity,
        code_system,
        code: code.to_owned(),
        display: display.to_owned(),
        value: Some(value),
        unit: Some(unit.to_owned()),
        comment,
        interpretation: None,
        value_decimal: None,
        reference_range: None,
        interpretation_codes: None,
    };
    if gp {
        return (ClinicalEvent::Observation(event), Some(GP_SYSTEM_OBSERVATION_VERSION));
    }
    let (interpretation, flag) = match (value - typical) / spread {
        z if z <= -2.5 => (Interpretation::CriticallyLow, "LL"),
        z if z <= -1.5 => (Interpretation::Low, "L"),
        z if z >= 2.5 => (Interpretation::CriticallyHigh, "HH"),
        z if z >= 1.5 => (Interpretation::High, "H"),
        _ => (Interpretation::Normal, "N"),
    };
    event.interpretation = Some(interpretation);
    if !LABORATORY_TESTS.contains(&code) {
        return (ClinicalEvent::Observation(event), Some(VITAL_SIGNS_OBSERVATION_VERSION));
    }
    // Results and limits are whole tenths, so their decimal is exact; an older analyser
    // interface sends only the double.
    let tenths = |x: f64| ResultDecimal::from_unscaled((x * 10.0).round() as i64 * 100_000);
    event.value_decimal = tenths(value).filter(|_| rng.random_bool(0.9));
    event.reference_range = rng.random_bool(0.85).then(|| {
        let (low, high) = (tenths(typical - 1.5 * spread), tenths(typical + 1.5 * spread));
        let text = match (low, high) {
            (Some(low), Some(high)) => Some(format!("{low}-{high}")),
            _ => None,
        };
        ReferenceRange { low, high, text }
    });
    event.interpretation_codes = rng.random_bool(0.8).then(|| {
        let mut codes = vec![flag.to_owned()];
        if flag != "N" {
            codes.push("A".to_owned());
        }
        codes
    });
    (ClinicalEvent::Observation(event), None)
}

fn diagnosis(
    rng: &mut StdRng,
    gp: bool,
    occurred_at: i64,
    provenance: Provenance,
    identity: PatientIdentity,
) -> ClinicalEvent {
    let (code_system, catalogue) = if gp {
        (DiagnosisCodeSystem::SnomedCt, GP_DIAGNOSES)
    } else {
        (DiagnosisCodeSystem::Icd10, HOSPITAL_DIAGNOSES)
    };
    let (code, display) = *pick(rng, catalogue);
    let onset = rng.random_bool(0.6).then(|| date((occurred_at / DAY_MICROS) as i32 - rng.random_range(0..3_650)));
    ClinicalEvent::Diagnosis(DiagnosisEvent {
        provenance,
        patient: identity,
        code_system,
        code: code.to_owned(),
        display: display.to_owned(),
        is_primary: rng.random_bool(0.4),
        onset_date: onset,
    })
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn weighted(rng: &mut StdRng, weights: &[u32]) -> usize {
    let mut draw = rng.random_range(0..weights.iter().sum::<u32>());
    for (index, weight) in weights.iter().enumerate() {
        if draw < *weight {
            return index;
        }
        draw -= weight;
    }
    weights.len() - 1
}
