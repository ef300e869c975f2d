//! Micro-benchmarks of the lander's per-event steps, each on the functions the lander itself
//! calls for every clinical event (see `lander/state.rs`, `LandingState::route` and
//! `buffer_clinical`):
//!
//! ```text
//! cargo bench -p sluice-consumers --bench pipeline_steps
//! cargo bench -p sluice-consumers --bench pipeline_steps -- decode/   # one group (a filter)
//! ```
//!
//! The events are the synthetic source's (`sluice_producers::SyntheticSource`, default
//! configuration), encoded with the schemas crate's encoder in Avro single-object framing, as
//! producers publish them: a pool of [`POOL`] events per clinical subject (`adt`,
//! `observation` written with v1, v2 and v3 as the source mixes them, `diagnosis`), cycled
//! through so that no single event stays hot in the caches. The purpose is `research` under its
//! built-in policy (`policies/research.toml`) and one 32-byte key. Making the events and the
//! consent store is not timed.
//!
//! The groups, each reported per event (`Throughput::Elements(1)`) unless said otherwise:
//!
//! * `decode/<subject>`: framed bytes to a record resolved to the newest schema version
//!   (`Decoder::decode`).
//! * `consent_check`: `ConsentStore::decide` for research on a store holding the opt-outs of
//!   [`OPTED_OUT`] patients (four in five National Data Opt-outs, one in five Type 1) plus the
//!   synthetic source's own consent changes, for a GP-sourced event, so both opt-outs are
//!   looked up:
//!   * `with_opt_out`: patients who have an opt-out;
//!   * `without_change`: patients with no change at all;
//!   * `event/<subject>`: what the lander does per event, reading the NHS number and whether a
//!     GP practice sent it from the decoded record (`consent::event_consent_inputs`), then
//!     deciding.
//! * `pseudonymise/<subject>`: one decoded record to one output row under the research plan
//!   (`pseudonymise::pseudonymise`: HMAC pseudonyms of the NHS number and source organisation,
//!   date shift, age band, postcode district, dropped fields, copies).
//! * `arrow_append`:
//!   * `push/<subject>`: appending one pseudonymised row to a file's Arrow builders
//!     (`RowBuffer::push`); the buffer is finished, untimed, every [`BATCH_ROWS`] rows;
//!   * `finish/<subject>`: taking [`BATCH_ROWS`] buffered rows as a `RecordBatch`
//!     (`RowBuffer::finish`), reported per batch as `Elements(BATCH_ROWS)`.
//! * `end_to_end_per_event/<subject>`: decode, consent inputs and decision, and for a released
//!   event pseudonymise and push, as the lander does for one purpose. About one pooled event in
//!   twenty (5-7 %, printed before the group runs) is withheld (an opt-out or no NHS number) and
//!   so skips the last two steps. Finishing batches is left out (it is `arrow_append/finish`).
//!
//! Not included: Kafka, the per-event bookkeeping of `buffer_clinical` (tallies, pending-file
//! lookup), writing Parquet and committing.
//!
//! Each benchmark warms up for 1 s and measures for 3 s (30 samples), so the whole run takes
//! about two minutes once built; criterion's `--warm-up-time`, `--measurement-time` and `--sample-size`
//! arguments change that.

