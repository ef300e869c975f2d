//! `sluice registry serve`: a Confluent Schema Registry compatible API served from the reviewed
//! catalogue (see `sluice_registry`), for producers and integration engines that use Confluent
//! serializers.

use std::{path::PathBuf, process::ExitCode};

use clap::Subcommand;
use sluice_registry::{CatalogueRegistry, RegistryServer};
use sluice_schemas::Catalogue;

use crate::topics::Topics;

/// `sluice registry`.
#[derive(clap::Args)]
pub struct RegistryArgs {
    #[command(subcommand)]
    command: RegistryCommand,
}

#[derive(Subcommand)]
enum RegistryCommand {
    /// Serve the catalogue as a read-only Confluent Schema Registry until stopped (SIGINT/SIGTERM).
    Serve {
        /// Address to listen on, e.g. 0.0.0.0:8081 (a registry's usual port).
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// Topic definitions naming the subjects, `<topic>-value` (default: the built-in
        /// infra/topics.toml).
        #[arg(long)]
        topics: Option<PathBuf>,
    },
}

impl RegistryArgs {
    /// Serves until stopped.
    pub fn run(self) -> Result<ExitCode, String> {
        let RegistryCommand::Serve { listen, topics } = self.command;
        let topics = topics.as_deref().map_or_else(|| Ok(Topics::embedded()), Topics::load)?;
        let registry = CatalogueRegistry::new(
            Catalogue::embedded(),
            topics.topic.iter().filter_map(|topic| Some((topic.name.clone(), topic.subject.clone()?))),
        );
        let subjects = registry.subjects().len();
        crate::commands::run_service(async |shutdown| {
            let server =
                RegistryServer::bind(listen, registry).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            let address = server.local_addr().map_err(|e| e.to_string())?;
            eprintln!(
                "sluice: serving the schema catalogue ({subjects} subjects) as a schema registry on http://{address}"
            );
            server.serve(shutdown).await.map_err(|e| format!("schema registry: {e}"))
        })?;
        Ok(ExitCode::SUCCESS)
    }
}
