//! The report's content, computed from parsed audit records and verification results without
//! touching the lake or any file: counts per flow (topic -> purpose -> dataset) and per day,
//! withheld events by reason, the policies, keys and schemas in force, operations on the lake and
//! the audit status. Counts here are exact; suppression is applied when they are shown.

use std::collections::BTreeMap;

use serde_json::Value;

/// Everything the governance report shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportModel {
    /// One entry per topic, purpose and dataset, in that order.
    pub flows: Vec<Flow>,
    /// Every day (UTC date of `recorded_at`) with a landing record, oldest first.
    pub days: Vec<String>,
    /// Withheld events by purpose, then by reason.
    pub withheld_by_purpose: BTreeMap<String, BTreeMap<String, u64>>,
    /// Policy, key and schema versions seen, per dataset, oldest first.
    pub versions: Vec<VersionSeen>,
    /// Records about operations on the lake other than landings.
    pub operations: Operations,
    /// What verification found.
    pub status: AuditStatus,
    /// Earliest and latest `recorded_at` in the log.
    pub period: Option<(String, String)>,
    /// Each dataset's Delta table and its current version (the newest the log records), the
    /// version an analysis cites (docs/TABLES.md).
    pub table_versions: BTreeMap<String, u64>,
    /// Each dataset's newest disclosure check.
    pub disclosure: BTreeMap<String, super::disclosure::DatasetDisclosure>,
}

/// Counts of one flow: events of one topic consumed for one purpose into one dataset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flow {
    /// Source topic.
    pub topic: String,
    /// Purpose.
    pub purpose: String,
    /// Dataset, `<purpose>/<subject>`.
    pub dataset: String,
    /// Totals over the whole log.
    pub totals: Counts,
    /// Counts per day (UTC date of the landing records).
    pub per_day: BTreeMap<String, Counts>,
}

/// Counts of landing records added up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Messages consumed.
    pub received: u64,
    /// Messages sent to the dead-letter topic.
    pub invalid: u64,
    /// Events withheld, by reason.
    pub withheld: BTreeMap<String, u64>,
    /// Events released under an exemption.
    pub exempted: u64,
    /// Rows landed.
    pub landed: u64,
}

impl Counts {
    /// Events withheld for any reason.
    pub fn withheld_total(&self) -> u64 {
        self.withheld.values().sum()
    }

    fn add(&mut self, event: &Value) {
        self.received += number(&event["received"]);
        self.invalid += number(&event["invalid"]);
        for (reason, count) in event["withheld"].as_object().into_iter().flatten() {
            *self.withheld.entry(reason.clone()).or_default() += number(count);
        }
        for usage in event["released_under_exemption"].as_object().into_iter().flatten().map(|(_, u)| u) {
            self.exempted += number(&usage["events"]);
        }
        self.landed += number(&event["landed"]);
    }
}

/// One combination of policy, key and reader schema a dataset was landed under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionSeen {
    /// Dataset, `<purpose>/<subject>`.
    pub dataset: String,
    /// Policy, `name@vN`.
    pub policy: String,
    /// SHA-256 of the policy file.
    pub policy_hash: String,
    /// Id of the pseudonymisation key.
    pub key_id: String,
    /// Reader schema, `subject vN fingerprint`.
    pub reader_schema: String,
    /// First `recorded_at` of a landing under it.
    pub first: String,
    /// Last `recorded_at` of a landing under it.
    pub last: String,
    /// It is what the dataset's latest landing used.
    pub in_force: bool,
}

/// Records of operations other than landings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Operations {
    /// Erasure runs.
    pub erasures: u64,
    /// Rows removed by them.
    pub rows_erased: u64,
    /// Compaction runs.
    pub compactions: u64,
    /// Withdrawals of files whose offsets could not be committed.
    pub withdrawals: u64,
    /// Repairs of the log after a crash.
    pub recoveries: u64,
    /// Consent records that could not be read (each holds back the patient its key names).
    pub unreadable_consent_records: u64,
    /// Patients held back by unreadable consent records, as of the latest such record.
    pub patients_held: u64,
    /// Records of kinds this report does not know, by kind (shown, not interpreted).
    pub other_kinds: BTreeMap<String, u64>,
}

/// What the audit checks found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditStatus {
    /// Records in the log.
    pub records: u64,
    /// Breaks in the hash chain; empty when intact.
    pub chain_problems: Vec<String>,
    /// The lake compared with its log: files recorded, files found, problems.
    pub lake: Option<LakeStatus>,
}

/// The lake compared with its log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LakeStatus {
    /// Where the lake is.
    pub location: String,
    /// Files the log says the lake holds.
    pub recorded: u64,
    /// Landed files found.
    pub found: u64,
    /// Missing, changed or unrecorded files; empty when the lake matches.
    pub problems: Vec<String>,
}

