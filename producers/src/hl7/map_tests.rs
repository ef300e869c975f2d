//! Mapping tests on realistic messages from `producers/tests/fixtures/hl7/` (synthetic patients,
//! NHS numbers from the reserved 999 test range).

use chrono::{DateTime, NaiveDate, Utc};
use sluice_schemas::NhsNumber;

use super::*;
use crate::clinical::{AdtEvent, ObservationEvent};
use crate::hl7::local_codes::LocalCodes;
use crate::hl7::message::ParseError;

/// A fixture as a sender puts it on the wire: segments ended by carriage returns.
fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/hl7/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    bytes.into_iter().map(|b| if b == b'\n' { b'\r' } else { b }).collect()
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

/// Receipt time: shortly after the fixtures were sent.
fn received() -> DateTime<Utc> {
    utc("2026-07-12T00:00:00Z")
}

fn map(bytes: &[u8]) -> Result<Vec<ClinicalEvent>, Hl7Error> {
    map_message(&Message::parse(bytes).expect("fixtures parse"), received(), &LocalCodes::default())
        .map(|mapped| mapped.events.into_iter().map(ValidEvent::into_event).collect())
}

fn adt(name: &str) -> AdtEvent {
    match map(&fixture(name)).unwrap().as_slice() {
        [ClinicalEvent::Adt(event)] => event.clone(),
        other => panic!("{name}: expected one ADT event, got {other:?}"),
    }
}

fn observations(name: &str) -> Vec<ObservationEvent> {
    map(&fixture(name))
        .unwrap()
        .into_iter()
        .map(|event| match event {
            ClinicalEvent::Observation(event) => event,
            other => panic!("{name}: expected observations, got {other:?}"),
        })
        .collect()
}

fn zoe() -> PatientIdentity {
    PatientIdentity {
        nhs_number: Some(NhsNumber::parse("9990000018").unwrap()),
        local_patient_id: Some("H1234567".into()),
        family_name: Some("O'Brien".into()),
        given_name: Some("Zoë".into()),
        date_of_birth: NaiveDate::from_ymd_opt(1970, 3, 14),
        sex: Some(AdministrativeSex::Female),
        postcode: Some("LS6 2QT".into()),
        address_line: Some("12 Church Lane".into()),
    }
}

#[test]
fn admit_maps_every_field_from_msh_evn_pid_and_pv1() {
    let event = adt("adt_a01_admit.hl7");
    assert_eq!(
        event,
        AdtEvent {
            provenance: Provenance {
                event_id: stable_event_id(&["hl7", "PAS^RR8", "PAS0000101", "0"]),
                occurred_at: utc("2026-01-05T09:25:00Z"),
                recorded_at: utc("2026-01-05T09:30:12Z"),
                source_organisation: "RR8".into(),
                source_system: "PAS".into(),
            },
            patient: zoe(),
            event_type: AdtEventType::Admit,
            patient_class: Some(PatientClass::Inpatient),
            location_code: Some("W12".into()),
            treatment_function_code: Some("300".into()),
        }
    );
}

