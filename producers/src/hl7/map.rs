//! Mapping HL7 v2 ADT and ORU messages to clinical events.
//!
//! | Message | Subject | Notes |
//! |---|---|---|
//! | `ADT^A01` admit | `adt` ADMIT | occurred at PV1-44, else EVN-6, EVN-2, MSH-7 |
//! | `ADT^A02` transfer | `adt` TRANSFER | |
//! | `ADT^A03` discharge | `adt` DISCHARGE | occurred at PV1-45, else as above |
//! | `ADT^A04` register | `adt` REGISTER | occurred at PV1-44, else as above |
//! | `ADT^A08` update | `adt` UPDATE_PATIENT | PV1 optional |
//! | `ADT^A11` cancel admit, `ADT^A13` cancel discharge | `adt` CANCEL_* | |
//! | `ADT^A40` merge | `adt` MERGE_PATIENT | for the surviving patient in PID; MRG required |
//! | `ORU^R01` results | `observation`, one per OBX | OBX-3 coded in LOINC (`LN`) or SNOMED CT (`SCT`) |
//!
//! Patient: the NHS number is the PID-3 repetition with identifier type `NH` (or assigning
//! authority `NHS`); the local patient id is the `MR`/`PI` repetition (else the first other
//! one); PID-5 name, PID-7 birth date, PID-8 sex, PID-11 address line and postcode. The source
//! organisation is the organisation where the event happened, as an ODS code: EVN-7 (event
//! facility) when given, else MSH-22 (sending responsible organisation, its identifier in
//! component 10), else the sending facility MSH-4. A hub or integration engine that relays a
//! practice's or a trust's messages sends its own code in MSH-4, and the lander's register of
//! source organisations counts a hub's data as possibly a GP practice's (Type 1 opt-outs cover
//! it); naming the origin in EVN-7 or MSH-22 lets it be judged by the origin. The sending
//! application MSH-3 is the source system. Event ids are derived from sender, MSH-10 and the position of the event
//! in the message, so a message that is sent again maps to the same ids.

use chrono::{DateTime, Utc};
use sluice_schemas::NhsNumber;

use super::local_codes::{LocalCodes, is_treatment_function_code};
use super::message::{Message, Segment};
use super::timestamp::{parse_date, parse_timestamp};
use crate::clinical::{
    AdministrativeSex, AdtEvent, AdtEventType, ClinicalEvent, Interpretation, ObservationCodeSystem, ObservationEvent,
    PatientClass, PatientIdentity, Problem, Provenance, ReferenceRange, ResultDecimal, ValidEvent, ValidationError,
    stable_event_id,
};

/// HL7 table 0357 error codes used in ERR-3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 100: a required segment is missing or out of place.
    SegmentSequence = 100,
    /// 101: a required field is empty.
    RequiredFieldMissing = 101,
    /// 102: a value is malformed.
    DataType = 102,
    /// 103: a coded value is not one this interface accepts.
    TableValueNotFound = 103,
    /// 200: message type not supported.
    UnsupportedMessageType = 200,
    /// 201: trigger event not supported.
    UnsupportedEventCode = 201,
    /// 203: HL7 version not supported.
    UnsupportedVersion = 203,
    /// 207: the message could not be stored (e.g. Kafka unavailable); the sender should resend.
    ApplicationInternal = 207,
}

impl ErrorCode {
    /// The code's text from HL7 table 0357.
    pub fn text(self) -> &'static str {
        match self {
            ErrorCode::SegmentSequence => "Segment sequence error",
            ErrorCode::RequiredFieldMissing => "Required field missing",
            ErrorCode::DataType => "Data type error",
            ErrorCode::TableValueNotFound => "Table value not found",
            ErrorCode::UnsupportedMessageType => "Unsupported message type",
            ErrorCode::UnsupportedEventCode => "Unsupported event code",
            ErrorCode::UnsupportedVersion => "Unsupported version id",
            ErrorCode::ApplicationInternal => "Application internal error",
        }
    }
}

