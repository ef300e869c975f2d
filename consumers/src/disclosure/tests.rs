//! Disclosure control on hand-made populations whose classes are known, the policy's
//! `[disclosure]` table, and the property that enforcement leaves no class below k.

use std::sync::Arc;

use arrow::{
    array::{Array, ArrayRef, RecordBatch, StringArray},
    datatypes::{DataType, Field, Schema},
};
use proptest::prelude::*;

use super::*;
use crate::{lake::parquet::write_parquet, policy::Policy};

const AGE: &str = "age_band_at_reference_date";

fn rules(k: u32, max_share_at_risk: f64) -> DisclosureRules {
    DisclosureRules {
        k,
        max_share_at_risk,
        release_unit: ReleaseUnit::Month,
        patient_column: "patient_pseudonym".into(),
        subjects: [(
            "adt".to_owned(),
            vec![
                QuasiIdentifier { column: AGE.into(), ladder: vec![Generalisation::AgeBand { width: 10, top: 90 }] },
                QuasiIdentifier { column: "sex".into(), ladder: vec![] },
                QuasiIdentifier { column: "postcode_sector".into(), ladder: vec![Generalisation::PostcodeDistrict] },
            ],
        )]
        .into(),
    }
}

/// (patient, age band, sex, sector) of eleven records of ten patients, in four classes:
/// A = 40-44 F LS6 2: p1 (twice), p2, p3 -> 3 patients, 4 records
/// B = 45-49 F LS6 2: p4, p5 -> 2 patients
/// C = 40-44 M LS6 3: p6 -> 1 patient
/// D = 90+ M LS7 1: p7..p10 -> 4 patients
const POPULATION: [(&str, &str, &str, &str); 11] = [
    ("p1", "40-44", "F", "LS6 2"),
    ("p1", "40-44", "F", "LS6 2"),
    ("p2", "40-44", "F", "LS6 2"),
    ("p3", "40-44", "F", "LS6 2"),
    ("p4", "45-49", "F", "LS6 2"),
    ("p5", "45-49", "F", "LS6 2"),
    ("p6", "40-44", "M", "LS6 3"),
    ("p7", "90+", "M", "LS7 1"),
    ("p8", "90+", "M", "LS7 1"),
    ("p9", "90+", "M", "LS7 1"),
    ("p10", "90+", "M", "LS7 1"),
];

fn population_rows(rules: &DisclosureRules) -> UnitRows {
    let mut rows = UnitRows::new(rules.quasi_identifiers("adt").unwrap());
    for (patient, age, sex, sector) in POPULATION {
        rows.push(classes::patient_of(Some(patient)), &[Some(age), Some(sex), Some(sector)]);
    }
    rows
}

#[test]
fn classes_are_counted_in_distinct_patients() {
    let rules = rules(3, 0.0);
    let mut rows = population_rows(&rules);
    let (measured, at_risk) = rows.measure(&[0, 0, 0], 3, None);
    assert_eq!(
        measured,
        Measurement {
            records: 11,
            patients: 10,
            classes: 4,
            smallest_class: Some(1),
            classes_at_risk: 2,
            records_at_risk: 3,
            patients_at_risk: 3,
        }
    );
    // B's and C's records, nobody else's.
    let risky: Vec<usize> = (0..11).filter(|row| at_risk[*row]).collect();
    assert_eq!(risky, [4, 5, 6]);
    // p1's two records make A four records but three patients: at k = 4 it is at risk.
    let (at_four, _) = rows.measure(&[0, 0, 0], 4, None);
    assert_eq!((at_four.classes_at_risk, at_four.records_at_risk), (3, 7));
}

#[test]
fn drivers_say_which_column_makes_records_unique() {
    let rules = rules(3, 0.0);
    let assessment = assess(
        "planning/adt",
        Some(3),
        "2026-03",
        &mut population_rows(&rules),
        rules.quasi_identifiers("adt").unwrap(),
        &rules,
    );
    assert!(!assessment.meets_threshold);
    let without: Vec<(&str, u64)> =
        assessment.drivers.iter().map(|d| (d.column.as_str(), d.records_at_risk_without)).collect();
    // Without the age band, A and B merge (5 patients) and only C is at risk; without the
    // sector or sex nothing changes for B, and C stays alone (sex) or joins nobody (sector).
    assert_eq!(without, [(AGE, 1), ("sex", 3), ("postcode_sector", 3)]);
}