#[test]
fn each_adt_trigger_maps_to_its_event_type_and_time() {
    // (fixture, event type, occurred at, class, location)
    let cases = [
        (
            "adt_a02_transfer.hl7",
            AdtEventType::Transfer,
            "2026-01-06T14:00:00Z",
            Some(PatientClass::Inpatient),
            Some("CCU"),
        ),
        (
            "adt_a03_discharge.hl7",
            AdtEventType::Discharge,
            "2026-01-09T11:00:00Z",
            Some(PatientClass::Inpatient),
            Some("CCU"),
        ),
        // 02:10 local in July is 01:10 UTC (BST).
        (
            "adt_a04_register.hl7",
            AdtEventType::Register,
            "2026-07-11T01:10:00Z",
            Some(PatientClass::Emergency),
            Some("ED"),
        ),
        ("adt_a08_update.hl7", AdtEventType::UpdatePatient, "2026-01-07T08:10:00Z", None, None),
        (
            "adt_a11_cancel_admit.hl7",
            AdtEventType::CancelAdmit,
            "2026-01-05T10:00:00Z",
            Some(PatientClass::Inpatient),
            Some("W7"),
        ),
        (
            "adt_a13_cancel_discharge.hl7",
            AdtEventType::CancelDischarge,
            "2026-01-09T16:00:00Z",
            Some(PatientClass::Inpatient),
            Some("CCU"),
        ),
        ("adt_a40_merge.hl7", AdtEventType::MergePatient, "2026-01-10T12:00:00Z", None, None),
    ];
    for (name, event_type, occurred_at, class, location) in cases {
        let event = adt(name);
        assert_eq!(event.event_type, event_type, "{name}");
        assert_eq!(event.provenance.occurred_at, utc(occurred_at), "{name}");
        assert_eq!(event.patient_class, class, "{name}");
        assert_eq!(event.location_code.as_deref(), location, "{name}");
        assert!(event.provenance.recorded_at >= event.provenance.occurred_at, "{name}");
    }
    let update = adt("adt_a08_update.hl7");
    assert_eq!(update.patient.postcode.as_deref(), Some("LS7 3JX"), "an A08 carries the new address");
    let merge = adt("adt_a40_merge.hl7");
    assert_eq!(
        merge.patient.local_patient_id.as_deref(),
        Some("H3333333"),
        "the surviving patient is PID's, not MRG's"
    );
    let register = adt("adt_a04_register.hl7");
    assert_eq!(register.patient.nhs_number.map(|n| n.digits()).as_deref(), Some("9990000026"));
    assert_eq!(register.provenance.source_system, "EDIS");
}

#[test]
fn results_become_one_observation_per_obx_with_notes_values_and_flags() {
    let results = observations("oru_r01_results.hl7");
    assert_eq!(results.len(), 7);
    let potassium = &results[0];
    assert_eq!(potassium.patient, zoe());
    assert_eq!((potassium.code_system, potassium.code.as_str()), (ObservationCodeSystem::Loinc, "2823-3"));
    assert_eq!(potassium.display, "Potassium [Moles/volume] in Serum or Plasma");
    assert_eq!((potassium.value, potassium.unit.as_deref()), (Some(5.9), Some("mmol/L")));
    assert_eq!(potassium.interpretation, Some(Interpretation::High));
    assert_eq!(potassium.comment.as_deref(), Some("Sample slightly haemolysed; repeat advised."));
    assert_eq!(potassium.provenance.occurred_at, utc("2026-01-05T10:15:00Z"), "OBX-14");
    assert_eq!(potassium.provenance.recorded_at, utc("2026-01-05T15:39:00Z"), "OBR-22");
    assert_eq!(potassium.provenance.source_system, "WinPath");

    assert_eq!(results[1].comment, None, "a note belongs to the OBX before it only");
    assert_eq!(results[2].provenance.occurred_at, utc("2026-01-05T10:15:00Z"), "OBR-7 without OBX-14");
    assert_eq!((results[3].value, results[3].comment.as_deref()), (None, Some("see comment")), "ST");
    assert_eq!((results[4].value, results[4].comment.as_deref()), (Some(6.1), None), "SN plain number");
    assert_eq!((results[5].value, results[5].comment.as_deref()), (None, Some("<0.5")), "SN comparison");
    let systolic = &results[6];
    assert_eq!((systolic.code_system, systolic.code.as_str()), (ObservationCodeSystem::SnomedCt, "271649006"));
    assert_eq!(systolic.display, "Systolic blood pressure");

    // Exact results, reference ranges (OBX-7) and interpretation codes (OBX-8) for observation v3.
    let exact = |text: &str| ResultDecimal::parse(text);
    assert_eq!(potassium.value_decimal, exact("5.9"));
    assert_eq!(
        potassium.reference_range,
        Some(ReferenceRange { low: exact("3.5"), high: exact("5.3"), text: Some("3.5-5.3".into()) })
    );
    assert_eq!(potassium.interpretation_codes, Some(vec!["H".to_owned()]));
    assert_eq!(results[1].value_decimal, exact("139"));
    assert_eq!((results[3].value_decimal, &results[3].reference_range), (None, &None), "ST has no number");
    assert_eq!(results[3].interpretation_codes, None);
    assert_eq!(results[4].value_decimal, exact("6.1"), "SN plain number");
    assert_eq!(results[5].value_decimal, None, "SN comparison");
    assert_eq!(systolic.reference_range, None);

    let ids: std::collections::HashSet<_> = results.iter().map(|r| r.provenance.event_id).collect();
    assert_eq!(ids.len(), 7, "each OBX has its own event id");
    assert_eq!(results[3].provenance.event_id, stable_event_id(&["hl7", "WinPath^RR8", "LAB20260105000731", "3"]));
}

