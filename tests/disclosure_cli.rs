//! `sluice disclosure check` as a governance team runs it, on a hand-made planning lake whose
//! classes are known: one month that meets the policy's threshold (k = 5, at most 1% of records
//! at risk) and one with a patient nobody else shares a class with. The check names the failing
//! month, exits 1, records counts (never values) in the audit log, and `sluice report` shows it.

mod support;

use std::{path::Path, sync::Arc};

use arrow::{
    array::{ArrayRef, RecordBatch, StringArray},
    datatypes::{DataType, Field, Schema},
};
use parquet::arrow::ArrowWriter;

/// One planning/adt record: pseudonym, age band, sex, postcode sector, organisation.
type AdtRecord = [String; 5];

/// Writes planning/adt records as one file of an event-date partition.
fn write_adt(lake: &Path, day: &str, records: &[AdtRecord]) {
    let dir = lake.join(format!("planning/adt/event_date={day}"));
    std::fs::create_dir_all(&dir).unwrap();
    let names = ["patient_pseudonym", "age_band_at_reference_date", "sex", "postcode_sector", "source_organisation"];
    let schema = Arc::new(Schema::new(names.map(|name| Field::new(name, DataType::Utf8, true)).to_vec()));
    let columns: Vec<ArrayRef> = (0..names.len())
        .map(|column| {
            Arc::new(StringArray::from(records.iter().map(|r| r[column].as_str()).collect::<Vec<_>>())) as ArrayRef
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let file = std::fs::File::create(dir.join("part-0.parquet")).unwrap();
    let mut writer = ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn record(pseudonym: &str, age: &str, sex: &str, sector: &str) -> AdtRecord {
    [pseudonym, age, sex, sector, "RR8"].map(str::to_owned)
}

/// `count` patients (`<prefix>0`, ...) sharing one class, each with two records.
fn class(prefix: &str, count: usize, age: &str, sex: &str) -> Vec<AdtRecord> {
    (0..count)
        .flat_map(|n| {
            let pseudonym = format!("{prefix}{n:030}");
            [record(&pseudonym, age, sex, "LS6 2"), record(&pseudonym, age, sex, "LS6 2")]
        })
        .collect()
}

#[test]
fn a_month_with_a_patient_alone_in_a_class_fails_the_check_and_the_report_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    // March: two classes of 6 patients. April: the same, and one woman of 90+ alone in hers.
    let march = [class("aa", 6, "40-44", "F"), class("bb", 6, "45-49", "M")].concat();
    write_adt(&lake, "2026-03-04", &march[..10]);
    write_adt(&lake, "2026-03-20", &march[10..]);
    let mut april = march.clone();
    april.push(record("cc000000000000000000000000000001", "90+", "F", "LS6 3"));
    write_adt(&lake, "2026-04-11", &april);

    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let output = support::sluice()
        .args(["disclosure", "check", "--lake", lake.to_str().unwrap(), "--policies", policies.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("planning: policy planning@v4, classes of at least k = 5 patients"), "{stdout}");
    assert!(
        stdout.contains("planning/adt 2026-03: 24 records, 12 patients, 2 classes, smallest 6; below k: 0 classes, 0 records (0.0%), 0 patients -> meets the threshold"),
        "{stdout}"
    );
    assert!(
        stdout.contains("planning/adt 2026-04: 25 records, 13 patients, 3 classes, smallest 1; below k: 1 classes, 1 records (4.0%), 1 patients -> DOES NOT MEET THE THRESHOLD"),
        "{stdout}"
    );
    // Suppressing her would be 4% of the month, over the 1% allowed: enforcement climbs the
    // ladders until she has company, which takes leaving the age band out and cutting sectors to
    // districts (she joins the six women of 40-44).
    assert!(
        stdout.contains("enforcement would generalise age_band_at_reference_date to withhold, postcode_sector to postcode_district and suppress 0 records (0.0%)\n"),
        "{stdout}"
    );
    assert!(stdout.contains("1 release unit(s) do not meet their threshold"), "{stdout}");
    // Column names and counts only: no pseudonym or value of a quasi-identifier.
    for value in ["cc0000", "aa0000", "90+", "LS6 3", "RR8"] {
        assert!(!stdout.contains(value), "{value} in {stdout}");
    }

    let log = std::fs::read_to_string(lake.join("_audit/audit.jsonl")).unwrap();
    let record: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    let event = &record["event"];
    assert_eq!(
        (event["kind"].as_str(), event["purpose"].as_str(), event["k"].as_u64()),
        (Some("disclosure"), Some("planning"), Some(5))
    );
    let april = &event["units"][1];
    assert_eq!(april["unit"], "2026-04");
    assert_eq!(
        (april["records_at_risk"].as_u64(), april["patients_at_risk"].as_u64(), april["smallest_class"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!((april["records_suppressed"].as_u64(), april["meets_threshold"].as_bool()), (Some(0), Some(false)));
    assert_eq!(
        april["generalised_to"],
        serde_json::json!({"age_band_at_reference_date": "withhold", "postcode_sector": "postcode_district"})
    );
    assert_eq!(april["drivers"][0], "age_band_at_reference_date");
    for value in ["cc0000", "90+", "LS6 3", "RR8"] {
        assert!(!log.contains(value), "{value} in the audit log");
    }

    let report = dir.path().join("report.html");
    let output = support::sluice()
        .args(["report", "--lake", lake.to_str().unwrap(), "--output", report.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let page = std::fs::read_to_string(report).unwrap();
    let section = &page[page.find(r#"<section id="disclosure">"#).unwrap()..];
    let section = &section[..section.find("</section>").unwrap()];
    // April's one record at risk is a small number: shown as <8, never as 1.
    assert!(
        section.contains(
            r#"<td>2026-04</td><td class="version"></td><td class="n">30</td><td class="n suppressed">&lt;8</td>"#
        ),
        "{section}"
    );
    assert!(section.contains("below 5") && section.contains("<b>not met</b>"), "{section}");
    assert!(section.contains(r#"<td>2026-03</td><td class="version"></td><td class="n">20</td><td class="n">0</td><td class="n">0</td><td>5 or more</td><td>met</td><td></td>"#), "{section}");
}

#[test]
fn a_purpose_without_disclosure_control_cannot_be_checked_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let output = support::sluice()
        .args(["disclosure", "check", "--lake", dir.path().to_str().unwrap(), "--purpose", "direct-care"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("policy direct-care@v3 declares no [disclosure]"), "{stderr}");
}
