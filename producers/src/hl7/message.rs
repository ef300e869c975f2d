//! Parsing an HL7 v2 message: segments, fields, repetitions, components and subcomponents, with
//! escape sequences decoded and the character set of MSH-18 honoured (ASCII, UTF-8, ISO 8859-1).

/// Why a message cannot be parsed. No variant carries message content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The message does not start with an MSH segment.
    #[error("the message does not start with an MSH segment")]
    NoMsh,
    /// MSH-1 and MSH-2 do not define distinct separators.
    #[error("MSH does not define the field separator and encoding characters")]
    BadEncodingCharacters,
    /// MSH-18 names a character set this adapter does not read.
    #[error("unsupported character set in MSH-18 (supported: ASCII, UNICODE UTF-8, 8859/1)")]
    UnsupportedCharacterSet,
    /// The bytes are not valid in the declared character set.
    #[error("the message is not valid {0}")]
    InvalidEncoding(&'static str),
    /// A segment name is not three upper-case letters or digits.
    #[error("segment {0} has an invalid name")]
    BadSegmentName(usize),
}

/// The separators a message declares in MSH-1 and MSH-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Separators {
    /// Between fields (`|`).
    pub field: char,
    /// Between components (`^`).
    pub component: char,
    /// Between repetitions (`~`).
    pub repetition: char,
    /// Escape character (`\`).
    pub escape: char,
    /// Between subcomponents (`&`).
    pub subcomponent: char,
}

/// One segment: its name and raw fields (still escaped). `fields[0]` is the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    fields: Vec<String>,
}

/// A parsed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    separators: Separators,
    segments: Vec<Segment>,
}

impl Message {
    /// Parses a message (the bytes inside an MLLP frame).
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        if !bytes.starts_with(b"MSH") || bytes.len() < 8 {
            return Err(ParseError::NoMsh);
        }
        let separators = separators(&bytes[3..8])?;
        let text = decode(bytes, separators)?;
        let mut segments = Vec::new();
        for (index, line) in text.split(['\r', '\n']).filter(|l| !l.is_empty()).enumerate() {
            let mut fields: Vec<String> = line.split(separators.field).map(str::to_owned).collect();
            let name = &fields[0];
            if name.len() != 3 || !name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
                return Err(ParseError::BadSegmentName(index + 1));
            }
            if index == 0 {
                // MSH-1 is the field separator itself: make field numbers match the standard.
                fields.insert(1, separators.field.to_string());
            }
            segments.push(Segment { fields });
        }
        Ok(Message { separators, segments })
    }

    /// The separators in use.
    pub fn separators(&self) -> Separators {
        self.separators
    }

    /// Every segment with this name, in order.
    pub fn segments<'m>(&'m self, name: &'m str) -> impl Iterator<Item = &'m Segment> + 'm {
        self.segments.iter().filter(move |s| s.fields[0] == name)
    }

    /// Every segment, in order (e.g. to find the NTE segments that follow an OBX).
    pub fn all_segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Names of all segments, in order (e.g. for checking the message structure).
    pub fn segment_names(&self) -> Vec<&str> {
        self.segments.iter().map(|s| s.fields[0].as_str()).collect()
    }

    /// A value by path `SEG-field[.component[.subcomponent]]` of the first segment with that name
    /// and the first repetition, unescaped; `None` when absent or empty. E.g. `MSH-9.2`, `PID-3.1`.
    pub fn get(&self, path: &str) -> Option<String> {
        let (name, rest) = path.split_once('-')?;
        let segment = self.segments(name).next()?;
        segment.get(rest, self.separators)
    }
}

impl Segment {
    /// The segment's name (`MSH`, `PID`, `OBX`...).
    pub fn name(&self) -> &str {
        &self.fields[0]
    }

    /// A value of this segment by `field[.component[.subcomponent]]`, first repetition, unescaped.
    pub fn get(&self, path: &str, separators: Separators) -> Option<String> {
        self.repetitions(path, separators).into_iter().next().flatten()
    }

    /// Every repetition of a field position (`field[.component[.subcomponent]]`), unescaped.
    pub fn repetitions(&self, path: &str, separators: Separators) -> Vec<Option<String>> {
        let mut numbers = path.split('.').map(|n| n.parse::<usize>().ok());
        let Some(Some(field)) = numbers.next() else { return Vec::new() };
        let component = numbers.next().flatten().unwrap_or(1);
        let subcomponent = numbers.next().flatten().unwrap_or(1);
        let Some(raw) = self.fields.get(field) else { return Vec::new() };
        if self.fields[0] == "MSH" && field <= 2 {
            return vec![Some(raw.clone())];
        }
        raw.split(separators.repetition)
            .map(|repetition| {
                let value = repetition
                    .split(separators.component)
                    .nth(component.checked_sub(1)?)?
                    .split(separators.subcomponent)
                    .nth(subcomponent.checked_sub(1)?)?;
                let value = unescape(value, separators);
                (!value.is_empty() && value != "\"\"").then_some(value)
            })
            .collect()
    }
}

