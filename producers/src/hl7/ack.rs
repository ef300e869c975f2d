//! HL7 v2 acknowledgements (original mode): the `ACK` that answers every message.
//!
//! * `AA` (application accept): every event of the message is stored in Kafka.
//! * `AE` (application error): the content is wrong (an invalid NHS number, a missing PID-3),
//!   or the message could not be stored right now (code 207): the sender should fix or resend.
//! * `AR` (application reject): the message as a whole is not one this interface takes (it
//!   cannot be parsed, or its type, trigger or version is unsupported).
//!
//! MSA-2 echoes the message's MSH-10. An error adds an ERR segment with the location (ERR-2),
//! the HL7 table 0357 code (ERR-3), severity (ERR-4) and a message for the sender's interface
//! team (ERR-8); for HL7 2.3 and 2.4, which predate those fields, ERR-1 carries the location and
//! code and MSA-3 the text. Messages never quote a value from the original message.

use chrono::{DateTime, Utc};

use super::map::{ErrorCode, FieldWarning, Hl7Error, MessageHeader};
use super::message::{Message, Separators, escape};

/// The separators every acknowledgement is written with.
const SEPARATORS: Separators =
    Separators { field: '|', component: '^', repetition: '~', escape: '\\', subcomponent: '&' };

/// The acknowledgement code of MSA-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCode {
    /// AA: stored.
    Accept,
    /// AE: content error, or not stored yet.
    Error,
    /// AR: the message is refused as a whole.
    Reject,
}

impl AckCode {
    /// `AA`, `AE` or `AR`.
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::Accept => "AA",
            AckCode::Error => "AE",
            AckCode::Reject => "AR",
        }
    }
}

/// What the acknowledgement echoes from the message it answers. Built from a parsed message, or
/// salvaged from the first line of one that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Acknowledged {
    /// MSH-3 of the original, which becomes MSH-5 of the ACK.
    pub sending_application: String,
    /// MSH-4 of the original, which becomes MSH-6 of the ACK.
    pub sending_facility: String,
    /// MSH-9.2, echoed in the ACK's MSH-9.2.
    pub trigger_event: String,
    /// MSH-10, echoed in MSA-2.
    pub control_id: String,
    /// MSH-11 (P, T, D), echoed.
    pub processing_id: String,
    /// MSH-12, echoed.
    pub version: String,
}

impl Acknowledged {
    /// The fields of a parsed message.
    pub fn from_message(message: &Message) -> Self {
        let header = MessageHeader::read(message);
        Acknowledged {
            sending_application: header.sending_application,
            sending_facility: header.sending_facility,
            trigger_event: header.trigger_event,
            control_id: header.control_id,
            processing_id: message.get("MSH-11.1").unwrap_or_default(),
            version: header.version,
        }
    }

    /// Best-effort fields of a message that could not be parsed, read from its first line as
    /// sent (without unescaping). Anything outside printable ASCII is dropped.
    pub fn salvage(bytes: &[u8]) -> Self {
        if !bytes.starts_with(b"MSH") || bytes.len() < 4 {
            return Acknowledged::default();
        }
        let separator = bytes[3];
        let line_end = bytes.iter().position(|b| matches!(b, b'\r' | b'\n')).unwrap_or(bytes.len());
        // Index n of the split is MSH-(n+1), since MSH-1 is the separator itself.
        let fields: Vec<&[u8]> = bytes[..line_end].split(|b| *b == separator).collect();
        let field = |n: usize, component: usize| -> String {
            let Some(raw) = fields.get(n - 1) else { return String::new() };
            let component_separator = bytes.get(4).copied().unwrap_or(b'^');
            let value = raw.split(|b| *b == component_separator).nth(component - 1).unwrap_or_default();
            value.iter().filter(|b| b.is_ascii_graphic() || **b == b' ').map(|b| char::from(*b)).collect()
        };
        Acknowledged {
            sending_application: field(3, 1),
            sending_facility: field(4, 1),
            trigger_event: field(9, 2),
            control_id: field(10, 1),
            processing_id: field(11, 1),
            version: field(12, 1),
        }
    }
}

