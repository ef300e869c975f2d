//! `sluice topics apply`: makes the cluster's topics match `infra/topics.toml` through the Kafka
//! admin API. Missing topics are created with their partitions, retention and cleanup policy;
//! existing topics are compared and any difference is reported as drift, never changed behind
//! the operator's back. Applying twice changes nothing the second time.

use std::{fmt, time::Duration};

use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication},
    client::DefaultClientContext,
    types::RDKafkaErrorCode,
};

use crate::topics::{TopicDefinition, Topics};

/// What happened to one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOutcome {
    /// The topic did not exist and was created.
    Created,
    /// The topic exists as defined.
    Unchanged,
    /// The topic exists but differs from its definition, in the listed ways.
    Drift(Vec<String>),
}

/// The outcome of an apply, topic by topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// (topic name, outcome), in definition order.
    pub topics: Vec<(String, TopicOutcome)>,
}

impl ApplyReport {
    /// Whether any topic differs from its definition.
    pub fn has_drift(&self) -> bool {
        self.topics.iter().any(|(_, outcome)| matches!(outcome, TopicOutcome::Drift(_)))
    }
}

impl fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, outcome) in &self.topics {
            match outcome {
                TopicOutcome::Created => writeln!(f, "  created    {name}")?,
                TopicOutcome::Unchanged => writeln!(f, "  unchanged  {name}")?,
                TopicOutcome::Drift(differences) => {
                    writeln!(f, "  DRIFT      {name}")?;
                    for difference in differences {
                        writeln!(f, "               {difference}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Creates missing topics and reports drift of existing ones.
pub async fn apply(client: &ClientConfig, topics: &Topics) -> Result<ApplyReport, String> {
    let admin: AdminClient<DefaultClientContext> =
        client.create().map_err(|e| format!("cannot create a Kafka admin client: {e}"))?;
    let metadata = tokio::task::block_in_place(|| admin.inner().fetch_metadata(None, Duration::from_secs(30)))
        .map_err(|e| format!("cannot reach the cluster: {e}"))?;
    let brokers = metadata.brokers().len().max(1) as i32;
    let existing: Vec<(String, i32)> =
        metadata.topics().iter().map(|t| (t.name().to_owned(), t.partitions().len() as i32)).collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));

    let missing: Vec<&TopicDefinition> =
        topics.topic.iter().filter(|t| !existing.iter().any(|(name, _)| *name == t.name)).collect();
    let settings: Vec<Vec<(&str, String)>> = missing.iter().map(|t| topic_settings(t)).collect();
    let new_topics: Vec<NewTopic> = missing
        .iter()
        .zip(&settings)
        .map(|(t, settings)| {
            let replication = TopicReplication::Fixed(t.replication_factor.min(brokers));
            settings
                .iter()
                .fold(NewTopic::new(&t.name, t.partitions, replication), |topic, (key, value)| topic.set(key, value))
        })
        .collect();
    let mut created = Vec::new();
    if !new_topics.is_empty() {
        for result in
            admin.create_topics(&new_topics, &options).await.map_err(|e| format!("cannot create topics: {e}"))?
        {
            match result {
                Ok(name) => created.push(name),
                // Created meanwhile by someone else: it will be compared below next time.
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => created.push(name),
                Err((name, code)) => return Err(format!("cannot create topic {name}: {code}")),
            }
        }
    }

    let mut report = ApplyReport::default();
    for definition in &topics.topic {
        if created.contains(&definition.name) {
            report.topics.push((definition.name.clone(), TopicOutcome::Created));
            continue;
        }
        let mut differences = Vec::new();
        let partitions = existing.iter().find(|(name, _)| *name == definition.name).map_or(0, |(_, n)| *n);
        if partitions != definition.partitions {
            differences.push(format!("partitions: {} defined, {partitions} on the cluster", definition.partitions));
        }
        differences.extend(config_drift(&admin, &options, definition).await);
        report.topics.push((
            definition.name.clone(),
            if differences.is_empty() { TopicOutcome::Unchanged } else { TopicOutcome::Drift(differences) },
        ));
    }
    Ok(report)
}

/// The topic-level settings a definition implies.
fn topic_settings(definition: &TopicDefinition) -> Vec<(&'static str, String)> {
    let mut settings = vec![("cleanup.policy", definition.cleanup_policy.clone())];
    if let Some(hours) = definition.retention_hours {
        settings.push(("retention.ms", (hours * 3_600_000).to_string()));
    }
    settings
}

/// Differences between a topic's settings on the cluster and its definition. A broker that
/// cannot describe configurations is reported as such rather than assumed to match.
async fn config_drift(
    admin: &AdminClient<DefaultClientContext>,
    options: &AdminOptions,
    definition: &TopicDefinition,
) -> Vec<String> {
    let resource = ResourceSpecifier::Topic(&definition.name);
    let described = match admin.describe_configs([&resource], options).await {
        Ok(mut results) => match results.pop() {
            Some(Ok(config)) => config,
            Some(Err(code)) => return vec![format!("settings could not be read: {code}")],
            None => return vec!["settings could not be read: empty answer".to_owned()],
        },
        Err(error) => return vec![format!("settings could not be read: {error}")],
    };
    topic_settings(definition)
        .into_iter()
        .filter_map(|(key, wanted)| {
            let actual = described.get(key).and_then(|entry| entry.value.clone());
            (actual.as_deref() != Some(wanted.as_str()))
                .then(|| format!("{key}: {wanted} defined, {} on the cluster", actual.as_deref().unwrap_or("unset")))
        })
        .collect()
}
