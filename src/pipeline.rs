//! One landing, assembled the same way wherever it runs: `sluice land` (and so the benchmark
//! harness, which runs it), `sluice demo` and the integration tests.
//!
//! A landing needs four things: a Kafka client, the lander's settings with the deployment's
//! topics in them, each purpose's policy and key, and where its OpenLineage events go. The
//! builder starts from the topic definitions, so no caller writes topic names or defaults out
//! again, and it refuses a landing that could not run (a purpose without a policy or key, no
//! topics) before anything is read.
//!
//! ```no_run
//! # async fn example(client: rdkafka::ClientConfig) -> Result<(), String> {
//! use sluice::{pipeline::LandingPipeline, topics::Topics};
//! use sluice_consumers::RunUntil;
//!
//! let keys = sluice::keys::generate(&["research".to_owned()]);
//! let landing = LandingPipeline::builder(&client, &Topics::embedded())
//!     .lake_dir("/srv/lake")
//!     .builtin_policies(keys)
//!     .configure(|config| config.group_id = "research-lander".to_owned())
//!     .build()?;
//! let (_stop, shutdown) = tokio::sync::watch::channel(false);
//! let report = landing.run(RunUntil::Stopped, shutdown, |_| {}).await?;
//! println!("landed {} research rows", report.landed["research"]);
//! # Ok(()) }
//! ```

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use rdkafka::ClientConfig;
use sluice_consumers::{
    LanderConfig, LandingReport, RunUntil,
    keyring::KeyRing,
    lander::{PurposeSetup, setups_from_builtin, setups_from_dir},
    lineage::LineageConfig,
    pseudonymise::PurposeKey,
};
use tokio::sync::watch;

use crate::topics::Topics;

/// A landing ready to run.
#[derive(Debug)]
pub struct LandingPipeline {
    /// The client settings every Kafka client of the run starts from (brokers, TLS, SASL).
    pub client: ClientConfig,
    /// The lander's settings, its topics taken from the topic definitions.
    pub config: LanderConfig,
    /// Each purpose's policy and key, by purpose: what decides every column landed.
    pub setups: BTreeMap<String, PurposeSetup>,
    /// Where the run's OpenLineage events go; none unless set. Lineage wraps a run (START,
    /// then COMPLETE or FAIL), so it is the pipeline's business, not the lander's.
    pub lineage: LineageConfig,
}

/// A lander's settings for the topics of `topics` (clinical, consent, dead-letter and audit),
/// every other setting at its default ([`LanderConfig::default`]).
pub fn lander_config(topics: &Topics) -> LanderConfig {
    LanderConfig {
        clinical_topics: topics.clinical(),
        consent_topic: topics.consent().to_owned(),
        dead_letter_topic: topics.dead_letter().to_owned(),
        audit_topic: topics.audit().map(str::to_owned),
        ..LanderConfig::default()
    }
}

impl LandingPipeline {
    /// Starts a landing on `client` with the topics of `topics` and every other setting at its
    /// default ([`lander_config`]).
    pub fn builder(client: &ClientConfig, topics: &Topics) -> LandingPipelineBuilder {
        LandingPipelineBuilder {
            client: client.clone(),
            config: lander_config(topics),
            policies: Policies::NotGiven,
            lineage: LineageConfig::default(),
        }
    }

    /// A [`RunUntil`] that ends the run once every clinical partition is landed up to where it
    /// ends now: a scheduled batch run (`sluice land --until-caught-up`), or a benchmark. Blocks
    /// on the network.
    pub fn caught_up_now(&self) -> Result<RunUntil, String> {
        let ends = crate::broker::high_watermarks(&self.client, &self.config.clinical_topics)?;
        // The sender is dropped at once; the lander keeps the last value it holds.
        Ok(RunUntil::CaughtUp(watch::channel(Some(ends)).1))
    }

    /// Lands until `until` is met or `shutdown` turns true, emitting the run's lineage events
    /// as [`Self::lineage`] says. `on_progress` receives the clinical messages consumed so far.
    pub async fn run(
        &self,
        until: RunUntil,
        shutdown: watch::Receiver<bool>,
        on_progress: impl FnMut(u64),
    ) -> Result<LandingReport, String> {
        crate::lineage::land(&self.lineage, &self.client, &self.config, &self.setups, until, shutdown, on_progress)
            .await
    }
}

/// Where each purpose's policy and key come from.
#[derive(Debug)]
enum Policies {
    /// Nothing said yet: [`LandingPipelineBuilder::build`] refuses it.
    NotGiven,
    /// The built-in policy of each purpose, with its active key.
    BuiltIn(BTreeMap<String, PurposeKey>),
    /// `<purpose>.toml` files of a directory, with each purpose's key ring (retired keys kept
    /// for erasure of rows landed under them).
    Directory(PathBuf, BTreeMap<String, KeyRing>),
    /// Set-ups the caller made itself.
    Given(BTreeMap<String, PurposeSetup>),
}