/// Why a message was not accepted: what goes in the ACK's MSA-1 and ERR segment. The message
/// text never contains a value from the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct Hl7Error {
    /// `true` for AR (the message as a whole is refused: unsupported type, version, structure),
    /// `false` for AE (a content error the sender's data team must fix).
    pub reject: bool,
    /// ERR-3.
    pub code: ErrorCode,
    /// ERR-2 location, e.g. `PID-3` (empty when the message could not be parsed at all).
    pub location: String,
    /// ERR-8, for the sender's interface team.
    pub message: String,
}

impl Hl7Error {
    fn reject(code: ErrorCode, location: &str, message: impl Into<String>) -> Self {
        Hl7Error { reject: true, code, location: location.to_owned(), message: message.into() }
    }

    fn content(code: ErrorCode, location: &str, message: impl Into<String>) -> Self {
        Hl7Error { reject: false, code, location: location.to_owned(), message: message.into() }
    }
}

/// A field the message sent that could not be used: the event landed without it (the field
/// null) and the ACK carries a warning (an ERR segment of severity W) so the sender's interface
/// team can put it right. Names the position and why, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldWarning {
    /// ERR-2, e.g. `PV1-10`.
    pub location: &'static str,
    /// ERR-3.
    pub code: ErrorCode,
    /// ERR-8.
    pub message: &'static str,
}

/// A mapped message: its events and the fields left out of them.
#[derive(Debug)]
pub struct Mapped {
    /// One event for ADT, one per OBX for ORU, validated.
    pub events: Vec<ValidEvent>,
    /// Optional fields sent with a value that could not be used, in message order.
    pub warnings: Vec<FieldWarning>,
}

/// The MSH fields that identify a message and its sender.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageHeader {
    /// MSH-3.1, the sending application.
    pub sending_application: String,
    /// MSH-4.1, the sending facility (an ODS code): for a relayed message, the relay's.
    pub sending_facility: String,
    /// The organisation where the event happened when the message names one apart from its
    /// sender: EVN-7.1 (event facility), else MSH-22.10 (sending responsible organisation's
    /// identifier), with the field it came from.
    pub originating_facility: Option<(String, &'static str)>,
    /// MSH-9.1, e.g. `ADT`.
    pub message_type: String,
    /// MSH-9.2, e.g. `A01`.
    pub trigger_event: String,
    /// MSH-10, the sender's message control id.
    pub control_id: String,
    /// MSH-12.1, e.g. `2.5.1`.
    pub version: String,
    /// MSH-7, the message date/time, as sent.
    pub sent_at: String,
}

impl MessageHeader {
    /// Reads the header fields of a parsed message.
    pub fn read(message: &Message) -> Self {
        let get = |path: &str| message.get(path).unwrap_or_default();
        MessageHeader {
            sending_application: get("MSH-3.1"),
            sending_facility: get("MSH-4.1"),
            originating_facility: [("EVN-7.1", "EVN-7"), ("MSH-22.10", "MSH-22")]
                .into_iter()
                .find_map(|(path, field)| message.get(path).filter(|code| !code.is_empty()).map(|code| (code, field))),
            message_type: get("MSH-9.1"),
            trigger_event: get("MSH-9.2"),
            control_id: get("MSH-10"),
            version: get("MSH-12.1"),
            sent_at: get("MSH-7"),
        }
    }

    /// The organisation where the event happened (an ODS code) and the field it came from: the
    /// originating facility when the message names one, else the sending facility MSH-4.
    pub fn source_organisation(&self) -> (&str, &'static str) {
        match &self.originating_facility {
            Some((code, field)) => (code, field),
            None => (&self.sending_facility, "MSH-4"),
        }
    }

    /// The sender, for duplicate detection: sending application and facility.
    pub fn sender(&self) -> String {
        format!("{}^{}", self.sending_application, self.sending_facility)
    }

    /// The source reference header for events of this message: sender and control id.
    pub fn source_reference(&self) -> String {
        format!("hl7:{}:{}", self.sender(), self.control_id)
    }
}

