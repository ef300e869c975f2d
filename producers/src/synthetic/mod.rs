//! A deterministic synthetic source of clinical events and consent changes.
//!
//! Events are spread over a configurable number of patients and a period of days: ADT events
//! from each patient's trust PAS, observations from the trust laboratory (written with
//! `observation` v3 by its laboratory, v2 by its vital-signs feed) or from the patient's GP
//! practice (still on v1), and diagnoses from either.
//! A configurable share of patients holds a National Data Opt-out (some of whom opted out and
//! later withdrew) or a Type 1 opt-out; [`SyntheticSource::consent_events`] emits those changes,
//! effective before the period starts. Some events carry no NHS number, as from an
//! unidentified emergency patient.
//!
//! The same configuration always yields the same events, and each event carries its
//! [`EventTruth`] so tests can compute what a lander must release without trusting its code.

mod patient;
mod vocabulary;

use apache_avro::types::Value;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use sluice_schemas::subjects;
use uuid::Uuid;

use crate::clinical::ResultDecimal;
pub use patient::SyntheticPatient;
use patient::{OptOutShares, days_from_civil, derive_patient};
use vocabulary::*;

/// Microseconds in a day.
const DAY_MICROS: i64 = 86_400_000_000;

/// Configuration of the synthetic source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSourceConfig {
    /// How many distinct patients the events are spread over.
    #[serde(default = "default_patients")]
    pub patients: u32,
    /// How many clinical events (ADT, observations, diagnoses) to emit.
    #[serde(default = "default_events")]
    pub events: u64,
    /// Share of patients who opted out through the National Data Opt-out (about 5% in England).
    #[serde(default = "default_national_opt_out_share")]
    pub national_opt_out_share: f64,
    /// Share of the patients who opted out that later withdrew their opt-out.
    #[serde(default = "default_withdrawn_share")]
    pub withdrawn_share: f64,
    /// Share of patients with a Type 1 opt-out registered at their GP practice.
    #[serde(default = "default_type1_opt_out_share")]
    pub type1_opt_out_share: f64,
    /// Share of clinical events sent without an NHS number.
    #[serde(default = "default_missing_nhs_number_share")]
    pub missing_nhs_number_share: f64,
    /// Seed of the generator: the same seed gives the same patients and events.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// First day of the period in which clinical events occur, as `YYYY-MM-DD` (UTC).
    #[serde(default = "default_period_start")]
    pub period_start: String,
    /// Length of that period in days.
    #[serde(default = "default_period_days")]
    pub period_days: u32,
}

fn default_patients() -> u32 {
    10_000
}
fn default_events() -> u64 {
    100_000
}
fn default_national_opt_out_share() -> f64 {
    0.054
}
fn default_withdrawn_share() -> f64 {
    0.1
}
fn default_type1_opt_out_share() -> f64 {
    0.025
}
fn default_missing_nhs_number_share() -> f64 {
    0.005
}
fn default_seed() -> u64 {
    20_261_125
}
fn default_period_start() -> String {
    "2026-01-01".to_owned()
}
fn default_period_days() -> u32 {
    30
}

impl Default for SyntheticSourceConfig {
    fn default() -> Self {
        SyntheticSourceConfig {
            patients: default_patients(),
            events: default_events(),
            national_opt_out_share: default_national_opt_out_share(),
            withdrawn_share: default_withdrawn_share(),
            type1_opt_out_share: default_type1_opt_out_share(),
            missing_nhs_number_share: default_missing_nhs_number_share(),
            seed: default_seed(),
            period_start: default_period_start(),
            period_days: default_period_days(),
        }
    }
}

/// What a test needs to know about an event without decoding it or trusting the lander.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTruth {
    /// Index of the patient the event is about.
    pub patient: u32,
    /// The event's id, which is landed unchanged.
    pub event_id: Uuid,
    /// The event came from a GP practice (Type 1 opt-outs apply).
    pub gp_sourced: bool,
    /// The event carries the patient's NHS number.
    pub nhs_number_sent: bool,
}

