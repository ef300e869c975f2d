//! One NDJSON line of a batch extract: a FHIR R4 resource (or Bundle), or a record in the
//! catalogue's subject JSON form, turned into what to publish.
//!
//! A line is told apart by its top-level keys: `resourceType` makes it FHIR (mapped as if POSTed
//! to the FHIR endpoint's base URL, see [`crate::fhir`]), `subject` makes it subject JSON (see
//! [`crate::subject_json`]). What a line becomes is a list of [`Output`]s, each with its own source
//! reference, so that a resumed import can tell exactly which of them Kafka already holds.

use chrono::{DateTime, Utc};
use sluice_schemas::Catalogue;

use crate::clinical::{SubjectRecord, ValidEvent};
use crate::fhir::{self, FhirDefaults, Mapped};
use crate::json_input;
use crate::subject_json::{self, Json};

/// One thing to publish for a line.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// An event, to its subject's topic.
    Event(SubjectRecord),
    /// The line, to the dead-letter topic, with the reason (which never quotes the line).
    DeadLetter(String),
}

/// What one line becomes: `(source reference, output)` pairs, in a fixed order (the same line
/// always gives the same list).
pub type LineOutputs = Vec<(String, Output)>;

/// Maps line `number` of the file known as `file_id`. A blank line gives nothing.
pub fn map_line(
    line: &[u8],
    number: u64,
    file_id: &str,
    catalogue: &Catalogue,
    defaults: &FhirDefaults,
    now: DateTime<Utc>,
) -> LineOutputs {
    let reference = format!("file:{file_id}:line={number}");
    if line.iter().all(u8::is_ascii_whitespace) {
        return Vec::new();
    }
    let dead = |reason: String| vec![(reference.clone(), Output::DeadLetter(format!("line {number}: {reason}")))];
    // Parsed once, keeping repeated keys (which subject JSON refuses); FHIR gets serde_json's
    // view of the same value.
    let json: Json = match json_input::utf8(line)
        .and_then(|text| serde_json::from_str(text).map_err(|error| json_input::describe(&error)))
    {
        Ok(json) => json,
        Err(reason) => return dead(reason),
    };
    if !matches!(json, Json::Object(_)) {
        return dead("is not a JSON object (a FHIR resource or a subject record)".to_owned());
    }
    let events = if json.has_key("resourceType") {
        match fhir::map_request(&json.into_serde(), None, defaults, now) {
            Err(error) => return dead(error.to_string()),
            Ok(Mapped::Transaction { entries, .. }) => {
                // All or nothing, as at the FHIR endpoint: one refused entry refuses the line.
                let errors: Vec<String> =
                    entries.iter().filter_map(|e| e.result.as_ref().err()).map(ToString::to_string).collect();
                if !errors.is_empty() {
                    return dead(errors.join("; "));
                }
                entries.into_iter().map(|e| e.result.map_err(|error| error.to_string())).collect::<Vec<_>>()
            }
            Ok(Mapped::Single(entry)) => vec![entry.result.map_err(|error| error.to_string())],
            Ok(Mapped::Batch { entries, .. }) => {
                entries.into_iter().map(|e| e.result.map_err(|error| error.to_string())).collect()
            }
        }
    } else if json.has_key("subject") {
        vec![subject_json::read_subject_json(&json, catalogue, now).map(|event| vec![event]).map_err(|e| e.to_string())]
    } else {
        return dead("has neither `resourceType` (FHIR) nor `subject` (subject JSON)".to_owned());
    };
    let mut outputs: Vec<Output> = Vec::new();
    for result in events {
        match result {
            Ok(events) => outputs.extend(events.into_iter().map(|e: ValidEvent| Output::Event(e.into_record()))),
            Err(error) => outputs.push(Output::DeadLetter(format!("line {number}: {error}"))),
        }
    }
    let single = outputs.len() == 1;
    outputs
        .into_iter()
        .enumerate()
        .map(|(index, output)| (if single { reference.clone() } else { format!("{reference}#{index}") }, output))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> FhirDefaults {
        FhirDefaults { organisation: Some("RR8".into()), source_system: "extract".into() }
    }

    fn map(line: &str) -> LineOutputs {
        let now = "2026-06-01T00:00:00Z".parse().unwrap();
        map_line(line.as_bytes(), 7, "f00d", Catalogue::embedded(), &defaults(), now)
    }

    const OBSERVATION: &str = r#"{"resourceType": "Observation", "id": "o1", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]}, "subject": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"}}, "effectiveDateTime": "2026-03-15T08:10:00Z", "valueQuantity": {"value": 5.4, "system": "http://unitsofmeasure.org", "code": "mmol/L"}}"#;

    #[test]
    fn fhir_and_subject_lines_become_events_with_the_line_as_reference() {
        let outputs = map(OBSERVATION);
        assert_eq!(outputs.len(), 1);
        assert_eq!(outputs[0].0, "file:f00d:line=7");
        assert!(matches!(&outputs[0].1, Output::Event(record) if record.subject() == "observation"));
        let subject = r#"{"subject": "consent", "record": {"event_id": "1e9d4c2b-7a3f-4b8e-9d6c-5a2f8e1b7c03", "effective_at": "2026-03-01T00:00:00Z", "recorded_at": "2026-03-02T10:15:00Z", "source_organisation": "X26", "nhs_number": "9990000018", "scope": "NATIONAL_DATA_OPT_OUT", "decision": "DENY"}}"#;
        let outputs = map(subject);
        assert!(matches!(&outputs[..], [(_, Output::Event(record))] if record.subject() == "consent"));
        assert!(map("   ").is_empty(), "blank lines are not records");
    }

    #[test]
    fn a_batch_bundle_line_gives_one_reference_per_output() {
        let bad = OBSERVATION.replace("9990000018", "9990000019").replace("\"o1\"", "\"o2\"");
        let bundle = format!(
            r#"{{"resourceType": "Bundle", "type": "batch", "entry": [{{"resource": {OBSERVATION}}}, {{"resource": {bad}}}]}}"#
        );
        let outputs = map(&bundle);
        let references: Vec<&str> = outputs.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(references, ["file:f00d:line=7#0", "file:f00d:line=7#1"]);
        assert!(matches!(&outputs[0].1, Output::Event(_)));
        let Output::DeadLetter(reason) = &outputs[1].1 else { panic!("{outputs:?}") };
        assert!(reason.starts_with("line 7: Observation.subject:"), "{reason}");
        assert!(!reason.contains("9990000019"));
        let transaction = bundle.replace("\"batch\"", "\"transaction\"");
        let outputs = map(&transaction);
        assert!(matches!(&outputs[..], [(r, Output::DeadLetter(_))] if r == "file:f00d:line=7"), "all or nothing");
    }

    #[test]
    fn unreadable_lines_are_dead_letters_whose_reason_quotes_nothing() {
        for (line, reason) in [
            ("{\"resourceType\": \"Observation\", Zebedee}", "line 7: is not valid JSON (line 1, column 33)"),
            ("[\"Zebedee\"]", "line 7: is not a JSON object (a FHIR resource or a subject record)"),
            ("{\"name\": \"Zebedee\"}", "line 7: has neither `resourceType` (FHIR) nor `subject` (subject JSON)"),
            (
                "{\"subject\": \"adt\", \"record\": {\"family_name\": \"Zebedee\"}}",
                "line 7: `record.event_id`: is required",
            ),
        ] {
            let outputs = map(line);
            let [(reference, Output::DeadLetter(text))] = &outputs[..] else { panic!("{outputs:?}") };
            assert_eq!(reference, "file:f00d:line=7");
            assert!(text.starts_with(reason), "{text}");
            assert!(!text.contains("Zebedee"));
        }
    }

    #[test]
    fn a_line_is_parsed_once_for_either_format() {
        // Subject JSON still refuses a repeated key, which serde_json's own value would drop.
        let twice = r#"{"subject": "consent", "subject": "adt", "record": {}}"#;
        let [(_, Output::DeadLetter(reason))] = &map(twice)[..] else { panic!() };
        assert_eq!(reason, "line 7: `subject`: appears more than once");
        // FHIR gets the value serde_json would have given it: the last of a repeated key.
        let repeated = OBSERVATION.replace(r#""id": "o1""#, r#""id": "o0", "id": "o1""#);
        let now = "2026-06-01T00:00:00Z".parse().unwrap();
        let direct = fhir::map_request(&serde_json::from_str(&repeated).unwrap(), None, &defaults(), now).unwrap();
        let Mapped::Single(entry) = direct else { panic!("a single resource") };
        let expected = entry.result.unwrap().remove(0).into_record();
        assert!(matches!(&map(&repeated)[..], [(_, Output::Event(record))] if *record == expected));
    }
}
