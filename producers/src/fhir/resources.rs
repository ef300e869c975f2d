//! Mapping Patient, Encounter, Observation and Condition resources to events (Consent is in
//! [`super::consent`]), and what all of them share: event ids, `meta`, the source organisation.

use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::bundle::Context;
use super::patient;
use super::values::{
    Object, codings, instant_if_precise, instant_of, object, objects, ods_code, one_or_many, strict_instant, string,
};
use super::{FhirDefaults, FhirError, IssueType};
use crate::clinical::{
    AdtEvent, AdtEventType, ClinicalEvent, DiagnosisCodeSystem, DiagnosisEvent, Interpretation, ObservationCodeSystem,
    ObservationEvent, PatientClass, Provenance, ReferenceRange, ResultDecimal, stable_event_id,
};

/// One mapped event and the elements its fields came from, for reporting validation errors.
#[derive(Debug)]
pub(super) struct Mapping {
    /// The event, not yet validated.
    pub event: ClinicalEvent,
    /// Where its fields came from.
    pub origin: Origin,
}

/// The FHIRPath elements that supplied an event's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Origin {
    /// The resource type.
    pub resource_type: &'static str,
    /// The patient reference (`Observation.subject`), or `None` when the resource is the Patient.
    pub patient: Option<String>,
    /// Source of `occurred_at` (or `effective_at`).
    pub occurred_at: String,
    /// Source of `recorded_at`.
    pub recorded_at: String,
    /// Source of `source_organisation`.
    pub organisation: String,
}

impl Origin {
    /// The element a field of the mapped event came from.
    pub(super) fn element_of(&self, field: &str) -> String {
        let of = |element: &str| format!("{}.{element}", self.resource_type);
        let patient_field = |element: &str| match &self.patient {
            Some(reference) => reference.clone(),
            None => of(element),
        };
        match field {
            "nhs_number" | "local_patient_id" => patient_field("identifier"),
            "family_name" | "given_name" => patient_field("name"),
            "date_of_birth" => patient_field("birthDate"),
            "sex" => patient_field("gender"),
            "postcode" | "address_line" => patient_field("address"),
            "occurred_at" | "effective_at" => self.occurred_at.clone(),
            "recorded_at" => self.recorded_at.clone(),
            "source_organisation" => self.organisation.clone(),
            "source_system" => of("meta.source"),
            "code" | "display" => of("code"),
            "value" | "unit" => of("valueQuantity"),
            "comment" => of("note"),
            "interpretation" | "interpretation_codes" => of("interpretation"),
            "reference_range" => of("referenceRange"),
            "onset_date" => of("onset[x]"),
            "location_code" => of("location"),
            "treatment_function_code" => of("serviceType"),
            "study_id" | "scope" => of("policy"),
            "purposes" => of("provision.purpose"),
            _ => self.resource_type.to_owned(),
        }
    }
}

/// What every resource's `id` and `meta` give.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Meta {
    /// The stable event id.
    pub event_id: Uuid,
    /// `meta.lastUpdated`.
    pub last_updated: Option<DateTime<Utc>>,
    /// `meta.source`, else the configured source system.
    pub source_system: String,
}

/// Reads `id` and `meta`, and derives the event id: from type, id and `meta.versionId` when
/// the resource has an id, else from the SHA-256 of the resource's JSON.
pub(super) fn meta(resource: &Object, resource_type: &'static str, defaults: &FhirDefaults) -> Result<Meta, FhirError> {
    let id = string(resource, "id", resource_type)?;
    let meta_path = format!("{resource_type}.meta");
    let meta = object(resource, "meta", resource_type)?;
    let member = |key: &str| meta.map(|meta| string(meta, key, &meta_path)).transpose().map(Option::flatten);
    let version = member("versionId")?;
    let last_updated =
        member("lastUpdated")?.map(|at| strict_instant(at, &format!("{meta_path}.lastUpdated"))).transpose()?;
    let source_system = member("source")?.unwrap_or(&defaults.source_system).to_owned();
    let event_id = match id {
        Some(id) => stable_event_id(&["fhir", resource_type, id, version.unwrap_or("")]),
        None => {
            let json = serde_json::to_string(resource).unwrap_or_default();
            let digest = Sha256::digest(json.as_bytes());
            stable_event_id(&["fhir", resource_type, &format!("{digest:x}")])
        }
    };
    Ok(Meta { event_id, last_updated, source_system })
}