#[test]
fn enforcement_generalises_within_the_suppression_limit_then_suppresses() {
    // 10% of 11 records may be at risk: widening the age band merges A and B, leaving only C's
    // one record (9%), which is suppressed; the sector stays as landed.
    let rules = rules(3, 0.1);
    let (plan, suppressed) = enforce::plan(&mut population_rows(&rules), &rules);
    assert_eq!(plan.levels, [1, 0, 0]);
    assert_eq!(plan.records_suppressed(), 1);
    assert_eq!((0..11).filter(|row| suppressed[*row]).collect::<Vec<_>>(), [6]);
    assert!(!plan.exceeded_suppression_limit);
    assert_eq!(
        (plan.after.records, plan.after.classes, plan.after.smallest_class, plan.after.records_at_risk),
        (10, 2, Some(4), 0)
    );
}

#[test]
fn enforcement_stops_climbing_when_no_step_helps_and_says_the_limit_was_exceeded() {
    // No record may be at risk. After the age band, C (a man in LS6 3) is alone whatever the
    // sector does, so the sector is not coarsened for nothing; C is suppressed, over the limit.
    let rules = rules(3, 0.0);
    let (plan, _) = enforce::plan(&mut population_rows(&rules), &rules);
    assert_eq!(plan.levels, [1, 0, 0]);
    assert_eq!(plan.records_suppressed(), 1);
    assert!(plan.exceeded_suppression_limit);
    assert_eq!(plan.after.smallest_class, Some(4));
}

#[test]
fn a_population_that_is_safe_is_left_alone() {
    let rules = rules(2, 0.0);
    let mut rows = population_rows(&rules);
    // Only C (one patient) is below 2.
    let (plan, _) = enforce::plan(&mut rows, &rules);
    assert_eq!(plan.before.records_at_risk, 1);
    let rules = rules_with_k(1);
    let (plan, _) = enforce::plan(&mut population_rows(&rules), &rules);
    assert!(!plan.changes_anything());
}

fn rules_with_k(k: u32) -> DisclosureRules {
    DisclosureRules { k, ..rules(2, 0.0) }
}

#[test]
fn records_without_a_patient_count_as_one_patient() {
    let rules = rules(2, 0.0);
    let mut rows = UnitRows::new(rules.quasi_identifiers("adt").unwrap());
    for _ in 0..5 {
        rows.push(classes::patient_of(None), &[Some("40-44"), Some("F"), Some("LS6 2")]);
    }
    let (measured, _) = rows.measure(&[0, 0, 0], 2, None);
    assert_eq!((measured.patients, measured.smallest_class, measured.records_at_risk), (1, Some(1), 5));
}

#[test]
fn values_that_cannot_be_generalised_are_withheld_not_passed_through() {
    let rules = rules(2, 0.0);
    let mut rows = UnitRows::new(rules.quasi_identifiers("adt").unwrap());
    rows.push(classes::patient_of(Some("a")), &[Some("forty"), Some("F"), Some("LS6 2")]);
    rows.push(classes::patient_of(Some("b")), &[Some("40-44"), Some("F"), Some("LS6 2")]);
    rows.measure(&[1, 0, 0], 2, None);
    assert_eq!(rows.class_of(0, &[1, 0, 0]), [None, Some("F".into()), Some("LS6 2".into())]);
    assert_eq!(rows.class_of(1, &[1, 0, 1]), [Some("40-49".into()), Some("F".into()), Some("LS6".into())]);
    assert_eq!(rows.class_of(1, &[WITHHELD, 0, 0])[0], None);
}

// ---- the property ----------------------------------------------------------------------------

