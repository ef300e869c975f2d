//! Options many commands share: where the brokers are and how to reach them (`--brokers`, `-X`,
//! `--kafka-config`), and which topic definitions to use (`--topics`).

use std::path::PathBuf;

use rdkafka::ClientConfig;

use crate::{broker, topics::Topics};

/// Broker connection, as Kafka users expect to give it.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BrokerArgs {
    /// Bootstrap servers (for the demo, default: an embedded mock cluster).
    #[arg(long, env = "SLUICE_BROKERS")]
    pub brokers: Option<String>,
    /// Any librdkafka property, e.g. -X security.protocol=SASL_SSL (repeatable; wins over --kafka-config).
    /// Checked in `properties()`, not by clap, whose error would echo the text (and a secret in it).
    #[arg(short = 'X')]
    pub properties: Vec<String>,
    /// A TOML file whose [kafka] table holds librdkafka properties (TLS, SASL...).
    #[arg(long, env = "SLUICE_KAFKA_CONFIG")]
    pub kafka_config: Option<PathBuf>,
}

impl BrokerArgs {
    /// librdkafka properties from the config file, then -X.
    pub fn properties(&self) -> Result<Vec<(String, String)>, String> {
        let mut properties = match &self.kafka_config {
            Some(path) => broker::load_properties(path)?,
            None => Vec::new(),
        };
        for text in &self.properties {
            properties.push(broker::parse_property(text)?);
        }
        Ok(properties)
    }

    /// The client configuration of a service, which needs real brokers.
    pub fn client(&self) -> Result<ClientConfig, String> {
        let properties = self.properties()?;
        let brokers = self
            .brokers
            .clone()
            .or_else(|| properties.iter().find(|(k, _)| k == "bootstrap.servers").map(|(_, v)| v.clone()));
        let brokers =
            brokers.ok_or("no brokers: give --brokers, SLUICE_BROKERS or bootstrap.servers in --kafka-config")?;
        Ok(broker::client_config(&brokers, &properties))
    }
}

/// `--topics` and the broker options: which topics a command uses, and where they are.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct KafkaArgs {
    /// Topic definitions (default: the compiled-in infra/topics.toml).
    #[arg(long)]
    pub topics: Option<PathBuf>,
    /// Where the brokers are and how to reach them.
    #[command(flatten)]
    pub broker: BrokerArgs,
}

impl KafkaArgs {
    /// The topic definitions.
    pub fn topics(&self) -> Result<Topics, String> {
        self.topics.as_deref().map_or_else(|| Ok(Topics::embedded()), Topics::load)
    }

    /// The topic definitions and a client for real brokers.
    pub fn connect(&self) -> Result<(Topics, ClientConfig), String> {
        Ok((self.topics()?, self.broker.client()?))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        kafka: KafkaArgs,
    }

    #[test]
    fn brokers_come_from_the_flag_or_the_kafka_config_and_topics_default_to_the_built_in_ones() {
        let parsed = Command::try_parse_from(["x", "--brokers", "kafka-1:9092", "-X", "acks=all"]).unwrap();
        let (topics, client) = parsed.kafka.connect().unwrap();
        assert_eq!(client.get("bootstrap.servers"), Some("kafka-1:9092"));
        assert_eq!(client.get("acks"), Some("all"));
        assert_eq!(topics.consent(), Topics::embedded().consent());

        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("kafka.toml");
        std::fs::write(&config, "[kafka]\n\"bootstrap.servers\" = \"kafka-2:9093\"\n").unwrap();
        let parsed = Command::try_parse_from(["x", "--kafka-config", config.to_str().unwrap()]).unwrap();
        assert_eq!(parsed.kafka.broker.client().unwrap().get("bootstrap.servers"), Some("kafka-2:9093"));

        let parsed = Command::try_parse_from(["x"]).unwrap();
        if std::env::var_os("SLUICE_BROKERS").is_none() {
            assert!(parsed.kafka.broker.client().unwrap_err().contains("no brokers"));
        }
        let error = Command::try_parse_from(["x", "--topics", "/nonexistent/topics.toml"]).unwrap().kafka.topics();
        assert!(error.is_err());
    }
}
