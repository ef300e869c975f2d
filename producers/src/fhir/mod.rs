//! FHIR R4: mapping JSON resources and Bundles, as a FHIR server receives them, to typed
//! [`ClinicalEvent`](crate::clinical::ClinicalEvent)s.
//!
//! This module is pure and synchronous: no HTTP, no Kafka. The HTTP server parses the request
//! body as JSON and calls [`map_request`] with the resource type of the endpoint it was POSTed
//! to (`Some("Observation")` for `POST /Observation`, `None` for the base URL, where Bundles
//! go). It gets back either a [`FhirError`] for the request as a whole, or a [`Mapped`] with one
//! [`EntryOutcome`] per resource: the resource's type, its source reference and either its
//! events (already [`ValidEvent`]s, by [`ClinicalEvent::validate`](crate::clinical::ClinicalEvent::validate)) or why it was refused. The server
//! answers with [`operation_outcome`], [`information_outcome`] or [`bundle_response`].
//!
//! ```
//! use chrono::Utc;
//! use serde_json::json;
//! use sluice_producers::fhir::{FhirDefaults, Mapped, map_request};
//!
//! let defaults = FhirDefaults { organisation: Some("RR8".into()), source_system: "EPR".into() };
//! let observation = json!({
//!     "resourceType": "Observation",
//!     "id": "obs-1",
//!     "status": "final",
//!     "code": { "coding": [{ "system": "http://loinc.org", "code": "8867-4", "display": "Heart rate" }] },
//!     "subject": { "identifier": { "system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018" } },
//!     "effectiveDateTime": "2026-03-15T09:30:00Z",
//!     "valueQuantity": { "value": 72, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min" }
//! });
//! let received_at = "2026-03-15T10:00:00Z".parse().unwrap();
//! let Ok(Mapped::Single(outcome)) = map_request(&observation, Some("Observation"), &defaults, received_at) else {
//!     panic!("an Observation maps to one outcome");
//! };
//! assert_eq!(outcome.reference, "Observation/obs-1");
//! assert_eq!(outcome.result.unwrap().len(), 1);
//! ```
//!
//! # Requests
//!
//! * The body must be a JSON object with a `resourceType` (else 400 `structure`). A resource
//!   POSTed to a type endpoint must be of that type (else 400 `invalid`); any supported resource
//!   may also be POSTed to the base URL. Bundles are accepted at the base URL only.
//! * Supported: `Patient`, `Encounter`, `Observation`, `Condition`, `Consent`, and `Bundle` of
//!   type `batch` or `transaction` (other Bundle types and other resource types: 422
//!   `not-supported`). A Bundle holds at most [`MAX_BUNDLE_ENTRIES`] entries (else 422
//!   `processing`).
//! * Each `Bundle.entry[].resource` is mapped on its own into an [`EntryOutcome`]. Whether one
//!   refused entry fails a whole transaction is the server's decision: a
//!   [`Mapped::Transaction`] reports every entry. `entry.request` is not read.
//! * References are resolved inside the request: `#id` to a `contained` resource, else a Bundle
//!   entry by `fullUrl` (e.g. `urn:uuid:…`) or by `Type/id` (an absolute URL or `_history`
//!   suffix is reduced to its `Type/id`). Nothing is fetched from elsewhere.
//!
//! # Patients (UK Core)
//!
//! The NHS number is the identifier with system `https://fhir.nhs.uk/Id/nhs-number`; it must
//! pass the Modulus 11 check (else 422 `value`). ODS codes are identifiers with system
//! `https://fhir.nhs.uk/Id/ods-organization-code` or `https://fhir.nhs.uk/Id/ods-site-code`.
//!
//! The patient of a resource (`subject`, or `Consent.patient`) is the Patient its reference
//! resolves to; else the NHS number of the reference's logical `identifier`. A reference that
//! resolves to nothing and has no NHS number identifier is refused (422 `processing`); no
//! reference and no identifier at all is 422 `required`. When a reference resolves and also
//! carries an NHS number identifier, the two must agree.
//!
//! From a Patient resource: the NHS number (absent is allowed: an unidentified patient, whom
//! the consent checks downstream will withhold); the local patient id is the first other
//! identifier of type `MR`, else the first other identifier, else `Patient.id`, else the NHS
//! number; names from the first `official` name (else the first): `family`, and `given` joined
//! by spaces; `birthDate` (a year or month alone gives no date); `gender`; and `line[0]` and
//! `postalCode` of the first `home` address (else the first).
//!
//! # Mapping
//!
//! | Resource | Event | Mapping |
//! |---|---|---|
//! | `Patient` | `adt` UPDATE_PATIENT | demographics as above; occurred and recorded at `meta.lastUpdated`; organisation `managingOrganization.identifier` |
//! | `Encounter` | `adt` by `status` | `planned` REGISTER; `arrived`, `triaged`, `in-progress` ADMIT; `onleave` TRANSFER; `finished` DISCHARGE; `cancelled` CANCEL_ADMIT; `entered-in-error`, `unknown` or none refused. Occurred at `period.end` when finished, else `period.start`. `class.code`: IMP/ACUTE/NONAC inpatient, AMB/VR/HH outpatient, EMER emergency, SS day case, else other. Location `location[0].location.identifier.value`; treatment function the first three-digit `serviceType` code; organisation `serviceProvider.identifier` |
//! | `Observation` | `observation` | `status` final, amended, corrected or preliminary. Code: first LOINC (`http://loinc.org`) or SNOMED CT (`http://snomed.info/sct`) coding, display from the coding, else the code (never `code.text`, the sender's free text). Occurred at `effectiveDateTime`, `effectiveInstant` or `effectivePeriod.start` (required); recorded at `issued`. `valueQuantity.value`; unit the UCUM `code` (else `unit`); `valueString` and `note[].text` as the comment; first interpretation N, L, H, LL, HH or A; organisation the first `performer[].identifier` with an ODS code. `component`s are not mapped |
//! | `Condition` | `diagnosis` | Code: first ICD-10 (`http://hl7.org/fhir/sid/icd-10`, `…/icd-10-uk`) or SNOMED CT coding. `verificationStatus` `entered-in-error` or `refuted` refused. Occurred at `recordedDate`, else `onsetDateTime`; onset date from `onsetDateTime` or `onsetPeriod.start`; primary when an Encounter in the Bundle (or the Encounter in `Condition.encounter`) lists it in `diagnosis[]` with `rank` 1; organisation `recorder`, else `asserter` |
//! | `Consent` | `consent` | sluice's convention, below |
//!
//! Common to all: the event id is `stable_event_id(["fhir", type, id, meta.versionId])` for a
//! resource with an id, else derived from the SHA-256 of its JSON, so an identical resend maps
//! to the same id and a new version to a new one. `recorded_at` is `meta.lastUpdated` unless the
//! resource has its own (Observation `issued`, Consent `dateTime`), else `Condition.recordedDate`,
//! else the time of receipt; `occurred_at` falls back the same way. The source system is
//! `meta.source`, else [`FhirDefaults::source_system`]; the source organisation is the resource's
//! ODS code, else [`FhirDefaults::organisation`], else the resource is refused (422 `required`).
//!
//! Date/times follow FHIR: `YYYY-MM-DDThh:mm:ss[.fff]` with `Z` or `+hh:mm`. A date alone,
//! where an instant is needed, is read as midnight Europe/London; a time without an offset is
//! refused (422 `value`), as is a year or month alone where an event time is needed.
//!
//! # Consent: sluice's convention
//!
//! A FHIR Consent carries one decision about one scope for one patient:
//!
//! * **Scope**: exactly one `policy[].uri` among `urn:sluice:policy:national-data-opt-out`
//!   (National Data Opt-out), `urn:sluice:policy:type-1-opt-out` (Type 1 opt-out) and
//!   `urn:sluice:policy:study:<study id>` (one study; the id of ASCII letters, digits, `-`, `_`,
//!   `.`). None or several: 422 `code-invalid`.
//! * **Decision**: for `status` `active`, `provision.type` `deny` is an opt-out or dissent and
//!   `permit` a consent; for `status` `inactive` the decision is withdrawn, so the event records
//!   the opposite (a withdrawn opt-out permits again). Other statuses are not accepted.
//! * **Purposes**: `provision.purpose[]` codings, v3-ActReason `TREAT` (direct-care), `HOPERAT`
//!   (planning), `HRESCH` (research), or `urn:sluice:purpose` `direct-care`, `planning`,
//!   `research` or `study:<id>`. None means every purpose of the scope. Any other purpose is
//!   refused (422 `code-invalid`): an unrecognised purpose must never silently widen a decision.
//!   For the same reason a provision with nested provisions, actors, data, classes, codes or
//!   security labels is refused (422 `not-supported`).
//! * **Patient**: an NHS number is required (422 `required`): a consent change that cannot be
//!   tied to a patient is unusable.
//! * **Times**: effective at `provision.period.start`, else `dateTime` (one is required; up to
//!   a year ahead is accepted, and takes effect then); a time-limited decision ends at
//!   `provision.period.end`, which must be later (422 `value`); recorded at `dateTime`, else
//!   `meta.lastUpdated`. Organisation from `organization[]`.
//!
//! # Privacy of errors and references
//!
//! No error, diagnostics text or `Debug` output ever contains a value from the input: errors
//! name the FHIRPath element and the rule only (`Observation.subject: the NHS number is not
//! valid (check digit)`). A resource type is only quoted when it is a FHIR R4 type name. The
//! [`EntryOutcome::reference`] (for the `sluice.source.reference` header) is `<Type>/<id>`,
//! else `Bundle/<bundle id or ->/entry/<index>` in a Bundle, else `<Type>/-`; resource ids are
//! assumed opaque, and must be FHIR ids (1 to 64 letters, digits, `-`, `.`).

