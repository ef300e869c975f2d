//! The `sluice` command.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use rdkafka::ClientConfig;
use sluice::{
    broker, demo, governance, keys, listener_args, observability, progress, provision, services, topics::Topics,
};
use sluice_consumers::{
    LanderConfig,
    lander::{setups_from_builtin, setups_from_dir},
    lineage::LineageConfig,
};
use sluice_producers::batch_file::FileImportConfig;
use sluice_producers::fhir::server::FhirServerConfig;
use sluice_producers::hl7::listener::MllpListenerConfig;
use sluice_producers::{PublisherConfig, SyntheticSource, SyntheticSourceConfig};
use sluice_schemas::{Catalogue, Framing, compatibility};

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
    Demo(DemoArgs),
    /// Publish events to Kafka from a source; runs until done or stopped (SIGINT/SIGTERM).
    Produce {
        #[command(subcommand)]
        source: ProduceSource,
    },
    /// Land clinical events as pseudonymised Parquet; runs until stopped (SIGINT/SIGTERM).
    Land(LandArgs),
    /// Provision the topics of infra/topics.toml.
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// Manage pseudonymisation key files.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Merge small landed files of each date partition into larger ones (committed files only).
    Compact(governance::CompactArgs),
    /// Remove patients' rows from landed files (e.g. after a late opt-out), audited.
    Erase(governance::EraseArgs),
    /// Write one self-contained HTML page for governance: flows, withheld by reason, versions in
    /// force and audit status, small numbers suppressed.
    Report(sluice::report::ReportArgs),
    /// Check policy files against the schemas and show what each does to every field.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Check the audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Inspect and check the Avro schema catalogue.
    Schemas {
        #[command(subcommand)]
        command: SchemasCommand,
    },
    /// Measure landing against a bare Kafka consumer and a Python peer, and the producers' rates
    /// (see docs/BENCHMARKS.md).
    Bench(BenchArgs),
}

impl Command {
    /// The subcommand's name, for the telemetry `service.name` (`sluice-land`, ...).
    fn name(&self) -> &'static str {
        match self {
            Command::Demo(_) => "demo",
            Command::Produce { .. } => "produce",
            Command::Land(_) => "land",
            Command::Topics { .. } => "topics",
            Command::Keys { .. } => "keys",
            Command::Compact(_) => "compact",
            Command::Erase(_) => "erase",
            Command::Report(_) => "report",
            Command::Policy { .. } => "policy",
            Command::Audit { .. } => "audit",
            Command::Schemas { .. } => "schemas",
            Command::Bench(_) => "bench",
        }
    }
}

/// Settings of the synthetic source.
#[derive(clap::Args)]
struct SyntheticArgs {
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
}

impl SyntheticArgs {
    fn config(&self) -> SyntheticSourceConfig {
        SyntheticSourceConfig {
            patients: self.patients,
            events: self.events,
            national_opt_out_share: self.opt_out_share,
            type1_opt_out_share: self.type1_share,
            seed: self.seed,
            ..SyntheticSourceConfig::default()
        }
    }
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Clinical events to load and land.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Synthetic patients the events are spread over.
    #[arg(long, default_value_t = 100_000)]
    patients: u32,
    /// Purpose landed by sluice and the Python peer, under its built-in policy: `research`
    /// (pseudonyms, shifted dates) or `planning`.
    #[arg(long, default_value = "research", value_parser = ["research", "planning"])]
    purpose: String,
    /// Scratch directory for the broker's data, the key file, both lakes and the landers' logs;
    /// must be new or empty. Default: a new directory under the system's temporary directory,
    /// removed at the end.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Python interpreter of the peer.
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// The Python peer's script.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peer/land.py"))]
    peer_script: PathBuf,
    /// Skip the Python peer.
    #[arg(long)]
    no_peer: bool,
    /// HL7 v2 messages sent over MLLP (0 skips that measurement).
    #[arg(long, default_value_t = 20_000)]
    mllp_messages: u64,
    /// Concurrent MLLP connections, each sending one message at a time.
    #[arg(long, default_value_t = 8)]
    mllp_connections: usize,
    /// Brokers to use instead of starting a Tansu broker (its topics must be empty).
    #[command(flatten)]
    broker: BrokerArgs,
}