impl AuditStatus {
    /// No problem anywhere.
    pub fn intact(&self) -> bool {
        self.chain_problems.is_empty() && self.lake.as_ref().is_none_or(|lake| lake.problems.is_empty())
    }
}

pub(super) fn number(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

pub(super) fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// The dataset of a landing: `<purpose>/<subject>` from the topic's subject, else from where
/// its files went, else `<purpose>/?`.
fn dataset(event: &Value, purpose: &str, subjects: &BTreeMap<String, String>) -> String {
    if let Some(subject) = subjects.get(event["topic"].as_str().unwrap_or_default()) {
        return format!("{purpose}/{subject}");
    }
    let from_files = event["files"].as_array().into_iter().flatten().find_map(|file| {
        let mut parts = file["path"].as_str()?.splitn(3, '/');
        Some(format!("{}/{}", parts.next()?, parts.next()?))
    });
    from_files.unwrap_or_else(|| format!("{purpose}/?"))
}

/// Keeps the newest version of each table in `versions` from a record's `table_versions`.
fn note_table_versions(versions: &mut BTreeMap<String, u64>, recorded: &Value) {
    for (table, version) in recorded.as_object().into_iter().flatten() {
        let newest = versions.entry(table.clone()).or_default();
        *newest = (*newest).max(number(version));
    }
}

/// Builds the report from the log's records (each a whole line: `sequence`, `recorded_at`,
/// `event`, ...), the subject of each clinical topic (`topic -> subject`) and what verification
/// found. Records of unknown kinds are counted, not interpreted.
pub fn build(records: &[Value], subjects: &BTreeMap<String, String>, status: AuditStatus) -> ReportModel {
    let mut flows: BTreeMap<(String, String, String), Flow> = BTreeMap::new();
    let mut versions: BTreeMap<String, Vec<VersionSeen>> = BTreeMap::new();
    let mut model = ReportModel { status, ..ReportModel::default() };
    let mut days = std::collections::BTreeSet::new();
    for record in records {
        let recorded_at = text(&record["recorded_at"]);
        if !recorded_at.is_empty() {
            let period = model.period.get_or_insert_with(|| (recorded_at.clone(), recorded_at.clone()));
            period.0 = period.0.clone().min(recorded_at.clone());
            period.1 = period.1.clone().max(recorded_at.clone());
        }
        let event = &record["event"];
        let kind = event["kind"].as_str().unwrap_or("(none)");
        match kind {
            "landing" => {
                let (topic, purpose) = (text(&event["topic"]), text(&event["purpose"]));
                let dataset = dataset(event, &purpose, subjects);
                let day = recorded_at.get(..10).unwrap_or("unknown").to_owned();
                days.insert(day.clone());
                let key = (topic.clone(), purpose.clone(), dataset.clone());
                let flow = flows.entry(key).or_insert_with(|| Flow {
                    topic,
                    purpose,
                    dataset: dataset.clone(),
                    ..Flow::default()
                });
                flow.totals.add(event);
                flow.per_day.entry(day).or_default().add(event);
                let seen = VersionSeen {
                    dataset: dataset.clone(),
                    policy: text(&event["policy"]),
                    policy_hash: text(&event["policy_hash"]),
                    key_id: text(&event["key_id"]),
                    reader_schema: text(&event["reader_schema"]),
                    first: recorded_at.clone(),
                    last: recorded_at.clone(),
                    in_force: false,
                };
                let list = versions.entry(dataset).or_default();
                let same = |v: &VersionSeen| {
                    (&v.policy, &v.policy_hash, &v.key_id, &v.reader_schema)
                        == (&seen.policy, &seen.policy_hash, &seen.key_id, &seen.reader_schema)
                };
                list.iter_mut().for_each(|v| v.in_force = false);
                match list.iter_mut().find(|v| same(v)) {
                    Some(existing) => {
                        existing.last = recorded_at.clone();
                        existing.in_force = true;
                    }
                    None => list.push(VersionSeen { in_force: true, ..seen }),
                }
            }
            "erasure" => {
                model.operations.erasures += 1;
                model.operations.rows_erased += number(&event["rows_removed"]);
                note_table_versions(&mut model.table_versions, &event["table_versions"]);
            }
            "compaction" => {
                model.operations.compactions += 1;
                note_table_versions(&mut model.table_versions, &event["table_versions"]);
            }
            "table_commit" => {
                let version = model.table_versions.entry(text(&event["table"])).or_default();
                *version = (*version).max(number(&event["version"]));
            }
            "disclosure" => super::disclosure::note(&mut model.disclosure, event, &recorded_at),
            "withdrawal" => model.operations.withdrawals += 1,
            "recovery" => model.operations.recoveries += 1,
            "consent_unreadable" => {
                model.operations.unreadable_consent_records += 1;
                model.operations.patients_held = number(&event["patients_held"]);
            }
            other => *model.operations.other_kinds.entry(other.to_owned()).or_default() += 1,
        }
    }
    for flow in flows.values() {
        let reasons = model.withheld_by_purpose.entry(flow.purpose.clone()).or_default();
        for (reason, count) in &flow.totals.withheld {
            *reasons.entry(reason.clone()).or_default() += count;
        }
    }
    model.flows = flows.into_values().collect();
    model.days = days.into_iter().collect();
    model.versions = versions.into_values().flatten().collect();
    model
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn landing(at: &str, topic: &str, purpose: &str, withheld: Value, landed: u64, policy: &str) -> Value {
        json!({"sequence": 0, "recorded_at": at, "previous": "0", "event": {
            "kind": "landing", "purpose": purpose, "topic": topic, "partition": 0, "offsets": [0, 9],
            "received": 100, "invalid": 2, "withheld": withheld, "released_under_exemption": {},
            "landed": landed, "files": [], "policy": policy, "policy_hash": "ab12", "key_id": "k1",
            "reader_schema": "observation v3 f00d", "writer_schemas": []}, "hash": "x"})
    }

    #[test]
    fn landings_add_up_per_flow_and_day_and_versions_in_force_are_the_latest() {
        let subjects = BTreeMap::from([("clinical.observation".to_owned(), "observation".to_owned())]);
        let records = vec![
            landing(
                "2026-11-24T10:00:00.000Z",
                "clinical.observation",
                "research",
                json!({"national-data-opt-out": 3}),
                90,
                "research@v1",
            ),
            landing(
                "2026-11-25T09:00:00.000Z",
                "clinical.observation",
                "research",
                json!({"national-data-opt-out": 5, "no-nhs-number": 1}),
                80,
                "research@v2",
            ),
            landing("2026-11-25T11:00:00.000Z", "clinical.unknown", "planning", json!({}), 98, "planning@v1"),
            json!({"sequence": 3, "recorded_at": "2026-11-25T12:00:00.000Z", "event": {"kind": "erasure", "rows_removed": 4, "table_versions": {"research/observation": 7}}}),
            json!({"sequence": 7, "recorded_at": "2026-11-25T11:00:00.000Z", "event": {"kind": "table_commit", "table": "research/observation", "version": 6, "change": "landing", "added": [], "removed": []}}),
            json!({"sequence": 8, "recorded_at": "2026-11-25T11:00:00.000Z", "event": {"kind": "table_commit", "table": "planning/adt", "version": 2, "change": "landing", "added": [], "removed": []}}),
            json!({"sequence": 4, "recorded_at": "2026-11-25T13:00:00.000Z", "event": {"kind": "start", "lander": "a"}}),
            json!({"sequence": 5, "recorded_at": "2026-11-25T12:30:00.000Z", "event": {"kind": "consent_unreadable", "partition": 2, "offset": 7, "patient_held": true, "patients_held": 1}}),
            json!({"sequence": 6, "recorded_at": "2026-11-25T12:40:00.000Z", "event": {"kind": "consent_unreadable", "partition": 2, "offset": 9, "patient_held": true, "patients_held": 2}}),
        ];
        let model = build(&records, &subjects, AuditStatus::default());
        assert_eq!(model.days, ["2026-11-24", "2026-11-25"]);
        assert_eq!(model.flows.len(), 2);
        let research = &model.flows[0];
        assert_eq!(
            (research.topic.as_str(), research.dataset.as_str()),
            ("clinical.observation", "research/observation")
        );
        assert_eq!((research.totals.received, research.totals.invalid, research.totals.landed), (200, 4, 170));
        assert_eq!(research.totals.withheld_total(), 9);
        assert_eq!(research.per_day["2026-11-25"].withheld["national-data-opt-out"], 5);
        assert_eq!(model.flows[1].dataset, "planning/?");
        assert_eq!(model.withheld_by_purpose["research"]["national-data-opt-out"], 8);
        let research_versions: Vec<_> = model.versions.iter().filter(|v| v.dataset == "research/observation").collect();
        assert_eq!(research_versions.len(), 2);
        assert!(!research_versions[0].in_force && research_versions[1].in_force);
        assert_eq!(research_versions[1].policy, "research@v2");
        assert_eq!((model.operations.erasures, model.operations.rows_erased), (1, 4));
        let tables = BTreeMap::from([("planning/adt".to_owned(), 2), ("research/observation".to_owned(), 7)]);
        assert_eq!(model.table_versions, tables, "each table's newest version, from commits and erasures");
        assert!(!model.operations.other_kinds.contains_key("table_commit"));
        assert_eq!(model.operations.other_kinds["start"], 1);
        assert_eq!((model.operations.unreadable_consent_records, model.operations.patients_held), (2, 2));
        assert_eq!(
            model.period.unwrap(),
            ("2026-11-24T10:00:00.000Z".to_owned(), "2026-11-25T13:00:00.000Z".to_owned())
        );
    }
}
