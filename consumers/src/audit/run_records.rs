//! Audit records of landing runs themselves: when a lander started and under what, when it
//! stopped and what it did, and when the policy or key a purpose lands under changed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What one purpose lands under: its policy, key and reader schemas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurposeInForce {
    /// The purpose.
    pub purpose: String,
    /// Policy applied, `name@vN`.
    pub policy: String,
    /// SHA-256 of the policy file.
    pub policy_hash: String,
    /// Id of the active pseudonymisation key (never the key).
    pub key_id: String,
    /// Schema each subject is read with, `subject vN fingerprint`.
    pub reader_schemas: Vec<String>,
}

/// A lander started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StartRecord {
    /// sluice's version.
    pub version: String,
    /// The consumer group the lander joined.
    pub group_id: String,
    /// Clinical topics it consumes.
    pub topics: Vec<String>,
    /// Where its datasets go (a directory or URL).
    pub lake: String,
    /// What each purpose lands under.
    pub purposes: Vec<PurposeInForce>,
}

/// A lander stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StopRecord {
    /// Why: shut down, caught up, or the error that stopped it.
    pub reason: String,
    /// Whether it stopped because of an error.
    pub failed: bool,
    /// Clinical messages consumed and committed in the run, per subject.
    pub consumed: BTreeMap<String, u64>,
    /// Messages sent to the dead-letter topic.
    pub invalid: u64,
    /// Events withheld, per purpose and reason.
    pub withheld: BTreeMap<String, BTreeMap<String, u64>>,
    /// Rows landed, per purpose.
    pub landed: BTreeMap<String, u64>,
    /// Files written.
    pub files: u64,
    /// Clinical events from organisations the register of source organisations does not list,
    /// per ODS code: a Type 1 opt-out covered them. Left out when there were none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub unknown_source_organisations: BTreeMap<String, u64>,
}

/// The policy or key a purpose lands under differs from the one in force when a lander last
/// started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigurationChangeRecord {
    /// The purpose.
    pub purpose: String,
    /// `policy` or `key`.
    pub item: String,
    /// In force before (`policy@vN sha256` or a key id); empty if the purpose is new.
    pub before: String,
    /// In force now.
    pub after: String,
}

/// The changes between what was in force at the last start and what is now, purpose by purpose.
pub fn configuration_changes(before: &[PurposeInForce], now: &[PurposeInForce]) -> Vec<ConfigurationChangeRecord> {
    let mut changes = Vec::new();
    for current in now {
        let previous = before.iter().find(|p| p.purpose == current.purpose);
        let policy = |p: &PurposeInForce| format!("{} {}", p.policy, p.policy_hash);
        let (policy_before, key_before) = previous.map(|p| (policy(p), p.key_id.clone())).unwrap_or_default();
        if policy_before != policy(current) {
            changes.push(ConfigurationChangeRecord {
                purpose: current.purpose.clone(),
                item: "policy".to_owned(),
                before: policy_before,
                after: policy(current),
            });
        }
        if key_before != current.key_id {
            changes.push(ConfigurationChangeRecord {
                purpose: current.purpose.clone(),
                item: "key".to_owned(),
                before: key_before,
                after: current.key_id.clone(),
            });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_force(purpose: &str, policy: &str, hash: &str, key: &str) -> PurposeInForce {
        PurposeInForce {
            purpose: purpose.into(),
            policy: policy.into(),
            policy_hash: hash.into(),
            key_id: key.into(),
            reader_schemas: vec![],
        }
    }

    #[test]
    fn a_new_policy_version_or_key_is_a_change_and_an_unchanged_purpose_is_not() {
        let before = [in_force("research", "research@v1", "aa", "r1"), in_force("planning", "planning@v1", "bb", "p1")];
        let now = [
            in_force("research", "research@v2", "cc", "r1"),
            in_force("planning", "planning@v1", "bb", "p2"),
            in_force("direct-care", "direct-care@v1", "dd", "d1"),
        ];
        let changes: Vec<(String, String, String, String)> =
            configuration_changes(&before, &now).into_iter().map(|c| (c.purpose, c.item, c.before, c.after)).collect();
        let owned = |a: &str, b: &str, c: &str, d: &str| (a.to_owned(), b.to_owned(), c.to_owned(), d.to_owned());
        assert_eq!(
            changes,
            [
                owned("research", "policy", "research@v1 aa", "research@v2 cc"),
                owned("planning", "key", "p1", "p2"),
                owned("direct-care", "policy", "", "direct-care@v1 dd"),
                owned("direct-care", "key", "", "d1"),
            ]
        );
        assert!(configuration_changes(&now, &now).is_empty());
    }
}