/// Who is acknowledging: the receiving application and facility of the sender's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiver {
    /// MSH-3 of every ACK, e.g. `SLUICE`.
    pub application: String,
    /// MSH-4 of every ACK, e.g. the ODS code of the organisation running sluice.
    pub facility: String,
}

/// Writes the acknowledgement of `original`: AA when `outcome` is `Ok`, with an ERR segment of
/// severity W for each field left out of the events, else AE or AR with an ERR segment.
/// `control_id` is this ACK's own MSH-10.
pub fn acknowledgement(
    receiver: &Receiver,
    original: &Acknowledged,
    outcome: Result<&[FieldWarning], &Hl7Error>,
    control_id: &str,
    now: DateTime<Utc>,
) -> Vec<u8> {
    let text = |value: &str| escape(value, SEPARATORS);
    let version = if original.version.is_empty() { "2.5.1" } else { original.version.as_str() };
    let processing_id = if original.processing_id.is_empty() { "P" } else { original.processing_id.as_str() };
    let trigger =
        if original.trigger_event.is_empty() { String::new() } else { format!("^{}", text(&original.trigger_event)) };
    let code = match outcome {
        Ok(_) => AckCode::Accept,
        Err(error) if error.reject => AckCode::Reject,
        Err(_) => AckCode::Error,
    };
    let legacy_err = is_before_2_5(version);
    let msa_text = match outcome {
        Err(error) if legacy_err => format!("|{}", text(&error.message)),
        _ => String::new(),
    };
    let mut segments = vec![
        format!(
            "MSH|^~\\&|{}|{}|{}|{}|{}||ACK{trigger}^ACK|{}|{}|{}",
            text(&receiver.application),
            text(&receiver.facility),
            text(&original.sending_application),
            text(&original.sending_facility),
            now.format("%Y%m%d%H%M%S+0000"),
            text(control_id),
            text(processing_id),
            text(version),
        ),
        format!("MSA|{}|{}{msa_text}", code.as_str(), text(&original.control_id)),
    ];
    let problems: Vec<(&str, ErrorCode, &str, &str)> = match outcome {
        Ok(warnings) => warnings.iter().map(|w| (w.location, w.code, "W", w.message)).collect(),
        Err(error) => vec![(error.location.as_str(), error.code, "E", error.message.as_str())],
    };
    for (location, code, severity, message) in problems {
        let location = error_location(location);
        segments.push(if legacy_err {
            // HL7 2.3/2.4 ERR-1: segment^sequence^field^code&text&table (no severity).
            let code = format!("{}&{}&HL70357", code as u16, code.text());
            let mut parts: Vec<&str> = location.split('^').take(3).collect();
            parts.resize(3, "");
            format!("ERR|{}^{code}", parts.join("^"))
        } else {
            let code = format!("{}^{}^HL70357", code as u16, code.text());
            format!("ERR||{location}|{code}|{severity}||||{}", text(message))
        });
    }
    if !segments.iter().all(|segment| segment.is_ascii()) {
        // Echoed names or ids outside ASCII: declare the character set they are written in.
        segments[0].push_str("||||||UNICODE UTF-8");
    }
    let mut bytes = segments.join("\r").into_bytes();
    bytes.push(b'\r');
    bytes
}

/// `2.3`, `2.3.1` and `2.4` use ERR-1 and MSA-3 rather than ERR-2/3/4/8.
fn is_before_2_5(version: &str) -> bool {
    version.starts_with("2.3") || version.starts_with("2.4")
}