/// Builds a [`LandingPipeline`]; see the [module documentation](self).
#[derive(Debug)]
pub struct LandingPipelineBuilder {
    /// The client settings, cloned from the caller's.
    client: ClientConfig,
    /// The settings so far.
    config: LanderConfig,
    /// Where the purposes' policies come from.
    policies: Policies,
    /// Where lineage events go.
    lineage: LineageConfig,
}

impl LandingPipelineBuilder {
    /// Lands into a local directory, which also holds the lake's state.
    pub fn lake_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.lake_dir = dir.into();
        self.config.lake_url = None;
        self
    }

    /// Keeps the lake's state in `state_dir` and writes the datasets to `datasets` when they
    /// live elsewhere (an object-store URL).
    pub fn lake(mut self, state_dir: impl Into<PathBuf>, datasets: Option<String>) -> Self {
        self.config.lake_dir = state_dir.into();
        self.config.lake_url = datasets;
        self
    }

    /// Lands for these purposes (in this order). By default, for every purpose a policy was
    /// given for.
    pub fn purposes(mut self, purposes: &[String]) -> Self {
        self.config.purposes = purposes.to_vec();
        self
    }

    /// Each purpose under its built-in policy (`policies/<purpose>.toml`, compiled in) with
    /// this key.
    pub fn builtin_policies(mut self, keys: BTreeMap<String, PurposeKey>) -> Self {
        self.policies = Policies::BuiltIn(keys);
        self
    }

    /// Each purpose under the policy file `<dir>/<purpose>.toml` with its key ring, or under
    /// its built-in policy with its active key when `dir` is `None`.
    pub fn policies(mut self, dir: Option<&Path>, rings: BTreeMap<String, KeyRing>) -> Self {
        self.policies = match dir {
            Some(dir) => Policies::Directory(dir.to_owned(), rings),
            None => Policies::BuiltIn(crate::keys::active(rings)),
        };
        self
    }

    /// Set-ups the caller made (a test's own policy, say).
    pub fn setups(mut self, setups: BTreeMap<String, PurposeSetup>) -> Self {
        self.policies = Policies::Given(setups);
        self
    }

    /// Changes any other setting of the lander.
    pub fn configure(mut self, change: impl FnOnce(&mut LanderConfig)) -> Self {
        change(&mut self.config);
        self
    }

    /// Emits the run's OpenLineage events as `lineage` says.
    pub fn lineage(mut self, lineage: LineageConfig) -> Self {
        self.lineage = lineage;
        self
    }

    /// Loads the policies and checks that the landing can run: every purpose has a policy and
    /// a key, and the topics are named.
    pub fn build(self) -> Result<LandingPipeline, String> {
        let setups = match self.policies {
            Policies::NotGiven => return Err("no policies or keys were given for the landing".to_owned()),
            Policies::BuiltIn(keys) => setups_from_builtin(&keys).map_err(|e| e.to_string())?,
            Policies::Directory(dir, rings) => setups_from_dir(&dir, rings).map_err(|e| e.to_string())?,
            Policies::Given(setups) => setups,
        };
        let mut config = self.config;
        if config.purposes.is_empty() {
            config.purposes = setups.keys().cloned().collect();
        }
        if let Some(purpose) = config.purposes.iter().find(|p| !setups.contains_key(p.as_str())) {
            return Err(format!("no policy and key for the purpose {purpose}"));
        }
        config.check_complete().map_err(|e| e.to_string())?;
        Ok(LandingPipeline { client: self.client, config, setups, lineage: self.lineage })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> ClientConfig {
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", "127.0.0.1:9");
        client
    }

    #[test]
    fn the_topics_come_from_the_definitions_and_the_purposes_from_the_policies() {
        let topics = Topics::embedded();
        let keys = crate::keys::generate(&["planning".to_owned(), "research".to_owned()]);
        let landing = LandingPipeline::builder(&client(), &topics)
            .lake_dir("/srv/lake")
            .builtin_policies(keys)
            .configure(|config| config.max_file_age_secs = 60)
            .build()
            .unwrap();
        assert_eq!(landing.config.clinical_topics, topics.clinical());
        assert_eq!(landing.config.consent_topic, topics.consent());
        assert_eq!(landing.config.dead_letter_topic, topics.dead_letter());
        assert_eq!(landing.config.audit_topic.as_deref(), topics.audit());
        assert_eq!(landing.config.purposes, ["planning", "research"]);
        assert_eq!(landing.config.lake_dir, PathBuf::from("/srv/lake"));
        assert_eq!(landing.config.max_file_age_secs, 60);
        assert_eq!(landing.config.max_buffered_rows, LanderConfig::default().max_buffered_rows);
        assert!(!landing.lineage.enabled());
    }

    #[test]
    fn a_purpose_without_a_policy_or_no_policies_at_all_is_refused() {
        let topics = Topics::embedded();
        let keys = crate::keys::generate(&["planning".to_owned()]);
        let error = LandingPipeline::builder(&client(), &topics)
            .purposes(&["planning".to_owned(), "research".to_owned()])
            .builtin_policies(keys)
            .build()
            .unwrap_err();
        assert!(error.contains("research"), "{error}");
        let error = LandingPipeline::builder(&client(), &topics).build().unwrap_err();
        assert!(error.contains("no policies"), "{error}");
    }
}