/// The resource's ODS code, else the configured default, else an error at `element`.
pub(super) fn organisation(found: Option<String>, element: &str, defaults: &FhirDefaults) -> Result<String, FhirError> {
    found.or_else(|| defaults.organisation.clone()).ok_or_else(|| {
        FhirError::unprocessable(
            IssueType::Required,
            element,
            "the recording organisation must be identified by ODS code (identifier system \
             https://fhir.nhs.uk/Id/ods-organization-code), and no default organisation is configured",
        )
    })
}

/// The ODS code of the first of `references` that has one.
fn first_ods<'a>(references: impl IntoIterator<Item = &'a Object>, path: &str) -> Result<Option<String>, FhirError> {
    for reference in references {
        if let Some(code) = ods_code(reference, path)? {
            return Ok(Some(code));
        }
    }
    Ok(None)
}

fn provenance(meta: &Meta, occurred_at: DateTime<Utc>, recorded_at: DateTime<Utc>, organisation: String) -> Provenance {
    Provenance {
        event_id: meta.event_id,
        occurred_at,
        recorded_at,
        source_organisation: organisation,
        source_system: meta.source_system.clone(),
    }
}

/// `meta.lastUpdated`, else the time of receipt, with the element named in errors.
fn last_updated_or_received(meta: &Meta, resource_type: &str, context: &Context<'_>) -> (DateTime<Utc>, String) {
    (meta.last_updated.unwrap_or(context.received_at), format!("{resource_type}.meta.lastUpdated"))
}

/// A Patient: an `adt` UPDATE_PATIENT event with the demographics as the source holds them.
pub(super) fn patient(resource: &Object, context: &Context<'_>) -> Result<Mapping, FhirError> {
    const TYPE: &str = "Patient";
    let meta = meta(resource, TYPE, context.defaults)?;
    let identity = patient::identity(resource)?;
    let (at, at_element) = last_updated_or_received(&meta, TYPE, context);
    let element = "Patient.managingOrganization";
    let found = first_ods(object(resource, "managingOrganization", TYPE)?, element)?;
    let organisation = organisation(found, element, context.defaults)?;
    Ok(Mapping {
        event: ClinicalEvent::Adt(AdtEvent {
            provenance: provenance(&meta, at, at, organisation),
            patient: identity,
            event_type: AdtEventType::UpdatePatient,
            patient_class: None,
            location_code: None,
            treatment_function_code: None,
        }),
        origin: Origin {
            resource_type: TYPE,
            patient: None,
            occurred_at: at_element.clone(),
            recorded_at: at_element,
            organisation: element.to_owned(),
        },
    })
}

