//! How long the lander takes to load the consent topic at start-up, and how much memory the
//! consent store then holds.
//!
//! ```text
//! cargo bench -p sluice-consumers --bench consent_load            # 5,000,000 patients
//! cargo bench -p sluice-consumers --bench consent_load -- 1000000 # or CONSENT_BENCH_N=1000000
//! ```
//!
//! In one process, it measures:
//!
//! 1. applying N changes (N distinct patients with valid NHS numbers; four in five National Data
//!    Opt-outs, one in five Type 1 opt-outs) to `ConsentStore::with_capacity(N)`: time,
//!    changes per second, `heap_bytes()` and the growth of the process's resident memory. Making
//!    the changes is not timed;
//! 2. `decide` on those patients and on as many others who have no change;
//! 3. as a baseline, inserting the same N keys into a plain `HashMap<u64, i64>`, and the
//!    ratios of the store to it;
//! 4. what a real start-up adds: `CONSENT_BENCH_DECODE_N` (default 500,000) consent records
//!    encoded with the schemas crate's encoder (not timed), then decoded alone; decoded and read
//!    with `ConsentChange::from_record`; and decoded, read and applied; and the start-up time
//!    this gives for N records.
//!
//! Resident memory comes from `VmRSS` and `VmHWM` in `/proc/self/status` (Linux only; shown
//! as `n/a` elsewhere).

use std::{
    collections::HashMap,
    hint::black_box,
    time::{Duration, Instant},
};

use apache_avro::types::{Record, Value};
use sluice_consumers::consent::{ConsentChange, ConsentScope, ConsentStore, Decision, Purpose, PurposeRules};
use sluice_schemas::{Catalogue, Decoder, Encoder, Framing, NhsNumber};

/// Patients when neither an argument nor `CONSENT_BENCH_N` says otherwise.
const DEFAULT_PATIENTS: usize = 5_000_000;
/// Records for the decoding measurement unless `CONSENT_BENCH_DECODE_N` says otherwise.
const DEFAULT_DECODE_RECORDS: usize = 500_000;
/// Changes made (untimed) and then applied (timed) at a time, so they need not all be in memory.
const CHUNK: usize = 65_536;
/// `effective_at` of every generated change: 14 November 2023.
const EFFECTIVE_AT: i64 = 1_700_000_000_000_000;
const MB: f64 = 1_000_000.0;

fn main() {
    let patients = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .or_else(|| std::env::var("CONSENT_BENCH_N").ok())
        .map_or(DEFAULT_PATIENTS, |text| count(&text, "the number of patients"));
    let decode_records = std::env::var("CONSENT_BENCH_DECODE_N")
        .map_or(DEFAULT_DECODE_RECORDS, |text| count(&text, "CONSENT_BENCH_DECODE_N"));
    println!("consent_load: N = {patients} patients, {decode_records} records decoded");

    let numbers = nhs_numbers(2 * patients.max(decode_records));
    let (opted_out, others) = numbers.split_at(patients);
    let (store, loaded) = apply_changes(opted_out);
    decide(&store, opted_out, &others[..patients]);
    drop(store);
    let plain = baseline(opted_out);
    compare(&loaded, &plain);
    decode(&numbers[..decode_records], patients, loaded.elapsed);
}

/// What loading N keys cost one structure.
struct Loaded {
    /// Time spent applying or inserting.
    elapsed: Duration,
    /// The structure's heap, estimated from its capacity.
    heap_bytes: usize,
    /// Growth of resident memory while loading, in kB.
    resident_growth_kb: Option<u64>,
}

/// Reads a positive count, allowing `_` between digits.
fn count(text: &str, what: &str) -> usize {
    text.replace('_', "").parse().ok().filter(|n| *n > 0).unwrap_or_else(|| panic!("{what} must be a positive integer"))
}

/// `count` distinct valid NHS numbers, the first nine digits counting up from 400 000 000.
fn nhs_numbers(count: usize) -> Vec<NhsNumber> {
    NhsNumber::valid_from(400_000_000).take(count).collect()
}

/// The change for the `index`-th patient: a National Data Opt-out, or every fifth a Type 1.
fn opt_out(index: usize, nhs_number: NhsNumber) -> ConsentChange {
    let scope = if index % 5 == 4 { ConsentScope::Type1OptOut } else { ConsentScope::NationalDataOptOut };
    ConsentChange {
        nhs_number,
        scope,
        deny: true,
        effective_at: EFFECTIVE_AT,
        effective_until: None,
        purposes: Vec::new(),
    }
}

