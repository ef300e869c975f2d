//! Checking a landed lake against the synthetic source's ground truth, for any broker: the lake
//! a test landed for [`PURPOSES`] from a [`SyntheticSource`], read back and compared with what
//! the source says must (and must not) have landed, by [`assert_lake_matches_source`]. Landing
//! it (the demo, on a mock cluster or a real broker) is the tests' part.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::Path,
};

use arrow::datatypes::{DataType, TimeUnit};
use sha2::{Digest, Sha256};
use sluice_consumers::pseudonymise::PurposeKey;
use sluice_producers::{SyntheticSource, SyntheticSourceConfig};
use sluice_schemas::apache_avro::types::Value;

use crate::{
    lake::{all_cells, column_strings, event_pseudonym, parquet_files, read_parquet, words},
    linkage,
};

/// The purposes the shared checks land for: one that keeps true times (direct care), one that
/// keeps true dates and hours (planning) and one that shifts them (research).
pub const PURPOSES: [&str; 3] = ["direct-care", "planning", "research"];

/// The modification time of every landed file and directory: 1980-01-01T00:00:00Z.
const HIDDEN_WRITE_TIME: u64 = 315_532_800;

/// What each purpose's policy makes of event times, and so how its files are laid out.
struct TimeLayout {
    /// The column holding the event time as landed.
    occurred: &'static str,
    /// Hive partition key and the length of its value (`YYYY-MM-DD` or `YYYY-MM`).
    partition: (&'static str, usize),
    /// The policy label every file records.
    policy: &'static str,
}

fn layout(purpose: &str) -> TimeLayout {
    match purpose {
        "research" => {
            TimeLayout { occurred: "occurred_at_shifted", partition: ("event_month", 7), policy: "research@v5" }
        }
        "planning" => TimeLayout { occurred: "occurred_at_hour", partition: ("event_date", 10), policy: "planning@v4" },
        _ => TimeLayout { occurred: "occurred_at", partition: ("event_date", 10), policy: "direct-care@v3" },
    }
}

/// Metadata keys a landed file may carry: provenance that says nothing about which source
/// events the file holds or when it was written.
const ALLOWED_METADATA: [&str; 12] = [
    "ARROW:schema",
    "sluice.version",
    "sluice.purpose",
    "sluice.subject",
    "sluice.reader_schema",
    "sluice.writer_schema_fingerprints",
    "sluice.policy",
    "sluice.policy_hash",
    "sluice.key_id",
    "sluice.sorted_by",
    "sluice.patient_pseudonym_column",
    "sluice.erased_rows",
];

/// Reads every file of the lake back and checks it against the source's ground truth: every
/// permitted event landed exactly once per purpose, nothing withheld landed, no identifier is in
/// any value or anywhere in the raw files, pseudonyms are stable per patient within a purpose,
/// provenance metadata and types are right; and, looked at from outside, nothing joins one
/// purpose's lake to another's, to the source messages or to true time: no column shares rare
/// values with another purpose's (see [`linkage`]), no value can be computed from the source
/// without a key, file names and metadata name no source offsets, rows are not in arrival
/// order, and no file or directory tells when it was written.
pub fn assert_lake_matches_source(
    lake: &Path,
    source_config: SyntheticSourceConfig,
    keys: &BTreeMap<String, PurposeKey>,
) {
    let source = SyntheticSource::new(source_config).unwrap();
    // Ground truth from the source, computed without the lander's code: an event may be
    // released for planning and research when it carries an NHS number, its patient holds no
    // National Data Opt-out, and it is not GP data of a patient with a Type 1 opt-out. Direct
    // care receives every event. Rows are told apart by their event pseudonym, which the test
    // computes with the purpose's key.
    let mut expected: BTreeMap<&str, HashMap<String, u32>> = BTreeMap::new();
    let mut withheld = 0;
    // Values anyone could compute from the source messages without a key, and true times.
    let mut computable: HashSet<String> = HashSet::new();
    let mut true_times: HashSet<String> = HashSet::new();
    // Each event's true onset date (diagnoses), by event pseudonym in research.
    let mut true_onsets: HashMap<String, String> = HashMap::new();
    for event in source.clinical_events() {
        let patient = source.patient(event.truth.patient);
        let released = event.truth.nhs_number_sent
            && !patient.national_opt_out
            && !(patient.type1_opt_out && event.truth.gp_sourced);
        for purpose in PURPOSES {
            if purpose == "direct-care" || released {
                let pseudonym = event_pseudonym(&keys[purpose], &event.truth.event_id);
                expected.entry(purpose).or_default().insert(pseudonym, event.truth.patient);
            }
        }
        withheld += usize::from(!released);
        let id = event.truth.event_id;
        let sha = |bytes: &[u8]| hex::encode(Sha256::digest(bytes));
        computable.extend([
            id.to_string(),
            id.simple().to_string(),
            sha(id.to_string().as_bytes()),
            sha(id.as_bytes()),
            sha(id.as_bytes())[..32].to_owned(),
            sha(patient.nhs_number.digits().as_bytes()),
            sha(patient.nhs_number.digits().as_bytes())[..32].to_owned(),
        ]);
        if let Value::Record(fields) = event.value() {
            for (name, value) in fields {
                if let ("occurred_at" | "recorded_at", Value::TimestampMicros(micros)) = (name.as_str(), value) {
                    true_times.insert(micros.to_string());
                }
                if let ("onset_date", Value::Union(_, onset)) = (name.as_str(), value)
                    && let Value::Date(days) = **onset
                {
                    true_onsets.insert(event_pseudonym(&keys["research"], &id), iso_date(days));
                }
            }
        }
    }
    assert!(withheld > 300, "the source must exercise opt-outs ({withheld} withheld)");

    // Everything a re-identifier could look for.
    let patients: Vec<_> = (0..source.config().patients).map(|i| source.patient(i)).collect();
    let identifying_words: HashSet<String> = patients
        .iter()
        .flat_map(|p| {
            [p.nhs_number.digits(), p.family_name.to_owned(), p.given_name.to_owned(), p.local_patient_id.clone()]
        })
        .collect();
    let full_postcodes: HashSet<String> = patients.iter().map(|p| p.postcode.clone()).collect();
    // `shortest` is the shortest word that counts: compressed bytes are close to random, and a
    // three-letter surname turns up in them by chance, so raw files are searched for longer words.
    let leaks_longer_than = |text: &str, shortest: usize| -> Option<String> {
        let words = words(text);
        if let Some(word) = words.iter().find(|w| w.len() >= shortest && identifying_words.contains(**w)) {
            return Some(format!("identifier-like word of {} chars", word.len()));
        }
        words
            .windows(2)
            .any(|pair| full_postcodes.contains(&format!("{} {}", pair[0], pair[1])))
            .then(|| "a full postcode".to_owned())
    };
    let leaks = |text: &str| leaks_longer_than(text, 1);
    // The scans can fail: they find identifiers when they are there.
    assert_eq!((iso_date(0), iso_date(20_782)), ("1970-01-01".to_owned(), "2026-11-25".to_owned()));
    let birth_column = arrow::array::Date32Array::from(vec![patients[0].date_of_birth]);
    let birth_batch =
        arrow::array::RecordBatch::try_from_iter([("d", std::sync::Arc::new(birth_column) as _)]).unwrap();
    assert_eq!(column_strings(&[birth_batch], "d"), [iso_date(patients[0].date_of_birth)]);
    let first = &patients[0];
    assert!(leaks(&format!("seen {} today", first.nhs_number.digits())).is_some());
    assert!(leaks_longer_than(&format!("\u{1}{}\u{2}", first.nhs_number.digits()), 6).is_some());
    assert!(leaks(&format!("{} {}", first.given_name, first.family_name)).is_some());
    assert!(leaks(&format!("lives at {}", first.postcode)).is_some());
    assert!(leaks(&first.postcode[..first.postcode.find(' ').unwrap()]).is_none(), "outward code alone is fine");
    let first_event = source.clinical_events().next().unwrap();
    assert!(computable.contains(&first_event.truth.event_id.to_string()));
    linkage::assert_the_scan_finds_links();

    let mut pseudonyms_per_purpose: BTreeMap<&str, HashMap<u32, HashSet<String>>> = BTreeMap::new();
    let mut birth_matches: BTreeMap<(&str, String), (usize, usize)> = BTreeMap::new();
    // Research onset dates left on their true day: by chance one in 361 (a shift of 0 days).
    let (mut onsets_compared, mut onsets_true) = (0usize, 0usize);
    for purpose in PURPOSES {
        let files = parquet_files(&lake.join(purpose));
        assert!(files.len() >= 28, "{purpose}: {} files", files.len());
        let expected = &expected[purpose];
        let layout = layout(purpose);
        let mut landed: HashMap<String, u32> = HashMap::new();
        let mut age_bands: HashMap<u32, HashSet<String>> = HashMap::new();
        let per_patient = pseudonyms_per_purpose.entry(purpose).or_default();
        for file in &files {
            let parquet = read_parquet(file);
            let shown = file.display();
            // The name is random and the metadata is provenance only: nothing says which
            // source events the file holds.
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            let random = name.strip_prefix("part-").and_then(|n| n.strip_suffix(".parquet"));
            assert!(
                random.is_some_and(|r| r.len() == 32 && r.bytes().all(|b| b.is_ascii_hexdigit())),
                "{shown}: not a random name"
            );
            for (key, value) in &parquet.metadata {
                assert!(ALLOWED_METADATA.contains(&key.as_str()), "{shown}: metadata key {key}");
                assert!(!value.contains("clinical."), "{shown}: {key} names a source topic");
            }
            assert_eq!(written_at(file), HIDDEN_WRITE_TIME, "{shown}: the file tells when it was written");
            // Provenance recorded in every file.
            assert_eq!(parquet.metadata["sluice.purpose"], purpose);
            assert_eq!(parquet.metadata["sluice.key_id"], summary_key_id(&parquet.metadata));
            assert_eq!(parquet.metadata["sluice.policy_hash"].len(), 64);
            assert_eq!(parquet.metadata["sluice.policy"], layout.policy);
            assert_eq!(parquet.metadata["sluice.patient_pseudonym_column"], "patient_pseudonym");
            let schema = parquet.batches[0].schema();
            assert_eq!(
                schema.field_with_name(layout.occurred).unwrap().data_type(),
                &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            );
            for forbidden in [
                "nhs_number",
                "family_name",
                "given_name",
                "postcode",
                "date_of_birth",
                "local_patient_id",
                "address_line",
                "comment",
                "event_id",
                "display",
            ] {
                assert!(schema.field_with_name(forbidden).is_err(), "{shown} has column {forbidden}");
            }
            for time in ["occurred_at", "occurred_at_hour", "occurred_at_shifted"] {
                assert_eq!(schema.field_with_name(time).is_ok(), time == layout.occurred, "{shown}: {time}");
            }
            // Hive-style partitions by the landed event time's UTC date, or month where dates
            // are shifted.
            let directory = file.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
            let (key, period) = directory.split_once('=').unwrap_or_else(|| panic!("{shown}"));
            assert_eq!(key, layout.partition.0, "{shown}");
            let times = column_strings(&parquet.batches, layout.occurred);
            for micros in &times {
                let micros = micros.parse::<i64>().unwrap();
                let day = micros.div_euclid(86_400_000_000) as i32;
                assert_eq!(&iso_date(day)[..layout.partition.1], period, "{shown}: an event outside its partition");
                match purpose {
                    "planning" => assert_eq!(micros % 3_600_000_000, 0, "{shown}: planning times are to the hour"),
                    "research" => {
                        assert!(!true_times.contains(&micros.to_string()), "{shown}: a true time in research")
                    }
                    _ => {}
                }
            }
            // Rows in the order of keyed values, not of arrival.
            let ids = column_strings(&parquet.batches, "event_pseudonym");
            let pseudonyms = column_strings(&parquet.batches, "patient_pseudonym");
            let order: Vec<(&String, i64, &String)> = pseudonyms
                .iter()
                .zip(times.iter().map(|t| t.parse::<i64>().unwrap()))
                .zip(&ids)
                .map(|((p, t), i)| (p, t, i))
                .collect();
            assert!(order.is_sorted(), "{shown}: rows are not sorted by patient pseudonym, time and event pseudonym");
            // Rows holding their own patient's full date of birth, per column. A landed date of
            // birth matches on every row; an unrelated date (a shifted onset, say) only by chance.
            for batch in &parquet.batches {
                let one = std::slice::from_ref(batch);
                let names: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
                let columns: Vec<Vec<String>> = names.iter().map(|name| column_strings(one, name)).collect();
                for (row, id) in column_strings(one, "event_pseudonym").iter().enumerate() {
                    let Some(patient) = expected.get(id) else { continue };
                    let birth = iso_date(patients[*patient as usize].date_of_birth);
                    for (name, column) in names.iter().zip(&columns) {
                        let counts = birth_matches.entry((purpose, name.clone())).or_insert((0, 0));
                        counts.0 += usize::from(column[row] == birth);
                        counts.1 += 1;
                    }
                }
            }
            // No identifier anywhere: not in any value, nor in the raw file (metadata, statistics);
            // and no value anyone could compute from the source without the key.
            for cell in all_cells(&parquet.batches) {
                if let Some(what) = leaks(&cell) {
                    panic!("{shown}: a value contains {what}");
                }
                assert!(!computable.contains(&cell), "{shown}: a value computable from the source without a key");
            }
            let raw = String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned();
            if let Some(what) = leaks_longer_than(&raw, 6) {
                panic!("{shown}: the raw file contains {what}");
            }
            if schema.field_with_name("onset_date_shifted").is_ok() {
                let shifted = column_strings(&parquet.batches, "onset_date_shifted");
                for (id, onset) in ids.iter().zip(&shifted).filter(|(_, onset)| !onset.is_empty()) {
                    onsets_compared += 1;
                    onsets_true += usize::from(true_onsets.get(id) == Some(onset));
                }
            }
            let bands = schema
                .field_with_name("age_band_at_reference_date")
                .is_ok()
                .then(|| column_strings(&parquet.batches, "age_band_at_reference_date"));
            for (row, (id, pseudonym)) in ids.into_iter().zip(pseudonyms).enumerate() {
                let patient =
                    *expected.get(&id).unwrap_or_else(|| panic!("{purpose}: landed an event that must be withheld"));
                assert!(landed.insert(id.clone(), patient).is_none(), "{purpose}: an event landed twice");
                assert_eq!(id.len(), 32, "{purpose}: a 128-bit event pseudonym");
                if pseudonym.is_empty() {
                    // Direct care receives events that came without an NHS number.
                    assert_eq!(purpose, "direct-care", "{purpose}: an event without a patient pseudonym");
                    continue;
                }
                assert_eq!(pseudonym.len(), 64);
                per_patient.entry(patient).or_default().insert(pseudonym);
                if let Some(bands) = &bands {
                    age_bands.entry(patient).or_default().insert(bands[row].clone());
                }
            }
        }
        assert_eq!(landed.len(), expected.len(), "{purpose}: every permitted event landed");
        for (patient, pseudonyms) in per_patient.iter() {
            assert_eq!(pseudonyms.len(), 1, "{purpose}: patient {patient} has one stable pseudonym");
        }
        let distinct: HashSet<&String> = per_patient.values().flatten().collect();
        assert_eq!(distinct.len(), per_patient.len(), "{purpose}: different patients, different pseudonyms");
        if purpose != "direct-care" {
            assert!(!age_bands.is_empty(), "{purpose}: lands an age band at the reference date");
            for (patient, bands) in &age_bands {
                assert_eq!(bands.len(), 1, "{purpose}: patient {patient} has one age band, whatever the event's date");
            }
        }
        // Directories do not tell when they were last written to either.
        let mut dirs = vec![lake.join(purpose)];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    assert_eq!(written_at(&path), HIDDEN_WRITE_TIME, "{}: tells when it was written", path.display());
                    dirs.push(path);
                }
            }
        }
    }
    for ((purpose, column), (matches, rows)) in &birth_matches {
        assert!(
            matches * 100 <= *rows,
            "{purpose}.{column}: {matches} of {rows} rows hold the patient's date of birth"
        );
    }
    for (index, first) in PURPOSES.iter().enumerate() {
        for second in &PURPOSES[index + 1..] {
            let a: HashSet<&String> = pseudonyms_per_purpose[first].values().flatten().collect();
            let b: HashSet<&String> = pseudonyms_per_purpose[second].values().flatten().collect();
            assert!(a.is_disjoint(&b), "pseudonyms must not link {first} and {second}");
        }
    }
    assert!(onsets_compared > 100, "research lands shifted onset dates ({onsets_compared})");
    assert!(
        onsets_true * 100 <= onsets_compared,
        "{onsets_true} of {onsets_compared} shifted onsets are the true date"
    );
    linkage::assert_no_links_between_purposes(lake, &PURPOSES);
    crate::table_log::assert_table_logs_keep_the_privacy_rules(lake, &PURPOSES);
}

/// A file's or directory's modification time, in seconds since the Unix epoch.
fn written_at(path: &Path) -> u64 {
    let modified = std::fs::metadata(path).unwrap().modified().unwrap();
    modified.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// A day count since 1970-01-01 as the Parquet reader prints dates (`YYYY-MM-DD`).
fn iso_date(days: i32) -> String {
    let date = chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163).unwrap();
    date.format("%Y-%m-%d").to_string()
}

fn summary_key_id(metadata: &BTreeMap<String, String>) -> String {
    let id = metadata["sluice.key_id"].clone();
    assert!(id.starts_with(&format!("ephemeral-{}-", metadata["sluice.purpose"])), "{id}");
    id
}