/// An Encounter: an `adt` event whose type follows `Encounter.status`.
pub(super) fn encounter<'a>(resource: &'a Object, context: &Context<'a>) -> Result<Mapping, FhirError> {
    const TYPE: &str = "Encounter";
    let meta = meta(resource, TYPE, context.defaults)?;
    let status = string(resource, "status", TYPE)?;
    let event_type = match status {
        Some("planned") => AdtEventType::Register,
        Some("arrived" | "triaged" | "in-progress") => AdtEventType::Admit,
        Some("onleave") => AdtEventType::Transfer,
        Some("finished") => AdtEventType::Discharge,
        Some("cancelled") => AdtEventType::CancelAdmit,
        Some("entered-in-error") => {
            return Err(FhirError::unprocessable(
                IssueType::NotSupported,
                "Encounter.status",
                "an encounter entered in error is not published",
            ));
        }
        Some("unknown") => {
            return Err(FhirError::unprocessable(
                IssueType::Value,
                "Encounter.status",
                "an encounter of unknown status cannot be mapped to an ADT event",
            ));
        }
        Some(_) => {
            return Err(FhirError::unprocessable(
                IssueType::CodeInvalid,
                "Encounter.status",
                "status must be planned, arrived, triaged, in-progress, onleave, finished or cancelled",
            ));
        }
        None => {
            return Err(FhirError::unprocessable(IssueType::Required, "Encounter.status", "status is required"));
        }
    };
    let identity = patient::referenced(resource, TYPE, "subject", context)?;

    let period = object(resource, "period", TYPE)?;
    let bound = |key: &str| -> Result<Option<(DateTime<Utc>, String)>, FhirError> {
        let Some(value) = period.map(|p| string(p, key, "Encounter.period")).transpose()?.flatten() else {
            return Ok(None);
        };
        let element = format!("Encounter.period.{key}");
        Ok(Some((instant_of(value, &element)?, element)))
    };
    let (start, end) = (bound("start")?, bound("end")?);
    let happened = if event_type == AdtEventType::Discharge { end.or(start) } else { start };
    let (recorded_at, recorded_element) = last_updated_or_received(&meta, TYPE, context);
    let (occurred_at, occurred_element) = happened.unwrap_or_else(|| (recorded_at, recorded_element.clone()));

    let patient_class = match object(resource, "class", TYPE)? {
        Some(class) => string(class, "code", "Encounter.class")?.map(|code| match code {
            "IMP" | "ACUTE" | "NONAC" => PatientClass::Inpatient,
            "AMB" | "VR" | "HH" => PatientClass::Outpatient,
            "EMER" => PatientClass::Emergency,
            "SS" => PatientClass::DayCase,
            _ => PatientClass::Other,
        }),
        None => None,
    };
    let location_code = match objects(resource, "location", TYPE)?.first() {
        Some(location) => match object(location, "location", "Encounter.location")? {
            Some(reference) => match object(reference, "identifier", "Encounter.location.location")? {
                Some(identifier) => string(identifier, "value", "Encounter.location.location.identifier")?,
                None => None,
            },
            None => None,
        },
        None => None,
    }
    .map(str::to_owned);
    let mut treatment_function_code = None;
    for concept in one_or_many(resource, "serviceType", TYPE)? {
        let found = codings(concept, "Encounter.serviceType")?
            .into_iter()
            .filter_map(|coding| coding.code)
            .find(|code| code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()));
        if let Some(code) = found {
            treatment_function_code = Some(code.to_owned());
            break;
        }
    }

    let element = "Encounter.serviceProvider";
    let found = first_ods(object(resource, "serviceProvider", TYPE)?, element)?;
    let organisation = organisation(found, element, context.defaults)?;
    Ok(Mapping {
        event: ClinicalEvent::Adt(AdtEvent {
            provenance: provenance(&meta, occurred_at, recorded_at, organisation),
            patient: identity,
            event_type,
            patient_class,
            location_code,
            treatment_function_code,
        }),
        origin: Origin {
            resource_type: TYPE,
            patient: Some("Encounter.subject".to_owned()),
            occurred_at: occurred_element,
            recorded_at: recorded_element,
            organisation: element.to_owned(),
        },
    })
}

/// The first coding of `<type>.code` in one of `systems`, with its display: the coding's own
/// `display`, else the code itself. Never the concept's `text`: that is the sender's free text
/// (it may say anything about anyone), and a coding without a display is valid FHIR.
fn coded<S: Copy>(
    resource: &Object,
    resource_type: &str,
    systems: &[(&str, S)],
    accepted: &str,
) -> Result<(S, String, String), FhirError> {
    let path = format!("{resource_type}.code");
    let Some(concept) = object(resource, "code", resource_type)? else {
        return Err(FhirError::unprocessable(IssueType::Required, &path, "a code is required"));
    };
    let found = codings(concept, &path)?.into_iter().find_map(|coding| {
        let system = systems.iter().find(|(uri, _)| coding.system == Some(*uri))?.1;
        Some((system, coding.code?, coding.display))
    });
    let Some((system, code, display)) = found else {
        return Err(FhirError::unprocessable(
            IssueType::CodeInvalid,
            &path,
            format!("the code must have a coding in {accepted}"),
        ));
    };
    Ok((system, code.to_owned(), display.unwrap_or(code).to_owned()))
}