/// Measurement 1: applying one change per patient to a store sized for them.
fn apply_changes(patients: &[NhsNumber]) -> (ConsentStore, Loaded) {
    let mut chunk = Vec::with_capacity(CHUNK);
    chunk.extend(patients.iter().take(CHUNK).enumerate().map(|(index, nhs_number)| opt_out(index, *nhs_number)));
    chunk.clear();
    let before = Memory::now();
    let mut store = ConsentStore::with_capacity(patients.len());
    let mut applying = Duration::ZERO;
    for (start, block) in (0..).step_by(CHUNK).zip(patients.chunks(CHUNK)) {
        chunk.extend(block.iter().enumerate().map(|(offset, nhs_number)| opt_out(start + offset, *nhs_number)));
        let timer = Instant::now();
        chunk.drain(..).for_each(|change| store.apply(change));
        applying += timer.elapsed();
    }
    let after = Memory::now();
    assert_eq!(store.patients(), patients.len());
    println!();
    println!("| consent store, {} changes | value |", patients.len());
    println!("| --- | --- |");
    println!("| apply, total | {:.3} s |", applying.as_secs_f64());
    println!("| apply, rate | {:.2} M changes/s |", patients.len() as f64 / applying.as_secs_f64() / MB);
    println!("| apply, per change | {:.0} ns |", applying.as_nanos() as f64 / patients.len() as f64);
    println!(
        "| heap_bytes() | {:.1} MB ({:.1} B per patient) |",
        store.heap_bytes() as f64 / MB,
        store.heap_bytes() as f64 / patients.len() as f64
    );
    println!("| VmRSS growth | {} |", before.growth_to(&after));
    println!("| VmHWM after (whole process) | {} |", after.high_water_mark());
    let loaded =
        Loaded { elapsed: applying, heap_bytes: store.heap_bytes(), resident_growth_kb: before.growth_kb(&after) };
    (store, loaded)
}

/// Measurement 2: decisions for patients who have an opt-out and for patients who have none.
fn decide(store: &ConsentStore, opted_out: &[NhsNumber], others: &[NhsNumber]) {
    let rules = PurposeRules::default();
    println!();
    println!("| decide (research, GP-sourced) | decisions | per decision | withheld |");
    println!("| --- | --- | --- | --- |");
    for (label, patients) in [("patients with an opt-out", opted_out), ("patients without", others)] {
        let timer = Instant::now();
        let withheld = patients
            .iter()
            .filter(|nhs_number| {
                let decision = store.decide(&Purpose::Research, &rules, Some(**nhs_number), true);
                matches!(black_box(decision), Decision::Withhold(_))
            })
            .count();
        let elapsed = timer.elapsed();
        println!(
            "| {label} | {} | {:.0} ns | {withheld} |",
            patients.len(),
            elapsed.as_nanos() as f64 / patients.len() as f64
        );
    }
}

/// Measurement 3: the same keys in the plainest map there is.
fn baseline(patients: &[NhsNumber]) -> Loaded {
    let keys: Vec<u64> = patients.iter().map(NhsNumber::as_u64).collect();
    let before = Memory::now();
    let timer = Instant::now();
    let mut map: HashMap<u64, i64> = HashMap::with_capacity(keys.len());
    for key in &keys {
        map.insert(*key, EFFECTIVE_AT);
    }
    let elapsed = timer.elapsed();
    let after = Memory::now();
    // The same SwissTable layout as `heap_bytes()` assumes: 16-byte slots plus a control byte.
    let table_bytes = (map.capacity() * 8 / 7).next_power_of_two() * 17;
    println!();
    println!("| baseline HashMap<u64, i64>, {} keys | value |", keys.len());
    println!("| --- | --- |");
    println!("| insert, total | {:.3} s |", elapsed.as_secs_f64());
    println!("| insert, per key | {:.0} ns |", elapsed.as_nanos() as f64 / keys.len() as f64);
    println!(
        "| table size (buckets x 17 B) | {:.1} MB ({:.1} B per key) |",
        table_bytes as f64 / MB,
        table_bytes as f64 / keys.len() as f64
    );
    println!("| VmRSS growth | {} |", before.growth_to(&after));
    black_box(map);
    Loaded { elapsed, heap_bytes: table_bytes, resident_growth_kb: before.growth_kb(&after) }
}

/// The store against the baseline, as ratios.
fn compare(store: &Loaded, baseline: &Loaded) {
    println!();
    println!("| consent store / baseline | ratio |");
    println!("| --- | --- |");
    println!("| load time | {:.2} |", store.elapsed.as_secs_f64() / baseline.elapsed.as_secs_f64());
    println!("| heap (estimated) | {:.2} |", store.heap_bytes as f64 / baseline.heap_bytes as f64);
    match (store.resident_growth_kb, baseline.resident_growth_kb) {
        (Some(store), Some(baseline)) if baseline > 0 => {
            println!("| VmRSS growth | {:.2} |", store as f64 / baseline as f64)
        }
        _ => println!("| VmRSS growth | n/a |"),
    }
}

