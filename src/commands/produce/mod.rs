//! `sluice produce synthetic|hl7|fhir|file`: publish clinical events and consent changes to
//! Kafka from a source. Each runs until done or stopped (SIGINT/SIGTERM) and prints what it did.

mod fhir;
mod file;
mod hl7;
mod synthetic;

use std::process::ExitCode;

use clap::Subcommand;
pub use fhir::FhirArgs;
pub use file::FileArgs;
pub use hl7::Hl7Args;
use sluice_schemas::Framing;
pub use synthetic::SyntheticArgs;

use super::args::KafkaArgs;

/// `sluice produce`.
#[derive(clap::Args)]
pub struct ProduceArgs {
    #[command(subcommand)]
    source: ProduceSource,
}

#[derive(Subcommand)]
enum ProduceSource {
    /// Listen for HL7 v2 messages over MLLP (ADT A01-A04, A08, A11, A13, A40; ORU^R01) and publish
    /// their events; answers every message with an ACK (AA only once Kafka has stored it).
    Hl7(Hl7Args),
    /// Serve a write-only FHIR R4 endpoint (Patient, Encounter, Observation, Condition, Consent,
    /// batch and transaction Bundles) and publish the resources' events; answers 201/200 only
    /// once Kafka has stored them.
    Fhir(FhirArgs),
    /// Import an NDJSON batch extract (FHIR R4 resources, or records in subject JSON form), with
    /// progress; a restarted import resumes and publishes no line twice.
    File(FileArgs),
    /// Deterministic synthetic patients, consent changes and clinical events.
    Synthetic(ProduceSyntheticArgs),
}

impl ProduceArgs {
    /// Runs the source until it is done or stopped.
    pub fn run(self) -> Result<ExitCode, String> {
        match self.source {
            ProduceSource::Hl7(args) => args.run(),
            ProduceSource::Fhir(args) => args.run(),
            ProduceSource::File(args) => args.run(),
            ProduceSource::Synthetic(args) => args.run(),
        }
    }
}

/// How a producer frames and where it publishes: what every source shares.
#[derive(clap::Args)]
pub struct PublishArgs {
    /// Message framing: single-object or confluent.
    #[arg(long, default_value = "single-object")]
    pub framing: Framing,
    /// With `--framing confluent`: the estate's own schema registry, whose ids to frame with
    /// (e.g. http://registry:8081). Each catalogued version is looked up there under
    /// `<topic>-value`, and registered if the registry does not hold it yet, before anything is
    /// published. Without it, Confluent ids are the catalogue's, as `sluice registry serve` gives.
    #[arg(long)]
    pub schema_registry: Option<String>,
    /// The topics published to, and the brokers.
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

impl PublishArgs {
    /// The publisher's settings: the framing asked for (with the schema registry's ids when one
    /// is named), the rest at their defaults.
    pub fn publisher(&self) -> Result<sluice_producers::PublisherConfig, String> {
        let schema_ids = match &self.schema_registry {
            None => Default::default(),
            Some(_) if self.framing != Framing::Confluent => {
                return Err("--schema-registry frames with a registry's ids: it needs --framing confluent".to_owned());
            }
            Some(url) => {
                let topics = self.kafka.topics()?;
                let topic_subjects =
                    topics.topic.iter().filter_map(|topic| Some((topic.name.clone(), topic.subject.clone()?)));
                sluice_registry::ids_for_producing(url, sluice_schemas::Catalogue::embedded(), topic_subjects)
                    .map_err(|error| format!("schema registry {url}: {error}"))?
            }
        };
        Ok(sluice_producers::PublisherConfig { framing: self.framing, schema_ids, ..Default::default() })
    }
}

/// `sluice produce synthetic`.
#[derive(clap::Args)]
pub struct ProduceSyntheticArgs {
    #[command(flatten)]
    source: SyntheticArgs,
    #[command(flatten)]
    publish: PublishArgs,
}

impl ProduceSyntheticArgs {
    /// Publishes the consent changes, then the clinical events.
    pub fn run(self) -> Result<ExitCode, String> {
        synthetic::produce(self.source, self.publish)
    }
}
