//! `sluice topics apply`: creates the topics of `infra/topics.toml` that are missing and reports
//! (exit 3) any existing topic that has drifted from its definition.

use std::process::ExitCode;

use clap::Subcommand;

use super::args::KafkaArgs;

/// `sluice topics`.
#[derive(clap::Args)]
pub struct TopicsArgs {
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(Subcommand)]
enum TopicsCommand {
    /// Create missing topics; report (and exit 3 on) drift of existing ones. Idempotent.
    Apply {
        #[command(flatten)]
        kafka: KafkaArgs,
    },
}

impl TopicsArgs {
    /// Applies the topic definitions.
    pub fn run(self) -> Result<ExitCode, String> {
        let TopicsCommand::Apply { kafka } = self.command;
        let (topics, client) = kafka.connect()?;
        let report = super::runtime()?.block_on(crate::provision::apply(&client, &topics))?;
        print!("{report}");
        Ok(if report.has_drift() { ExitCode::from(3) } else { ExitCode::SUCCESS })
    }
}
