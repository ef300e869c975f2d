//! The resolution table of `docs/GOVERNANCE.md` ("How changes combine over time") as the test:
//! every row's changes, applied in every order of arrival and with the store's clock reaching
//! the row's time before, between or after them, must give each purpose the decision the table
//! shows. A change to the table is a change to the rules, and the other way round.

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

/// The time decisions are made at when a row does not say (`now @<time>`): after every change.
const LATER_THAN_EVERY_CHANGE: i64 = 100;

/// One change as the table writes it: `<scope> <deny|permit> @<time>[..<end>] [for <purposes>]`.
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
    let at = at.strip_prefix('@').unwrap_or_else(|| panic!("no @time in {text}"));
    let (at, until) = match at.split_once("..") {
        Some((at, until)) => (at, Some(until.parse().unwrap())),
        None => (at, None),
    };
    ConsentChange { purposes, effective_until: until, ..change(scope, deny, at.parse().unwrap()) }
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

/// One row of the table.
struct Row {
    /// Its number, to name it in a failure.
    number: String,
    /// The changes, in the order written.
    changes: Vec<ConsentChange>,
    /// When the decisions are made.
    now: i64,
    /// The decision's label per column.
    expected: Vec<String>,
}

/// The rows of the table.
fn rows() -> Vec<Row> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/GOVERNANCE.md");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find("#### How changes combine over time").expect("the table's heading");
    let mut rows = Vec::new();
    for line in text[start..].lines().skip_while(|l| !l.starts_with("| # |")).skip(2) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let mut now = LATER_THAN_EVERY_CHANGE;
        let mut changes = Vec::new();
        for item in cells[1].split(';').map(str::trim).filter(|item| *item != "(none)") {
            match item.strip_prefix("now @") {
                Some(at) => now = at.parse().unwrap(),
                None => changes.push(parse_change(item)),
            }
        }
        let expected = cells[2..].iter().map(|c| c.to_string()).collect();
        rows.push(Row { number: cells[0].to_owned(), changes, now, expected });
    }
    rows
}

/// The changes applied in `order`, the first `before_time` of them while the store's clock is
/// still at 0, then the clock moved on to `now`, then the rest.
fn resolved(order: &[ConsentChange], before_time: usize, now: i64) -> ConsentStore {
    let mut store = ConsentStore::at(0);
    order[..before_time].iter().for_each(|c| store.apply(c.clone()));
    store.advance_to(now);
    order[before_time..].iter().for_each(|c| store.apply(c.clone()));
    store
}

#[test]
fn the_governance_table_holds_in_every_order_of_arrival() {
    let rows = rows();
    assert!(rows.len() >= 30, "the table was read: {} rows", rows.len());
    assert!(rows.iter().any(|row| row.changes.iter().any(|c| c.effective_until.is_some())), "rows with periods");
    let columns = columns();
    for row in rows {
        assert_eq!(row.expected.len(), columns.len(), "row {} has a cell per column", row.number);
        for order in orders(&row.changes) {
            for before_time in 0..=order.len() {
                let store = resolved(&order, before_time, row.now);
                for ((purpose, rules), want) in columns.iter().zip(&row.expected) {
                    let got = label(store.decide(purpose, rules, Some(patient()), true));
                    assert_eq!(
                        &got,
                        want,
                        "row {}, {purpose}{}, {before_time} change(s) read before the clock reached {}",
                        row.number,
                        if rules.study_consent == StudyConsentModel::OptIn { " opt-in" } else { "" },
                        row.now
                    );
                }
            }
        }
    }
}

#[test]
fn the_table_test_fails_when_a_cell_is_wrong() {
    // The same check on a row with one cell changed must find it: the test can fail.
    let mut row = rows().into_iter().find(|row| row.number == "4").unwrap();
    row.expected[0] = "released".to_owned();
    let store = resolved(&row.changes, 0, row.now);
    let (purpose, rules) = &columns()[0];
    assert_ne!(label(store.decide(purpose, rules, Some(patient()), true)), row.expected[0]);
    // And the clock matters: a row decided at another time than its own can differ.
    let timed = rows().into_iter().find(|row| row.number == "26").unwrap();
    let early = resolved(&timed.changes, 0, 3);
    assert_ne!(label(early.decide(purpose, rules, Some(patient()), true)), timed.expected[0]);
}
