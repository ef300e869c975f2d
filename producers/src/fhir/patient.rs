//! Who a resource is about: a `PatientIdentity` from a UK Core Patient, and the patient of a
//! resource's `subject` (or `Consent.patient`) reference.

use sluice_schemas::NhsNumber;

use super::bundle::Context;
use super::values::{Object, codings, date_only, nhs_number, object, objects, string, strings};
use super::{FhirError, IssueType};
use crate::clinical::{AdministrativeSex, PatientIdentity};

/// The demographics of a Patient resource; errors name the Patient's own elements.
pub(super) fn identity(patient: &Object) -> Result<PatientIdentity, FhirError> {
    const AT: &str = "Patient.identifier";
    let mut nhs: Option<NhsNumber> = None;
    let mut record_number = None;
    let mut other = None;
    for identifier in objects(patient, "identifier", "Patient")? {
        if let Some(number) = nhs_number(identifier, AT, AT)? {
            if nhs.is_some_and(|known| known != number) {
                return Err(FhirError::unprocessable(
                    IssueType::Value,
                    AT,
                    "the Patient has two different NHS numbers",
                ));
            }
            nhs = Some(number);
            continue;
        }
        let Some(value) = string(identifier, "value", AT)? else { continue };
        let is_record_number = match object(identifier, "type", AT)? {
            Some(kind) => codings(kind, "Patient.identifier.type")?.iter().any(|c| c.code == Some("MR")),
            None => false,
        };
        if is_record_number && record_number.is_none() {
            record_number = Some(value);
        }
        other.get_or_insert(value);
    }
    let local_patient_id = record_number.or(other).or(string(patient, "id", "Patient")?).map(str::to_owned);
    if local_patient_id.is_none() && nhs.is_none() {
        return Err(FhirError::unprocessable(
            IssueType::Required,
            AT,
            "the Patient needs an NHS number, another identifier or an id",
        ));
    }

    let names = objects(patient, "name", "Patient")?;
    let official = names.iter().find(|name| name.get("use").and_then(|u| u.as_str()) == Some("official"));
    let (family_name, given_name) = match official.or(names.first()) {
        Some(name) => {
            let given = strings(name, "given", "Patient.name")?.join(" ");
            (string(name, "family", "Patient.name")?.map(str::to_owned), (!given.is_empty()).then_some(given))
        }
        None => (None, None),
    };

    let date_of_birth = match string(patient, "birthDate", "Patient")? {
        Some(born) => date_only(born, "Patient.birthDate")?,
        None => None,
    };
    let sex = match string(patient, "gender", "Patient")? {
        None => None,
        Some("male") => Some(AdministrativeSex::Male),
        Some("female") => Some(AdministrativeSex::Female),
        Some("other") => Some(AdministrativeSex::Other),
        Some("unknown") => Some(AdministrativeSex::Unknown),
        Some(_) => {
            return Err(FhirError::unprocessable(
                IssueType::CodeInvalid,
                "Patient.gender",
                "gender must be male, female, other or unknown",
            ));
        }
    };

    let addresses = objects(patient, "address", "Patient")?;
    let home = addresses.iter().find(|address| address.get("use").and_then(|u| u.as_str()) == Some("home"));
    let (address_line, postcode) = match home.or(addresses.first()) {
        Some(address) => (
            strings(address, "line", "Patient.address")?.first().map(|line| (*line).to_owned()),
            string(address, "postalCode", "Patient.address")?.map(str::to_owned),
        ),
        None => (None, None),
    };

    Ok(PatientIdentity {
        nhs_number: nhs,
        local_patient_id,
        family_name,
        given_name,
        date_of_birth,
        sex,
        postcode,
        address_line,
    })
}

/// The patient that `resource.<element>` refers to (`subject`, or `patient` for Consent):
/// the Patient it resolves to (contained or in the Bundle), else the NHS number of its
/// logical `identifier`.
pub(super) fn referenced<'a>(
    resource: &'a Object,
    resource_type: &str,
    element: &str,
    context: &Context<'a>,
) -> Result<PatientIdentity, FhirError> {
    let at = format!("{resource_type}.{element}");
    let unidentified = || {
        FhirError::unprocessable(
            IssueType::Required,
            &at,
            "the patient must be identified by NHS number or a Patient resource in the same Bundle",
        )
    };
    let Some(reference) = object(resource, element, resource_type)? else { return Err(unidentified()) };
    let logical = match object(reference, "identifier", &at)? {
        Some(identifier) => nhs_number(identifier, &format!("{at}.identifier"), &at)?,
        None => None,
    };
    if let Some(literal) = string(reference, "reference", &at)? {
        match context.resolve(literal, resource) {
            Some(target) => {
                if target.get("resourceType").and_then(|t| t.as_str()) != Some("Patient") {
                    return Err(FhirError::unprocessable(
                        IssueType::Processing,
                        &at,
                        "the reference does not point to a Patient",
                    ));
                }
                let patient = identity(target).map_err(|error| {
                    FhirError::unprocessable(
                        error.code,
                        &at,
                        format!("the referenced Patient is not valid: {}: {}", error.expression, error.diagnostics),
                    )
                })?;
                if let (Some(known), Some(given)) = (patient.nhs_number, logical)
                    && known != given
                {
                    return Err(FhirError::unprocessable(
                        IssueType::Value,
                        &at,
                        "the NHS number of the identifier differs from the referenced Patient's",
                    ));
                }
                return Ok(patient);
            }
            None if logical.is_none() => {
                return Err(FhirError::unprocessable(
                    IssueType::Processing,
                    &at,
                    "the reference cannot be resolved: the Patient is neither contained nor in the same Bundle, \
                     and the reference has no NHS number identifier",
                ));
            }
            None => {}
        }
    }
    let number = logical.ok_or_else(unidentified)?;
    Ok(PatientIdentity {
        nhs_number: Some(number),
        local_patient_id: None,
        family_name: None,
        given_name: None,
        date_of_birth: None,
        sex: None,
        postcode: None,
        address_line: None,
    })
}
