//! The corpus of realistic HL7 v2 messages in `producers/tests/fixtures/hl7/corpus/` (see its
//! README): every message with the acknowledgement and the events it must give, written by
//! hand from the message in subject JSON form, independent of the mapper.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::Value as Json;
use sluice_schemas::Catalogue;

use super::ack::{Acknowledged, Receiver, acknowledgement};
use super::local_codes::LocalCodes;
use super::map::map_message;
use super::message::Message;
use crate::clinical::stable_event_id;
use crate::subject_json::parse_subject_line;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hl7/corpus")
}

/// When the corpus was received: the day after its newest message.
fn received() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-07-12T00:00:00Z").unwrap().with_timezone(&Utc)
}

/// Every message of the corpus and its expectation, by file name.
fn cases() -> Vec<(String, Vec<u8>, Json)> {
    let mut names: Vec<String> = std::fs::read_dir(corpus())
        .unwrap()
        .filter_map(|entry| entry.unwrap().file_name().into_string().ok())
        .filter(|name| name.ends_with(".hl7"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let bytes = std::fs::read(corpus().join(&name)).unwrap();
            // One segment per line in the file; a sender ends segments with carriage returns.
            let bytes = bytes.into_iter().map(|b| if b == b'\n' { b'\r' } else { b }).collect();
            let expected = corpus().join(name.replace(".hl7", ".expected.json"));
            let expected = serde_json::from_slice(&std::fs::read(&expected).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", expected.display()));
            (name, bytes, expected)
        })
        .collect()
}

/// The ACK's MSA-1 and every ERR segment as (location as ERR-2 or ERR-1 gives it, code, severity).
fn read_ack(ack: &[u8]) -> (String, Vec<(String, String, String)>) {
    let ack = Message::parse(ack).expect("an ACK is valid HL7");
    let separators = ack.separators();
    let errors = ack
        .segments("ERR")
        .map(|err| match err.get("2.1", separators) {
            Some(segment) => (
                format!("{segment}-{}", err.get("2.3", separators).unwrap_or_default()),
                err.get("3.1", separators).unwrap_or_default(),
                err.get("4", separators).unwrap_or_default(),
            ),
            // HL7 2.3 and 2.4: ERR-1 is segment^sequence^field^code&text&table, without severity.
            None => (
                format!(
                    "{}-{}",
                    err.get("1.1", separators).unwrap_or_default(),
                    err.get("1.3", separators).unwrap_or_default()
                ),
                err.get("1.4.1", separators).unwrap_or_default(),
                String::new(),
            ),
        })
        .collect();
    (ack.get("MSA-1").unwrap_or_default(), errors)
}

/// `PID-11.5` as ERR gives it (segment and field): `PID-11`; `PV1` (a segment): `PV1-`.
fn err_position(location: &str) -> String {
    let (segment, field) = location.split_once('-').unwrap_or((location, ""));
    format!("{segment}-{}", field.split('.').next().unwrap_or_default())
}

#[test]
fn every_corpus_message_gives_its_expected_ack_and_events() {
    let codes = LocalCodes::from_toml(&std::fs::read_to_string(corpus().join("local-codes.toml")).unwrap()).unwrap();
    let catalogue = Catalogue::embedded();
    let receiver = Receiver { application: "SLUICE".into(), facility: "X26".into() };
    let cases = cases();
    assert!(cases.len() >= 30, "the corpus has {} messages", cases.len());
    let mut failures = Vec::new();
    for (name, bytes, expected) in &cases {
        if let Err(failure) = check(bytes, expected, &codes, catalogue, &receiver) {
            failures.push(format!("{name}: {failure}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus messages differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn check(
    bytes: &[u8],
    expected: &Json,
    codes: &LocalCodes,
    catalogue: &Catalogue,
    receiver: &Receiver,
) -> Result<(), String> {
    let message = Message::parse(bytes).map_err(|e| format!("does not parse: {e}"))?;
    let mapped = map_message(&message, received(), codes);
    let outcome = mapped.as_ref().map(|m| m.warnings.as_slice());
    let ack = acknowledgement(receiver, &Acknowledged::from_message(&message), outcome, "A1", received());
    let (code, errors) = read_ack(&ack);
    let want_code = expected["ack"].as_str().ok_or("no `ack`")?;
    if code != want_code {
        return Err(format!("ACK {code}, expected {want_code}: {mapped:?}"));
    }
    let version = message.get("MSH-12.1").unwrap_or_default();
    let legacy = version.starts_with("2.3") || version.starts_with("2.4");
    let severity = |s: &str| if legacy { String::new() } else { s.to_owned() };
    let problem = |item: &Json, severity: String| -> Result<(String, String, String), String> {
        let location = item["location"].as_str().ok_or("no location")?;
        Ok((err_position(location), item["code"].as_u64().ok_or("no code")?.to_string(), severity))
    };
    let mapped = match (mapped, &expected["error"]) {
        (Err(error), Json::Object(_)) => {
            let want = problem(&expected["error"], severity("E"))?;
            if errors != vec![want.clone()] || error.location != expected["error"]["location"].as_str().unwrap_or("") {
                return Err(format!("error {error:?} / ERR {errors:?}, expected {want:?}"));
            }
            return Ok(());
        }
        (Ok(mapped), Json::Null) => mapped,
        (outcome, want) => return Err(format!("outcome {outcome:?}, expected error {want}")),
    };
    let warnings: Vec<(&str, u64)> = mapped.warnings.iter().map(|w| (w.location, w.code as u64)).collect();
    let want_warnings: Vec<(&str, u64)> = expected["warnings"]
        .as_array()
        .ok_or("no `warnings`")?
        .iter()
        .map(|w| (w["location"].as_str().unwrap_or(""), w["code"].as_u64().unwrap_or(0)))
        .collect();
    if warnings != want_warnings {
        return Err(format!("warnings {warnings:?}, expected {want_warnings:?}"));
    }
    let want_errs: Vec<_> =
        expected["warnings"].as_array().unwrap().iter().map(|w| problem(w, severity("W"))).collect::<Result<_, _>>()?;
    if errors != want_errs {
        return Err(format!("ERR segments {errors:?}, expected {want_errs:?}"));
    }
    let sender = expected["sender"].as_str().ok_or("no `sender`")?;
    let control_id = expected["control_id"].as_str().ok_or("no `control_id`")?;
    let want_events = expected["events"].as_array().ok_or("no `events`")?;
    if mapped.events.len() != want_events.len() {
        return Err(format!("{} events, expected {}", mapped.events.len(), want_events.len()));
    }
    for (index, (event, want)) in mapped.events.into_iter().zip(want_events).enumerate() {
        // The event id is derived from the sender, MSH-10 and the event's place in the message.
        let mut want = want.clone();
        let event_id = stable_event_id(&["hl7", sender, control_id, &index.to_string()]);
        want["record"]["event_id"] = Json::String(event_id.to_string());
        let line = serde_json::to_vec(&want).unwrap();
        let want = parse_subject_line(&line, catalogue, received())
            .map_err(|e| format!("expected event {index} is not a valid subject JSON line: {e}"))?;
        let (got, want) = (event.into_record(), want.into_record());
        if (got.subject(), got.value()) != (want.subject(), want.value()) {
            return Err(format!("event {index}:\n  got      {:?}\n  expected {:?}", got.value(), want.value()));
        }
    }
    Ok(())
}
