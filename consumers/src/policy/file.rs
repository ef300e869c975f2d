//! The policy file as written: its TOML keys and the actions a field may be given.
//!
//! This module only reads the text. Whether the actions fit the schemas (types, sensitivity,
//! column names) is checked when the policy is planned against a schema version, see
//! [`super::Policy::plan`].
//!
//! Every table refuses keys it does not know, so a misspelt key (`colum = "x"`, or
//! `max-days` for `max_days`) stops loading with the key and the file named instead of being
//! silently ignored.

use std::{collections::BTreeMap, fmt};

use serde::{
    Deserialize, Deserializer,
    de::{self, MapAccess, Visitor, value::MapAccessDeserializer},
};

use crate::consent::PurposeRules;

/// Width of an age band, in years, when the policy does not give one.
pub const DEFAULT_AGE_BAND_WIDTH: u32 = 5;

/// Age from which everyone falls in one open band (`90+`), when the policy does not give one.
/// Very old ages are rare enough to identify people, so they are pooled as ONS outputs do.
pub const DEFAULT_AGE_BAND_TOP: u32 = 90;

/// The top-level keys of a policy file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyFile {
    /// Name of the policy, recorded with every landed file.
    pub(crate) name: String,
    /// Version of the policy; bumped on every change so landed files say which rules applied.
    pub(crate) version: u32,
    /// The purpose the policy lands for: `direct-care`, `planning`, `research` or `study:<id>`.
    pub(crate) purpose: String,
    /// What the policy is for, in words, for the governance record.
    pub(crate) description: String,
    /// The field whose value identifies the patient; it keys date shifting so that every date
    /// of one patient moves by the same number of days.
    pub(crate) patient_identifier: String,
    /// The purpose's consent rules (study consent model, opt-out exemptions with their legal
    /// basis). Optional: without it only the national rules apply.
    #[serde(default)]
    pub(crate) consent: PurposeRules,
    /// How landed files are divided by the event time as landed: a directory per UTC day (the
    /// default) or per month.
    #[serde(default)]
    pub(crate) event_time_partition: EventTimePartition,
    /// For each subject, the action for each field of its newest schema.
    pub(crate) subjects: BTreeMap<String, BTreeMap<String, ActionEntry>>,
    /// Quasi-identifiers, threshold and generalisation ladders for disclosure control.
    /// Optional: without it the purpose has none.
    #[serde(default)]
    pub(crate) disclosure: Option<crate::disclosure::rules::DisclosureFile>,
}

/// How a purpose's files are divided into directories by the event time as landed (Hive
/// style, so DuckDB, Spark, Polars and pyarrow read the directory as a column and prune by it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventTimePartition {
    /// `event_date=YYYY-MM-DD`: one directory per UTC day.
    #[default]
    Day,
    /// `event_month=YYYY-MM`: one directory per UTC month. For policies that shift dates: the
    /// day of a shifted date means little, and a directory per day cuts the data into many
    /// small files (each source partition writes one file per directory at every roll).
    Month,
}

/// What happens to one field on its way to the lake, with its parameters.
///
/// In the file, `keep` and `drop` may be written as bare strings (`sex = "keep"`); every
/// action may be written as a table with an `action` key
/// (`nhs_number = { action = "hmac", column = "patient_pseudonym" }`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum FieldAction {
    /// Landed unchanged, under the field's own name. Refused for any field with a sensitivity
    /// label in the schema.
    Keep {},
    /// Never landed.
    Drop {
        /// Why, for the reader of the policy (not used by the lander).
        #[serde(default)]
        reason: Option<String>,
    },
    /// Replaced by the keyed HMAC-SHA256 of its value (lowercase hex) under the purpose's key:
    /// stable for one value within a purpose, unlinkable across purposes.
    Hmac {
        /// Name of the output column.
        column: String,
    },
    /// A date or timestamp reduced to its calendar year (UTC), as a 32-bit integer.
    DateYear {
        /// Name of the output column.
        column: String,
    },
    /// A date or timestamp reduced to its year and month (UTC), as text `YYYY-MM`.
    DateYearMonth {
        /// Name of the output column.
        column: String,
    },
    /// A date of birth replaced by the patient's age band, as text such as `40-44` or `90+`:
    /// at the date of another field of the same record (`at`), or at one fixed date for every
    /// record (`at_date`). Exactly one of the two is given.
    AgeBand {
        /// Name of the output column.
        column: String,
        /// The date or timestamp field of the same record at which the age is taken (usually
        /// `occurred_at`, the date of the event). An age at every event, beside exact event
        /// times, narrows a birth date down to the day the band changes: purposes that keep
        /// times use `at_date` instead.
        #[serde(default)]
        at: Option<String>,
        /// A fixed reference date, `YYYY-MM-DD` (for example the start of the extract's
        /// financial year), at which every patient's age is taken: one band per patient, which
        /// says nothing about their birthday. A patient born after it has no band (null).
        #[serde(default)]
        at_date: Option<String>,
        /// Width of each band in years.
        #[serde(default = "default_width")]
        width: u32,
        /// Age from which every patient falls in one open band `<top>+`.
        #[serde(default = "default_top")]
        top: u32,
    },
    /// A UK postcode reduced to its outward code (`LS6 2QT` to `LS6`).
    PostcodeOutward {
        /// Name of the output column.
        column: String,
    },
    /// A UK postcode reduced to its sector: outward code and the inward digit (`LS6 2QT` to
    /// `LS6 2`).
    PostcodeSector {
        /// Name of the output column.
        column: String,
    },
    /// A date or timestamp moved by a per-patient offset, to the microsecond, anywhere in
    /// `[-max_days, +max_days]` days: the same offset for every date and time of one patient
    /// under one purpose, so intervals are kept, while neither the calendar date nor the time
    /// of day of any event can be read back. A date (no time) moves to the UTC date its
    /// midnight moves to.
    ShiftDate {
        /// Name of the output column.
        column: String,
        /// Largest shift in days, either way. Every `shift_date` of one policy must use the same
        /// value, or one patient's dates would move by different amounts.
        max_days: u32,
    },
    /// A timestamp cut down to the start of its minute, hour or day (UTC): the column says when
    /// to that precision and no closer.
    TruncateTime {
        /// Name of the output column.
        column: String,
        /// `minute`, `hour` or `day`.
        unit: TruncateUnit,
    },
    /// A nested record landed with only the nested fields listed, each as it is; the others
    /// (free text, say) are not landed. Every listed field must be allowed to be kept.
    KeepFields {
        /// Name of the output column.
        column: String,
        /// The nested fields to land, in the order the record has them.
        fields: Vec<String>,
    },
    /// A number replaced by the lower bound of its bucket, `floor(value / width) * width`.
    Bucket {
        /// Name of the output column.
        column: String,
        /// Width of a bucket; a whole number for integer fields.
        width: f64,
    },
}