use std::{
    collections::BTreeMap,
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{
    BatchSize, BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime,
};
use sluice_consumers::{
    batch::RowBuffer,
    consent::{
        ConsentChange, ConsentScope, ConsentStore, Decision, Purpose, PurposeRules, SourceOrganisations,
        event_consent_inputs,
    },
    policy::{LandingPlan, Policy},
    pseudonymise::{Cell, PurposeKey, pseudonymise},
    record::RecordView,
};
use sluice_producers::{SyntheticSource, SyntheticSourceConfig};
use sluice_schemas::{Catalogue, Decoder, Encoder, Framing, NhsNumber, apache_avro::types::Value, subjects};

/// Events per subject that each benchmark cycles through.
const POOL: usize = 1024;
/// Patients with an opt-out in the consent store.
const OPTED_OUT: usize = 1_000_000;
/// Rows of a batch: what `arrow_append/finish` takes, and how often the other groups finish.
const BATCH_ROWS: usize = 8192;
/// Events timed at once by the benchmarks that finish batches between timings.
const CHUNK: usize = 1024;
/// `effective_at` of the generated opt-outs: 14 November 2023, before every synthetic event.
const EFFECTIVE_AT: i64 = 1_700_000_000_000_000;

/// One clinical subject's events in every form the steps take.
struct SubjectEvents {
    /// The subject.
    subject: &'static str,
    /// The research landing plan for the subject's newest schema version.
    plan: Arc<LandingPlan>,
    /// Events as framed messages.
    framed: Vec<Vec<u8>>,
    /// The same events decoded.
    decoded: Vec<Value>,
    /// The decoded events pseudonymised.
    rows: Vec<Vec<Cell>>,
}

/// Everything the benchmarks share. Built once, untimed.
struct Fixture {
    decoder: Decoder<'static>,
    key: PurposeKey,
    rules: PurposeRules,
    store: ConsentStore,
    /// Patients with an opt-out in `store`.
    opted_out: Vec<NhsNumber>,
    /// Patients with no change in `store`.
    unchanged: Vec<NhsNumber>,
    subjects: Vec<SubjectEvents>,
}

impl Fixture {
    fn new() -> Self {
        let catalogue = Catalogue::embedded();
        let decoder = Decoder::new(catalogue);
        let encoder = Encoder::new(catalogue, Framing::SingleObject);
        let policy = Policy::builtin("research").expect("research has a built-in policy");
        let key = PurposeKey::new("bench-research", &[0x5a; 32]).expect("a 32-byte key");
        let source = SyntheticSource::new(SyntheticSourceConfig::default()).expect("the default configuration");

        let mut framed: BTreeMap<&str, Vec<Vec<u8>>> = BTreeMap::new();
        for event in source.clinical_events() {
            let pool = framed.entry(event.subject()).or_default();
            if pool.len() < POOL {
                let version = catalogue.version(event.subject(), event.version()).expect("a catalogued version");
                pool.push(encoder.encode(version, event.value()).expect("synthetic events follow their schema"));
            }
            if subjects::CLINICAL.iter().all(|s| framed.get(s).is_some_and(|pool| pool.len() == POOL)) {
                break;
            }
        }
        let subjects = subjects::CLINICAL
            .iter()
            .map(|subject| {
                let plan =
                    Arc::new(policy.plan(catalogue.latest(subject).expect("a clinical subject")).expect("plans"));
                let framed = framed.remove(subject).expect("events of every clinical subject");
                let decoded: Vec<Value> =
                    framed.iter().map(|message| decoder.decode(message).expect("decodes").value).collect();
                let rows =
                    decoded.iter().map(|record| pseudonymise(&plan, &key, record).expect("pseudonymises")).collect();
                SubjectEvents { subject, plan, framed, decoded, rows }
            })
            .collect();

        let numbers = nhs_numbers(OPTED_OUT + POOL);
        let (opted_out, unchanged) = numbers.split_at(OPTED_OUT);
        let mut store = ConsentStore::with_capacity(OPTED_OUT + 1024);
        for (index, nhs_number) in opted_out.iter().enumerate() {
            let scope = if index % 5 == 4 { ConsentScope::Type1OptOut } else { ConsentScope::NationalDataOptOut };
            store.apply(ConsentChange {
                nhs_number: *nhs_number,
                scope,
                deny: true,
                effective_at: EFFECTIVE_AT,
                effective_until: None,
                purposes: Vec::new(),
            });
        }
        // The synthetic patients' own opt-outs, read as the lander reads the consent topic.
        for event in source.consent_events() {
            let version = catalogue.version(event.subject(), event.version()).expect("a catalogued version");
            let message = encoder.encode(version, event.value()).expect("synthetic events follow their schema");
            let decoded = decoder.decode(&message).expect("decodes");
            store.apply(ConsentChange::from_record(&decoded.value).expect("a valid consent change"));
        }
        // Spread the opted-out patients sampled over the whole store, not its first entries.
        let step = OPTED_OUT / POOL;
        let opted_out = opted_out.iter().step_by(step).take(POOL).copied().collect();
        Fixture {
            decoder,
            key,
            rules: policy.rules().clone(),
            store,
            opted_out,
            unchanged: unchanged.to_vec(),
            subjects,
        }
    }

    /// One event through every step the lander takes for one purpose; pushes its row if released.
    fn land_one(&self, message: &[u8], plan: &LandingPlan, buffer: &mut RowBuffer) {
        let event = self.decoder.decode(message).expect("decodes");
        let view = RecordView::new(&event.value).expect("a record");
        let inputs = event_consent_inputs(&view, SourceOrganisations::built_in());
        let (nhs_number, gp_sourced) = (inputs.nhs_number, inputs.gp_sourced);
        if let Decision::Release { .. } = self.store.decide(&Purpose::Research, &self.rules, nhs_number, gp_sourced) {
            buffer.push(pseudonymise(plan, &self.key, &event.value).expect("pseudonymises"));
        }
    }
}

/// `count` distinct valid NHS numbers, the first nine digits counting up from 400 000 000.
fn nhs_numbers(count: usize) -> Vec<NhsNumber> {
    NhsNumber::valid_from(400_000_000).take(count).collect()
}

/// An endless walk over a pool, one item per call.
fn cycle<'p, T>(pool: &'p [T]) -> impl FnMut() -> &'p T {
    let mut next = 0;
    move || {
        let item = &pool[next];
        next = (next + 1) % pool.len();
        item
    }
}

