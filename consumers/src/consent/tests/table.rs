//! The resolution table of `docs/GOVERNANCE.md` ("How changes combine over time") as the test:
//! every row's changes, applied in every order of arrival, must give each purpose the decision
//! the table shows. A change to the table is a change to the rules, and the other way round.

use super::*;

/// The table's columns after `#` and `changes`, as (purpose, rules).
fn columns() -> Vec<(Purpose, PurposeRules)> {
    vec![
        (Purpose::Planning, PurposeRules::default()),
        (Purpose::Research, PurposeRules::default()),
        (s("S1"), PurposeRules::default()),
        (s("S1"), opt_in()),
        (Purpose::DirectCare, PurposeRules::default()),
    ]
}

/// One change as the table writes it: `<scope> <deny|permit> @<time> [for <purposes>]`.
fn parse_change(text: &str) -> ConsentChange {
    let (head, purposes) = match text.split_once(" for ") {
        Some((head, purposes)) => (head, purposes.split(',').map(|p| p.trim().to_owned()).collect()),
        None => (text, Vec::new()),
    };
    let words: Vec<&str> = head.split_whitespace().collect();
    let [scope, decision, at] = words[..] else { panic!("a change is `<scope> <decision> @<time>`: {text}") };
    let scope = match scope {
        "NDOO" => ConsentScope::NationalDataOptOut,
        "T1" => ConsentScope::Type1OptOut,
        study_id => study(study_id),
    };
    let deny = match decision {
        "deny" => true,
        "permit" => false,
        other => panic!("unknown decision {other} in {text}"),
    };
    let at = at.strip_prefix('@').and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("no @time in {text}"));
    ConsentChange { purposes, ..change(scope, deny, at) }
}

fn label(decision: Decision) -> String {
    match decision {
        Decision::Release { exempted } if exempted.is_empty() => "released".to_owned(),
        Decision::Release { exempted } => format!("released under {exempted:?}"),
        Decision::Withhold(reason) => reason.label().to_owned(),
    }
}

/// Every order of `items`.
fn orders<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut all = Vec::new();
    for (index, first) in items.iter().enumerate() {
        let mut rest = items.to_vec();
        rest.remove(index);
        for mut order in orders(&rest) {
            order.insert(0, first.clone());
            all.push(order);
        }
    }
    all
}

/// The rows of the table: (row number, changes, expected label per column).
fn rows() -> Vec<(String, Vec<ConsentChange>, Vec<String>)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/GOVERNANCE.md");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find("#### How changes combine over time").expect("the table's heading");
    let mut rows = Vec::new();
    for line in text[start..].lines().skip_while(|l| !l.starts_with("| # |")).skip(2) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let changes = match cells[1] {
            "(none)" => Vec::new(),
            changes => changes.split(';').map(|c| parse_change(c.trim())).collect(),
        };
        rows.push((cells[0].to_owned(), changes, cells[2..].iter().map(|c| c.to_string()).collect()));
    }
    rows
}

#[test]
fn the_governance_table_holds_in_every_order_of_arrival() {
    let rows = rows();
    assert!(rows.len() >= 20, "the table was read: {} rows", rows.len());
    let columns = columns();
    for (number, changes, expected) in rows {
        assert_eq!(expected.len(), columns.len(), "row {number} has a cell per column");
        for order in orders(&changes) {
            let store = store_with(order);
            for ((purpose, rules), want) in columns.iter().zip(&expected) {
                let got = label(store.decide(purpose, rules, Some(patient()), true));
                assert_eq!(
                    &got,
                    want,
                    "row {number}, {purpose}{}",
                    if rules.study_consent == StudyConsentModel::OptIn { " opt-in" } else { "" }
                );
            }
        }
    }
}

#[test]
fn the_table_test_fails_when_a_cell_is_wrong() {
    // The same check on a row with one cell changed must find it: the test can fail.
    let (_, changes, mut expected) = rows().into_iter().find(|(number, ..)| number == "4").unwrap();
    expected[0] = "released".to_owned();
    let store = store_with(changes);
    let (purpose, rules) = &columns()[0];
    assert_ne!(label(store.decide(purpose, rules, Some(patient()), true)), expected[0]);
}