/// An Observation: one `observation` event.
pub(super) fn observation<'a>(resource: &'a Object, context: &Context<'a>) -> Result<Mapping, FhirError> {
    const TYPE: &str = "Observation";
    let meta = meta(resource, TYPE, context.defaults)?;
    match string(resource, "status", TYPE)? {
        Some("final" | "amended" | "corrected" | "preliminary") => {}
        Some(_) => {
            return Err(FhirError::unprocessable(
                IssueType::NotSupported,
                "Observation.status",
                "only final, amended, corrected and preliminary observations are accepted",
            ));
        }
        None => {
            return Err(FhirError::unprocessable(IssueType::Required, "Observation.status", "status is required"));
        }
    }
    let (code_system, code, display) = coded(
        resource,
        TYPE,
        &[
            ("http://loinc.org", ObservationCodeSystem::Loinc),
            ("http://snomed.info/sct", ObservationCodeSystem::SnomedCt),
        ],
        "LOINC (http://loinc.org) or SNOMED CT (http://snomed.info/sct)",
    )?;
    let identity = patient::referenced(resource, TYPE, "subject", context)?;

    let effective = if let Some(at) = string(resource, "effectiveDateTime", TYPE)? {
        Some((instant_of(at, "Observation.effectiveDateTime")?, "Observation.effectiveDateTime"))
    } else if let Some(at) = string(resource, "effectiveInstant", TYPE)? {
        Some((strict_instant(at, "Observation.effectiveInstant")?, "Observation.effectiveInstant"))
    } else {
        match object(resource, "effectivePeriod", TYPE)? {
            Some(period) => match string(period, "start", "Observation.effectivePeriod")? {
                Some(at) => {
                    Some((instant_of(at, "Observation.effectivePeriod.start")?, "Observation.effectivePeriod.start"))
                }
                None => None,
            },
            None => None,
        }
    };
    let Some((occurred_at, occurred_element)) = effective else {
        return Err(FhirError::unprocessable(
            IssueType::Required,
            "Observation.effective[x]",
            "when the observation was made (effectiveDateTime, effectiveInstant or effectivePeriod.start) is required",
        ));
    };
    let (recorded_at, recorded_element) = match string(resource, "issued", TYPE)? {
        Some(issued) => (strict_instant(issued, "Observation.issued")?, "Observation.issued".to_owned()),
        None => last_updated_or_received(&meta, TYPE, context),
    };

    let (value, value_decimal, unit) = match object(resource, "valueQuantity", TYPE)? {
        Some(quantity) => {
            const AT: &str = "Observation.valueQuantity";
            let value = quantity_value(quantity, "Observation.valueQuantity.value")?;
            let ucum = string(quantity, "system", AT)? == Some("http://unitsofmeasure.org");
            let code = if ucum { string(quantity, "code", AT)? } else { None };
            (
                value.map(|(x, _)| x),
                value.and_then(|(_, d)| d),
                code.or(string(quantity, "unit", AT)?).map(str::to_owned),
            )
        }
        None => (None, None, None),
    };
    let reference_range = match objects(resource, "referenceRange", TYPE)?.first() {
        Some(range) => {
            const AT: &str = "Observation.referenceRange";
            let limit = |name: &str| -> Result<Option<ResultDecimal>, FhirError> {
                match object(range, name, AT)? {
                    Some(quantity) => Ok(quantity_value(quantity, &format!("{AT}.{name}.value"))?.and_then(|(_, d)| d)),
                    None => Ok(None),
                }
            };
            let (low, high, text) = (limit("low")?, limit("high")?, string(range, "text", AT)?.map(str::to_owned));
            (low.is_some() || high.is_some() || text.is_some()).then_some(ReferenceRange { low, high, text })
        }
        None => None,
    };
    let mut comments: Vec<&str> = string(resource, "valueString", TYPE)?.into_iter().collect();
    for note in objects(resource, "note", TYPE)? {
        comments.extend(string(note, "text", "Observation.note")?);
    }
    let comment = (!comments.is_empty()).then(|| comments.join("\n"));
    let mut interpretation_codes = Vec::new();
    for concept in objects(resource, "interpretation", TYPE)? {
        interpretation_codes
            .extend(codings(concept, "Observation.interpretation")?.iter().filter_map(|c| c.code).map(str::to_owned));
    }
    let interpretation_codes = (!interpretation_codes.is_empty()).then_some(interpretation_codes);
    let mut interpretation = None;
    for concept in objects(resource, "interpretation", TYPE)? {
        interpretation = codings(concept, "Observation.interpretation")?.iter().find_map(|c| match c.code? {
            "N" => Some(Interpretation::Normal),
            "L" => Some(Interpretation::Low),
            "H" => Some(Interpretation::High),
            "LL" => Some(Interpretation::CriticallyLow),
            "HH" => Some(Interpretation::CriticallyHigh),
            "A" => Some(Interpretation::Abnormal),
            _ => None,
        });
        if interpretation.is_some() {
            break;
        }
    }

    let element = "Observation.performer";
    let found = first_ods(objects(resource, "performer", TYPE)?, element)?;
    let organisation = organisation(found, element, context.defaults)?;
    Ok(Mapping {
        event: ClinicalEvent::Observation(ObservationEvent {
            provenance: provenance(&meta, occurred_at, recorded_at, organisation),
            patient: identity,
            code_system,
            code,
            display,
            value,
            unit,
            comment,
            interpretation,
            value_decimal,
            reference_range,
            interpretation_codes,
        }),
        origin: Origin {
            resource_type: TYPE,
            patient: Some("Observation.subject".to_owned()),
            occurred_at: occurred_element.to_owned(),
            recorded_at: recorded_element,
            organisation: element.to_owned(),
        },
    })
}