/// One event ready to be encoded and published.
#[derive(Debug, Clone)]
pub struct SyntheticEvent {
    /// Subject of the catalogue.
    pub subject: &'static str,
    /// Schema version of the subject the event is written with.
    pub version: u32,
    /// Kafka key: keeps one patient's events in one partition, in order.
    pub key: String,
    /// The record, shaped by `version` of the subject's schema.
    pub value: Value,
    /// Ground truth for tests.
    pub truth: EventTruth,
}

/// The synthetic source. Cheap to create; patients are derived on demand.
#[derive(Debug, Clone)]
pub struct SyntheticSource {
    config: SyntheticSourceConfig,
    shares: OptOutShares,
    period_start_micros: i64,
}

impl SyntheticSource {
    /// Checks the configuration and creates the source.
    pub fn new(config: SyntheticSourceConfig) -> Result<Self, String> {
        if config.patients == 0 {
            return Err("the synthetic source needs at least one patient".to_owned());
        }
        for (name, share) in [
            ("national_opt_out_share", config.national_opt_out_share),
            ("withdrawn_share", config.withdrawn_share),
            ("type1_opt_out_share", config.type1_opt_out_share),
            ("missing_nhs_number_share", config.missing_nhs_number_share),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!("{name} must be between 0 and 1, not {share}"));
            }
        }
        let start = parse_date(&config.period_start)
            .ok_or_else(|| format!("period_start `{}` is not a YYYY-MM-DD date", config.period_start))?;
        Ok(SyntheticSource {
            shares: OptOutShares {
                national: config.national_opt_out_share,
                type1: config.type1_opt_out_share,
                withdrawn: config.withdrawn_share,
            },
            period_start_micros: i64::from(start) * DAY_MICROS,
            config,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &SyntheticSourceConfig {
        &self.config
    }

    /// The patient at `index` (0-based, below `config().patients`).
    pub fn patient(&self, index: u32) -> SyntheticPatient {
        derive_patient(self.config.seed, index, self.shares)
    }

    /// Every patient's consent changes, effective before the period starts. A withdrawn
    /// National Data Opt-out yields a DENY followed by a later PERMIT.
    pub fn consent_events(&self) -> impl Iterator<Item = SyntheticEvent> + '_ {
        let mut rng = StdRng::seed_from_u64(self.config.seed.wrapping_add(1));
        (0..self.config.patients).flat_map(move |index| {
            let patient = self.patient(index);
            let opted_out_at = self.period_start_micros - rng.random_range(30..3_000) * DAY_MICROS;
            let mut changes = Vec::new();
            if patient.national_opt_out || patient.national_opt_out_withdrawn {
                changes.push(consent_change(
                    &patient,
                    &mut rng,
                    opted_out_at,
                    "X26",
                    (0, "NATIONAL_DATA_OPT_OUT"),
                    (1, "DENY"),
                ));
            }
            if patient.national_opt_out_withdrawn {
                let withdrawn_at = opted_out_at + rng.random_range(1..25) * DAY_MICROS;
                changes.push(consent_change(
                    &patient,
                    &mut rng,
                    withdrawn_at,
                    "X26",
                    (0, "NATIONAL_DATA_OPT_OUT"),
                    (0, "PERMIT"),
                ));
            }
            if patient.type1_opt_out {
                changes.push(consent_change(
                    &patient,
                    &mut rng,
                    opted_out_at,
                    patient.gp_practice,
                    (1, "TYPE_1_OPT_OUT"),
                    (1, "DENY"),
                ));
            }
            changes
        })
    }

    /// `config().events` clinical events in a stable pseudo-random order.
    pub fn clinical_events(&self) -> impl Iterator<Item = SyntheticEvent> + '_ {
        let mut rng = StdRng::seed_from_u64(self.config.seed.wrapping_add(2));
        (0..self.config.events).map(move |_| self.clinical_event(&mut rng))
    }

    fn clinical_event(&self, rng: &mut StdRng) -> SyntheticEvent {
        let patient = self.patient(rng.random_range(0..self.config.patients));
        let nhs_number_sent = !rng.random_bool(self.config.missing_nhs_number_share);
        let occurred_at =
            self.period_start_micros + rng.random_range(0..i64::from(self.config.period_days) * DAY_MICROS);
        let recorded_at = occurred_at + rng.random_range(0..7_200_000_000);
        let kind = rng.random_range(0..100);
        let gp_sourced = kind >= 25 && rng.random_bool(if kind < 80 { 0.3 } else { 0.5 });
        let (organisation, system) = if gp_sourced {
            (patient.gp_practice, "GP-SYSTEM")
        } else {
            (patient.trust, if kind < 25 { "PAS" } else { "LIMS" })
        };
        let event_id = Uuid::from_bytes(rng.random::<[u8; 16]>());
        let event_id = uuid::Builder::from_random_bytes(*event_id.as_bytes()).into_uuid();
        let mut fields = vec![
            field("event_id", Value::Uuid(event_id)),
            field("occurred_at", Value::TimestampMicros(occurred_at)),
            field("recorded_at", Value::TimestampMicros(recorded_at)),
            field("source_organisation", Value::String(organisation.to_owned())),
            field("source_system", Value::String(system.to_owned())),
            field("nhs_number", nullable(nhs_number_sent.then(|| Value::String(patient.nhs_number.digits())))),
            field("local_patient_id", Value::String(patient.local_patient_id.clone())),
            field("family_name", nullable(Some(Value::String(patient.family_name.to_owned())))),
            field("given_name", nullable(Some(Value::String(patient.given_name.to_owned())))),
            field("date_of_birth", nullable(Some(Value::Date(patient.date_of_birth)))),
            field("sex", nullable(Some(Value::Enum(patient.sex.0, patient.sex.1.to_owned())))),
            field("postcode", nullable(Some(Value::String(patient.postcode.clone())))),
        ];
        let (subject, version) = match kind {
            0..25 => {
                adt_fields(&patient, rng, &mut fields);
                (subjects::ADT, 1)
            }
            25..80 => {
                let version = observation_fields(&patient, rng, gp_sourced, &mut fields);
                (subjects::OBSERVATION, version)
            }
            _ => {
                diagnosis_fields(rng, gp_sourced, occurred_at, &mut fields);
                (subjects::DIAGNOSIS, 1)
            }
        };
        let key = if nhs_number_sent {
            patient.nhs_number.digits()
        } else {
            format!("{organisation}:{}", patient.local_patient_id)
        };
        SyntheticEvent {
            subject,
            version,
            key,
            value: Value::Record(fields),
            truth: EventTruth { patient: patient.index, event_id, gp_sourced, nhs_number_sent },
        }
    }
}

