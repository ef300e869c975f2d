//! The topics sluice uses, from `infra/topics.toml`.

use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;

/// The repository's topic definitions, compiled in.
const EMBEDDED_TOPICS: &str = include_str!("../infra/topics.toml");

/// What a topic is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TopicRole {
    /// Clinical events of one subject, landed as datasets.
    Clinical,
    /// Consent changes, read whole by every lander.
    Consent,
    /// Records that could not be processed, with the reason in headers.
    DeadLetter,
    /// A copy of the audit trail, for governance.
    Audit,
}

/// One topic definition.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicDefinition {
    /// Topic name on the cluster.
    pub name: String,
    /// What the topic carries.
    pub role: TopicRole,
    /// Catalogue subject of its records (none for the dead-letter topic, which carries anything).
    #[serde(default)]
    pub subject: Option<String>,
    /// Number of partitions.
    pub partitions: i32,
    /// Replication factor on a real cluster (the demo's single mock broker uses 1).
    #[serde(default = "default_replication_factor")]
    pub replication_factor: i32,
    /// Hours records are kept, for `delete` topics.
    #[serde(default)]
    pub retention_hours: Option<u64>,
    /// `delete` (the default) or `compact`.
    #[serde(default = "default_cleanup_policy")]
    pub cleanup_policy: String,
}

fn default_replication_factor() -> i32 {
    3
}
fn default_cleanup_policy() -> String {
    "delete".to_owned()
}

/// Every topic, as in `infra/topics.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topics {
    /// The topics.
    pub topic: Vec<TopicDefinition>,
}

impl Topics {
    /// The definitions compiled into this build.
    pub fn embedded() -> Self {
        Topics::parse(EMBEDDED_TOPICS).expect("infra/topics.toml is checked by this crate's tests")
    }

    /// Reads definitions from a file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Topics::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and checks definitions: one consent topic, one dead-letter topic, a subject for
    /// every clinical topic and at most one topic per subject.
    pub fn parse(text: &str) -> Result<Self, String> {
        let topics: Topics = toml::from_str(text).map_err(|e| e.to_string())?;
        for role in [TopicRole::Consent, TopicRole::DeadLetter] {
            let count = topics.topic.iter().filter(|t| t.role == role).count();
            if count != 1 {
                return Err(format!("exactly one {role:?} topic is needed, found {count}"));
            }
        }
        let mut subjects = BTreeMap::new();
        for topic in &topics.topic {
            if topic.partitions < 1 {
                return Err(format!("topic {} needs at least one partition", topic.name));
            }
            if topic.role != TopicRole::DeadLetter {
                let subject = topic.subject.as_ref().ok_or_else(|| format!("topic {} has no subject", topic.name))?;
                if let Some(other) = subjects.insert(subject.clone(), topic.name.clone()) {
                    return Err(format!("subject {subject} has two topics: {other} and {}", topic.name));
                }
            }
        }
        Ok(topics)
    }

    /// Clinical topics by subject.
    pub fn clinical(&self) -> BTreeMap<String, String> {
        self.topic
            .iter()
            .filter(|t| t.role == TopicRole::Clinical)
            .filter_map(|t| Some((t.subject.clone()?, t.name.clone())))
            .collect()
    }

    /// The topic of each subject, the consent subject included (for producers).
    pub fn by_subject(&self) -> std::collections::HashMap<String, String> {
        self.topic.iter().filter_map(|t| Some((t.subject.clone()?, t.name.clone()))).collect()
    }

    /// The consent topic's name.
    pub fn consent(&self) -> &str {
        &self.of_role(TopicRole::Consent).name
    }

    /// The audit topic's name, if one is defined.
    pub fn audit(&self) -> Option<&str> {
        self.topic.iter().find(|t| t.role == TopicRole::Audit).map(|t| t.name.as_str())
    }

    /// The dead-letter topic's name.
    pub fn dead_letter(&self) -> &str {
        &self.of_role(TopicRole::DeadLetter).name
    }

    fn of_role(&self, role: TopicRole) -> &TopicDefinition {
        self.topic.iter().find(|t| t.role == role).expect("checked when parsed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_topics_cover_every_clinical_subject() {
        let topics = Topics::embedded();
        let clinical: Vec<String> = topics.clinical().into_keys().collect();
        assert_eq!(clinical, ["adt", "diagnosis", "observation"]);
        assert_eq!(topics.consent(), "clinical.consent");
        let consent = topics.topic.iter().find(|t| t.role == TopicRole::Consent).unwrap();
        assert_eq!(consent.cleanup_policy, "compact");
    }

    #[test]
    fn incomplete_definitions_are_refused() {
        let error = Topics::parse("[[topic]]\nname='a'\nrole='clinical'\nsubject='adt'\npartitions=1\n").unwrap_err();
        assert!(error.contains("Consent"), "{error}");
        let error = Topics::parse("[[topic]]\nname='a'\nrole='clinical'\npartitions=1\nsurprise=1\n").unwrap_err();
        assert!(error.contains("surprise"), "{error}");
    }
}