/// A group reporting per event.
fn group<'c>(c: &'c mut Criterion, name: &str) -> BenchmarkGroup<'c, WallTime> {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    group
}

fn decode(c: &mut Criterion, fixture: &Fixture) {
    let mut group = group(c, "decode");
    for events in &fixture.subjects {
        let mut next = cycle(&events.framed);
        group
            .bench_function(events.subject, |b| b.iter(|| fixture.decoder.decode(black_box(next())).expect("decodes")));
    }
    group.finish();
}

fn consent_check(c: &mut Criterion, fixture: &Fixture) {
    let mut group = group(c, "consent_check");
    for (name, patients) in [("with_opt_out", &fixture.opted_out), ("without_change", &fixture.unchanged)] {
        let mut next = cycle(patients);
        group.bench_function(name, |b| {
            b.iter(|| fixture.store.decide(&Purpose::Research, &fixture.rules, Some(*black_box(next())), true))
        });
    }
    for events in &fixture.subjects {
        let mut next = cycle(&events.decoded);
        group.bench_function(format!("event/{}", events.subject), |b| {
            b.iter(|| {
                let view = RecordView::new(black_box(next())).expect("a record");
                let inputs = event_consent_inputs(&view, SourceOrganisations::built_in());
                let (nhs_number, gp_sourced) = (inputs.nhs_number, inputs.gp_sourced);
                fixture.store.decide(&Purpose::Research, &fixture.rules, nhs_number, gp_sourced)
            })
        });
    }
    group.finish();
}

fn pseudonymise_group(c: &mut Criterion, fixture: &Fixture) {
    let mut group = group(c, "pseudonymise");
    for events in &fixture.subjects {
        let mut next = cycle(&events.decoded);
        group.bench_function(events.subject, |b| {
            b.iter(|| pseudonymise(&events.plan, &fixture.key, black_box(next())).expect("pseudonymises"))
        });
    }
    group.finish();
}

fn arrow_append(c: &mut Criterion, fixture: &Fixture) {
    let mut group = group(c, "arrow_append");
    for events in &fixture.subjects {
        group.bench_function(format!("push/{}", events.subject), |b| {
            let mut buffer = RowBuffer::new(events.plan.clone());
            let mut next = cycle(&events.rows);
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    // The rows are moved into the buffer, so each push needs its own copy: made
                    // here, untimed.
                    let rows: Vec<Vec<Cell>> = (0..left.min(CHUNK)).map(|_| next().clone()).collect();
                    left -= rows.len();
                    let start = Instant::now();
                    for row in rows {
                        buffer.push(black_box(row));
                    }
                    elapsed += start.elapsed();
                    if buffer.rows() >= BATCH_ROWS {
                        black_box(buffer.finish());
                    }
                }
                elapsed
            });
        });
    }
    group.throughput(Throughput::Elements(BATCH_ROWS as u64));
    for events in &fixture.subjects {
        group.bench_function(format!("finish/{}", events.subject), |b| {
            b.iter_batched_ref(
                || {
                    let mut buffer = RowBuffer::new(events.plan.clone());
                    events.rows.iter().cycle().take(BATCH_ROWS).for_each(|row| buffer.push(row.clone()));
                    buffer
                },
                RowBuffer::finish,
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn end_to_end_per_event(c: &mut Criterion, fixture: &Fixture) {
    let mut group = group(c, "end_to_end_per_event");
    for events in &fixture.subjects {
        let mut released = RowBuffer::new(events.plan.clone());
        events.framed.iter().for_each(|message| fixture.land_one(message, &events.plan, &mut released));
        println!("end_to_end_per_event/{}: {} of {} pooled events released", events.subject, released.rows(), POOL);
        group.bench_function(events.subject, |b| {
            let mut buffer = RowBuffer::new(events.plan.clone());
            let mut next = cycle(&events.framed);
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    let chunk = left.min(CHUNK);
                    left -= chunk;
                    let start = Instant::now();
                    for _ in 0..chunk {
                        fixture.land_one(black_box(next()), &events.plan, &mut buffer);
                    }
                    elapsed += start.elapsed();
                    if buffer.rows() >= BATCH_ROWS {
                        black_box(buffer.finish());
                    }
                }
                elapsed
            });
        });
    }
    group.finish();
}

/// Builds the shared events and consent store once, then runs every group.
fn pipeline_steps(c: &mut Criterion) {
    let fixture = Fixture::new();
    decode(c, &fixture);
    consent_check(c, &fixture);
    pseudonymise_group(c, &fixture);
    arrow_append(c, &fixture);
    end_to_end_per_event(c, &fixture);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = pipeline_steps
}
criterion_main!(benches);