/// Maps a parsed message to validated events (one for ADT, one per OBX for ORU), using the
/// sender's local code tables in `codes`.
///
/// Optional fields sent with a value that cannot be used (a local PV1-10 code without a table
/// entry, a PID-8 outside HL7 table 0001, a postcode that is not a UK one) are left out of the
/// events and reported as [`FieldWarning`]s; only a message that cannot give a correct event is
/// an error.
pub fn map_message(message: &Message, received_at: DateTime<Utc>, codes: &LocalCodes) -> Result<Mapped, Hl7Error> {
    let header = MessageHeader::read(message);
    check_header(&header)?;
    let sent_at = timestamp(&header.sent_at, "MSH-7")?;
    let mut mapping = Mapping { message, header: &header, codes, warnings: Vec::new() };
    let events = match header.message_type.as_str() {
        "ADT" => vec![mapping.adt(sent_at)?],
        "ORU" if header.trigger_event == "R01" => mapping.observations(sent_at)?,
        "ORU" => {
            return Err(Hl7Error::reject(ErrorCode::UnsupportedEventCode, "MSH-9.2", "only ORU^R01 is accepted"));
        }
        _ => {
            return Err(Hl7Error::reject(
                ErrorCode::UnsupportedMessageType,
                "MSH-9.1",
                "only ADT and ORU messages are accepted",
            ));
        }
    };
    let events = events
        .into_iter()
        .enumerate()
        .map(|(index, event)| event.validate(received_at).map_err(|error| from_validation(&error, &header, index)))
        .collect::<Result<_, _>>()?;
    Ok(Mapped { events, warnings: mapping.warnings })
}

/// What mapping one message needs: the message, its header, the local code tables, and the
/// warnings gathered so far.
struct Mapping<'m> {
    message: &'m Message,
    header: &'m MessageHeader,
    codes: &'m LocalCodes,
    warnings: Vec<FieldWarning>,
}

/// Longest MSH-10 accepted (the length HL7 v2.7 and later allow). It is echoed in the ACK, kept
/// in the journal of stored messages and carried in every event's source reference header.
const MAX_CONTROL_ID_CHARS: usize = 199;

fn check_header(header: &MessageHeader) -> Result<(), Hl7Error> {
    if header.control_id.is_empty() {
        return Err(Hl7Error::reject(ErrorCode::RequiredFieldMissing, "MSH-10", "the message control id is required"));
    }
    if header.control_id.chars().count() > MAX_CONTROL_ID_CHARS || header.control_id.chars().any(char::is_control) {
        return Err(Hl7Error::reject(
            ErrorCode::DataType,
            "MSH-10",
            "the message control id must be at most 199 characters, without control characters",
        ));
    }
    let supported = header
        .version
        .strip_prefix("2.")
        .and_then(|minor| minor.split('.').next())
        .and_then(|minor| minor.parse::<u32>().ok())
        .is_some_and(|minor| (3..=8).contains(&minor));
    if !supported {
        return Err(Hl7Error::reject(ErrorCode::UnsupportedVersion, "MSH-12", "HL7 versions 2.3 to 2.8 are accepted"));
    }
    if header.sending_facility.is_empty() {
        return Err(Hl7Error::reject(
            ErrorCode::RequiredFieldMissing,
            "MSH-4",
            "the sending facility (ODS code) is required",
        ));
    }
    Ok(())
}