fn consent_change(
    patient: &SyntheticPatient,
    rng: &mut StdRng,
    effective_at: i64,
    organisation: &str,
    scope: (u32, &str),
    decision: (u32, &str),
) -> SyntheticEvent {
    let event_id = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
    SyntheticEvent {
        subject: subjects::CONSENT,
        version: 2,
        // The whole change: the consent topic is compacted on its key, and no change may be lost.
        key: sluice_schemas::consent_record_key(
            &patient.nhs_number.digits(),
            scope.1,
            None,
            decision.0 == 1,
            effective_at,
            None,
            &[],
        ),
        value: Value::Record(vec![
            field("event_id", Value::Uuid(event_id)),
            field("effective_at", Value::TimestampMicros(effective_at)),
            field("effective_until", nullable(None)),
            field("recorded_at", Value::TimestampMicros(effective_at)),
            field("source_organisation", Value::String(organisation.to_owned())),
            field("nhs_number", Value::String(patient.nhs_number.digits())),
            field("scope", Value::Enum(scope.0, scope.1.to_owned())),
            field("study_id", nullable(None)),
            field("decision", Value::Enum(decision.0, decision.1.to_owned())),
            field("purposes", Value::Array(Vec::new())),
        ]),
        truth: EventTruth { patient: patient.index, event_id, gp_sourced: false, nhs_number_sent: true },
    }
}