#[test]
fn iso_8859_1_results_are_read_by_msh_18() {
    let results = observations("oru_r01_latin1.hl7");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].patient.family_name.as_deref(), Some("Müller"));
    assert_eq!(results[0].patient.given_name.as_deref(), Some("Jürgen"));
    assert_eq!(results[0].value, Some(131.0));
}

/// A fixture with one text replaced, for error cases.
fn altered(name: &str, from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(fixture(name)).unwrap();
    assert!(text.contains(from), "{name} has no `{from}`");
    text.replacen(from, to, 1).into_bytes()
}

#[test]
fn errors_say_ae_or_ar_with_code_and_location_and_never_quote_values() {
    let a01 = "adt_a01_admit.hl7";
    let oru = "oru_r01_results.hl7";
    // (message, reject, code, location)
    let cases = [
        (altered(a01, "9990000018", "9990000017"), false, ErrorCode::DataType, "PID-3"),
        (altered(a01, "ADT^A01^ADT_A01", "SIU^S12^SIU_S12"), true, ErrorCode::UnsupportedMessageType, "MSH-9.1"),
        (altered(a01, "ADT^A01^ADT_A01", "ADT^A05^ADT_A05"), true, ErrorCode::UnsupportedEventCode, "MSH-9.2"),
        (altered(oru, "ORU^R01^ORU_R01", "ORU^R30^ORU_R30"), true, ErrorCode::UnsupportedEventCode, "MSH-9.2"),
        (altered(a01, "|2.5.1|", "|2.2|"), true, ErrorCode::UnsupportedVersion, "MSH-12"),
        (altered(a01, "|PAS0000101|", "||"), true, ErrorCode::RequiredFieldMissing, "MSH-10"),
        (altered(a01, "|RR8|SLUICE|", "||SLUICE|"), true, ErrorCode::RequiredFieldMissing, "MSH-4"),
        (altered(a01, "\rPV1|", "\rZV1|"), false, ErrorCode::SegmentSequence, "PV1"),
        (altered("adt_a40_merge.hl7", "\rMRG|", "\rZRG|"), false, ErrorCode::SegmentSequence, "MRG"),
        (altered(a01, "\rPID|", "\rZID|"), false, ErrorCode::SegmentSequence, "PID"),
        (altered(a01, "|20260105093012|||C1234", "|2026-01-05|||C1234"), false, ErrorCode::DataType, "EVN-2"),
        (altered(a01, "|19700314|F|", "|19701314|F|"), false, ErrorCode::DataType, "PID-7"),
        (altered(a01, "9990000018^^^NHS^NH~H1234567^^^RR8^MR", ""), false, ErrorCode::RequiredFieldMissing, "PID-3"),
        (
            altered(oru, "2823-3^Potassium [Moles/volume] in Serum or Plasma^LN", "K^Potassium^LOCAL"),
            false,
            ErrorCode::TableValueNotFound,
            "OBX-3",
        ),
        (altered(oru, "2823-3^Potassium", "2823-4^Potassium"), false, ErrorCode::DataType, "OBX-3"),
        (altered(oru, "||5.9|", "||five|"), false, ErrorCode::DataType, "OBX-5"),
        (altered(oru, "|F|||20260105101500\rNTE", "|F|||20990105101500\rNTE"), false, ErrorCode::DataType, "OBX-14"),
    ];
    for (bytes, reject, code, location) in cases {
        let error = map(&bytes).expect_err(location);
        assert_eq!((error.reject, error.code, error.location.as_str()), (reject, code, location), "{error:?}");
        let shown = format!("{error} {error:?}");
        for value in ["9990000017", "O'Brien", "Zo", "19701314", "LS6", "five", "2823-4", "2099"] {
            assert!(!shown.contains(value), "`{value}` leaked into {shown}");
        }
    }
}