mod bundle;
mod consent;
pub mod outcome;
mod patient;
mod r4;
mod resources;
pub mod server;
mod values;

#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use outcome::{BundleKind, ResponseEntry, bundle_response, information_outcome, operation_outcome};

use crate::clinical::{Problem, ValidEvent, ValidationError};
use bundle::{BundleIndex, Context};
use resources::{Mapping, Origin};
use values::{Object, array, is_fhir_id, object, string};

/// Most entries accepted in one Bundle.
pub const MAX_BUNDLE_ENTRIES: usize = 10_000;

/// The resource types this adapter maps (besides `Bundle`).
pub const SUPPORTED: [&str; 5] = ["Patient", "Encounter", "Observation", "Condition", "Consent"];

/// Settings for values FHIR resources may not carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhirDefaults {
    /// ODS code of the organisation to record when a resource names none (e.g. the trust that
    /// runs the FHIR endpoint); `None` refuses such resources.
    pub organisation: Option<String>,
    /// The source system to record when a resource has no `meta.source`.
    pub source_system: String,
}

/// The FHIR `IssueType` codes this adapter reports (`OperationOutcome.issue.code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IssueType {
    /// `invalid`: the request does not fit the endpoint.
    Invalid,
    /// `structure`: not a JSON object, or an element of the wrong JSON type.
    Structure,
    /// `required`: a required element is missing.
    Required,
    /// `value`: an element's value breaks a rule (a check digit, a date/time format).
    Value,
    /// `code-invalid`: a code or code system this adapter does not accept.
    CodeInvalid,
    /// `not-supported`: a resource type, Bundle type or status this adapter does not map.
    NotSupported,
    /// `processing`: a reference that cannot be resolved, or a limit exceeded.
    Processing,
    /// `security`: the request did not authenticate.
    Security,
}