/// A Condition: one `diagnosis` event.
pub(super) fn condition<'a>(resource: &'a Object, context: &Context<'a>) -> Result<Mapping, FhirError> {
    const TYPE: &str = "Condition";
    let meta = meta(resource, TYPE, context.defaults)?;
    if let Some(verification) = object(resource, "verificationStatus", TYPE)? {
        let refused = codings(verification, "Condition.verificationStatus")?
            .iter()
            .any(|c| matches!(c.code, Some("entered-in-error" | "refuted")));
        if refused {
            return Err(FhirError::unprocessable(
                IssueType::NotSupported,
                "Condition.verificationStatus",
                "a condition entered in error or refuted is not published",
            ));
        }
    }
    let (code_system, code, display) = coded(
        resource,
        TYPE,
        &[
            ("http://hl7.org/fhir/sid/icd-10", DiagnosisCodeSystem::Icd10),
            ("http://hl7.org/fhir/sid/icd-10-uk", DiagnosisCodeSystem::Icd10),
            ("http://snomed.info/sct", DiagnosisCodeSystem::SnomedCt),
        ],
        "ICD-10 (http://hl7.org/fhir/sid/icd-10 or http://hl7.org/fhir/sid/icd-10-uk) or SNOMED CT \
         (http://snomed.info/sct)",
    )?;
    let identity = patient::referenced(resource, TYPE, "subject", context)?;

    let recorded_date = match string(resource, "recordedDate", TYPE)? {
        Some(at) => instant_if_precise(at, "Condition.recordedDate")?,
        None => None,
    };
    let onset_text = match string(resource, "onsetDateTime", TYPE)? {
        Some(at) => Some((at, "Condition.onsetDateTime")),
        None => match object(resource, "onsetPeriod", TYPE)? {
            Some(period) => {
                string(period, "start", "Condition.onsetPeriod")?.map(|at| (at, "Condition.onsetPeriod.start"))
            }
            None => None,
        },
    };
    let onset_date = onset_text.map(|(at, element)| super::values::date_of(at, element)).transpose()?.flatten();
    let onset_instant = match string(resource, "onsetDateTime", TYPE)? {
        Some(at) => instant_if_precise(at, "Condition.onsetDateTime")?,
        None => None,
    };
    let (fallback, fallback_element) = last_updated_or_received(&meta, TYPE, context);
    let (occurred_at, occurred_element) = match (recorded_date, onset_instant) {
        (Some(at), _) => (at, "Condition.recordedDate".to_owned()),
        (None, Some(at)) => (at, "Condition.onsetDateTime".to_owned()),
        (None, None) => (fallback, fallback_element.clone()),
    };
    let (recorded_at, recorded_element) = match (meta.last_updated, recorded_date) {
        (Some(at), _) => (at, fallback_element),
        (None, Some(at)) => (at, "Condition.recordedDate".to_owned()),
        (None, None) => (context.received_at, fallback_element),
    };

    let element = "Condition.recorder";
    let references = [object(resource, "recorder", TYPE)?, object(resource, "asserter", TYPE)?];
    let found = first_ods(references.into_iter().flatten(), element)?;
    let organisation = organisation(found, element, context.defaults)?;
    Ok(Mapping {
        event: ClinicalEvent::Diagnosis(DiagnosisEvent {
            provenance: provenance(&meta, occurred_at, recorded_at, organisation),
            patient: identity,
            code_system,
            code,
            display,
            is_primary: context.is_primary_condition(resource),
            onset_date,
        }),
        origin: Origin {
            resource_type: TYPE,
            patient: Some("Condition.subject".to_owned()),
            occurred_at: occurred_element,
            recorded_at: recorded_element,
            organisation: element.to_owned(),
        },
    })
}

/// The `value` of a FHIR Quantity: the number, and its exact decimal when it has one. A JSON
/// number is read as the nearest double; the shortest decimal text that reads back as that
/// double is the text the source wrote for any value of up to 15 significant digits, so it is
/// kept as the exact decimal when it fits `decimal(18,6)` (and left out, not rounded, when not).
fn quantity_value(quantity: &Object, path: &str) -> Result<Option<(f64, Option<ResultDecimal>)>, FhirError> {
    match quantity.get("value") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(number)) => {
            let value = number.as_f64().ok_or_else(|| FhirError::structure(path, "must be a JSON number"))?;
            let exact = match number.as_i64() {
                Some(whole) => ResultDecimal::parse(&whole.to_string()),
                None => ResultDecimal::parse(&value.to_string()),
            };
            Ok(Some((value, exact)))
        }
        Some(_) => Err(FhirError::structure(path, "must be a JSON number")),
    }
}
