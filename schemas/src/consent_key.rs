//! The Kafka key of a consent record: the whole change it holds, so that compaction of the
//! consent topic never changes what the consent says.
//!
//! The consent topic is compacted: Kafka keeps only the last record of each key. Were the key
//! only the patient and scope, compaction would keep one change per patient and scope, and a
//! back-dated change published after a later one, or two changes limited to different
//! purposes, would rebuild into another state once the broker compacts. With every part of the
//! change in the key, two records share a key only when they hold the same change, so the topic
//! and its compacted form resolve to the same decisions. Landers check that each record's key is
//! the key of the change it holds and treat one that is not as unreadable.
//!
//! ```
//! use sluice_schemas::consent_record_key;
//!
//! let key = consent_record_key("9434765919", "STUDY", Some("IRAS-312456"), true, 1_700_000_000_000_000,
//!     None, &["study:IRAS-312456".to_owned()]);
//! assert_eq!(key, "9434765919:STUDY:IRAS-312456:DENY:1700000000000000:study:IRAS-312456");
//! // The NHS number comes first: a record that cannot be read still says whose it is.
//! assert!(key.starts_with("9434765919:"));
//! // A time-limited change carries its end after its start.
//! let limited = consent_record_key("9434765919", "STUDY", Some("IRAS-312456"), false, 1_700_000_000_000_000,
//!     Some(1_800_000_000_000_000), &[]);
//! assert_eq!(limited, "9434765919:STUDY:IRAS-312456:PERMIT:1700000000000000..1800000000000000:");
//! ```

/// The key of a consent record holding this change: `<NHS number>:<SCOPE>[:<study id>]:<DENY|PERMIT>:
/// <effective_at in microseconds>[..<effective_until in microseconds>]:<purposes>`, the purposes
/// sorted, without duplicates and joined by `,` (empty for every purpose). A change without an
/// end has the key it had before consent records could carry one. `scope` is the Avro enum symbol
/// (`NATIONAL_DATA_OPT_OUT`, `TYPE_1_OPT_OUT`, `STUDY`).
pub fn consent_record_key(
    nhs_number_digits: &str,
    scope: &str,
    study_id: Option<&str>,
    deny: bool,
    effective_at_micros: i64,
    effective_until_micros: Option<i64>,
    purposes: &[String],
) -> String {
    let mut purposes: Vec<&str> = purposes.iter().map(String::as_str).collect();
    purposes.sort_unstable();
    purposes.dedup();
    let study = study_id.map(|id| format!(":{id}")).unwrap_or_default();
    let decision = if deny { "DENY" } else { "PERMIT" };
    let until = effective_until_micros.map(|until| format!("..{until}")).unwrap_or_default();
    format!("{nhs_number_digits}:{scope}{study}:{decision}:{effective_at_micros}{until}:{}", purposes.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_for_every_part_of_a_change_and_ignore_the_order_of_purposes() {
        let purposes = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let base = consent_record_key("9434765919", "NATIONAL_DATA_OPT_OUT", None, true, 10, None, &[]);
        assert_eq!(base, "9434765919:NATIONAL_DATA_OPT_OUT:DENY:10:");
        let variants = [
            consent_record_key("9434765919", "TYPE_1_OPT_OUT", None, true, 10, None, &[]),
            consent_record_key("9434765919", "NATIONAL_DATA_OPT_OUT", None, false, 10, None, &[]),
            consent_record_key("9434765919", "NATIONAL_DATA_OPT_OUT", None, true, 11, None, &[]),
            consent_record_key("9434765919", "NATIONAL_DATA_OPT_OUT", None, true, 10, None, &purposes(&["research"])),
            consent_record_key("4010232137", "NATIONAL_DATA_OPT_OUT", None, true, 10, None, &[]),
            consent_record_key("9434765919", "NATIONAL_DATA_OPT_OUT", None, true, 10, Some(20), &[]),
        ];
        for variant in &variants {
            assert_ne!(variant, &base);
        }
        let limited_to = |names: &[&str]| {
            consent_record_key("9434765919", "NATIONAL_DATA_OPT_OUT", None, true, 10, None, &purposes(names))
        };
        assert_eq!(limited_to(&["research", "planning", "research"]), limited_to(&["planning", "research"]));
    }
}