impl IssueType {
    /// The FHIR code.
    pub fn as_str(self) -> &'static str {
        match self {
            IssueType::Invalid => "invalid",
            IssueType::Structure => "structure",
            IssueType::Required => "required",
            IssueType::Value => "value",
            IssueType::CodeInvalid => "code-invalid",
            IssueType::NotSupported => "not-supported",
            IssueType::Processing => "processing",
            IssueType::Security => "security",
        }
    }
}

/// Why a resource (or request) is refused. Holds no value from the input: the expression is a
/// FHIRPath element and the diagnostics state the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{expression}: {diagnostics}")]
pub struct FhirError {
    /// HTTP status: 400 for a request that cannot be read, 422 for content that breaks a rule.
    pub status: u16,
    /// The issue type.
    pub code: IssueType,
    /// FHIRPath of the element at fault, e.g. `Observation.code`.
    pub expression: String,
    /// The rule broken, for the sender's interface team.
    pub diagnostics: String,
}

impl FhirError {
    /// An error; `expression` and `diagnostics` must not contain input values.
    pub fn new(status: u16, code: IssueType, expression: impl Into<String>, diagnostics: impl Into<String>) -> Self {
        FhirError { status, code, expression: expression.into(), diagnostics: diagnostics.into() }
    }

    /// The HTTP status line, e.g. `422 Unprocessable Entity`.
    pub fn status_line(&self) -> String {
        match self.status {
            400 => "400 Bad Request".to_owned(),
            422 => "422 Unprocessable Entity".to_owned(),
            status => status.to_string(),
        }
    }

