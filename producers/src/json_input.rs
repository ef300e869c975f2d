//! Reading JSON from outside without ever echoing it back: serde_json's own messages can quote
//! the input (`invalid type: string "…"`), so errors here carry the kind and position only.

/// The text of `bytes`, or why it is not UTF-8 (with the line and column where it stops being).
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|error| {
        let (line, column) = position(&bytes[..error.valid_up_to()]);
        format!("is not valid UTF-8 (line {line}, column {column})")
    })
}

/// What went wrong, and where, without any of the input.
pub(crate) fn describe(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match error.classify() {
        Category::Eof => "is not valid JSON: it ends before the JSON value does",
        Category::Syntax => "is not valid JSON",
        Category::Data | Category::Io => "could not be read as JSON",
    };
    format!("{what} (line {}, column {})", error.line(), error.column())
}

/// Line and column (both from 1, the column in bytes) of the byte after `before`.
fn position(before: &[u8]) -> (usize, usize) {
    let line = 1 + before.iter().filter(|b| **b == b'\n').count();
    let column = 1 + before.iter().rev().take_while(|b| **b != b'\n').count();
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_give_position_but_never_content() {
        let error = utf8(b"{\"name\":\n\"Zeb\xffedee\"}").unwrap_err();
        assert_eq!(error, "is not valid UTF-8 (line 2, column 5)");
        let error = serde_json::from_str::<serde_json::Value>("{\"name\": Zebedee}").unwrap_err();
        assert_eq!(describe(&error), "is not valid JSON (line 1, column 10)");
        let error = serde_json::from_str::<u32>("\"Zebedee\"").unwrap_err();
        assert!(error.to_string().contains("Zebedee"), "serde_json quotes input, hence this module");
        assert!(!describe(&error).contains("Zebedee"));
    }
}