#[derive(clap::Args)]
struct DemoArgs {
    #[command(flatten)]
    source: SyntheticArgs,
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
    #[arg(long, default_value_t = sluice_consumers::lander::DEFAULT_MAX_BUFFERED_ROWS)]
    max_buffered_rows: usize,
    /// Topic definitions (default: the compiled-in infra/topics.toml).
    #[arg(long)]
    topics: Option<PathBuf>,
    #[command(flatten)]
    broker: BrokerArgs,
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
    Synthetic {
        #[command(flatten)]
        source: SyntheticArgs,
        /// Message framing: single-object or confluent.
        #[arg(long, default_value = "single-object")]
        framing: Framing,
        /// Topic definitions (default: the compiled-in infra/topics.toml).
        #[arg(long)]
        topics: Option<PathBuf>,
        #[command(flatten)]
        broker: BrokerArgs,
    },
}

#[derive(clap::Args)]
struct Hl7Args {
    /// Address to listen on, e.g. 0.0.0.0:2575.
    #[arg(long)]
    listen: std::net::SocketAddr,
    /// Directory for the journal of stored messages, so a repeated MSH-10 is recognised across restarts.
    #[arg(long, default_value = "sluice-state")]
    state_dir: PathBuf,
    /// MSH-3 of acknowledgements.
    #[arg(long, default_value = "SLUICE")]
    receiving_application: String,
    /// MSH-4 of acknowledgements (e.g. your organisation's ODS code).
    #[arg(long, default_value = "SLUICE")]
    receiving_facility: String,
    /// Largest message accepted, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_message_bytes: usize,
    /// Most connections served at once.
    #[arg(long, default_value_t = 64)]
    max_connections: usize,
    #[command(flatten)]
    tls: listener_args::TlsArgs,
    /// Message framing: single-object or confluent.
    #[arg(long, default_value = "single-object")]
    framing: Framing,
    /// Topic definitions (default: the compiled-in infra/topics.toml).
    #[arg(long)]
    topics: Option<PathBuf>,
    #[command(flatten)]
    broker: BrokerArgs,
}

#[derive(clap::Args)]
struct FhirArgs {
    /// Address to listen on, e.g. 0.0.0.0:8080.
    #[arg(long)]
    listen: std::net::SocketAddr,
    /// ODS code recorded for resources that name no organisation (without it they are refused).
    #[arg(long)]
    organisation: Option<String>,
    /// Source system recorded for resources without meta.source.
    #[arg(long, default_value = "fhir")]
    source_system: String,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    max_body_bytes: usize,
    #[command(flatten)]
    tls: listener_args::TlsArgs,
    #[command(flatten)]
    bearer_token: listener_args::BearerTokenArgs,
    /// Message framing: single-object or confluent.
    #[arg(long, default_value = "single-object")]
    framing: Framing,
    /// Topic definitions (default: the compiled-in infra/topics.toml).
    #[arg(long)]
    topics: Option<PathBuf>,
    #[command(flatten)]
    broker: BrokerArgs,
}

#[derive(clap::Args)]
struct FileArgs {
    /// The NDJSON file.
    path: PathBuf,
    /// Directory of import checkpoints (one per file), for resuming.
    #[arg(long, default_value = "sluice-state")]
    state_dir: PathBuf,
    /// ODS code recorded for FHIR resources that name no organisation.
    #[arg(long)]
    organisation: Option<String>,
    /// Source system recorded for FHIR resources without meta.source.
    #[arg(long, default_value = "batch-file")]
    source_system: String,
    /// Most lines handed to Kafka and not yet acknowledged.
    #[arg(long, default_value_t = 10_000)]
    max_in_flight_lines: usize,
    /// Seconds between checkpoints.
    #[arg(long, default_value_t = 2)]
    checkpoint_interval_secs: u64,
    /// Message framing: single-object or confluent.
    #[arg(long, default_value = "single-object")]
    framing: Framing,
    /// Topic definitions (default: the compiled-in infra/topics.toml).
    #[arg(long)]
    topics: Option<PathBuf>,
    #[command(flatten)]
    broker: BrokerArgs,
}