impl Mapping<'_> {
    fn adt(&mut self, sent_at: DateTime<Utc>) -> Result<ClinicalEvent, Hl7Error> {
        let (message, header) = (self.message, self.header);
        let (event_type, needs_visit) = match header.trigger_event.as_str() {
            "A01" => (AdtEventType::Admit, true),
            "A02" => (AdtEventType::Transfer, true),
            "A03" => (AdtEventType::Discharge, true),
            "A04" => (AdtEventType::Register, true),
            "A08" => (AdtEventType::UpdatePatient, false),
            "A11" => (AdtEventType::CancelAdmit, true),
            "A13" => (AdtEventType::CancelDischarge, true),
            "A40" => (AdtEventType::MergePatient, false),
            _ => {
                return Err(Hl7Error::reject(
                    ErrorCode::UnsupportedEventCode,
                    "MSH-9.2",
                    "ADT triggers A01, A02, A03, A04, A08, A11, A13 and A40 are accepted",
                ));
            }
        };
        let pid = required_segment(message, "PID")?;
        let visit = message.segments("PV1").next();
        if needs_visit && visit.is_none() {
            return Err(missing_segment("PV1"));
        }
        if event_type == AdtEventType::MergePatient {
            required_segment(message, "MRG")?;
        }
        let separators = message.separators();
        let visit_field = |path: &str| visit.and_then(|pv1| pv1.get(path, separators));
        let event_time = match event_type {
            AdtEventType::Admit | AdtEventType::Register => visit_field("44").map(|v| (v, "PV1-44")),
            AdtEventType::Discharge => visit_field("45").map(|v| (v, "PV1-45")),
            _ => None,
        };
        let recorded_at = optional_timestamp(message.get("EVN-2"), "EVN-2")?.unwrap_or(sent_at);
        let occurred_at = match event_time {
            Some((value, location)) => timestamp(&value, location)?,
            None => optional_timestamp(message.get("EVN-6"), "EVN-6")?.unwrap_or(recorded_at),
        };
        let patient_class = visit_field("2").map(|class| match class.as_str() {
            "I" => PatientClass::Inpatient,
            "O" | "R" => PatientClass::Outpatient,
            "E" => PatientClass::Emergency,
            "D" => PatientClass::DayCase,
            _ => PatientClass::Other,
        });
        let patient = self.patient(pid)?;
        let treatment_function_code = visit_field("10").and_then(|code| self.treatment_function(&code));
        Ok(ClinicalEvent::Adt(AdtEvent {
            provenance: provenance(header, occurred_at, recorded_at, 0),
            patient,
            event_type,
            patient_class,
            location_code: visit_field("3.1"),
            treatment_function_code,
        }))
    }

    /// PV1-10 as a national treatment function code: as sent when it is one, else through the
    /// sender's table; else `None`, with a warning.
    fn treatment_function(&mut self, code: &str) -> Option<String> {
        if is_treatment_function_code(code) {
            return Some(code.to_owned());
        }
        if let Some(national) = self.codes.treatment_function(&self.header.sender(), code) {
            return Some(national.to_owned());
        }
        self.warn(
            "PV1-10",
            ErrorCode::TableValueNotFound,
            "not a treatment function code and not in the sender's local code table: left out",
        );
        None
    }

    fn warn(&mut self, location: &'static str, code: ErrorCode, message: &'static str) {
        self.warnings.push(FieldWarning { location, code, message });
    }

    fn observations(&mut self, sent_at: DateTime<Utc>) -> Result<Vec<ClinicalEvent>, Hl7Error> {
        let (message, header) = (self.message, self.header);
        let patient = self.patient(required_segment(message, "PID")?)?;
        let separators = message.separators();
        let mut events = Vec::new();
        let mut order_time = None;
        let mut reported_at = None;
        let segments = message.all_segments();
        for (position, segment) in segments.iter().enumerate() {
            match segment.name() {
                "OBR" => {
                    order_time = optional_timestamp(segment.get("7", separators), "OBR-7")?;
                    reported_at = optional_timestamp(segment.get("22", separators), "OBR-22")?;
                }
                "OBX" => {
                    let notes: Vec<String> = segments[position + 1..]
                        .iter()
                        .take_while(|s| s.name() == "NTE")
                        .filter_map(|nte| nte.get("3", separators))
                        .collect();
                    let occurred_at = match optional_timestamp(segment.get("14", separators), "OBX-14")? {
                        Some(at) => at,
                        None => order_time.unwrap_or(sent_at),
                    };
                    let recorded_at = reported_at.unwrap_or(sent_at).max(occurred_at);
                    let index = events.len();
                    let ((value, value_decimal), text) = result_value(segment, message)?;
                    let comment = text.into_iter().chain(notes).collect::<Vec<_>>().join("\n");
                    let (code_system, code, display) = self.observation_code(segment)?;
                    events.push(ClinicalEvent::Observation(ObservationEvent {
                        provenance: provenance(header, occurred_at, recorded_at, index),
                        patient: patient.clone(),
                        code_system,
                        code,
                        display,
                        value,
                        unit: segment.get("6.1", separators),
                        comment: (!comment.is_empty()).then_some(comment),
                        interpretation: segment.get("8", separators).and_then(|flag| interpretation(&flag)),
                        value_decimal,
                        reference_range: reference_range(segment, message),
                        interpretation_codes: interpretation_codes(segment, message),
                    }));
                }
                _ => {}
            }
        }
        if events.is_empty() {
            return Err(missing_segment("OBX"));
        }
        Ok(events)
    }

    /// OBX-3 coded in LOINC or SNOMED CT: the primary coding, else the alternate (components 4-6),
    /// else the primary or alternate local code through the sender's table.
    fn observation_code(&self, obx: &Segment) -> Result<(ObservationCodeSystem, String, String), Hl7Error> {
        let separators = self.message.separators();
        let national = |system: &str| match system {
            "LN" => Some(ObservationCodeSystem::Loinc),
            "SCT" => Some(ObservationCodeSystem::SnomedCt),
            _ => None,
        };
        let codings = [("3.1", "3.2", "3.3"), ("3.4", "3.5", "3.6")];
        for (code, text, system) in codings {
            let Some(code_system) = obx.get(system, separators).as_deref().and_then(national) else { continue };
            let code = obx.get(code, separators).ok_or_else(|| required("OBX-3"))?;
            let display = obx.get(text, separators).unwrap_or_default();
            return Ok((code_system, code, display));
        }
        let sender = self.header.sender();
        for (code, ..) in codings {
            let Some(local) = obx.get(code, separators) else { continue };
            if let Some(mapped) = self.codes.observation(&sender, &local)
                && let Some(code_system) = national(&mapped.system)
            {
                return Ok((code_system, mapped.code.clone(), mapped.display.clone()));
            }
        }
        Err(Hl7Error::content(
            ErrorCode::TableValueNotFound,
            "OBX-3",
            "the observation must be coded in LOINC (LN) or SNOMED CT (SCT), or be in the sender's local code table",
        ))
    }
}

