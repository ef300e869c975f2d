//! The `sluice` command.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use sluice::{broker, demo, keys, topics::Topics};
use sluice_producers::SyntheticSourceConfig;
use sluice_schemas::{Catalogue, Framing, compatibility};
use tracing_subscriber::EnvFilter;

/// Governed streaming of clinical events into pseudonymised Parquet.
#[derive(Parser)]
#[command(name = "sluice", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline on synthetic data: embedded broker, producer, lander, summary.
    Demo(DemoArgs),
    /// Inspect and check the Avro schema catalogue.
    Schemas {
        #[command(subcommand)]
        command: SchemasCommand,
    },
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Clinical events to produce.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Synthetic patients the events are spread over.
    #[arg(long, default_value_t = 10_000)]
    patients: u32,
    /// Share of patients with a National Data Opt-out.
    #[arg(long, default_value_t = 0.054)]
    opt_out_share: f64,
    /// Share of patients with a Type 1 opt-out.
    #[arg(long, default_value_t = 0.025)]
    type1_share: f64,
    /// Seed of the synthetic source.
    #[arg(long, default_value_t = 20_261_125)]
    seed: u64,
    /// Purposes to land for, comma-separated (direct-care, planning, research, study:<id>).
    #[arg(long, value_delimiter = ',', default_value = "planning,research")]
    purposes: Vec<String>,
    /// Directory of the lake.
    #[arg(long, default_value = "lake")]
    lake: PathBuf,
    /// Message framing: single-object or confluent.
    #[arg(long, default_value = "single-object")]
    framing: Framing,
    /// Rows held in memory before files are written and offsets committed.
    #[arg(long, default_value_t = 200_000)]
    max_buffered_rows: usize,
    /// Topic definitions (default: the compiled-in infra/topics.toml).
    #[arg(long)]
    topics: Option<PathBuf>,
    #[command(flatten)]
    broker: BrokerArgs,
}

/// Broker connection, as Kafka users expect to give it.
#[derive(clap::Args)]
struct BrokerArgs {
    /// Bootstrap servers of an existing cluster (default for the demo: an embedded mock cluster).
    #[arg(long, env = "SLUICE_BROKERS")]
    brokers: Option<String>,
    /// Any librdkafka property, e.g. -X security.protocol=SASL_SSL (repeatable).
    #[arg(short = 'X', value_parser = broker::parse_property)]
    properties: Vec<(String, String)>,
}

#[derive(Subcommand)]
enum SchemasCommand {
    /// Check that every subject is BACKWARD_TRANSITIVE compatible across its versions.
    Check {
        /// Directory of `<subject>/v<N>.avsc` files (default: the compiled-in catalogue).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// List subjects, versions, fingerprints and schema ids.
    List,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Schemas { command: SchemasCommand::Check { dir } } => schemas_check(dir),
        Command::Schemas { command: SchemasCommand::List } => schemas_list(),
        Command::Demo(args) => run_demo(args),
    }
}

fn schemas_check(dir: Option<PathBuf>) -> ExitCode {
    let loaded;
    let catalogue = match &dir {
        Some(dir) => match Catalogue::load_dir(dir) {
            Ok(catalogue) => {
                loaded = catalogue;
                &loaded
            }
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        },
        None => Catalogue::embedded(),
    };
    let problems = compatibility::check_backward_transitive(catalogue);
    let subjects: Vec<String> = catalogue
        .subject_names()
        .map(|s| format!("{s} (v1..v{})", catalogue.versions(s).map_or(0, |v| v.len())))
        .collect();
    if problems.is_empty() {
        println!("schemas: {} subjects BACKWARD_TRANSITIVE compatible: {}", subjects.len(), subjects.join(", "));
        ExitCode::SUCCESS
    } else {
        for problem in &problems {
            eprintln!("error: {problem}");
        }
        eprintln!("schemas: {} compatibility problem(s)", problems.len());
        ExitCode::FAILURE
    }
}

fn schemas_list() -> ExitCode {
    let catalogue = Catalogue::embedded();
    println!("{:<14}{:>8}  {:<18}{:>12}", "subject", "version", "fingerprint", "schema id");
    for subject in catalogue.subject_names() {
        for version in catalogue.versions(subject).unwrap_or_default() {
            println!(
                "{subject:<14}{:>8}  {:016x}  {:>12}",
                version.version(),
                version.fingerprint(),
                version.schema_id()
            );
        }
    }
    ExitCode::SUCCESS
}

fn run_demo(args: DemoArgs) -> ExitCode {
    let result = (|| -> Result<demo::DemoSummary, String> {
        let topics = match &args.topics {
            Some(path) => Topics::load(path)?,
            None => Topics::embedded(),
        };
        let (keys, key_source) = keys::from_environment_or_generate(&args.purposes)?;
        eprintln!(
            "sluice demo: {} events for {} synthetic patients, landing for {}; keys {key_source}",
            args.events,
            args.patients,
            args.purposes.join(", ")
        );
        let options = demo::DemoOptions {
            source: SyntheticSourceConfig {
                patients: args.patients,
                events: args.events,
                national_opt_out_share: args.opt_out_share,
                type1_opt_out_share: args.type1_share,
                seed: args.seed,
                ..SyntheticSourceConfig::default()
            },
            purposes: args.purposes,
            keys,
            lake_dir: args.lake,
            brokers: args.broker.brokers,
            properties: args.broker.properties,
            framing: args.framing,
            topics,
            max_buffered_rows: args.max_buffered_rows,
            show_progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        };
        let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the async runtime: {e}"))?;
        runtime.block_on(demo::run(options)).map_err(|e| e.to_string())
    })();
    match result {
        Ok(summary) => {
            println!("{}", summary.render());
            if summary.problems().is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