#[test]
fn headers_give_sender_and_source_reference() {
    let message = Message::parse(&fixture("adt_a01_admit.hl7")).unwrap();
    let header = MessageHeader::read(&message);
    assert_eq!(header.sender(), "PAS^RR8");
    assert_eq!(header.source_reference(), "hl7:PAS^RR8:PAS0000101");
}

#[test]
fn reference_ranges_read_limits_from_the_usual_forms_and_keep_any_other_as_text() {
    let exact = |text: &str| ResultDecimal::parse(text);
    let cases = [
        ("<5.3", None, exact("5.3")),
        ("<=5.3", None, exact("5.3")),
        (">60", exact("60"), None),
        (">=60", exact("60"), None),
        ("-2-2", exact("-2"), exact("2")),
        ("normal: see report", None, None),
    ];
    for (range, low, high) in cases {
        let message = altered("oru_r01_results.hl7", "|3.5-5.3|H|", &format!("|{range}|H~A|"));
        let ClinicalEvent::Observation(potassium) = map(&message).unwrap().remove(0) else { panic!("observation") };
        assert_eq!(potassium.reference_range, Some(ReferenceRange { low, high, text: Some(range.to_owned()) }));
        assert_eq!(potassium.interpretation_codes, Some(vec!["H".to_owned(), "A".to_owned()]), "OBX-8 repeats");
    }
}

/// A fixture without the segments named, as if the sender left them out.
fn without_segments(name: &str, dropped: &[&str]) -> Vec<u8> {
    let text = String::from_utf8(fixture(name)).unwrap();
    let kept: Vec<&str> = text.split('\r').filter(|segment| !dropped.iter().any(|d| segment.starts_with(d))).collect();
    assert!(kept.len() < text.split('\r').count(), "{name} has none of {dropped:?}");
    kept.join("\r").into_bytes()
}

/// Values of the fixtures' synthetic patient that no error may quote.
const PATIENT_VALUES: [&str; 5] = ["9990000018", "H1234567", "O'Brien", "Zoë", "LS6 2QT"];

fn assert_quotes_no_patient_value(error: &impl std::fmt::Debug) {
    let shown = format!("{error:?}");
    for value in PATIENT_VALUES {
        assert!(!shown.contains(value), "`{value}` leaked into {shown}");
    }
}