#[derive(clap::Args)]
struct LandArgs {
    /// Purpose to land for (repeatable or comma-separated): direct-care, planning, research, study:<id>.
    /// Keys come from the key file named by SLUICE_KEYS_FILE.
    #[arg(long = "purpose", value_delimiter = ',', required = true)]
    purposes: Vec<String>,
    #[command(flatten)]
    lake: sluice::lake_args::LakeArgs,
    /// Consumer group; landers in one group share the partitions.
    #[arg(long, default_value = "sluice-lander")]
    group_id: String,
    /// Rows held in memory before files are written and offsets committed.
    #[arg(long, default_value_t = sluice_consumers::lander::DEFAULT_MAX_BUFFERED_ROWS)]
    max_buffered_rows: usize,
    /// Seconds without new events after which buffered rows are written anyway.
    #[arg(long, default_value_t = 5)]
    idle_flush_secs: u64,
    /// Topic definitions (default: the compiled-in infra/topics.toml).
    #[arg(long)]
    topics: Option<PathBuf>,
    /// Directory of policy files, one `<purpose>.toml` per purpose (default: the built-in
    /// policies of direct-care, planning and research; a study always needs a file).
    #[arg(long)]
    policies: Option<PathBuf>,
    /// Keep rows already landed when their patient later opts out (only stop later releases).
    /// By default a later opt-out or dissent erases them, except for purposes whose policy says
    /// `keep_landed_rows_on_opt_out = "<reason>"`.
    #[arg(long)]
    keep_landed_rows_on_opt_out: bool,
    /// Seconds after a source partition's first unlanded event after which its files are
    /// written anyway (files also roll at 250,000 rows or 128 MiB per partition).
    #[arg(long, default_value_t = 300)]
    max_file_age_secs: u64,
    /// Event-time window, in seconds, that files roll at: a partition's files are written when
    /// its events move on to a later window (a UTC day by default, one `event_date` directory).
    #[arg(long, default_value_t = 86_400)]
    event_time_window_secs: u64,
    /// Append the run's OpenLineage events (START, then COMPLETE or FAIL) to this file, one JSON
    /// object a line, synced.
    #[arg(long)]
    lineage_file: Option<PathBuf>,
    /// Also POST each OpenLineage event to this http:// endpoint, e.g. Marquez's
    /// `http://marquez:5000/api/v1/lineage`. A failed POST is logged; landing goes on.
    #[arg(long)]
    lineage_url: Option<String>,
    /// Land what the clinical topics hold when the lander starts, then stop (a scheduled batch
    /// run instead of a service).
    #[arg(long)]
    until_caught_up: bool,
    /// A consent record, as PARTITION:OFFSET of the consent topic, that can be read neither as
    /// a change nor for the patient its key names, and that has been reviewed (repeatable).
    /// Without it such a record stops the lander, since it may have been anybody's opt-out.
    #[arg(long = "reviewed-consent-record", value_parser = parse_record_position)]
    reviewed_consent_records: Vec<(i32, i64)>,
    /// The register of source organisations (CSV: ods_code,organisation_type,name) that decides
    /// which data a Type 1 opt-out covers: GP practices', hubs' and any organisation's it does
    /// not list. Default: the one built in, policies/source-organisations.csv.
    #[arg(long, value_name = "CSV")]
    source_organisations: Option<PathBuf>,
    #[command(flatten)]
    broker: BrokerArgs,
}

/// `PARTITION:OFFSET` of a record on a topic.
fn parse_record_position(text: &str) -> Result<(i32, i64), String> {
    let (partition, offset) = text.split_once(':').ok_or("expected PARTITION:OFFSET, e.g. 3:1042")?;
    let partition = partition.trim().parse().map_err(|_| format!("`{partition}` is not a partition number"))?;
    let offset = offset.trim().parse().map_err(|_| format!("`{offset}` is not an offset"))?;
    Ok((partition, offset))
}