fn adt_fields(patient: &SyntheticPatient, rng: &mut StdRng, fields: &mut Vec<(String, Value)>) {
    const EVENT_TYPES: [&str; 8] = [
        "ADMIT",
        "TRANSFER",
        "DISCHARGE",
        "REGISTER",
        "UPDATE_PATIENT",
        "CANCEL_ADMIT",
        "CANCEL_DISCHARGE",
        "MERGE_PATIENT",
    ];
    const WEIGHTS: [u32; 8] = [25, 15, 25, 20, 11, 2, 1, 1];
    let event_type = weighted(rng, &WEIGHTS);
    let patient_class = match EVENT_TYPES[event_type] {
        "REGISTER" => {
            if rng.random_bool(0.5) {
                (1, "OUTPATIENT")
            } else {
                (2, "EMERGENCY")
            }
        }
        _ => {
            if rng.random_bool(0.85) {
                (0, "INPATIENT")
            } else {
                (3, "DAY_CASE")
            }
        }
    };
    fields.extend([
        field("address_line", nullable(Some(Value::String(patient.address_line.clone())))),
        field("event_type", Value::Enum(event_type as u32, EVENT_TYPES[event_type].to_owned())),
        field("patient_class", nullable(Some(Value::Enum(patient_class.0, patient_class.1.to_owned())))),
        field("location_code", nullable(Some(Value::String((*pick(rng, LOCATIONS)).to_owned())))),
        field("treatment_function_code", nullable(Some(Value::String((*pick(rng, TREATMENT_FUNCTIONS)).to_owned())))),
    ]);
}

/// Appends observation fields; returns the schema version used: GP systems still send v1, the
/// trust's vital-signs feed v2, and its laboratory v3 (exact decimal results with their
/// reference range and interpretation codes).
fn observation_fields(
    patient: &SyntheticPatient,
    rng: &mut StdRng,
    gp: bool,
    fields: &mut Vec<(String, Value)>,
) -> u32 {
    let (code_system, catalogue) =
        if gp { ((0, "SNOMED_CT"), GP_OBSERVATIONS) } else { ((1, "LOINC"), HOSPITAL_OBSERVATIONS) };
    let (code, display, unit, typical, spread) = *pick(rng, catalogue);
    // Sum of three uniforms: a cheap bell curve around the typical value.
    let deviation: f64 = (0..3).map(|_| rng.random_range(-1.0..1.0)).sum::<f64>();
    let value = ((typical + deviation * spread) * 10.0).round() / 10.0;
    let comment = rng
        .random_bool(0.1)
        .then(|| pick(rng, COMMENTS).replace("{name}", &format!("{} {}", patient.given_name, patient.family_name)));
    fields.extend([
        field("code_system", Value::Enum(code_system.0, code_system.1.to_owned())),
        field("code", Value::String(code.to_owned())),
        field("display", Value::String(display.to_owned())),
        field("value", nullable(Some(Value::Double(value)))),
        field("unit", nullable(Some(Value::String(unit.to_owned())))),
        field("comment", nullable(comment.map(Value::String))),
    ]);
    if gp {
        return 1;
    }
    let interpretation = match (value - typical) / spread {
        z if z <= -2.5 => (3, "CRITICALLY_LOW", "LL"),
        z if z <= -1.5 => (1, "LOW", "L"),
        z if z >= 2.5 => (4, "CRITICALLY_HIGH", "HH"),
        z if z >= 1.5 => (2, "HIGH", "H"),
        _ => (0, "NORMAL", "N"),
    };
    fields.push(field("interpretation", nullable(Some(Value::Enum(interpretation.0, interpretation.1.to_owned())))));
    if !LABORATORY_TESTS.contains(&code) {
        return 2;
    }
    // Results and limits are whole tenths, so their decimal is exact; an older analyser
    // interface sends only the double.
    let tenths = |x: f64| ResultDecimal::from_unscaled((x * 10.0).round() as i64 * 100_000);
    let value_decimal = tenths(value).filter(|_| rng.random_bool(0.9));
    let range = rng.random_bool(0.85).then(|| {
        let (low, high) = (tenths(typical - 1.5 * spread), tenths(typical + 1.5 * spread));
        let text = match (low, high) {
            (Some(low), Some(high)) => Some(format!("{low}-{high}")),
            _ => None,
        };
        Value::Record(vec![
            field("low", nullable(low.map(ResultDecimal::to_avro))),
            field("high", nullable(high.map(ResultDecimal::to_avro))),
            field("text", nullable(text.map(Value::String))),
        ])
    });
    let codes = rng.random_bool(0.8).then(|| {
        let mut codes = vec![Value::String(interpretation.2.to_owned())];
        if interpretation.2 != "N" {
            codes.push(Value::String("A".to_owned()));
        }
        Value::Array(codes)
    });
    fields.extend([
        field("value_decimal", nullable(value_decimal.map(ResultDecimal::to_avro))),
        field("reference_range", nullable(range)),
        field("interpretation_codes", nullable(codes)),
    ]);
    3
}

