//! The `sluice` command: parses the command line, sets up logs, traces and metrics, and runs the
//! subcommand (each is a module of [`sluice::commands`], with its arguments and its `run`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice::{
    commands::{
        audit, compact, demo, disclosure, erase, keys, land, policy, produce, registry, report, schemas, topics,
    },
    observability,
};

/// Governed streaming of clinical events into pseudonymised Parquet.
#[derive(Parser)]
#[command(name = "sluice", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines on stderr are written: `text` for people, `json` (one object per line)
    /// for log collectors. Logs also go to the OTLP collector when `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// is set.
    #[arg(long, global = true, value_enum, env = "SLUICE_LOG_FORMAT", default_value = "text")]
    log_format: observability::LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline on synthetic data: embedded broker, producer, lander, summary.
    Demo(demo::DemoArgs),
    /// Publish events to Kafka from a source; runs until done or stopped (SIGINT/SIGTERM).
    Produce(produce::ProduceArgs),
    /// Land clinical events as pseudonymised Parquet; runs until stopped (SIGINT/SIGTERM).
    Land(land::LandArgs),
    /// Provision the topics of infra/topics.toml.
    Topics(topics::TopicsArgs),
    /// Manage pseudonymisation key files.
    Keys(keys::KeysArgs),
    /// Merge small landed files of each date partition into larger ones (committed files only).
    Compact(compact::CompactArgs),
    /// Remove patients' rows from landed files (e.g. after a late opt-out), audited.
    Erase(erase::EraseArgs),
    /// Write one self-contained HTML page for governance: flows, withheld by reason, versions in
    /// force and audit status, small numbers suppressed.
    Report(report::ReportArgs),
    /// Check policy files against the schemas and show what each does to every field.
    Policy(policy::PolicyArgs),
    /// Measure the re-identification risk of the landed datasets against each policy's threshold.
    Disclosure(disclosure::DisclosureArgs),
    /// Check the audit trail.
    Audit(audit::AuditArgs),
    /// Inspect and check the Avro schema catalogue.
    Schemas(schemas::SchemasArgs),
    /// Serve the schema catalogue as a Confluent Schema Registry compatible API.
    Registry(registry::RegistryArgs),
}

impl Command {
    /// The subcommand's name, for the telemetry `service.name` (`sluice-land`, ...).
    fn name(&self) -> &'static str {
        match self {
            Command::Demo(_) => "demo",
            Command::Produce(_) => "produce",
            Command::Land(_) => "land",
            Command::Topics(_) => "topics",
            Command::Keys(_) => "keys",
            Command::Compact(_) => "compact",
            Command::Erase(_) => "erase",
            Command::Report(_) => "report",
            Command::Policy(_) => "policy",
            Command::Disclosure(_) => "disclosure",
            Command::Audit(_) => "audit",
            Command::Schemas(_) => "schemas",
            Command::Registry(_) => "registry",
        }
    }

    /// Runs the subcommand.
    fn run(self) -> Result<ExitCode, String> {
        match self {
            Command::Demo(args) => args.run(),
            Command::Produce(args) => args.run(),
            Command::Land(args) => args.run(),
            Command::Topics(args) => args.run(),
            Command::Keys(args) => args.run(),
            Command::Compact(args) => args.run(),
            Command::Erase(args) => args.run(),
            Command::Report(args) => args.run(),
            Command::Policy(args) => args.run(),
            Command::Disclosure(args) => args.run(),
            Command::Audit(args) => args.run(),
            Command::Schemas(args) => args.run(),
            Command::Registry(args) => args.run(),
        }
    }
}

/// The log filter of the long-running commands (`land`, `produce`) when `SLUICE_LOG` is not set:
/// sluice's own progress at `info`, and delta-rs (`deltalake_core`) and its Delta kernel
/// (`buoyant_kernel`) at `warn`. At `info` the two log every snapshot they build and every log
/// scan, over 90% of a lander's lines, which buried the checkpoints an operator reads for; their
/// warnings and errors still show. `SLUICE_LOG=info` brings their lines back.
const LONG_RUNNING_LOG: &str = "info,buoyant_kernel=warn,deltalake_core=warn,deltalake=warn";

fn main() -> ExitCode {
    let cli = Cli::parse();
    restrict_new_files();
    let default_log = match cli.command {
        Command::Land(_) | Command::Produce(_) => LONG_RUNNING_LOG,
        _ => "warn",
    };
    let service = format!("sluice-{}", cli.command.name());
    let mut telemetry = match observability::start(&service, default_log, cli.log_format) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = cli.command.run().unwrap_or_else(|error| {
        eprintln!("error: {error}");
        ExitCode::FAILURE
    });
    // Export the last spans, metrics and logs before exiting.
    if let Some(Err(error)) = telemetry.as_mut().map(sluice_telemetry::Telemetry::shutdown) {
        eprintln!("warning: {error}");
    }
    code
}

/// Permission bits sluice never gives a file or directory it creates: write for the group, and
/// everything for other users. Landed Parquet, state and lineage files are 0640 and their
/// directories 0750, so analysts are given the lake through its group; the audit log and key
/// files are 0600 whatever the mask.
#[cfg(unix)]
const CREATION_MASK: u32 = 0o027;

/// Adds [`CREATION_MASK`] to the process's umask (a stricter umask already set is kept), before
/// any thread or file is created.
fn restrict_new_files() {
    #[cfg(unix)]
    {
        use rustix::fs::Mode;
        let inherited = rustix::process::umask(Mode::from_bits_truncate(CREATION_MASK));
        rustix::process::umask(inherited | Mode::from_bits_truncate(CREATION_MASK));
    }
}

/// jemalloc is the allocator of every sluice command, for the C libraries' allocations too
/// (librdkafka, zstd). It replaced re-executing `sluice land` with `MALLOC_ARENA_MAX=2`, which
/// glibc reads only as a process starts; its own settings (two arenas, freed pages returned after
/// 100 ms, and at once for allocations over 256 KiB) are compiled in from `.cargo/config.toml`.
/// Landing 300,000 events it used 5-9% less CPU and 7-10% less peak RSS than the re-executed
/// lander (docs/BENCHMARKS.md, "The allocator (issue 22, item 5)").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