#[derive(Subcommand)]
enum TopicsCommand {
    /// Create missing topics; report (and exit 3 on) drift of existing ones. Idempotent.
    Apply {
        /// Topic definitions (default: the compiled-in infra/topics.toml).
        #[arg(long)]
        topics: Option<PathBuf>,
        #[command(flatten)]
        broker: BrokerArgs,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Write a new key file with a random key per purpose (mode 0600; never overwrites).
    Generate {
        /// Purposes to create keys for (repeatable or comma-separated).
        #[arg(long = "purpose", value_delimiter = ',', required = true)]
        purposes: Vec<String>,
        /// Where to write the key file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Give purposes a fresh active key; the old key stays in the file as retired, so files
    /// written with it can still be erased from.
    Rotate {
        /// Purposes whose keys to rotate (repeatable or comma-separated).
        #[arg(long = "purpose", value_delimiter = ',', required = true)]
        purposes: Vec<String>,
        /// The key file (replaced atomically, mode 0600).
        #[arg(long, env = "SLUICE_KEYS_FILE")]
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Plan every policy against the newest schemas; exit 1 if any field is not covered.
    Check(governance::PolicyCheckArgs),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the audit log's hash chain and check the lake's files against it; report any
    /// edit, gap, reordering, missing, changed or unrecorded file (exit 1).
    Verify(governance::AuditVerifyArgs),
    /// Copy the audit records not yet in the audit topic to it (landers do so as they run;
    /// this catches up after `sluice erase` or `sluice compact`).
    Publish(AuditPublishArgs),
}

#[derive(clap::Args)]
struct AuditPublishArgs {
    #[command(flatten)]
    lake: sluice::lake_args::LakeArgs,
    /// Topic definitions (default: the compiled-in infra/topics.toml), which name the audit topic.
    #[arg(long)]
    topics: Option<PathBuf>,
    #[command(flatten)]
    broker: BrokerArgs,
}

fn audit_publish(args: AuditPublishArgs) -> Result<ExitCode, String> {
    let topics = load_topics(args.topics)?;
    let topic = topics.audit().ok_or("the topic definitions name no audit topic (role = \"audit\")")?;
    let client = args.broker.client()?;
    let state = args.lake.state_dir()?;
    let log = governance::audit_log_path(&state);
    let publisher = sluice_consumers::audit::AuditPublisher::new(&client, topic, Catalogue::embedded())
        .map_err(|e| e.to_string())?;
    let published = publisher.publish_new(&log, &state).map_err(|e| e.to_string())?;
    println!("{published} audit records published to {topic}");
    Ok(ExitCode::SUCCESS)
}

/// Broker connection, as Kafka users expect to give it.
#[derive(clap::Args)]
struct BrokerArgs {
    /// Bootstrap servers (for the demo, default: an embedded mock cluster).
    #[arg(long, env = "SLUICE_BROKERS")]
    brokers: Option<String>,
    /// Any librdkafka property, e.g. -X security.protocol=SASL_SSL (repeatable; wins over --kafka-config).
    /// Checked in `properties()`, not by clap, whose error would echo the text (and a secret in it).
    #[arg(short = 'X')]
    properties: Vec<String>,
    /// A TOML file whose [kafka] table holds librdkafka properties (TLS, SASL...).
    #[arg(long, env = "SLUICE_KAFKA_CONFIG")]
    kafka_config: Option<PathBuf>,
}

impl BrokerArgs {
    /// librdkafka properties from the config file, then -X.
    fn properties(&self) -> Result<Vec<(String, String)>, String> {
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
    fn client(&self) -> Result<ClientConfig, String> {
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
    let cli = Cli::parse();
    restrict_new_files();
    if matches!(cli.command, Command::Land(_)) {
        limit_malloc_arenas();
    }
    let default_log = match cli.command {
        Command::Land(_) | Command::Produce { .. } => "info",
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
    let outcome = match cli.command {
        Command::Schemas { command: SchemasCommand::Check { dir } } => schemas_check(dir),
        Command::Schemas { command: SchemasCommand::List } => schemas_list(),
        Command::Demo(args) => run_demo(args),
        Command::Bench(args) => run_bench(args),
        Command::Topics { command: TopicsCommand::Apply { topics, broker } } => topics_apply(topics, broker),
        Command::Keys { command: KeysCommand::Generate { purposes, out } } => keys::write_new_file(&out, &purposes)
            .map(|()| {
                println!("wrote {} with keys for {}", out.display(), purposes.join(", "));
                ExitCode::SUCCESS
            }),
        Command::Keys { command: KeysCommand::Rotate { purposes, file } } => {
            keys::rotate(&file, &purposes).map(|ids| {
                println!("rotated {}: new key ids {}", file.display(), ids.join(", "));
                ExitCode::SUCCESS
            })
        }
        Command::Erase(args) => governance::run_erase(args),
        Command::Report(args) => sluice::report::run_report(args),
        Command::Compact(args) => governance::run_compact(args),
        Command::Policy { command: PolicyCommand::Check(args) } => governance::run_policy_check(args),
        Command::Audit { command: AuditCommand::Verify(args) } => governance::run_audit_verify(args),
        Command::Audit { command: AuditCommand::Publish(args) } => audit_publish(args),
        Command::Produce { source: ProduceSource::Synthetic { source, framing, topics, broker } } => {
            produce_synthetic(source, framing, topics, broker)
        }
        Command::Produce { source: ProduceSource::Hl7(args) } => produce_hl7(args),
        Command::Produce { source: ProduceSource::Fhir(args) } => produce_fhir(args),
        Command::Produce { source: ProduceSource::File(args) } => produce_file(args),
        Command::Land(args) => land(args),
    };
    let code = outcome.unwrap_or_else(|error| {
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

/// Most malloc arenas a lander runs with, unless `MALLOC_ARENA_MAX` is set already.
const LANDER_MALLOC_ARENAS: &str = "2";

/// Re-executes this process (same process id, same arguments) with `MALLOC_ARENA_MAX` set, when
/// it is not set already.
///
/// glibc gives each thread that allocates an arena of its own (up to eight per core) and keeps
/// memory freed there for reuse. The threads that write a checkpoint's files so raised the
/// lander's peak RSS through a long run: 305-318 MB landing 3 million events, against 225 MB
/// with two arenas, at the same speed (docs/BENCHMARKS.md). glibc reads the limit only as the
/// process starts, hence the re-execution. Set `MALLOC_ARENA_MAX` to choose another limit; C
/// libraries other than glibc ignore it.
fn limit_malloc_arenas() {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return;
        }
        let Ok(program) = std::env::current_exe() else { return };
        let error = std::process::Command::new(program)
            .args(std::env::args_os().skip(1))
            .env("MALLOC_ARENA_MAX", LANDER_MALLOC_ARENAS)
            .exec();
        // `exec` returns only if it failed: land anyway, with glibc's default arenas.
        eprintln!("warning: not restarted with MALLOC_ARENA_MAX={LANDER_MALLOC_ARENAS} ({error}); landing anyway");
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn load_topics(path: Option<PathBuf>) -> Result<Topics, String> {
    path.map_or_else(|| Ok(Topics::embedded()), |path| Topics::load(&path))
}

fn schemas_check(dir: Option<PathBuf>) -> Result<ExitCode, String> {
    let loaded;
    let catalogue = match &dir {
        Some(dir) => {
            loaded = Catalogue::load_dir(dir).map_err(|e| e.to_string())?;
            &loaded
        }
        None => Catalogue::embedded(),
    };
    let problems = compatibility::check_backward_transitive(catalogue);
    let subjects: Vec<String> = catalogue
        .subject_names()
        .map(|s| format!("{s} (v1..v{})", catalogue.versions(s).map_or(0, |v| v.len())))
        .collect();
    if problems.is_empty() {
        println!("schemas: {} subjects BACKWARD_TRANSITIVE compatible: {}", subjects.len(), subjects.join(", "));
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &problems {
        eprintln!("error: {problem}");
    }
    eprintln!("schemas: {} compatibility problem(s)", problems.len());
    Ok(ExitCode::FAILURE)
}

fn schemas_list() -> Result<ExitCode, String> {
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
    Ok(ExitCode::SUCCESS)
}

fn topics_apply(topics: Option<PathBuf>, broker: BrokerArgs) -> Result<ExitCode, String> {
    let topics = load_topics(topics)?;
    let client = broker.client()?;
    let report = runtime()?.block_on(provision::apply(&client, &topics))?;
    print!("{report}");
    Ok(if report.has_drift() { ExitCode::from(3) } else { ExitCode::SUCCESS })
}

fn produce_synthetic(
    source: SyntheticArgs,
    framing: Framing,
    topics: Option<PathBuf>,
    broker: BrokerArgs,
) -> Result<ExitCode, String> {
    let topics = load_topics(topics)?;
    let client = broker.client()?;
    let source = SyntheticSource::new(source.config())?;
    let runtime = runtime()?;
    let outcome = runtime.block_on(async {
        let shutdown = services::shutdown_on_signals()?;
        let config = PublisherConfig { framing, ..PublisherConfig::default() };
        services::produce_synthetic(&client, &topics, &source, config, shutdown, |_| {}).await
    })?;
    match outcome.clinical {
        Some(report) => {
            println!("published {} consent changes and {} clinical events", outcome.consent.total(), report.total())
        }
        None => println!(
            "stopped: {} consent changes published; clinical events handed to Kafka were flushed",
            outcome.consent.total()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn produce_hl7(args: Hl7Args) -> Result<ExitCode, String> {
    let topics = load_topics(args.topics)?;
    let client = args.broker.client()?;
    let config = MllpListenerConfig {
        max_message_bytes: args.max_message_bytes,
        max_connections: args.max_connections,
        receiving_application: args.receiving_application,
        receiving_facility: args.receiving_facility,
        state_dir: Some(args.state_dir),
        tls: args.tls.config(),
        ..MllpListenerConfig::default()
    };
    let tls = config.tls.is_some();
    let publisher = PublisherConfig { framing: args.framing, ..PublisherConfig::default() };
    let counts = runtime()?.block_on(async {
        let shutdown = services::shutdown_on_signals()?;
        let listener = services::bind_hl7(&client, &topics, args.listen, config, publisher).await?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        eprintln!("sluice: listening for HL7 v2 over MLLP{} on {address}", if tls { " with TLS" } else { "" });
        services::serve_hl7(listener, shutdown).await
    })?;
    print!("{}", services::render_hl7(&counts));
    Ok(ExitCode::SUCCESS)
}

fn produce_fhir(args: FhirArgs) -> Result<ExitCode, String> {
    let topics = load_topics(args.topics)?;
    let client = args.broker.client()?;
    let config = FhirServerConfig {
        max_body_bytes: args.max_body_bytes,
        organisation: args.organisation,
        source_system: args.source_system,
        tls: args.tls.config(),
        bearer_token: args.bearer_token.source(),
    };
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let publisher = PublisherConfig { framing: args.framing, ..PublisherConfig::default() };
    let counts = runtime()?.block_on(async {
        let shutdown = services::shutdown_on_signals()?;
        let server = services::bind_fhir(&client, &topics, args.listen, config, publisher).await?;
        let address = server.local_addr().map_err(|e| e.to_string())?;
        eprintln!("sluice: FHIR R4 endpoint on {scheme}://{address}/");
        services::serve_fhir(server, shutdown).await
    })?;
    print!("{}", services::render_fhir(&counts));
    Ok(ExitCode::SUCCESS)
}

fn produce_file(args: FileArgs) -> Result<ExitCode, String> {
    let topics = load_topics(args.topics)?;
    let client = args.broker.client()?;
    let config = FileImportConfig {
        state_dir: args.state_dir,
        max_in_flight_lines: args.max_in_flight_lines,
        checkpoint_interval_secs: args.checkpoint_interval_secs,
        organisation: args.organisation,
        source_system: args.source_system,
        ..FileImportConfig::default()
    };
    let publisher = PublisherConfig { framing: args.framing, ..PublisherConfig::default() };
    let progress = progress::Reporter::new("lines", std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let report = runtime()?.block_on(async {
        let shutdown = services::shutdown_on_signals()?;
        services::import_file(&client, &topics, &args.path, &config, publisher, shutdown, |p| {
            progress.update(p.bytes_stored, p.total_bytes, p.lines_stored)
        })
        .await
    });
    progress.finish();
    let report = report?;
    print!("{}", services::render_import(&report));
    Ok(ExitCode::SUCCESS)
}

fn land(args: LandArgs) -> Result<ExitCode, String> {
    let topics = load_topics(args.topics)?;
    let client = args.broker.client()?;
    let rings = keys::required_rings(&args.purposes)?;
    let setups = match &args.policies {
        Some(dir) => setups_from_dir(dir, rings),
        None => setups_from_builtin(&keys::active(rings)),
    }
    .map_err(|e| e.to_string())?;
    let config = LanderConfig {
        lake_dir: args.lake.state_dir()?,
        lake_url: args.lake.datasets_elsewhere()?,
        purposes: args.purposes,
        group_id: args.group_id,
        clinical_topics: topics.clinical(),
        consent_topic: topics.consent().to_owned(),
        dead_letter_topic: topics.dead_letter().to_owned(),
        max_buffered_rows: args.max_buffered_rows,
        idle_flush_secs: args.idle_flush_secs,
        max_batch_messages: sluice_consumers::lander::DEFAULT_MAX_BATCH_MESSAGES,
        consent_load_timeout_secs: 60,
        erase_on_opt_out: !args.keep_landed_rows_on_opt_out,
        max_file_rows: 250_000,
        max_file_bytes: 128 << 20,
        max_file_age_secs: args.max_file_age_secs,
        event_time_window_secs: args.event_time_window_secs,
        audit_log: None,
        audit_topic: topics.audit().map(str::to_owned),
        lineage: LineageConfig { file: args.lineage_file, url: args.lineage_url, ..LineageConfig::default() },
        reviewed_consent_records: args.reviewed_consent_records,
        source_organisations: args.source_organisations,
    };
    let report = runtime()?.block_on(async {
        let shutdown = services::shutdown_on_signals()?;
        let until = if args.until_caught_up { services::LandUntil::CaughtUp } else { services::LandUntil::Stopped };
        services::land(&client, &config, &setups, until, shutdown).await
    })?;
    print!("{}", services::render_landing(&report));
    Ok(ExitCode::SUCCESS)
}

fn run_bench(args: BenchArgs) -> Result<ExitCode, String> {
    let (work_dir, remove_after) = match args.work_dir {
        Some(dir) => (dir, false),
        None => (std::env::temp_dir().join(format!("sluice-bench-{}", hex::encode(rand::random::<[u8; 4]>()))), true),
    };
    let options = sluice::bench::BenchOptions {
        events: args.events,
        purpose: args.purpose,
        patients: args.patients,
        brokers: args.broker.brokers.clone(),
        properties: args.broker.properties()?,
        work_dir: work_dir.clone(),
        sluice: std::env::current_exe().map_err(|e| format!("cannot find this sluice binary: {e}"))?,
        peer: (!args.no_peer).then_some((args.python, args.peer_script)),
        mllp_messages: args.mllp_messages,
        mllp_connections: args.mllp_connections,
    };
    let report = sluice::bench::run(&options);
    if remove_after {
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    println!("{}", report?.render());
    Ok(ExitCode::SUCCESS)
}

fn run_demo(args: DemoArgs) -> Result<ExitCode, String> {
    let topics = load_topics(args.topics)?;
    let (keys, key_source) = keys::from_environment_or_generate(&args.purposes)?;
    eprintln!(
        "sluice demo: {} events for {} synthetic patients, landing for {}; keys {key_source}",
        args.source.events,
        args.source.patients,
        args.purposes.join(", ")
    );
    let options = demo::DemoOptions {
        source: args.source.config(),
        purposes: args.purposes,
        keys,
        lake_dir: args.lake,
        brokers: args.broker.brokers.clone(),
        properties: args.broker.properties()?,
        framing: args.framing,
        topics,
        max_buffered_rows: args.max_buffered_rows,
        show_progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let summary = runtime()?.block_on(demo::run(options)).map_err(|e| e.to_string())?;
    println!("{}", summary.render());
    Ok(if summary.problems().is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