    /// A 400 `structure` error.
    fn structure(expression: impl Into<String>, diagnostics: impl Into<String>) -> Self {
        FhirError::new(400, IssueType::Structure, expression, diagnostics)
    }

    /// A 422 error.
    fn unprocessable(code: IssueType, expression: impl Into<String>, diagnostics: impl Into<String>) -> Self {
        FhirError::new(422, code, expression, diagnostics)
    }
}

/// The outcome for one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryOutcome {
    /// The resource's type when it is a FHIR R4 type, else `Resource`.
    pub resource_type: String,
    /// The source reference, for the `sluice.source.reference` header (the server adds the
    /// `fhir:` prefix): `<Type>/<id>`, else `Bundle/<bundle id or ->/entry/<index>`, else
    /// `<Type>/-`. Never contains patient data.
    pub reference: String,
    /// The resource's events, all valid, or why it was refused.
    pub result: Result<Vec<ValidEvent>, FhirError>,
}

/// What a request maps to.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// One resource POSTed on its own.
    Single(EntryOutcome),
    /// A `batch` Bundle: one outcome per entry, in entry order.
    Batch {
        /// `Bundle.id`.
        bundle_id: Option<String>,
        /// The entries' outcomes.
        entries: Vec<EntryOutcome>,
    },
    /// A `transaction` Bundle: one outcome per entry, in entry order.
    Transaction {
        /// `Bundle.id`.
        bundle_id: Option<String>,
        /// The entries' outcomes.
        entries: Vec<EntryOutcome>,
    },
}

impl Mapped {
    /// Every outcome, in request order (one for a single resource).
    pub fn entries(&self) -> &[EntryOutcome] {
        match self {
            Mapped::Single(outcome) => std::slice::from_ref(outcome),
            Mapped::Batch { entries, .. } | Mapped::Transaction { entries, .. } => entries,
        }
    }
}