/// Poison the listener dead-letters: required segments or header fields left out. Each is
/// refused (AR for the header, AE for the content) with the segment or field at fault.
#[test]
fn messages_without_required_segments_or_header_fields_are_refused_at_their_location() {
    let a01 = "adt_a01_admit.hl7";
    let oru = "oru_r01_results.hl7";
    let msh_only = String::from_utf8(fixture(a01)).unwrap().split('\r').next().unwrap().to_owned().into_bytes();
    let cut_before_control_id = {
        let text = String::from_utf8(fixture(a01)).unwrap();
        text[..text.find("PAS0000101").unwrap()].to_owned().into_bytes()
    };
    // (message, reject, code, location)
    let cases = [
        (msh_only, false, ErrorCode::SegmentSequence, "PID"),
        (cut_before_control_id, true, ErrorCode::RequiredFieldMissing, "MSH-10"),
        (altered(oru, "\rPID|", "\rZID|"), false, ErrorCode::SegmentSequence, "PID"),
        (without_segments(oru, &["OBX", "NTE"]), false, ErrorCode::SegmentSequence, "OBX"),
        (without_segments(oru, &["ORC", "OBR", "OBX", "NTE"]), false, ErrorCode::SegmentSequence, "OBX"),
        (altered(a01, "|20260105093012||ADT^A01", "|||ADT^A01"), false, ErrorCode::RequiredFieldMissing, "MSH-7"),
        (altered(a01, "|ADT^A01^ADT_A01|", "||"), true, ErrorCode::UnsupportedMessageType, "MSH-9.1"),
        (altered(a01, "|ADT^A01^ADT_A01|", "|ADT|"), true, ErrorCode::UnsupportedEventCode, "MSH-9.2"),
        (altered(oru, "|ORU^R01^ORU_R01|", "|ORU|"), true, ErrorCode::UnsupportedEventCode, "MSH-9.2"),
        (altered(a01, "|2.5.1|", "||"), true, ErrorCode::UnsupportedVersion, "MSH-12"),
        (altered(a01, "MSH|^~\\&|PAS|", "MSH|^~\\&||"), false, ErrorCode::RequiredFieldMissing, "MSH-3"),
        (
            altered(a01, "|9990000018^^^NHS^NH~H1234567^^^RR8^MR|", "||"),
            false,
            ErrorCode::RequiredFieldMissing,
            "PID-3",
        ),
    ];
    for (bytes, reject, code, location) in cases {
        let error = map(&bytes).expect_err(location);
        assert_eq!((error.reject, error.code, error.location.as_str()), (reject, code, location), "{error:?}");
        assert_quotes_no_patient_value(&error);
    }
}

/// Bytes that are not text in the character set MSH-18 declares, anywhere in the message (in
/// MSH itself, inside the NHS number, a multi-byte character cut short, an overlong encoding,
/// a UTF-16 surrogate), are refused as a whole: nothing of the message is read as text, so
/// nothing can be quoted.
#[test]
fn bytes_that_are_not_the_declared_character_set_are_refused_without_quoting_the_message() {
    let a01 = fixture("adt_a01_admit.hl7");
    let replaced = |from: &[u8], to: &[u8]| {
        let at = a01.windows(from.len()).position(|w| w == from).unwrap_or_else(|| panic!("no {from:?}"));
        [&a01[..at], to, &a01[at + from.len()..]].concat()
    };
    let utf8_cases = [
        replaced(b"|PAS|", b"|P\xffS|"),
        replaced(b"9990000018", b"99900\xff0018"),
        replaced("Zoë^".as_bytes(), b"Zo\xc3^"),
        replaced(b"O'Brien", b"O\xc0\xafBrien"),
        replaced(b"Church", b"Ch\xed\xa0\x80rch"),
    ];
    assert!(Message::parse(&a01).is_ok(), "the unaltered fixture parses");
    for bytes in utf8_cases {
        let error = Message::parse(&bytes).unwrap_err();
        assert_eq!(error, ParseError::InvalidEncoding("UTF-8"));
        assert_quotes_no_patient_value(&error);
        assert_quotes_no_patient_value(&error.to_string());
    }
    // Without MSH-18 the message must be ASCII, which "Zoë" is not.
    let undeclared = replaced(b"|GBR|UNICODE UTF-8", b"|GBR|");
    assert_eq!(Message::parse(&undeclared), Err(ParseError::InvalidEncoding("ASCII (MSH-18 is empty or ASCII)")));
}