/// The precision a `truncate_time` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TruncateUnit {
    /// To the start of the minute.
    Minute,
    /// To the start of the hour.
    Hour,
    /// To midnight UTC.
    Day,
}

impl TruncateUnit {
    /// Length of the unit in microseconds.
    pub fn micros(self) -> i64 {
        match self {
            TruncateUnit::Minute => 60_000_000,
            TruncateUnit::Hour => 3_600_000_000,
            TruncateUnit::Day => 86_400_000_000,
        }
    }

    /// The unit as written in a policy.
    pub fn name(self) -> &'static str {
        match self {
            TruncateUnit::Minute => "minute",
            TruncateUnit::Hour => "hour",
            TruncateUnit::Day => "day",
        }
    }
}

fn default_width() -> u32 {
    DEFAULT_AGE_BAND_WIDTH
}

fn default_top() -> u32 {
    DEFAULT_AGE_BAND_TOP
}

impl FieldAction {
    /// The action's name as written in the file.
    pub fn name(&self) -> &'static str {
        match self {
            FieldAction::Keep {} => "keep",
            FieldAction::Drop { .. } => "drop",
            FieldAction::Hmac { .. } => "hmac",
            FieldAction::DateYear { .. } => "date_year",
            FieldAction::DateYearMonth { .. } => "date_year_month",
            FieldAction::AgeBand { .. } => "age_band",
            FieldAction::PostcodeOutward { .. } => "postcode_outward",
            FieldAction::PostcodeSector { .. } => "postcode_sector",
            FieldAction::ShiftDate { .. } => "shift_date",
            FieldAction::TruncateTime { .. } => "truncate_time",
            FieldAction::KeepFields { .. } => "keep_fields",
            FieldAction::Bucket { .. } => "bucket",
        }
    }

    /// The output column the action writes: the field's own name for `keep`, none for `drop`.
    pub fn column<'a>(&'a self, field: &'a str) -> Option<&'a str> {
        match self {
            FieldAction::Keep {} => Some(field),
            FieldAction::Drop { .. } => None,
            FieldAction::Hmac { column }
            | FieldAction::DateYear { column }
            | FieldAction::DateYearMonth { column }
            | FieldAction::AgeBand { column, .. }
            | FieldAction::PostcodeOutward { column }
            | FieldAction::PostcodeSector { column }
            | FieldAction::ShiftDate { column, .. }
            | FieldAction::TruncateTime { column, .. }
            | FieldAction::KeepFields { column, .. }
            | FieldAction::Bucket { column, .. } => Some(column),
        }
    }
}

/// One `field = action` entry: either the short form (`"keep"`, `"drop"`) or a table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ActionEntry(pub(crate) FieldAction);

impl<'de> Deserialize<'de> for ActionEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;

        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = ActionEntry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#""keep", "drop" or a table with an `action` key"#)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<ActionEntry, E> {
                match text {
                    "keep" => Ok(ActionEntry(FieldAction::Keep {})),
                    "drop" => Ok(ActionEntry(FieldAction::Drop { reason: None })),
                    other => Err(E::custom(format!(
                        "unknown short action `{other}`: only \"keep\" and \"drop\" may be written as a \
                         string; other actions need a table such as {{ action = \"{other}\", column = \"...\" }}"
                    ))),
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ActionEntry, A::Error> {
                FieldAction::deserialize(MapAccessDeserializer::new(map)).map(ActionEntry)
            }
        }

        deserializer.deserialize_any(EntryVisitor)
    }
}
