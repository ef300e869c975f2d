//! The JSON a FHIR server answers with: `OperationOutcome`s for errors and information, and the
//! `batch-response` / `transaction-response` Bundle for a Bundle request. Everything here is
//! built from [`FhirError`]s and the caller's own strings, so it carries no input values.

use serde_json::{Map, Value, json};

use super::FhirError;

/// An `OperationOutcome` with one error issue per error: `severity`, `code`, `diagnostics`
/// and `expression`. With no errors it still holds one (`processing`) issue, as FHIR requires.
pub fn operation_outcome(errors: &[&FhirError]) -> Value {
    let issues: Vec<Value> = if errors.is_empty() {
        vec![json!({
            "severity": "error",
            "code": "processing",
            "diagnostics": "the request could not be processed",
        })]
    } else {
        errors
            .iter()
            .map(|error| {
                json!({
                    "severity": "error",
                    "code": error.code.as_str(),
                    "diagnostics": error.diagnostics,
                    "expression": [error.expression],
                })
            })
            .collect()
    };
    json!({ "resourceType": "OperationOutcome", "issue": issues })
}

/// An `OperationOutcome` with one `information` issue carrying `message`.
pub fn information_outcome(message: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": "information", "code": "informational", "diagnostics": message }],
    })
}

/// Which response Bundle to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleKind {
    /// `batch-response`: the answer to a `batch` Bundle.
    BatchResponse,
    /// `transaction-response`: the answer to a `transaction` Bundle.
    TransactionResponse,
}

impl BundleKind {
    /// The `Bundle.type` code.
    pub fn as_str(self) -> &'static str {
        match self {
            BundleKind::BatchResponse => "batch-response",
            BundleKind::TransactionResponse => "transaction-response",
        }
    }
}

/// The response to one entry of a batch or transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseEntry {
    /// HTTP status line, e.g. `201 Created` or `422 Unprocessable Entity`.
    pub status: String,
    /// Where the created content can be found, if anywhere.
    pub location: Option<String>,
    /// An `OperationOutcome` explaining the status, if any.
    pub outcome: Option<Value>,
}

impl ResponseEntry {
    /// The response for an entry refused with `error`: its status line and an outcome.
    pub fn refused(error: &FhirError) -> Self {
        ResponseEntry { status: error.status_line(), location: None, outcome: Some(operation_outcome(&[error])) }
    }
}

/// A `batch-response` or `transaction-response` Bundle: `entry[i].response` answers entry `i`
/// of the request.
pub fn bundle_response(kind: BundleKind, entries: &[ResponseEntry]) -> Value {
    let entries: Vec<Value> = entries
        .iter()
        .map(|entry| {
            let mut response = Map::new();
            response.insert("status".to_owned(), Value::String(entry.status.clone()));
            if let Some(location) = &entry.location {
                response.insert("location".to_owned(), Value::String(location.clone()));
            }
            if let Some(outcome) = &entry.outcome {
                response.insert("outcome".to_owned(), outcome.clone());
            }
            json!({ "response": response })
        })
        .collect();
    json!({ "resourceType": "Bundle", "type": kind.as_str(), "entry": entries })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::IssueType;

    #[test]
    fn outcomes_have_the_fhir_shape() {
        let error = FhirError::new(422, IssueType::CodeInvalid, "Observation.code", "the code must be LOINC");
        let outcome = operation_outcome(&[&error]);
        assert_eq!(
            outcome,
            json!({
                "resourceType": "OperationOutcome",
                "issue": [{
                    "severity": "error",
                    "code": "code-invalid",
                    "diagnostics": "the code must be LOINC",
                    "expression": ["Observation.code"],
                }],
            })
        );
        assert_eq!(operation_outcome(&[])["issue"][0]["code"], "processing");
        let info = information_outcome("2 events accepted");
        assert_eq!(info["issue"][0]["severity"], "information");
        assert_eq!(info["issue"][0]["diagnostics"], "2 events accepted");
    }

    #[test]
    fn response_bundles_answer_each_entry() {
        let error = FhirError::new(400, IssueType::Structure, "Bundle.entry.resource", "every entry needs a resource");
        let entries = [
            ResponseEntry { status: "201 Created".into(), location: Some("Observation/obs-1".into()), outcome: None },
            ResponseEntry::refused(&error),
        ];
        let bundle = bundle_response(BundleKind::BatchResponse, &entries);
        assert_eq!(bundle["resourceType"], "Bundle");
        assert_eq!(bundle["type"], "batch-response");
        assert_eq!(bundle["entry"][0]["response"], json!({ "status": "201 Created", "location": "Observation/obs-1" }));
        assert_eq!(bundle["entry"][1]["response"]["status"], "400 Bad Request");
        assert_eq!(bundle["entry"][1]["response"]["outcome"]["issue"][0]["code"], "structure");
        let transaction = bundle_response(BundleKind::TransactionResponse, &[]);
        assert_eq!(transaction["type"], "transaction-response");
        assert_eq!(transaction["entry"], json!([]));
    }
}