fn separators(declared: &[u8]) -> Result<Separators, ParseError> {
    let chars: Vec<char> = declared.iter().map(|b| char::from(*b)).collect();
    let [field, component, repetition, escape, subcomponent] = chars[..] else {
        return Err(ParseError::BadEncodingCharacters);
    };
    let all = [field, component, repetition, escape, subcomponent];
    let distinct = all.iter().enumerate().all(|(i, c)| !all[..i].contains(c));
    if !distinct || all.iter().any(|c| c.is_ascii_alphanumeric() || c.is_whitespace()) {
        return Err(ParseError::BadEncodingCharacters);
    }
    Ok(Separators { field, component, repetition, escape, subcomponent })
}

/// Decodes the message bytes in the character set MSH-18 declares (ASCII when it is empty).
fn decode(bytes: &[u8], separators: Separators) -> Result<String, ParseError> {
    // MSH itself is ASCII in every supported character set, so MSH-18 can be read from the bytes.
    let msh_end = bytes.iter().position(|b| matches!(b, b'\r' | b'\n')).unwrap_or(bytes.len());
    let msh: String = bytes[..msh_end].iter().map(|b| char::from(*b)).collect();
    // Split on the field separator: index 17 is MSH-18 because MSH-1 is the separator itself.
    let charset = msh.split(separators.field).nth(17).unwrap_or("").split(separators.repetition).next().unwrap_or("");
    match charset.trim() {
        "" | "ASCII" => {
            if bytes.is_ascii() {
                Ok(bytes.iter().map(|b| char::from(*b)).collect())
            } else {
                Err(ParseError::InvalidEncoding("ASCII (MSH-18 is empty or ASCII)"))
            }
        }
        "UNICODE UTF-8" => String::from_utf8(bytes.to_vec()).map_err(|_| ParseError::InvalidEncoding("UTF-8")),
        "8859/1" => Ok(bytes.iter().map(|b| char::from(*b)).collect()),
        _ => Err(ParseError::UnsupportedCharacterSet),
    }
}

