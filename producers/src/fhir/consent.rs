//! Mapping a Consent resource to a `consent` event, by sluice's convention (see the module
//! documentation of [`super`]). Everything this adapter cannot represent is refused rather than
//! ignored, so that no decision is silently widened.

use super::bundle::Context;
use super::patient;
use super::resources::{Mapping, Origin, meta, organisation};
use super::values::{Object, coding, instant_of, object, objects, ods_code, string};
use super::{FhirError, IssueType};
use crate::clinical::{ClinicalEvent, ConsentEvent, ConsentScope};

/// `Consent.policy.uri` of the National Data Opt-out.
pub(super) const NATIONAL_DATA_OPT_OUT: &str = "urn:sluice:policy:national-data-opt-out";
/// `Consent.policy.uri` of a Type 1 opt-out.
pub(super) const TYPE_1_OPT_OUT: &str = "urn:sluice:policy:type-1-opt-out";
/// Prefix of `Consent.policy.uri` for one study; the study id follows.
pub(super) const STUDY_PREFIX: &str = "urn:sluice:policy:study:";
/// HL7 v3 ActReason code system, for purposes of use.
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
/// sluice's own purpose code system: the purpose names of the consent store.
const SLUICE_PURPOSE: &str = "urn:sluice:purpose";

/// Provision elements that narrow a decision in ways the `consent` schema cannot carry.
const UNSUPPORTED_PROVISION_ELEMENTS: [&str; 7] =
    ["provision", "actor", "data", "dataPeriod", "class", "code", "securityLabel"];

/// The canonical study id of the text after `study:` in a URI or code, percent-decoded first
/// (`urn:sluice:policy:study:IRAS%20312456` is IRAS-312456); the error says what is accepted.
fn study_id(encoded: &str, at: &str) -> Result<sluice_schemas::StudyId, FhirError> {
    let refused = |reason: String| FhirError::unprocessable(IssueType::CodeInvalid, at, reason);
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut rest = encoded.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let hex = tail.get(..2).and_then(|h| std::str::from_utf8(h).ok());
            let decoded = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(decoded) = decoded else {
                return Err(refused("a study id has a '%' not followed by two hex digits".to_owned()));
            };
            bytes.push(decoded);
            rest = &tail[2..];
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    let text =
        String::from_utf8(bytes).map_err(|_| refused("a study id is not UTF-8 once percent-decoded".to_owned()))?;
    sluice_schemas::StudyId::parse(&text).map_err(|error| refused(format!("the study id {error}")))
}

/// A Consent: one `consent` event.
pub(super) fn consent<'a>(resource: &'a Object, context: &Context<'a>) -> Result<Mapping, FhirError> {
    const TYPE: &str = "Consent";
    let meta = meta(resource, TYPE, context.defaults)?;
    let withdrawn = match string(resource, "status", TYPE)? {
        Some("active") => false,
        Some("inactive") => true,
        Some(_) => {
            return Err(FhirError::unprocessable(
                IssueType::NotSupported,
                "Consent.status",
                "only active and inactive (withdrawn) consents are accepted",
            ));
        }
        None => return Err(FhirError::unprocessable(IssueType::Required, "Consent.status", "status is required")),
    };
    let scope = scope(resource)?;

    let provision = object(resource, "provision", TYPE)?;
    for key in UNSUPPORTED_PROVISION_ELEMENTS {
        if provision.and_then(|p| p.get(key)).is_some_and(|v| !v.is_null()) {
            return Err(FhirError::unprocessable(
                IssueType::NotSupported,
                format!("Consent.provision.{key}"),
                "a provision may only carry type, period, purpose and action",
            ));
        }
    }
    let denied = match provision.map(|p| string(p, "type", "Consent.provision")).transpose()?.flatten() {
        Some("deny") => true,
        Some("permit") => false,
        Some(_) => {
            return Err(FhirError::unprocessable(
                IssueType::CodeInvalid,
                "Consent.provision.type",
                "the provision type must be deny or permit",
            ));
        }
        None => {
            return Err(FhirError::unprocessable(
                IssueType::Required,
                "Consent.provision.type",
                "the decision (provision.type deny or permit) is required",
            ));
        }
    };
    // An inactive Consent withdraws its decision: a withdrawn deny permits again.
    let deny = denied != withdrawn;
    let purposes = match provision {
        Some(provision) => purposes(provision)?,
        None => Vec::new(),
    };

    let identity = patient::referenced(resource, TYPE, "patient", context)?;
    let nhs_number = identity.nhs_number.ok_or_else(|| {
        FhirError::unprocessable(
            IssueType::Required,
            "Consent.patient",
            "a consent change needs the patient's NHS number",
        )
    })?;

    let date_time = string(resource, "dateTime", TYPE)?.map(|at| instant_of(at, "Consent.dateTime")).transpose()?;
    let period = provision.map(|p| object(p, "period", "Consent.provision")).transpose()?.flatten();
    let period_bound = |name: &str, element: &'static str| match period {
        Some(period) => string(period, name, "Consent.provision.period")?.map(|at| instant_of(at, element)).transpose(),
        None => Ok(None),
    };
    let period_start = period_bound("start", "Consent.provision.period.start")?;
    // A time-limited consent or opt-out: from the end of its period it decides nothing.
    let effective_until = period_bound("end", "Consent.provision.period.end")?;
    let (effective_at, effective_element) = match (period_start, date_time) {
        (Some(at), _) => (at, "Consent.provision.period.start"),
        (None, Some(at)) => (at, "Consent.dateTime"),
        (None, None) => {
            return Err(FhirError::unprocessable(
                IssueType::Required,
                "Consent.provision.period.start",
                "when the decision takes effect (provision.period.start or dateTime) is required",
            ));
        }
    };
    if effective_until.is_some_and(|until| until <= effective_at) {
        return Err(FhirError::unprocessable(
            IssueType::Value,
            "Consent.provision.period.end",
            "the consent's period must end after it takes effect",
        ));
    }
    let (recorded_at, recorded_element) = match (date_time, meta.last_updated) {
        (Some(at), _) => (at, "Consent.dateTime"),
        (None, Some(at)) => (at, "Consent.meta.lastUpdated"),
        (None, None) => (context.received_at, "Consent.meta.lastUpdated"),
    };

    let element = "Consent.organization";
    let mut found = None;
    for reference in objects(resource, "organization", TYPE)? {
        found = ods_code(reference, element)?;
        if found.is_some() {
            break;
        }
    }
    let source_organisation = organisation(found, element, context.defaults)?;
    Ok(Mapping {
        event: ClinicalEvent::Consent(ConsentEvent {
            event_id: meta.event_id,
            effective_at,
            effective_until,
            recorded_at,
            source_organisation,
            nhs_number,
            scope,
            deny,
            purposes,
        }),
        origin: Origin {
            resource_type: TYPE,
            patient: Some("Consent.patient".to_owned()),
            occurred_at: effective_element.to_owned(),
            recorded_at: recorded_element.to_owned(),
            organisation: element.to_owned(),
        },
    })
}