/// Maps a request body to events. `expected_type`: the resource type of the endpoint it was
/// POSTed to (`Some("Observation")` for `POST /Observation`), `None` for the base URL (where
/// Bundles go). `Err` refuses the request as a whole; a refused resource is an
/// [`EntryOutcome`] whose result is `Err`.
pub fn map_request(
    body: &Value,
    expected_type: Option<&str>,
    defaults: &FhirDefaults,
    received_at: DateTime<Utc>,
) -> Result<Mapped, FhirError> {
    let Some(resource) = body.as_object() else {
        return Err(FhirError::structure("Resource", "the body must be a JSON object (a FHIR resource)"));
    };
    let resource_type = match resource.get("resourceType") {
        Some(Value::String(kind)) if !kind.is_empty() => kind.as_str(),
        _ => return Err(FhirError::structure("Resource.resourceType", "a resource must have a resourceType")),
    };
    if let Some(expected) = expected_type {
        let expected = r4::quotable(expected);
        if resource_type == "Bundle" {
            return Err(FhirError::new(
                400,
                IssueType::Invalid,
                "Bundle",
                "a Bundle must be POSTed to the base URL, not to a resource type endpoint",
            ));
        }
        if resource_type != expected {
            return Err(FhirError::new(
                400,
                IssueType::Invalid,
                format!("{expected}.resourceType"),
                format!(
                    "this endpoint accepts {expected} resources only, and the body is a {} resource",
                    r4::quotable(resource_type)
                ),
            ));
        }
    }
    let context = Context { defaults, received_at, bundle: None, full_url: None };
    match resource_type {
        "Bundle" => map_bundle(resource, defaults, received_at),
        kind if SUPPORTED.contains(&kind) => Ok(Mapped::Single(map_entry(resource, format!("{kind}/-"), &context))),
        kind => Err(not_supported(kind)),
    }
}

fn not_supported(resource_type: &str) -> FhirError {
    let quoted = r4::quotable(resource_type);
    let diagnostics = if quoted == "Resource" {
        "the resourceType is not a FHIR R4 resource type".to_owned()
    } else {
        format!("{quoted} resources are not supported (Patient, Encounter, Observation, Condition, Consent are)")
    };
    FhirError::unprocessable(IssueType::NotSupported, quoted, diagnostics)
}

fn map_bundle(bundle: &Object, defaults: &FhirDefaults, received_at: DateTime<Utc>) -> Result<Mapped, FhirError> {
    let bundle_id = match string(bundle, "id", "Bundle")? {
        Some(id) if is_fhir_id(id) => Some(id.to_owned()),
        Some(_) => {
            return Err(FhirError::unprocessable(
                IssueType::Value,
                "Bundle.id",
                "an id has 1 to 64 ASCII letters, digits, '-' and '.'",
            ));
        }
        None => None,
    };
    let transaction = match string(bundle, "type", "Bundle")? {
        Some("batch") => false,
        Some("transaction") => true,
        Some(_) => {
            return Err(FhirError::unprocessable(
                IssueType::NotSupported,
                "Bundle.type",
                "only batch and transaction Bundles are accepted",
            ));
        }
        None => return Err(FhirError::structure("Bundle.type", "a Bundle must have a type")),
    };
    let entries = array(bundle, "entry", "Bundle")?;
    if entries.len() > MAX_BUNDLE_ENTRIES {
        return Err(FhirError::unprocessable(
            IssueType::Processing,
            "Bundle.entry",
            format!("a Bundle may hold at most {MAX_BUNDLE_ENTRIES} entries"),
        ));
    }
    /// An entry's `fullUrl` and `resource`, or why the entry cannot be read.
    type Entry<'a> = Result<(Option<&'a str>, Option<&'a Object>), FhirError>;
    let read: Vec<Entry<'_>> = entries
        .iter()
        .map(|entry| {
            let entry =
                entry.as_object().ok_or_else(|| FhirError::structure("Bundle.entry", "must be a JSON object"))?;
            Ok((string(entry, "fullUrl", "Bundle.entry")?, object(entry, "resource", "Bundle.entry")?))
        })
        .collect();
    let index = BundleIndex::new(
        read.iter()
            .filter_map(|entry| entry.as_ref().ok())
            .filter_map(|&(full_url, resource)| Some((full_url, resource?))),
    );
    let entry_reference = |position: usize| format!("Bundle/{}/entry/{position}", bundle_id.as_deref().unwrap_or("-"));
    let outcomes = read
        .iter()
        .enumerate()
        .map(|(position, entry)| match entry {
            Ok((full_url, Some(resource))) => {
                let context = Context { defaults, received_at, bundle: Some(&index), full_url: *full_url };
                map_entry(resource, entry_reference(position), &context)
            }
            Ok((_, None)) => EntryOutcome {
                resource_type: "Resource".to_owned(),
                reference: entry_reference(position),
                result: Err(FhirError::new(
                    400,
                    IssueType::Required,
                    "Bundle.entry.resource",
                    "every entry must carry a resource",
                )),
            },
            Err(error) => EntryOutcome {
                resource_type: "Resource".to_owned(),
                reference: entry_reference(position),
                result: Err(error.clone()),
            },
        })
        .collect();
    Ok(if transaction {
        Mapped::Transaction { bundle_id, entries: outcomes }
    } else {
        Mapped::Batch { bundle_id, entries: outcomes }
    })
}