/// ERR-2 for a location such as `PID-3`, `MSH-9.2` or `OBX`: segment^sequence^field^repetition^component.
fn error_location(location: &str) -> String {
    let (segment, path) = location.split_once('-').unwrap_or((location, ""));
    if segment.is_empty() {
        return String::new();
    }
    let mut numbers = path.split('.').filter(|n| !n.is_empty());
    match (numbers.next(), numbers.next()) {
        (None, _) => format!("{segment}^1"),
        (Some(field), None) => format!("{segment}^1^{field}"),
        (Some(field), Some(component)) => format!("{segment}^1^{field}^1^{component}"),
    }
}

/// The error of a message that could not be stored in Kafka: AE with code 207, so the sender
/// keeps the message and sends it again.
pub fn not_stored() -> Hl7Error {
    Hl7Error {
        reject: false,
        code: ErrorCode::ApplicationInternal,
        location: String::new(),
        message: "the message could not be stored; please send it again".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver() -> Receiver {
        Receiver { application: "SLUICE".into(), facility: "X26".into() }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-05T09:30:01Z").unwrap().with_timezone(&Utc)
    }

    const A01: &[u8] =
        b"MSH|^~\\&|PAS|RR8|SLUICE|X26|20260105093000||ADT^A01^ADT_A01|MSG00001|P|2.5.1\rEVN|A01|20260105093000\r";

    /// Found by the `hl7_mapping` fuzz target: a hex escape in MSH-12 decoded to a carriage
    /// return, which the ACK echoed raw, ending its MSH segment early.
    #[test]
    fn echoed_values_holding_segment_terminators_stay_inside_their_field() {
        let message =
            Message::parse(b"MSH|^~\\&|PAS|RR8|SLUICE|X26|20260105093000||ADT^A01|M\\X0d\\1|P|2\\X0D\\5\r").unwrap();
        let original = Acknowledged::from_message(&message);
        let error = crate::hl7::map::map_message(&message, now(), &Default::default()).unwrap_err();
        let ack = acknowledgement(&receiver(), &original, Err(&error), "A1", now());
        let parsed = Message::parse(&ack).expect("the ACK parses");
        assert_eq!(parsed.segment_names(), ["MSH", "MSA", "ERR"]);
        assert_eq!(parsed.get("MSA-2").as_deref(), Some("M\r1"));
    }

    #[test]
    fn accept_echoes_the_control_id_and_swaps_sender_and_receiver() {
        let original = Acknowledged::from_message(&Message::parse(A01).unwrap());
        let ack = acknowledgement(&receiver(), &original, Ok(&[]), "ACK0001", now());
        let text = String::from_utf8(ack).unwrap();
        assert_eq!(
            text,
            "MSH|^~\\&|SLUICE|X26|PAS|RR8|20260105093001+0000||ACK^A01^ACK|ACK0001|P|2.5.1\rMSA|AA|MSG00001\r"
        );
        let parsed = Message::parse(text.as_bytes()).unwrap();
        assert_eq!(parsed.get("MSA-2").as_deref(), Some("MSG00001"));
    }

    #[test]
    fn errors_carry_an_err_segment_with_location_code_and_text() {
        let original = Acknowledged::from_message(&Message::parse(A01).unwrap());
        let error = Hl7Error {
            reject: false,
            code: ErrorCode::DataType,
            location: "PID-3".into(),
            message: "the NHS number is not valid".into(),
        };
        let ack = acknowledgement(&receiver(), &original, Err(&error), "ACK0002", now());
        let parsed = Message::parse(&ack).unwrap();
        assert_eq!(parsed.get("MSA-1").as_deref(), Some("AE"));
        assert_eq!(parsed.get("MSA-2").as_deref(), Some("MSG00001"));
        assert_eq!(parsed.get("ERR-2").as_deref(), Some("PID"));
        assert_eq!(parsed.get("ERR-2.3").as_deref(), Some("3"));
        assert_eq!(parsed.get("ERR-3.1").as_deref(), Some("102"));
        assert_eq!(parsed.get("ERR-3.3").as_deref(), Some("HL70357"));
        assert_eq!(parsed.get("ERR-4").as_deref(), Some("E"));
        assert_eq!(parsed.get("ERR-8").as_deref(), Some("the NHS number is not valid"));

        let reject = Hl7Error {
            reject: true,
            code: ErrorCode::UnsupportedMessageType,
            location: "MSH-9.1".into(),
            message: "no".into(),
        };
        let parsed = Message::parse(&acknowledgement(&receiver(), &original, Err(&reject), "A3", now())).unwrap();
        assert_eq!(parsed.get("MSA-1").as_deref(), Some("AR"));
        assert_eq!(parsed.get("ERR-2.5").as_deref(), Some("1"));
        assert_eq!(parsed.get("ERR-3.1").as_deref(), Some("200"));
    }

    #[test]
    fn hl7_2_3_gets_err_1_and_msa_3() {
        let message = b"MSH|^~\\&|LIMS|RR8|||20260105||ORU^R01|77|P|2.3\r";
        let original = Acknowledged::from_message(&Message::parse(message).unwrap());
        let parsed = Message::parse(&acknowledgement(&receiver(), &original, Err(&not_stored()), "A4", now())).unwrap();
        assert_eq!(parsed.get("MSA-1").as_deref(), Some("AE"));
        assert_eq!(parsed.get("MSA-3").as_deref(), Some("the message could not be stored; please send it again"));
        assert_eq!(parsed.get("ERR-1.4.1").as_deref(), Some("207"));
        assert_eq!(parsed.get("MSH-12").as_deref(), Some("2.3"));
    }

    #[test]
    fn an_ack_echoing_text_outside_ascii_declares_utf_8() {
        let message = "MSH|^~\\&|Ŵales PAS|RR8|||20260105||ADT^A08|Ω1|P|2.5.1||||||UNICODE UTF-8\rEVN|A08\r";
        let original = Acknowledged::from_message(&Message::parse(message.as_bytes()).unwrap());
        let parsed = Message::parse(&acknowledgement(&receiver(), &original, Ok(&[]), "A7", now())).unwrap();
        assert_eq!(parsed.get("MSH-18").as_deref(), Some("UNICODE UTF-8"));
        assert_eq!(parsed.get("MSA-2").as_deref(), Some("Ω1"));
        assert_eq!(parsed.get("MSH-5").as_deref(), Some("Ŵales PAS"));
        let plain = acknowledgement(&receiver(), &Acknowledged::default(), Ok(&[]), "A8", now());
        assert!(Message::parse(&plain).unwrap().get("MSH-18").is_none(), "ASCII ACKs stay undeclared");
    }

    #[test]
    fn unparseable_messages_are_salvaged_and_values_escaped() {
        let broken = b"MSH|^~\\&|PAS|RR8|||20260105||ADT^A01|C1|P|2.5.1\rpid|bad\r";
        assert!(Message::parse(broken).is_err());
        let original = Acknowledged::salvage(broken);
        assert_eq!(original.control_id, "C1");
        assert_eq!(original.trigger_event, "A01");
        let nothing = Acknowledged::salvage(b"\x00\x01garbage");
        assert_eq!(nothing, Acknowledged::default());
        let ack = acknowledgement(&receiver(), &nothing, Err(&not_stored()), "A5", now());
        let parsed = Message::parse(&ack).unwrap();
        assert_eq!(parsed.get("MSA-2"), None);
        assert_eq!(parsed.get("MSH-9.1").as_deref(), Some("ACK"));
        let odd = Acknowledged { control_id: "A|B^C".into(), ..Acknowledged::default() };
        let parsed = Message::parse(&acknowledgement(&receiver(), &odd, Ok(&[]), "A6", now())).unwrap();
        assert_eq!(parsed.get("MSA-2").as_deref(), Some("A|B^C"));
    }
}
