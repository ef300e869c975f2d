//! Where landed files go.
//!
//! ```text
//! <lake>/<purpose>/<subject>/event_date=<YYYY-MM-DD>/part-<32 random hex digits>.parquet
//! <lake>/<purpose>/<subject>/event_month=<YYYY-MM>/part-<32 random hex digits>.parquet
//! ```
//!
//! The date is the UTC date of the event time as landed (`occurred_at`, or its shifted or
//! truncated value as the policy says), or its month where the policy says
//! `event_time_partition = "month"`, in Hive's `key=value` style so DuckDB, Spark, Polars and
//! pyarrow read it as a column and prune by it. The name is random (see
//! [`crate::lake::ledger::fresh_file_name`]); the landing ledger records which source offsets
//! each file holds. Files landed before the ledger existed were named
//! `<topic>+<partition>+<first offset>-<last offset>.parquet`, which [`parse_landed_file_name`]
//! still reads so that such files are withdrawn and compacted correctly.

use crate::policy::EventTimePartition;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Hive's directory value for a missing (null) partition value, which Delta readers and Hive
/// readers alike read as null.
pub const MISSING_PARTITION_VALUE: &str = "__HIVE_DEFAULT_PARTITION__";

/// The name of the table column the event-time directories stand for.
pub fn partition_column(partition: EventTimePartition) -> &'static str {
    match partition {
        EventTimePartition::Day => "event_date",
        EventTimePartition::Month => "event_month",
    }
}

/// The period (UTC days, or months, since 1970-01) an event time in microseconds is filed under.
pub fn event_time_period(partition: EventTimePartition, micros: i64) -> Option<i32> {
    let day = i32::try_from(micros.div_euclid(MICROS_PER_DAY)).ok()?;
    match partition {
        EventTimePartition::Day => Some(day),
        EventTimePartition::Month => {
            let date = chrono::DateTime::from_timestamp(i64::from(day) * 86_400, 0)?;
            use chrono::Datelike;
            Some((date.year() - 1970) * 12 + date.month0() as i32)
        }
    }
}

/// `event_date=YYYY-MM-DD` for a day count since 1970-01-01, or `event_month=YYYY-MM` for a
/// month count, or Hive's name for a missing value when the policy lands no event time.
pub fn event_time_directory(partition: EventTimePartition, period: Option<i32>) -> String {
    match partition {
        EventTimePartition::Day => {
            match period.and_then(|d| chrono::DateTime::from_timestamp(i64::from(d) * 86_400, 0)) {
                Some(midnight) => format!("event_date={}", midnight.format("%Y-%m-%d")),
                None => format!("event_date={MISSING_PARTITION_VALUE}"),
            }
        }
        EventTimePartition::Month => match period {
            Some(months) => format!("event_month={:04}-{:02}", 1970 + months.div_euclid(12), months.rem_euclid(12) + 1),
            None => format!("event_month={MISSING_PARTITION_VALUE}"),
        },
    }
}

/// `<topic>+<partition>+<first offset>-<last offset>.parquet`, offsets zero-padded to 20 digits:
/// how files were named before the landing ledger (kept for tests of lakes landed then).
#[cfg(test)]
pub(crate) fn landed_file_name(topic: &str, partition: i32, (first, last): (i64, i64)) -> String {
    format!("{topic}+{partition}+{first:020}-{last:020}.parquet")
}

/// The source topic, partition and offsets in the name of a file landed before the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandedName<'n> {
    /// The source topic.
    pub topic: &'n str,
    /// Its partition.
    pub partition: i32,
    /// The first offset in the file.
    pub first: i64,
    /// The last offset in the file.
    pub last: i64,
}

/// Reads a name of the form `<topic>+<partition>+<first>-<last>.parquet`; `None` for anything
/// else.
pub fn parse_landed_file_name(name: &str) -> Option<LandedName<'_>> {
    let stem = name.strip_suffix(".parquet")?;
    let (rest, offsets) = stem.rsplit_once('+')?;
    let (topic, partition) = rest.rsplit_once('+')?;
    let (first, last) = offsets.split_once('-')?;
    Some(LandedName { topic, partition: partition.parse().ok()?, first: first.parse().ok()?, last: last.parse().ok()? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_directories_round_trip() {
        let name = landed_file_name("clinical.adt", 7, (12, 3_456));
        assert_eq!(name, "clinical.adt+7+00000000000000000012-00000000000000003456.parquet");
        assert_eq!(
            parse_landed_file_name(&name),
            Some(LandedName { topic: "clinical.adt", partition: 7, first: 12, last: 3_456 })
        );
        for other in ["notes.txt", "clinical.adt+x+1-2.parquet", "a+1+2.parquet", ".a+1+1-2.parquet.inprogress"] {
            assert_eq!(parse_landed_file_name(other), None, "{other}");
        }
        let (day, month) = (EventTimePartition::Day, EventTimePartition::Month);
        assert_eq!(event_time_directory(day, Some(20_782)), "event_date=2026-11-25");
        assert_eq!(event_time_directory(day, Some(-1)), "event_date=1969-12-31");
        assert_eq!(event_time_directory(day, None), "event_date=__HIVE_DEFAULT_PARTITION__");
        assert_eq!(event_time_directory(month, None), "event_month=__HIVE_DEFAULT_PARTITION__");
        // 2026-11-25T23:59:59.999999Z, 1969-12-31T00:00:00Z and 1970-01-01T00:00:00Z.
        let late_on_the_25th = 20_783 * MICROS_PER_DAY - 1;
        assert_eq!(event_time_period(day, late_on_the_25th), Some(20_782));
        let in_month = |micros| event_time_directory(month, event_time_period(month, micros));
        assert_eq!(in_month(late_on_the_25th), "event_month=2026-11");
        assert_eq!(in_month(20_783 * MICROS_PER_DAY), "event_month=2026-11");
        assert_eq!(in_month(20_788 * MICROS_PER_DAY), "event_month=2026-12");
        assert_eq!(in_month(20_818 * MICROS_PER_DAY), "event_month=2026-12");
        assert_eq!(in_month(20_819 * MICROS_PER_DAY), "event_month=2027-01");
        assert_eq!(in_month(-MICROS_PER_DAY), "event_month=1969-12");
        assert_eq!(in_month(-1), "event_month=1969-12");
        assert_eq!(in_month(0), "event_month=1970-01");
        assert_eq!(event_time_period(month, i64::MAX), None);
    }
}