/// The one recognised `Consent.policy[].uri`.
fn scope(resource: &Object) -> Result<ConsentScope, FhirError> {
    const AT: &str = "Consent.policy";
    let mut scopes: Vec<ConsentScope> = Vec::new();
    for policy in objects(resource, "policy", "Consent")? {
        let scope = match string(policy, "uri", AT)? {
            Some(NATIONAL_DATA_OPT_OUT) => ConsentScope::NationalDataOptOut,
            Some(TYPE_1_OPT_OUT) => ConsentScope::Type1OptOut,
            Some(uri) if uri.starts_with(STUDY_PREFIX) => {
                ConsentScope::Study(study_id(&uri[STUDY_PREFIX.len()..], AT)?.into_string())
            }
            _ => continue,
        };
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    match <[ConsentScope; 1]>::try_from(scopes) {
        Ok([scope]) => Ok(scope),
        Err(scopes) => Err(FhirError::unprocessable(
            IssueType::CodeInvalid,
            AT,
            if scopes.is_empty() {
                "no recognised policy: exactly one of urn:sluice:policy:national-data-opt-out, \
                 urn:sluice:policy:type-1-opt-out or urn:sluice:policy:study:<id> is required"
            } else {
                "more than one recognised policy: a Consent must be about exactly one opt-out or study"
            },
        )),
    }
}

/// The purposes of `provision.purpose[]`, as the consent store names them; an unrecognised
/// purpose is refused.
fn purposes(provision: &Object) -> Result<Vec<String>, FhirError> {
    const AT: &str = "Consent.provision.purpose";
    let mut purposes: Vec<String> = Vec::new();
    for item in objects(provision, "purpose", "Consent.provision")? {
        let purpose = coding(item, AT)?;
        let name = match (purpose.system, purpose.code) {
            (Some(ACT_REASON), Some("TREAT")) => "direct-care".to_owned(),
            (Some(ACT_REASON), Some("HOPERAT")) => "planning".to_owned(),
            (Some(ACT_REASON), Some("HRESCH")) => "research".to_owned(),
            (Some(SLUICE_PURPOSE), Some(code @ ("direct-care" | "planning" | "research"))) => code.to_owned(),
            (Some(SLUICE_PURPOSE), Some(code)) if code.starts_with("study:") => {
                format!("study:{}", study_id(&code["study:".len()..], AT)?)
            }
            _ => {
                return Err(FhirError::unprocessable(
                    IssueType::CodeInvalid,
                    AT,
                    "a purpose must be v3-ActReason TREAT, HOPERAT or HRESCH, or urn:sluice:purpose direct-care, \
                     planning, research or study:<id>",
                ));
            }
        };
        if !purposes.contains(&name) {
            purposes.push(name);
        }
    }
    Ok(purposes)
}