/// OBX-5 by OBX-2 value type: numeric types give a value; text types give a comment.
/// OBX-5 as a number (the double, and the exact decimal when the text fits one) or as text.
fn result_value(obx: &Segment, message: &Message) -> Result<(Number, Option<String>), Hl7Error> {
    let separators = message.separators();
    let value_type = obx.get("2", separators).unwrap_or_default();
    let status = obx.get("11", separators).unwrap_or_default();
    if status == "X" {
        return Ok(((None, None), None));
    }
    let number = |path: &str| -> Result<Number, Hl7Error> {
        match obx.get(path, separators) {
            None => Ok((None, None)),
            Some(text) => {
                let value = text.trim().parse::<f64>().map_err(|_| {
                    Hl7Error::content(ErrorCode::DataType, "OBX-5", "a numeric (NM/SN) result is not a number")
                })?;
                // The text exactly, when it is plain decimal text that fits; the double still
                // carries a value written with an exponent or more digits.
                Ok((Some(value), ResultDecimal::parse(text.trim())))
            }
        }
    };
    match value_type.as_str() {
        "NM" => Ok((number("5")?, None)),
        // Structured numeric: comparator ^ number ^ separator ^ number. Only a plain number is a
        // value; a comparison (`<^0.5`), range (`^2^-^5`) or ratio (`^1^:^128`) is kept as text.
        "SN" if obx.get("5.1", separators).is_none() && obx.get("5.3", separators).is_none() => {
            Ok((number("5.2")?, None))
        }
        "SN" => {
            let text: String = (1..=4).filter_map(|c| obx.get(&format!("5.{c}"), separators)).collect();
            Ok(((None, None), Some(text)))
        }
        _ => Ok(((None, None), obx.get("5", separators))),
    }
}