fn diagnosis_fields(rng: &mut StdRng, gp: bool, occurred_at: i64, fields: &mut Vec<(String, Value)>) {
    let (code_system, catalogue) =
        if gp { ((1, "SNOMED_CT"), GP_DIAGNOSES) } else { ((0, "ICD10"), HOSPITAL_DIAGNOSES) };
    let (code, display) = *pick(rng, catalogue);
    let onset =
        rng.random_bool(0.6).then(|| Value::Date((occurred_at / DAY_MICROS) as i32 - rng.random_range(0..3_650)));
    fields.extend([
        field("code_system", Value::Enum(code_system.0, code_system.1.to_owned())),
        field("code", Value::String(code.to_owned())),
        field("display", Value::String(display.to_owned())),
        field("is_primary", Value::Boolean(rng.random_bool(0.4))),
        field("onset_date", nullable(onset)),
    ]);
}

fn field(name: &str, value: Value) -> (String, Value) {
    (name.to_owned(), value)
}

/// A value of a `["null", T]` union.
fn nullable(value: Option<Value>) -> Value {
    match value {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(value) => Value::Union(1, Box::new(value)),
    }
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

fn parse_date(text: &str) -> Option<i32> {
    let mut parts = text.splitn(3, '-');
    let year = parts.next()?.parse().ok()?;
    let month = parts.next()?.parse().ok().filter(|m| (1..=12).contains(m))?;
    let day = parts.next()?.parse().ok().filter(|d| (1..=31).contains(d))?;
    Some(days_from_civil(year, month, day))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use sluice_schemas::{Catalogue, Encoder, Framing, NhsNumber};

    use super::*;

    fn small() -> SyntheticSource {
        SyntheticSource::new(SyntheticSourceConfig { patients: 500, events: 3_000, ..Default::default() }).unwrap()
    }

    #[test]
    fn every_event_encodes_with_its_declared_schema_version() {
        let source = small();
        let catalogue = Catalogue::embedded();
        let encoder = Encoder::new(catalogue, Framing::SingleObject);
        let mut seen = HashSet::new();
        for event in source.clinical_events().chain(source.consent_events()) {
            let version = catalogue.version(event.subject, event.version).unwrap();
            encoder.encode(version, &event.value).unwrap_or_else(|e| panic!("{}: {e}", version.label()));
            seen.insert((event.subject, event.version));
        }
        for expected in
            [("adt", 1), ("observation", 1), ("observation", 2), ("observation", 3), ("diagnosis", 1), ("consent", 2)]
        {
            assert!(seen.contains(&expected), "no {expected:?} event");
        }
    }

    #[test]
    fn every_event_decodes_back_to_what_was_encoded_in_both_framings() {
        let source = small();
        let catalogue = Catalogue::embedded();
        let decoder = sluice_schemas::Decoder::new(catalogue);
        for framing in [Framing::SingleObject, Framing::Confluent] {
            let encoder = Encoder::new(catalogue, framing);
            for event in source.clinical_events().chain(source.consent_events()) {
                let bytes =
                    encoder.encode(catalogue.version(event.subject, event.version).unwrap(), &event.value).unwrap();
                let decoded = decoder.decode(&bytes).unwrap();
                assert_eq!((decoded.writer.subject(), decoded.writer.version()), (event.subject, event.version));
                let (Value::Record(written), Value::Record(read)) = (&event.value, &decoded.value) else {
                    panic!("records expected")
                };
                // Every written field reads back unchanged; fields added by newer versions take their defaults.
                assert_eq!(&read[..written.len()], &written[..]);
                for (_, added) in &read[written.len()..] {
                    assert_eq!(added, &Value::Union(0, Box::new(Value::Null)));
                }
            }
        }
    }

    #[test]
    fn same_seed_same_events_and_valid_distinct_test_range_nhs_numbers() {
        let source = small();
        let first: Vec<Uuid> = source.clinical_events().map(|e| e.truth.event_id).collect();
        let second: Vec<Uuid> = small().clinical_events().map(|e| e.truth.event_id).collect();
        assert_eq!(first, second);
        assert_eq!(first.iter().collect::<HashSet<_>>().len(), first.len(), "event ids are unique");
        let numbers: HashSet<String> = (0..500).map(|i| source.patient(i).nhs_number.digits()).collect();
        assert_eq!(numbers.len(), 500);
        for digits in &numbers {
            assert!(digits.starts_with("999"), "test range only");
            assert!(NhsNumber::parse(digits).is_ok());
        }
    }

    #[test]
    fn opt_out_shares_and_consent_changes_match_the_configuration() {
        let source =
            SyntheticSource::new(SyntheticSourceConfig { patients: 20_000, events: 0, ..Default::default() }).unwrap();
        let patients: Vec<SyntheticPatient> = (0..20_000).map(|i| source.patient(i)).collect();
        let national = patients.iter().filter(|p| p.national_opt_out).count() as f64 / 20_000.0;
        let type1 = patients.iter().filter(|p| p.type1_opt_out).count() as f64 / 20_000.0;
        assert!((0.040..0.058).contains(&national), "{national}");
        assert!((0.018..0.032).contains(&type1), "{type1}");
        let withdrawn = patients.iter().filter(|p| p.national_opt_out_withdrawn).count();
        let expected_changes = patients
            .iter()
            .map(|p| {
                usize::from(p.national_opt_out)
                    + 2 * usize::from(p.national_opt_out_withdrawn)
                    + usize::from(p.type1_opt_out)
            })
            .sum::<usize>();
        assert!(withdrawn > 0);
        assert_eq!(source.consent_events().count(), expected_changes);
    }

    #[test]
    fn bad_configuration_is_refused_with_the_setting_named() {
        let error =
            SyntheticSource::new(SyntheticSourceConfig { type1_opt_out_share: 1.5, ..Default::default() }).unwrap_err();
        assert!(error.contains("type1_opt_out_share"), "{error}");
        let error =
            SyntheticSource::new(SyntheticSourceConfig { period_start: "2026-13-01".into(), ..Default::default() })
                .unwrap_err();
        assert!(error.contains("period_start"), "{error}");
    }
}