/// Decodes HL7 escape sequences: \F\ \S\ \T\ \R\ \E\, \Xhh..\ (hex bytes, read as ISO 8859-1)
/// and the formatting sequence \.br\ (a line break). Other formatting sequences are dropped.
pub fn unescape(value: &str, separators: Separators) -> String {
    let escape = separators.escape;
    if !value.contains(escape) {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find(escape) {
        out.push_str(&rest[..start]);
        let after = &rest[start + escape.len_utf8()..];
        let Some(end) = after.find(escape) else {
            // An unterminated escape is kept as text.
            out.push_str(&rest[start..]);
            return out;
        };
        let sequence = &after[..end];
        match sequence {
            "F" => out.push(separators.field),
            "S" => out.push(separators.component),
            "T" => out.push(separators.subcomponent),
            "R" => out.push(separators.repetition),
            "E" => out.push(escape),
            ".br" => out.push('\n'),
            hex if hex.len() % 2 == 1 && hex.starts_with('X') && hex[1..].bytes().all(|b| b.is_ascii_hexdigit()) => {
                let digits = &hex.as_bytes()[1..];
                for pair in digits.chunks(2) {
                    let text = std::str::from_utf8(pair).expect("ASCII hex digits");
                    out.push(char::from(u8::from_str_radix(text, 16).expect("checked hex digits")));
                }
            }
            _ => {}
        }
        rest = &after[end + escape.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// Escapes text for use in a field (the inverse of [`unescape`] for the delimiter characters).
pub fn escape(value: &str, separators: Separators) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        let sequence = match c {
            c if c == separators.escape => "E",
            c if c == separators.field => "F",
            c if c == separators.component => "S",
            c if c == separators.subcomponent => "T",
            c if c == separators.repetition => "R",
            // Segment terminators, MLLP framing bytes and other controls: as hex escapes, so an
            // echoed value can never end a segment or a frame.
            c if c.is_ascii_control() => {
                out.push(separators.escape);
                out.push_str(&format!("X{:02X}", c as u32));
                out.push(separators.escape);
                continue;
            }
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push(separators.escape);
        out.push_str(sequence);
        out.push(separators.escape);
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// An ADT^A01 as a PAS would send it (synthetic patient, test-range NHS number).
    const ADT_A01: &str = "MSH|^~\\&|PAS|RR8|SLUICE|NHS|20260105093000||ADT^A01^ADT_A01|MSG00001|P|2.5.1|||AL|NE||UNICODE UTF-8\r\
EVN|A01|20260105093000\r\
PID|1||9990000018^^^NHS^NH~H1234567^^^RR8^MR||O\\S\\Brien^Zoë^^^Ms||19700314|F|||12 Church Lane^^Leeds^^LS6 2QT||||||||\r\
PV1|1|I|W12^^^RR8||||||300|||||||||V0001|||||||||||||||||||||||||20260105093000\r";

    #[test]
    fn adt_message_fields_components_repetitions_and_escapes() {
        let message = Message::parse(ADT_A01.as_bytes()).unwrap();
        assert_eq!(message.segment_names(), ["MSH", "EVN", "PID", "PV1"]);
        assert_eq!(message.get("MSH-1").as_deref(), Some("|"));
        assert_eq!(message.get("MSH-2").as_deref(), Some("^~\\&"));
        assert_eq!(message.get("MSH-9.1").as_deref(), Some("ADT"));
        assert_eq!(message.get("MSH-9.2").as_deref(), Some("A01"));
        assert_eq!(message.get("MSH-10").as_deref(), Some("MSG00001"));
        assert_eq!(message.get("MSH-18").as_deref(), Some("UNICODE UTF-8"));
        assert_eq!(message.get("PID-5.1").as_deref(), Some("O^Brien"), "\\S\\ is the component separator");
        assert_eq!(message.get("PID-5.2").as_deref(), Some("Zoë"), "UTF-8 per MSH-18");
        assert_eq!(message.get("PID-11.5").as_deref(), Some("LS6 2QT"));
        let pid = message.segments("PID").next().unwrap();
        let identifiers = pid.repetitions("3.1", message.separators());
        assert_eq!(identifiers, [Some("9990000018".to_owned()), Some("H1234567".to_owned())]);
        assert_eq!(pid.repetitions("3.5", message.separators())[1].as_deref(), Some("MR"));
        assert_eq!(message.get("PV1-3.1").as_deref(), Some("W12"));
        assert_eq!(message.get("PID-99"), None);
        assert_eq!(message.get("ZZZ-1"), None);
    }

    #[test]
    fn character_sets_follow_msh_18() {
        let latin1 = b"MSH|^~\\&|LIMS|RR8|||20260105||ORU^R01|1|P|2.5.1||||||8859/1\rPID|1||||M\xfcller\r";
        let message = Message::parse(latin1).unwrap();
        assert_eq!(message.get("PID-5").as_deref(), Some("Müller"));
        let undeclared = b"MSH|^~\\&|LIMS|RR8|||20260105||ORU^R01|1|P|2.5.1\rPID|1||||M\xfcller\r";
        assert_eq!(Message::parse(undeclared), Err(ParseError::InvalidEncoding("ASCII (MSH-18 is empty or ASCII)")));
        let bad_utf8 = b"MSH|^~\\&|LIMS|RR8|||20260105||ORU^R01|1|P|2.5.1||||||UNICODE UTF-8\rPID|1||||M\xfcller\r";
        assert_eq!(Message::parse(bad_utf8), Err(ParseError::InvalidEncoding("UTF-8")));
        let other = b"MSH|^~\\&|LIMS|RR8|||20260105||ORU^R01|1|P|2.5.1||||||ISO IR87\r";
        assert_eq!(Message::parse(other), Err(ParseError::UnsupportedCharacterSet));
    }

    #[test]
    fn malformed_messages_are_named_without_content() {
        assert_eq!(Message::parse(b"PID|1"), Err(ParseError::NoMsh));
        assert_eq!(Message::parse(b"MSH|^^\\&|x"), Err(ParseError::BadEncodingCharacters));
        assert_eq!(Message::parse(b"MSH|^~\\&|x\rpid|1\r"), Err(ParseError::BadSegmentName(2)));
        assert!(!ParseError::BadSegmentName(2).to_string().contains("pid"));
    }

    #[test]
    fn hex_and_formatting_escapes() {
        let separators = Message::parse(ADT_A01.as_bytes()).unwrap().separators();
        assert_eq!(unescape("line\\.br\\two", separators), "line\ntwo");
        assert_eq!(unescape("\\X4142\\C", separators), "ABC");
        assert_eq!(unescape("open \\F", separators), "open \\F", "unterminated escapes stay as text");
    }

    proptest! {
        #[test]
        fn escaping_round_trips(text in "(?s).{0,60}") {
            let separators = Message::parse(ADT_A01.as_bytes()).unwrap().separators();
            let escaped = escape(&text, separators);
            prop_assert!(!escaped.contains(['\r', '\n', '\u{b}', '\u{1c}']), "no terminator or framing byte survives");
            prop_assert_eq!(unescape(&escaped, separators), text);
        }

        #[test]
        fn arbitrary_bytes_never_panic(tail: Vec<u8>) {
            let mut bytes = b"MSH|^~\\&|".to_vec();
            bytes.extend_from_slice(&tail);
            if let Ok(message) = Message::parse(&bytes) {
                let _ = message.get("MSH-18");
                let _ = message.get("PID-3.1.1");
            }
        }
    }
}