/// Measurement 4: a start-up's real work per record: decode, read the change, apply it.
/// Two start-up estimates for `startup_records` records follow: the full per-record cost
/// measured here times the records; and the per-record cost of decoding and reading times the
/// records, plus `startup_apply`, the time measurement 1 took to apply that many to a full-size
/// store.
fn decode(patients: &[NhsNumber], startup_records: usize, startup_apply: Duration) {
    let catalogue = Catalogue::embedded();
    let version = catalogue.latest("consent").expect("the consent subject");
    let encoder = Encoder::new(catalogue, Framing::SingleObject);
    let messages: Vec<Vec<u8>> = patients
        .iter()
        .enumerate()
        .map(|(index, nhs_number)| {
            let mut record = Record::new(version.schema()).expect("the consent schema is a record");
            record.put("event_id", Value::Uuid(apache_avro::Uuid::from_u128(index as u128)));
            record.put("effective_at", Value::TimestampMicros(EFFECTIVE_AT));
            record.put("recorded_at", Value::TimestampMicros(EFFECTIVE_AT));
            record.put("source_organisation", "X26");
            record.put("nhs_number", nhs_number.digits());
            record.put("scope", Value::Enum(0, "NATIONAL_DATA_OPT_OUT".to_owned()));
            record.put("study_id", Value::Union(0, Box::new(Value::Null)));
            record.put("decision", Value::Enum(1, "DENY".to_owned()));
            record.put("purposes", Value::Array(Vec::new()));
            encoder.encode(version, &record.into()).expect("a valid consent record")
        })
        .collect();
    let bytes: usize = messages.iter().map(Vec::len).sum();
    let decoder = Decoder::new(catalogue);

    let timer = Instant::now();
    for message in &messages {
        black_box(decoder.decode(message).expect("decodes"));
    }
    let decoding = timer.elapsed();

    let timer = Instant::now();
    for message in &messages {
        let event = decoder.decode(message).expect("decodes");
        black_box(ConsentChange::from_record(&event.value).expect("a consent change"));
    }
    let reading = timer.elapsed();

    let mut store = ConsentStore::with_capacity(messages.len());
    let timer = Instant::now();
    for message in &messages {
        let event = decoder.decode(message).expect("decodes");
        store.apply(ConsentChange::from_record(&event.value).expect("a consent change"));
    }
    let loading = timer.elapsed();
    assert_eq!(store.patients(), messages.len());

    let records = messages.len() as f64;
    println!();
    println!(
        "| {} consent records ({:.0} B each, single-object framing) | total | per record | records/s |",
        messages.len(),
        bytes as f64 / records
    );
    println!("| --- | --- | --- | --- |");
    for (label, elapsed) in
        [("decode", decoding), ("decode + from_record", reading), ("decode + from_record + apply", loading)]
    {
        println!(
            "| {label} | {:.3} s | {:.2} µs | {:.0} k |",
            elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1e6 / records,
            records / elapsed.as_secs_f64() / 1e3
        );
    }
    let per_record = loading.as_secs_f64() / records * startup_records as f64;
    let composed = reading.as_secs_f64() / records * startup_records as f64 + startup_apply.as_secs_f64();
    for (label, estimate) in [
        ("N x (decode + from_record + apply) per record", per_record),
        ("N x (decode + from_record) per record + apply of N measured above", composed),
    ] {
        println!(
            "| start-up estimate for N = {startup_records}: {label} | {estimate:.1} s | {:.2} µs | {:.0} k |",
            estimate * 1e6 / startup_records as f64,
            startup_records as f64 / estimate / 1e3
        );
    }
    println!("(Kafka fetch time is not included in either estimate.)");
}

/// Resident memory of this process, from `/proc/self/status`, in kB.
struct Memory {
    /// `VmRSS`: resident now.
    resident_kb: Option<u64>,
    /// `VmHWM`: the most that was ever resident.
    peak_kb: Option<u64>,
}

impl Memory {
    /// Reads the figures now.
    fn now() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        };
        Memory { resident_kb: field("VmRSS:"), peak_kb: field("VmHWM:") }
    }

    /// How many kB more are resident in `later` than in `self`.
    fn growth_kb(&self, later: &Memory) -> Option<u64> {
        Some(later.resident_kb?.saturating_sub(self.resident_kb?))
    }

    /// How much more is resident in `later` than in `self`, in words.
    fn growth_to(&self, later: &Memory) -> String {
        match (self.resident_kb, later.resident_kb) {
            (Some(before), Some(after)) => format!(
                "{:.1} MB (VmRSS {:.1} -> {:.1} MB)",
                (after as f64 - before as f64) * 1e3 / MB,
                before as f64 * 1e3 / MB,
                after as f64 * 1e3 / MB
            ),
            _ => "n/a".to_owned(),
        }
    }

    /// The peak resident memory so far.
    fn high_water_mark(&self) -> String {
        self.peak_kb.map_or("n/a".to_owned(), |kb| format!("{:.1} MB", kb as f64 * 1e3 / MB))
    }
}
