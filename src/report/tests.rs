//! The rendered page: no count from 1 to 7 anywhere, names escaped, problems shown.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{html, model};

fn landing(at: &str, topic: &str, purpose: &str, withheld: Value, policy: &str) -> Value {
    json!({"sequence": 0, "recorded_at": at, "previous": "0", "event": {
        "kind": "landing", "purpose": purpose, "topic": topic, "partition": 0, "offsets": [0, 99],
        "received": 123, "invalid": 2, "withheld": withheld,
        "released_under_exemption": {"national-data-opt-out": {"events": 6, "legal_basis": "s251", "reference": "CAG"}},
        "landed": 113, "files": [], "policy": policy, "policy_hash": "abcdef", "key_id": "key-a",
        "reader_schema": "observation v3 beef", "writer_schemas": []}, "hash": "x"})
}

/// Every word of the page's text (between a `>` and the next `<`), leaving out the style sheet
/// and the paragraph that explains suppression ("from 1 to 7").
fn words(page: &str) -> Vec<String> {
    let body = page.split("</style>").nth(1).unwrap();
    let note = body.find(r#"<p class="note" id="suppression">"#).unwrap();
    let note_end = note + body[note..].find("</p>").unwrap();
    let checked = format!("{}{}", &body[..note], &body[note_end..]);
    checked
        .split('>')
        .filter_map(|part| part.split('<').next())
        .flat_map(|text| text.split(|c: char| c.is_whitespace() || "(),;:".contains(c)))
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
        .collect()
}

fn page(records: &[Value], status: model::AuditStatus) -> String {
    let subjects = BTreeMap::from([("clinical.observation".to_owned(), "observation".to_owned())]);
    let model = model::build(records, &subjects, status);
    html::render(&model, &html::Context { generated_at: "2026-11-26T05:00:00Z".into(), lake: "lake".into() })
}

#[test]
fn no_count_from_one_to_seven_is_shown_anywhere() {
    let records = vec![
        landing(
            "2026-11-24T10:00:00.000Z",
            "clinical.observation",
            "research",
            json!({"national-data-opt-out": 3, "type-1-opt-out": 5}),
            "research@v1",
        ),
        landing(
            "2026-11-25T10:00:00.000Z",
            "clinical.observation",
            "planning",
            json!({"national-data-opt-out": 5}),
            "planning@v1",
        ),
        json!({"sequence": 2, "recorded_at": "2026-11-25T11:00:00.000Z", "event": {"kind": "erasure", "rows_removed": 4}}),
        json!({"sequence": 3, "recorded_at": "2026-11-25T12:00:00.000Z", "event": {"kind": "compaction"}}),
    ];
    let status = model::AuditStatus { records: 4, ..model::AuditStatus::default() };
    let page = page(&records, status);
    let words = words(&page);
    assert!(words.len() > 100, "{words:?}");
    for word in &words {
        assert!(!matches!(word.parse::<u64>(), Ok(1..=7)), "the page shows {word}");
    }
    assert!(
        page.contains(r#"<td class="n suppressed">&lt;8</td>"#),
        "2 invalid, 5 withheld for planning, 4 rows erased"
    );
    assert!(page.contains("type-1-opt-out: &lt;8 (suppressed)"));
    assert!(page.contains(r#"<td class="n">120</td>"#), "123 received rounds to 120");
    assert!(page.contains("Audit verification: intact"));
}

#[test]
fn names_from_the_log_are_escaped() {
    let hostile = "<script>alert(1)</script>";
    let records = vec![landing("2026-11-24T10:00:00.000Z", hostile, hostile, json!({hostile: 9}), hostile)];
    let status =
        model::AuditStatus { chain_problems: vec![format!("line 1: {hostile}")], ..model::AuditStatus::default() };
    let page = page(&records, status);
    assert!(!page.contains("<script"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains(r#"class="status bad""#) && page.contains("PROBLEMS FOUND"));
    assert!(page.contains("Hash chain broken"));
}

#[test]
fn lake_problems_are_shown_in_red() {
    let status = model::AuditStatus {
        records: 10,
        chain_problems: Vec::new(),
        lake: Some(model::LakeStatus {
            location: "lake".into(),
            recorded: 10,
            found: 11,
            problems: vec!["research/observation/x.parquet: not recorded in the log".into()],
        }),
    };
    let page = page(&[], status);
    assert!(page.contains(r#"class="status bad""#) && page.contains("The lake differs from its log"));
    assert!(page.contains("x.parquet: not recorded in the log") && page.contains("No landings recorded."));
}
