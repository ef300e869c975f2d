//! Realistic vocabularies for synthetic events: names, places, organisations and codes.
//! Every value here is either invented or a public code (ODS, LOINC, SNOMED CT, ICD-10).

/// Family names common in England.
pub(super) const FAMILY_NAMES: &[&str] = &[
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Robinson", "Wright",
    "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson", "Clarke", "Khan", "Ahmed",
    "Hussain", "Lewis", "Harris", "Martin", "Cooper", "King", "Okafor",
];

/// Given names across generations.
pub(super) const GIVEN_NAMES: &[&str] = &[
    "Olivia", "Amelia", "Isla", "Ava", "Mia", "Noah", "Oliver", "George", "Arthur", "Muhammad", "Leo", "Harry",
    "Margaret", "Susan", "David", "John", "Patricia", "Peter", "Priya", "Aisha", "Jack", "Emily", "Sophie", "James",
    "Thomas", "Grace", "Barbara", "Kenneth", "Chidi", "Zofia",
];

/// Street names for the first address line.
pub(super) const STREETS: &[&str] = &[
    "Station Road",
    "Church Lane",
    "Park Avenue",
    "Victoria Street",
    "Mill Lane",
    "Kirkstall Road",
    "Manor Way",
    "Queens Drive",
    "Westfield Crescent",
    "Hawthorn Close",
];

/// Postcode outward codes in West Yorkshire, Greater Manchester and South Yorkshire.
pub(super) const OUTWARD_CODES: &[&str] = &[
    "LS1", "LS2", "LS6", "LS7", "LS8", "LS9", "LS11", "LS12", "LS17", "BD1", "BD3", "BD7", "M1", "M4", "M14", "M20",
    "S1", "S10", "HD1", "WF1",
];

/// Letters allowed in the inward part of a postcode (C, I, K, M, O and V are never used).
pub(super) const INWARD_LETTERS: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";

/// Acute trusts (ODS codes) that send ADT, results and coded diagnoses.
pub(super) const TRUSTS: &[&str] = &["RR8", "RAE", "R0A", "RHQ"];

/// GP practices (ODS codes: one letter and five digits), whose data Type 1 opt-outs cover.
pub(super) const GP_PRACTICES: &[&str] =
    &["B86001", "B86002", "B86010", "B86016", "B83005", "P84001", "P84010", "C88001", "C88038", "Y02494"];

/// (code, display, unit, typical value, spread) of observations measured in hospital (LOINC).
pub(super) const HOSPITAL_OBSERVATIONS: &[(&str, &str, &str, f64, f64)] = &[
    ("8867-4", "Heart rate", "/min", 80.0, 15.0),
    ("8480-6", "Systolic blood pressure", "mm[Hg]", 125.0, 18.0),
    ("8462-4", "Diastolic blood pressure", "mm[Hg]", 78.0, 10.0),
    ("8310-5", "Body temperature", "Cel", 36.9, 0.6),
    ("9279-1", "Respiratory rate", "/min", 16.0, 3.0),
    ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", 96.5, 2.0),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 5.8, 1.0),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 4.3, 0.5),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 139.0, 3.0),
    ("14682-9", "Creatinine [Moles/volume] in Serum or Plasma", "umol/L", 85.0, 25.0),
];

/// The LOINC codes of [`HOSPITAL_OBSERVATIONS`] that are laboratory tests (sent by the trust's
/// laboratory system with exact decimal results); the others are vital signs.
pub(super) const LABORATORY_TESTS: &[&str] = &["4548-4", "2823-3", "2951-2", "14682-9"];

/// (code, display, unit, typical value, spread) of observations recorded in general practice (SNOMED CT).
pub(super) const GP_OBSERVATIONS: &[(&str, &str, &str, f64, f64)] = &[
    ("27113001", "Body weight", "kg", 78.0, 16.0),
    ("50373000", "Body height", "cm", 170.0, 10.0),
    ("60621009", "Body mass index", "kg/m2", 27.0, 5.0),
    ("271649006", "Systolic blood pressure", "mm[Hg]", 132.0, 16.0),
    ("271650006", "Diastolic blood pressure", "mm[Hg]", 80.0, 9.0),
];

/// (code, display) of diagnoses coded in hospital (ICD-10).
pub(super) const HOSPITAL_DIAGNOSES: &[(&str, &str)] = &[
    ("I10", "Essential (primary) hypertension"),
    ("E11.9", "Type 2 diabetes mellitus without complications"),
    ("J18.9", "Pneumonia, unspecified"),
    ("I21.9", "Acute myocardial infarction, unspecified"),
    ("N39.0", "Urinary tract infection, site not specified"),
    ("J44.1", "Chronic obstructive pulmonary disease with acute exacerbation, unspecified"),
    ("S72.0", "Fracture of neck of femur"),
    ("I48.9", "Atrial fibrillation and atrial flutter, unspecified"),
];

/// (code, display) of problems recorded in general practice (SNOMED CT).
pub(super) const GP_DIAGNOSES: &[(&str, &str)] = &[
    ("38341003", "Hypertensive disorder, systemic arterial"),
    ("44054006", "Diabetes mellitus type 2"),
    ("195967001", "Asthma"),
    ("35489007", "Depressive disorder"),
    ("13645005", "Chronic obstructive lung disease"),
    ("49436004", "Atrial fibrillation"),
];

/// NHS Data Dictionary treatment function codes of the specialties that admit.
pub(super) const TREATMENT_FUNCTIONS: &[&str] = &["100", "180", "300", "320", "340", "420", "430", "501"];

/// Ward and clinic codes.
pub(super) const LOCATIONS: &[&str] = &["W12", "W14", "W20", "AMU", "ED", "CCU", "OPD3", "SAU"];

/// Comments that laboratories and clinicians write; `{name}` is replaced by the patient's name,
/// as happens in real free text, which is why free text is never landed.
pub(super) const COMMENTS: &[&str] = &[
    "Sample haemolysed, please repeat",
    "Repeat in 3 months",
    "{name} reports feeling dizzy on standing",
    "Discussed result with {name} by phone",
    "Patient fasting",
];