/// A numeric result: the double and, when the text is plain decimal text, the exact decimal.
type Number = (Option<f64>, Option<ResultDecimal>);

/// OBX-7 as a reference range: `3.5-5.3` gives both limits, `<5.0` or `<=5.0` an upper one,
/// `>60` or `>=60` a lower one; any other form keeps the text alone.
fn reference_range(obx: &Segment, message: &Message) -> Option<ReferenceRange> {
    let text = obx.get("7", message.separators())?.trim().to_owned();
    if text.is_empty() {
        return None;
    }
    let limit = |part: &str| ResultDecimal::parse(part.trim());
    let (low, high) = if let Some(rest) = text.strip_prefix("<=").or_else(|| text.strip_prefix('<')) {
        (None, limit(rest))
    } else if let Some(rest) = text.strip_prefix(">=").or_else(|| text.strip_prefix('>')) {
        (limit(rest), None)
    } else {
        // The separating hyphen is the first one after the first character, so a negative
        // lower limit (`-2-2`) still splits.
        match text.char_indices().skip(1).find(|(_, c)| *c == '-') {
            Some((at, _)) => match (limit(&text[..at]), limit(&text[at + 1..])) {
                (Some(low), Some(high)) => (Some(low), Some(high)),
                _ => (None, None),
            },
            None => (None, None),
        }
    };
    Some(ReferenceRange { low, high, text: Some(text) })
}

/// Every OBX-8 interpretation code, in order; `None` when there is none.
fn interpretation_codes(obx: &Segment, message: &Message) -> Option<Vec<String>> {
    let codes: Vec<String> = obx
        .repetitions("8", message.separators())
        .into_iter()
        .flatten()
        .map(|code| code.trim().to_owned())
        .filter(|code| !code.is_empty())
        .collect();
    (!codes.is_empty()).then_some(codes)
}

fn interpretation(flag: &str) -> Option<Interpretation> {
    Some(match flag {
        "N" => Interpretation::Normal,
        "L" => Interpretation::Low,
        "H" => Interpretation::High,
        "LL" => Interpretation::CriticallyLow,
        "HH" => Interpretation::CriticallyHigh,
        "A" | "AA" => Interpretation::Abnormal,
        _ => return None,
    })
}

impl Mapping<'_> {
    /// The patient of PID. An NHS number alone identifies the patient (GP systems, laboratories
    /// and many PAS feeds send nothing else in PID-3); without it, another identifier must be there.
    fn patient(&mut self, pid: &Segment) -> Result<PatientIdentity, Hl7Error> {
        let separators = self.message.separators();
        let ids = pid.repetitions("3.1", separators);
        let authorities = pid.repetitions("3.4", separators);
        let types = pid.repetitions("3.5", separators);
        let mut nhs_number = None;
        let mut local = None;
        let mut local_is_record_number = false;
        for (index, id) in ids.iter().enumerate() {
            let Some(id) = id else { continue };
            let kind = types.get(index).cloned().flatten().unwrap_or_default();
            let authority = authorities.get(index).cloned().flatten().unwrap_or_default();
            if kind == "NH" || authority == "NHS" {
                let parsed = NhsNumber::parse(id).map_err(|e| {
                    Hl7Error::content(ErrorCode::DataType, "PID-3", format!("the NHS number is not valid: {e}"))
                })?;
                nhs_number = Some(parsed);
            } else {
                // The first medical record (MR) or patient internal (PI) identifier wins; any other
                // identifier only stands in until one appears.
                let is_record_number = matches!(kind.as_str(), "MR" | "PI");
                if local.is_none() || (is_record_number && !local_is_record_number) {
                    local = Some(id.clone());
                    local_is_record_number = is_record_number;
                }
            }
        }
        let date_of_birth = match pid.get("7", separators) {
            Some(born) => Some(
                parse_date(&born)
                    .map_err(|e| Hl7Error::content(ErrorCode::DataType, "PID-7", format!("the date of birth {e}")))?,
            ),
            None => None,
        };
        if nhs_number.is_none() && local.is_none() {
            return Err(required("PID-3"));
        }
        let sex = match pid.get("8", separators).as_deref() {
            None => None,
            Some("F") => Some(AdministrativeSex::Female),
            Some("M") => Some(AdministrativeSex::Male),
            Some("O" | "A") => Some(AdministrativeSex::Other),
            Some("U" | "N") => Some(AdministrativeSex::Unknown),
            Some(_) => {
                self.warn("PID-8", ErrorCode::TableValueNotFound, "sex is not F, M, O, U, A or N: left out");
                None
            }
        };
        let postcode = pid.get("11.5", separators).filter(|postcode| {
            let uk = crate::clinical::validate::is_uk_postcode(postcode);
            if !uk {
                self.warn("PID-11.5", ErrorCode::DataType, "the postcode is not a UK postcode: left out");
            }
            uk
        });
        Ok(PatientIdentity {
            nhs_number,
            local_patient_id: local,
            family_name: pid.get("5.1", separators),
            given_name: pid.get("5.2", separators),
            date_of_birth,
            sex,
            postcode,
            address_line: pid.get("11.1", separators),
        })
    }
}

