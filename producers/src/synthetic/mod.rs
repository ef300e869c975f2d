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
//! Like every adapter, the source builds typed events ([`crate::clinical::ClinicalEvent`]),
//! validates them (each as received when it was recorded, the way a live feed delivers them)
//! and turns the [`ValidEvent`](crate::clinical::ValidEvent) into its record: the newest schema
//! version of its subject, or the older `observation` version a GP system or the vital-signs
//! feed still writes.
//!
//! The same configuration always yields the same events, and each event carries its
//! [`EventTruth`] so tests can compute what a lander must release without trusting its code.

mod events;
mod patient;
#[cfg(test)]
mod tests;
mod vocabulary;

use apache_avro::types::Value;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clinical::{ConsentScope, SubjectRecord};
pub use patient::SyntheticPatient;
use patient::{BIRTH_YEARS, OptOutShares, days_from_civil, derive_patient};

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

/// One validated event ready to be encoded and published: the record of a
/// [`ValidEvent`](crate::clinical::ValidEvent) and the truth about it.
#[derive(Debug, Clone)]
pub struct SyntheticEvent {
    /// The record: subject, schema version, Kafka key and Avro value.
    record: SubjectRecord,
    /// Ground truth for tests.
    pub truth: EventTruth,
}

impl SyntheticEvent {
    /// An event of a validated record (for tests that alter a synthetic event: read it back,
    /// change it, validate it and make its record again).
    pub fn new(record: SubjectRecord, truth: EventTruth) -> Self {
        SyntheticEvent { record, truth }
    }

    /// Subject of the catalogue.
    pub fn subject(&self) -> &'static str {
        self.record.subject()
    }

    /// Schema version of the subject the event is written with.
    pub fn version(&self) -> u32 {
        self.record.version()
    }

    /// Kafka key: keeps one patient's events in one partition, in order.
    pub fn key(&self) -> &str {
        self.record.key()
    }

    /// The record, shaped by [`version`](Self::version) of the subject's schema.
    pub fn value(&self) -> &Value {
        self.record.value()
    }

    /// The record, to publish.
    pub fn record(&self) -> &SubjectRecord {
        &self.record
    }
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
        // Events about a patient not yet born would fail validation.
        if start < days_from_civil(BIRTH_YEARS.end, 1, 1) {
            return Err(format!(
                "period_start `{}` is before {}-01-01: synthetic patients are born up to {}",
                config.period_start,
                BIRTH_YEARS.end,
                BIRTH_YEARS.end - 1
            ));
        }
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
                changes.push(events::consent_change(
                    &patient,
                    &mut rng,
                    opted_out_at,
                    "X26",
                    ConsentScope::NationalDataOptOut,
                    true,
                ));
            }
            if patient.national_opt_out_withdrawn {
                let withdrawn_at = opted_out_at + rng.random_range(1..25) * DAY_MICROS;
                changes.push(events::consent_change(
                    &patient,
                    &mut rng,
                    withdrawn_at,
                    "X26",
                    ConsentScope::NationalDataOptOut,
                    false,
                ));
            }
            if patient.type1_opt_out {
                changes.push(events::consent_change(
                    &patient,
                    &mut rng,
                    opted_out_at,
                    patient.gp_practice,
                    ConsentScope::Type1OptOut,
                    true,
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
        events::clinical_event(&patient, rng, nhs_number_sent, occurred_at, recorded_at)
    }
}

fn parse_date(text: &str) -> Option<i32> {
    let mut parts = text.splitn(3, '-');
    let year = parts.next()?.parse().ok()?;
    let month = parts.next()?.parse().ok().filter(|m| (1..=12).contains(m))?;
    let day = parts.next()?.parse().ok().filter(|d| (1..=31).contains(d))?;
    Some(days_from_civil(year, month, day))
}