/// A field of almost a megabyte (the message still within the listener's default frame limit
/// of 1 MiB) is refused by the length rule at its own location, and the refusal neither quotes
/// it nor grows with it.
#[test]
fn huge_fields_are_refused_at_their_location_without_being_quoted() {
    let huge = "Zebedee".repeat(135_000);
    // (message, location)
    let cases = [
        (altered("adt_a01_admit.hl7", "O'Brien^", &format!("{huge}^")), "PID-5"),
        (altered("adt_a01_admit.hl7", "~H1234567^", &format!("~{huge}^")), "PID-3"),
        (altered("adt_a01_admit.hl7", "|W12^", &format!("|{huge}^")), "PV1-3"),
        (altered("oru_r01_results.hl7", "Sample slightly haemolysed", &huge), "NTE-3"),
        (altered("oru_r01_results.hl7", "|mmol/L^mmol/L^UCUM|3.5", &format!("|{huge}|3.5")), "OBX-6"),
        (altered("oru_r01_results.hl7", "|3.5-5.3|H|", &format!("|{huge}|H|")), "OBX-7"),
        (altered("oru_r01_results.hl7", "|3.5-5.3|H|", &format!("|3.5-5.3|{huge}|")), "OBX-8"),
    ];
    for (bytes, location) in cases {
        assert!((900_000..1 << 20).contains(&bytes.len()));
        let error = map(&bytes).expect_err(location);
        assert_eq!((error.reject, error.code, error.location.as_str()), (false, ErrorCode::DataType, location));
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("Zebedee"), "the field leaked into {shown}");
        assert!(shown.len() < 400, "a refusal does not grow with the field: {} bytes", shown.len());
    }
}

/// MSH-10 is echoed in the ACK, journalled and carried in every event's source reference
/// header, so an overlong or control-character one is refused (AR) before anything is stored.
#[test]
fn an_overlong_or_unprintable_message_control_id_is_refused() {
    for control_id in ["C".repeat(200), "LAB\u{7}0001".to_owned()] {
        let bytes = altered("oru_r01_results.hl7", "|LAB20260105000731|", &format!("|{control_id}|"));
        let error = map(&bytes).expect_err("refused");
        assert_eq!((error.reject, error.code, error.location.as_str()), (true, ErrorCode::DataType, "MSH-10"));
    }
    let longest = altered("oru_r01_results.hl7", "|LAB20260105000731|", &format!("|{}|", "C".repeat(199)));
    assert!(map(&longest).is_ok());
}

#[test]
fn a_relayed_message_is_attributed_to_the_organisation_it_names_as_its_origin() {
    let source = |bytes: &[u8]| match map(bytes).unwrap().remove(0) {
        ClinicalEvent::Adt(event) => event.provenance.source_organisation,
        ClinicalEvent::Observation(event) => event.provenance.source_organisation,
        other => panic!("unexpected {other:?}"),
    };
    // Sent by a hub (MSH-4 QWE) for the practice B86001, named in EVN-7 (event facility).
    let relayed = altered("adt_a01_admit.hl7", "MSH|^~\\&|PAS|RR8|", "MSH|^~\\&|HUB|QWE|");
    let text = String::from_utf8(relayed).unwrap().replacen(
        "|||C1234^Okafor^Ada|20260105092500",
        "|||C1234^Okafor^Ada|20260105092500|B86001",
        1,
    );
    assert_eq!(source(text.as_bytes()), "B86001");
    // Or in MSH-22, the sending responsible organisation (its identifier is component 10).
    let results = altered("oru_r01_results.hl7", "|UNICODE UTF-8", "|UNICODE UTF-8||||B86001 Practice^^^^^^^^^B86001");
    assert_eq!(source(&results), "B86001");
    // Otherwise the sending facility.
    assert_eq!(source(&fixture("adt_a01_admit.hl7")), "RR8");
    // A badly formed origin is reported where it came from.
    let bad = text.replacen("|B86001", "|b86", 1);
    let error = map(bad.as_bytes()).unwrap_err();
    assert!(format!("{error:?}").contains("EVN-7"), "{error:?}");
}