fn provenance(
    header: &MessageHeader,
    occurred_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    index: usize,
) -> Provenance {
    let position = index.to_string();
    Provenance {
        event_id: stable_event_id(&["hl7", &header.sender(), &header.control_id, &position]),
        occurred_at,
        recorded_at,
        source_organisation: header.source_organisation().0.to_owned(),
        source_system: header.sending_application.clone(),
    }
}

fn required_segment<'m>(message: &'m Message, name: &'static str) -> Result<&'m Segment, Hl7Error> {
    message.segments(name).next().ok_or_else(|| missing_segment(name))
}

fn missing_segment(name: &str) -> Hl7Error {
    Hl7Error::content(ErrorCode::SegmentSequence, name, format!("the {name} segment is required"))
}

fn required(location: &str) -> Hl7Error {
    Hl7Error::content(ErrorCode::RequiredFieldMissing, location, "is required")
}

fn timestamp(value: &str, location: &str) -> Result<DateTime<Utc>, Hl7Error> {
    if value.is_empty() {
        return Err(required(location));
    }
    parse_timestamp(value).map_err(|e| Hl7Error::content(ErrorCode::DataType, location, format!("the date/time {e}")))
}

fn optional_timestamp(value: Option<String>, location: &str) -> Result<Option<DateTime<Utc>>, Hl7Error> {
    value.map(|v| timestamp(&v, location)).transpose()
}

/// A rule broken by a mapped event, reported at the HL7 position the field came from.
fn from_validation(error: &ValidationError, header: &MessageHeader, index: usize) -> Hl7Error {
    let oru = header.message_type == "ORU";
    let location = match error.field.as_str() {
        "nhs_number" | "local_patient_id" => "PID-3",
        "family_name" | "given_name" => "PID-5",
        "date_of_birth" => "PID-7",
        "postcode" | "address_line" => "PID-11",
        "source_organisation" => header.source_organisation().1,
        "source_system" => "MSH-3",
        "location_code" => "PV1-3",
        "treatment_function_code" => "PV1-10",
        "occurred_at" if oru => "OBX-14",
        "occurred_at" | "recorded_at" => "EVN",
        "code" | "display" => "OBX-3",
        "value" => "OBX-5",
        "unit" => "OBX-6",
        "comment" => "NTE-3",
        "reference_range" => "OBX-7",
        "interpretation_codes" => "OBX-8",
        _ => "",
    };
    let code = match error.problem {
        Problem::Missing => ErrorCode::RequiredFieldMissing,
        Problem::NotAllowed(_) => ErrorCode::TableValueNotFound,
        _ => ErrorCode::DataType,
    };
    let which = if oru { format!(" (OBX {})", index + 1) } else { String::new() };
    Hl7Error::content(code, location, format!("{error}{which}"))
}

#[cfg(test)]
#[path = "map_tests.rs"]
mod tests;