/// One resource's outcome; `fallback_reference` is used when it has no usable type and id.
fn map_entry(resource: &Object, fallback_reference: String, context: &Context<'_>) -> EntryOutcome {
    let resource_type = resource.get("resourceType").and_then(Value::as_str);
    let known = resource_type.filter(|kind| r4::is_resource_type(kind));
    let id = resource.get("id").and_then(Value::as_str).filter(|id| is_fhir_id(id));
    let reference = match (known, id) {
        (Some(kind), Some(id)) => format!("{kind}/{id}"),
        _ => fallback_reference,
    };
    EntryOutcome {
        resource_type: known.unwrap_or("Resource").to_owned(),
        reference,
        result: map_resource(resource, resource_type, context),
    }
}

fn map_resource(
    resource: &Object,
    resource_type: Option<&str>,
    context: &Context<'_>,
) -> Result<Vec<ValidEvent>, FhirError> {
    let Some(resource_type) = resource_type.filter(|kind| !kind.is_empty()) else {
        return Err(FhirError::structure("Resource.resourceType", "a resource must have a resourceType"));
    };
    type Mapper = for<'r> fn(&'r Object, &Context<'r>) -> Result<Mapping, FhirError>;
    let mapper: Mapper = match resource_type {
        "Patient" => resources::patient,
        "Encounter" => resources::encounter,
        "Observation" => resources::observation,
        "Condition" => resources::condition,
        "Consent" => consent::consent,
        "Bundle" => {
            return Err(FhirError::unprocessable(
                IssueType::NotSupported,
                "Bundle.entry.resource",
                "a Bundle inside a Bundle is not supported",
            ));
        }
        other => return Err(not_supported(other)),
    };
    if let Some(id) = string(resource, "id", resource_type)?
        && !is_fhir_id(id)
    {
        return Err(FhirError::unprocessable(
            IssueType::Value,
            format!("{resource_type}.id"),
            "an id has 1 to 64 ASCII letters, digits, '-' and '.'",
        ));
    }
    let Mapping { event, origin } = mapper(resource, context)?;
    let event = event.validate(context.received_at).map_err(|error| from_validation(&error, &origin))?;
    Ok(vec![event])
}

/// A rule broken by a mapped event, reported at the FHIR element the field came from.
fn from_validation(error: &ValidationError, origin: &Origin) -> FhirError {
    let code = match error.problem {
        Problem::Missing => IssueType::Required,
        Problem::Code(_) => IssueType::CodeInvalid,
        _ => IssueType::Value,
    };
    FhirError::unprocessable(code, origin.element_of(&error.field), error.to_string())
}