#[test]
fn optional_fields_that_cannot_be_used_are_left_out_with_warnings_that_quote_nothing() {
    let a01 = "adt_a01_admit.hl7";
    let message = altered(a01, "|19700314|F|", "|19700314|X|");
    let message = String::from_utf8(message).unwrap().replace("LS6 2QT", "75011").replace("|||300|", "|||MED|");
    let parsed = Message::parse(message.as_bytes()).unwrap();
    let mapped = map_message(&parsed, received(), &LocalCodes::default()).unwrap();
    let locations: Vec<&str> = mapped.warnings.iter().map(|w| w.location).collect();
    assert_eq!(locations, ["PID-8", "PID-11.5", "PV1-10"]);
    let [event] = mapped.events.as_slice() else { panic!("one event") };
    let ClinicalEvent::Adt(event) = event.event() else { panic!("an ADT event") };
    assert_eq!((event.patient.sex, event.patient.postcode.as_deref()), (None, None));
    assert_eq!(event.patient.address_line.as_deref(), Some("12 Church Lane"), "the rest of the address stays");
    assert_eq!(event.treatment_function_code, None);
    for warning in &mapped.warnings {
        let shown = format!("{warning:?}");
        assert!(!shown.contains("75011") && !shown.contains("MED") && !shown.contains("\"X\""), "{shown}");
    }

    // The sender's table maps its local code; another sender's table is not used.
    let codes = LocalCodes::from_toml("[senders.\"PAS^RR8\".treatment_function]\nMED = \"300\"\n").unwrap();
    let mapped = map_message(&parsed, received(), &codes).unwrap();
    let ClinicalEvent::Adt(event) = mapped.events[0].event() else { panic!("an ADT event") };
    assert_eq!(event.treatment_function_code.as_deref(), Some("300"));
    assert_eq!(mapped.warnings.len(), 2);
    let others = LocalCodes::from_toml("[senders.\"PAS^RCB\".treatment_function]\nMED = \"300\"\n").unwrap();
    assert_eq!(map_message(&parsed, received(), &others).unwrap().warnings.len(), 3);
}

#[test]
fn the_nhs_number_alone_identifies_the_patient() {
    let only_nhs = altered("adt_a01_admit.hl7", "9990000018^^^NHS^NH~H1234567^^^RR8^MR", "9990000018^^^NHS^NH");
    let event = match map(&only_nhs).unwrap().as_slice() {
        [ClinicalEvent::Adt(event)] => event.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(event.patient.nhs_number, Some(NhsNumber::parse("9990000018").unwrap()));
    assert_eq!(event.patient.local_patient_id, None);
    // The NHS number marked only by its assigning authority, after the hospital number.
    let reordered =
        altered("adt_a01_admit.hl7", "9990000018^^^NHS^NH~H1234567^^^RR8^MR", "H1234567^^^RR8^MR~9990000018^^^NHS");
    let events = map(&reordered).unwrap();
    let [ClinicalEvent::Adt(event)] = events.as_slice() else { panic!("one ADT event") };
    assert_eq!(event.patient, zoe());
}

#[test]
fn local_observation_codes_map_through_the_senders_table_or_the_message_is_refused() {
    let oru = altered("oru_r01_results.hl7", "2823-3^Potassium [Moles/volume] in Serum or Plasma^LN", "K^Potassium^L");
    let parsed = Message::parse(&oru).unwrap();
    let sender = MessageHeader::read(&parsed).sender();
    let codes = LocalCodes::from_toml(&format!(
        "[senders.\"{sender}\".observation]\nK = {{ system = \"LN\", code = \"2823-3\", display = \"Potassium\" }}\n"
    ))
    .unwrap();
    let mapped = map_message(&parsed, received(), &codes).unwrap();
    let ClinicalEvent::Observation(potassium) = mapped.events[0].event() else { panic!("an observation") };
    assert_eq!(
        (potassium.code_system, potassium.code.as_str(), potassium.display.as_str()),
        (ObservationCodeSystem::Loinc, "2823-3", "Potassium")
    );
    let error = map_message(&parsed, received(), &LocalCodes::default()).unwrap_err();
    assert_eq!((error.reject, error.code, error.location.as_str()), (false, ErrorCode::TableValueNotFound, "OBX-3"));
}