fn arbitrary_record() -> impl Strategy<Value = (u8, u8, u8, u8)> {
    // Few patients, a handful of values each: classes of every size, patients in several classes.
    (0u8..30, 0u8..19, 0u8..3, 0u8..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn after_enforcement_no_released_class_is_below_k(
        records in prop::collection::vec(arbitrary_record(), 0..120),
        k in 2u32..6,
        limit in prop::sample::select(vec![0.0, 0.05, 0.2, 0.5]),
    ) {
        let rules = rules(k, limit);
        let mut rows = UnitRows::new(rules.quasi_identifiers("adt").unwrap());
        for (patient, age, sex, sector) in &records {
            let age = if *age == 18 { "90+".to_owned() } else { format!("{}-{}", age * 5, age * 5 + 4) };
            let sex = ["F", "M", "I"][*sex as usize];
            let sector = format!("LS{} {}", sector / 4, sector % 4);
            rows.push(classes::patient_of(Some(&format!("p{patient}"))), &[Some(&age), Some(sex), Some(&sector)]);
        }
        let (plan, suppressed) = enforce::plan(&mut rows, &rules);
        let (released, _) = rows.measure(&plan.levels, k, Some(&suppressed));
        prop_assert_eq!(released.records_at_risk, 0);
        prop_assert!(released.smallest_class.is_none_or(|smallest| smallest >= u64::from(k)));
        prop_assert_eq!(released, plan.after);
        prop_assert_eq!(released.records + plan.records_suppressed(), records.len() as u64);
        prop_assert_eq!(suppressed.iter().filter(|s| **s).count() as u64, plan.records_suppressed());
        if !plan.exceeded_suppression_limit {
            prop_assert!(plan.records_suppressed() as f64 <= limit * records.len() as f64);
        }
        // Generalising never makes the classes riskier than landed.
        prop_assert!(plan.generalised.records_at_risk <= plan.before.records_at_risk);

        // The records as a release writes them, in batches of 7, measure the same.
        let rule = release::ReleaseRule::new(rules.quasi_identifiers("adt").unwrap(), &rows, &plan.levels, &suppressed);
        let written: Vec<(String, String, String, String)> = records
            .iter()
            .map(|(patient, age, sex, sector)| {
                let age = if *age == 18 { "90+".to_owned() } else { format!("{}-{}", age * 5, age * 5 + 4) };
                (format!("p{patient}"), age, ["F", "M", "I"][*sex as usize].to_owned(), format!("LS{} {}", sector / 4, sector % 4))
            })
            .collect();
        let mut batches = Vec::new();
        let mut left_out = 0;
        for chunk in written.chunks(7) {
            let released = rule.apply(&batch_of(chunk)).unwrap();
            left_out += released.suppressed;
            batches.push(released.batch);
        }
        prop_assert_eq!(left_out, plan.records_suppressed());
        let (reread, _) = rows_of(&batches, &rules).measure(&[0, 0, 0], k, None);
        prop_assert_eq!(reread.records_at_risk, 0);
        prop_assert_eq!(reread.records, plan.after.records);
        prop_assert_eq!(reread.classes, plan.after.classes);
    }
}

// ---- applying a plan to landed records ---------------------------------------------------------

fn batch_of(records: &[(String, String, String, String)]) -> RecordBatch {
    let column = |pick: fn(&(String, String, String, String)) -> &str| {
        Arc::new(StringArray::from(records.iter().map(pick).collect::<Vec<_>>())) as ArrayRef
    };
    let schema = Schema::new(
        ["patient_pseudonym", AGE, "sex", "postcode_sector"]
            .map(|name| Field::new(name, DataType::Utf8, true))
            .to_vec(),
    );
    RecordBatch::try_new(Arc::new(schema), vec![column(|r| &r.0), column(|r| &r.1), column(|r| &r.2), column(|r| &r.3)])
        .unwrap()
}

fn owned(records: &[(&str, &str, &str, &str)]) -> Vec<(String, String, String, String)> {
    records.iter().map(|(p, a, s, c)| (p.to_string(), a.to_string(), s.to_string(), c.to_string())).collect()
}

/// Reads released batches back into classes at their own (level 0) values.
fn rows_of(batches: &[RecordBatch], rules: &DisclosureRules) -> UnitRows {
    let mut rows = UnitRows::new(rules.quasi_identifiers("adt").unwrap());
    for batch in batches {
        let text = |name: &str| {
            let column = arrow::compute::cast(batch.column_by_name(name).unwrap(), &DataType::Utf8).unwrap();
            column.as_any().downcast_ref::<StringArray>().unwrap().clone()
        };
        let (patients, ages, sexes, sectors) =
            (text("patient_pseudonym"), text(AGE), text("sex"), text("postcode_sector"));
        for row in 0..batch.num_rows() {
            let value = |column: &StringArray| (!column.is_null(row)).then(|| column.value(row).to_owned());
            let values = [value(&ages), value(&sexes), value(&sectors)];
            let values: Vec<Option<&str>> = values.iter().map(|v| v.as_deref()).collect();
            rows.push(classes::patient_of(Some(patients.value(row))), &values);
        }
    }
    rows
}

#[test]
fn a_release_generalises_every_record_and_leaves_out_the_suppressed_ones() {
    let rules = rules(3, 0.1);
    let mut rows = population_rows(&rules);
    let (plan, suppressed) = enforce::plan(&mut rows, &rules);
    let rule = release::ReleaseRule::new(rules.quasi_identifiers("adt").unwrap(), &rows, &plan.levels, &suppressed);
    // The unit's records in two batches, the suppressed one in the second.
    let records = owned(&POPULATION);
    let first = rule.apply(&batch_of(&records[..4])).unwrap();
    let second = rule.apply(&batch_of(&records[4..])).unwrap();
    assert_eq!((first.suppressed, second.suppressed), (0, 1));
    let ages = |batch: &RecordBatch| -> Vec<String> {
        let column = batch.column_by_name(AGE).unwrap().as_any().downcast_ref::<StringArray>().unwrap();
        column.iter().map(|v| v.unwrap().to_owned()).collect()
    };
    assert_eq!(ages(&first.batch), ["40-49"; 4]);
    assert_eq!(ages(&second.batch), ["40-49", "40-49", "90+", "90+", "90+", "90+"]);
    // p6 (40-44 M LS6 3) is the record left out; sectors are as landed.
    let patients = second.batch.column(0).as_any().downcast_ref::<StringArray>().unwrap();
    assert!(!patients.iter().any(|p| p == Some("p6")));
    let (released, _) = rows_of(&[first.batch, second.batch], &rules).measure(&[0, 0, 0], 3, None);
    assert_eq!((released.records, released.records_at_risk, released.smallest_class), (10, 0, Some(4)));
}

#[test]
fn a_withheld_column_is_released_null() {
    let rules = DisclosureRules {
        subjects: [(
            "adt".to_owned(),
            vec![
                QuasiIdentifier { column: AGE.into(), ladder: vec![Generalisation::Withhold] },
                QuasiIdentifier { column: "sex".into(), ladder: vec![] },
                QuasiIdentifier { column: "postcode_sector".into(), ladder: vec![] },
            ],
        )]
        .into(),
        ..rules(3, 0.0)
    };
    let mut rows = population_rows(&rules);
    let (_, suppressed) = rows.measure(&[1, 0, 0], 3, None);
    let rule = release::ReleaseRule::new(rules.quasi_identifiers("adt").unwrap(), &rows, &[1, 0, 0], &suppressed);
    let released = rule.apply(&batch_of(&owned(&POPULATION))).unwrap();
    // Without age, A and B are one class of 5 women in LS6 2; C, alone, is left out.
    assert_eq!((released.batch.num_rows(), released.suppressed), (10, 1));
    assert_eq!(released.batch.column_by_name(AGE).unwrap().null_count(), 10);
}

// ---- the policy's [disclosure] table ---------------------------------------------------------

fn planning_with(disclosure: &str) -> Result<Policy, String> {
    let text = include_str!("../../../policies/planning.toml");
    let text = match text.find("\n[disclosure]") {
        Some(start) => {
            let end = text[start + 1..].find("\n[subjects.").map_or(text.len(), |e| start + 1 + e);
            format!("{}{}", &text[..start], &text[end..])
        }
        None => text.to_owned(),
    };
    Policy::from_toml(&format!("{text}\n{disclosure}"), "planning.toml").map_err(|e| e.to_string())
}

const VALID: &str = r#"
[disclosure]
k = 5
max_share_at_risk = 0.01
[disclosure.quasi_identifiers]
adt = ["age_band_at_reference_date", "sex", "postcode_sector", "source_organisation"]
observation = []
diagnosis = ["age_band_at_reference_date", "sex", "postcode_sector", "code"]
[disclosure.generalise]
age_band_at_reference_date = ["age_band:10", "age_band:20", "withhold"]
postcode_sector = ["postcode_district", "postcode_area"]
code = ["prefix:3", "prefix:1"]
"#;

#[test]
fn a_policy_declares_quasi_identifiers_threshold_and_ladders() {
    let policy = planning_with(VALID).unwrap();
    let rules = policy.disclosure().unwrap();
    assert_eq!((rules.k, rules.max_share_at_risk, rules.release_unit), (5, 0.01, ReleaseUnit::Month));
    assert_eq!(rules.patient_column, "patient_pseudonym");
    let diagnosis = rules.quasi_identifiers("diagnosis").unwrap();
    assert_eq!(diagnosis.len(), 4);
    assert_eq!(
        diagnosis[0].ladder,
        [
            Generalisation::AgeBand { width: 10, top: 90 },
            Generalisation::AgeBand { width: 20, top: 90 },
            Generalisation::Withhold
        ]
    );
    assert_eq!(diagnosis[3].ladder, [Generalisation::Prefix { chars: 3 }, Generalisation::Prefix { chars: 1 }]);
    assert!(rules.quasi_identifiers("observation").unwrap().is_empty());
    assert!(Policy::builtin("direct-care").unwrap().disclosure().is_none());
}

#[test]
fn a_disclosure_table_that_does_not_fit_the_policy_is_refused() {
    let cases: [(&str, &str, &str); 9] = [
        ("k = 5", "k = 1", "k must be at least 2"),
        ("max_share_at_risk = 0.01", "max_share_at_risk = 1.5", "max_share_at_risk"),
        ("observation = []\n", "", "no entry for subject `observation`"),
        ("\"code\"]", "\"display\"]", "column `display`, which the policy does not land"),
        ("\"age_band:10\", \"age_band:20\"", "\"age_band:10\", \"age_band:25\"", "must be a multiple"),
        ("\"age_band:20\", \"withhold\"", "\"withhold\", \"age_band:20\"", "after `withhold`"),
        (
            "[\"postcode_district\", \"postcode_area\"]",
            "[\"postcode_area\", \"postcode_district\"]",
            "as its first step",
        ),
        ("[\"prefix:3\", \"prefix:1\"]", "[\"prefix:1\", \"prefix:3\"]", "fewer characters"),
        ("k = 5", "k = 5\nkay = 4", "unknown field `kay`"),
    ];
    for (from, to, expected) in cases {
        assert!(VALID.contains(from), "{from}");
        let error = planning_with(&VALID.replacen(from, to, 1)).unwrap_err();
        assert!(error.contains(expected), "{to}: {error}");
    }
    let ladder_for_nobody = format!("{VALID}sex = [\"withhold\"]\nsource_system = [\"withhold\"]\n");
    assert!(planning_with(&ladder_for_nobody).unwrap_err().contains("`source_system`, which no subject lists"));
    let pseudonym = VALID.replacen("\"sex\", \"postcode_sector\", \"code\"", "\"patient_pseudonym\"", 1);
    assert!(planning_with(&pseudonym).unwrap_err().contains("is the patient pseudonym"));
}

// ---- reading a lake --------------------------------------------------------------------------

fn write_unit(storage: &crate::lake::storage::LakeStorage, key: &str, records: &[(&str, &str, &str, &str)]) {
    let column = |values: Vec<&str>| Arc::new(StringArray::from(values)) as ArrayRef;
    let schema = Schema::new(vec![
        Field::new("patient_pseudonym", DataType::Utf8, true),
        Field::new(AGE, DataType::Utf8, true),
        Field::new("sex", DataType::Utf8, true),
        Field::new("postcode_sector", DataType::Utf8, true),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            column(records.iter().map(|r| r.0).collect()),
            column(records.iter().map(|r| r.1).collect()),
            column(records.iter().map(|r| r.2).collect()),
            column(records.iter().map(|r| r.3).collect()),
        ],
    )
    .unwrap();
    write_parquet(storage, key, &batch, Vec::new()).unwrap();
}

#[test]
fn a_lake_is_measured_per_month_across_its_day_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let storage = crate::lake::storage::LakeStorage::local(dir.path()).unwrap();
    // March's population split over two days and two files; April holds only p1..p5 of A and B.
    write_unit(&storage, "planning/adt/event_date=2026-03-01/part-a.parquet", &POPULATION[..5]);
    write_unit(&storage, "planning/adt/event_date=2026-03-17/part-b.parquet", &POPULATION[5..]);
    write_unit(&storage, "planning/adt/event_date=2026-04-02/part-c.parquet", &POPULATION[..6]);
    let rules = rules(3, 0.0);
    let mut seen = Vec::new();
    let assessed = check_purpose(&storage, "planning", &rules, |a| seen.push(a.unit.clone())).unwrap();
    assert_eq!(seen, ["2026-03", "2026-04"]);
    assert_eq!(assessed[0].measured.records, 11);
    assert_eq!(assessed[0].measured.records_at_risk, 3);
    assert_eq!((assessed[1].measured.records, assessed[1].measured.records_at_risk), (6, 2));
    // By partition, each day is its own unit.
    let by_day = DisclosureRules { release_unit: ReleaseUnit::Partition, ..rules.clone() };
    let units: Vec<String> =
        check_purpose(&storage, "planning", &by_day, |_| {}).unwrap().into_iter().map(|a| a.unit).collect();
    assert_eq!(units, ["2026-03-01", "2026-03-17", "2026-04-02"]);
    // Another purpose's datasets are not read.
    assert!(check_purpose(&storage, "research", &rules, |_| {}).unwrap().is_empty());
}

#[test]
fn a_file_without_the_patient_pseudonym_is_refused_not_measured() {
    let dir = tempfile::tempdir().unwrap();
    let storage = crate::lake::storage::LakeStorage::local(dir.path()).unwrap();
    write_unit(&storage, "planning/adt/event_date=2026-03-01/part-a.parquet", &POPULATION);
    let rules = DisclosureRules { patient_column: "person".into(), ..rules(3, 0.0) };
    let error = check_purpose(&storage, "planning", &rules, |_| {}).unwrap_err().to_string();
    assert!(error.contains("no `person` column"), "{error}");
}
