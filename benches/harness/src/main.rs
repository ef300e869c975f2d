//! `sluice-bench`: the landing benchmark (see the `sluice_bench` library and docs/BENCHMARKS.md).
//!
//! ```text
//! cargo build --release -p sluice -p sluice-bench
//! target/release/sluice-bench --events 1000000
//! ```

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use sluice::commands::args::BrokerArgs;

/// Measure landing against a bare Kafka consumer and a Python peer, and the producers' rates
/// (see docs/BENCHMARKS.md).
#[derive(Parser)]
#[command(name = "sluice-bench", version, about)]
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
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../peer/land.py"))]
    peer_script: PathBuf,
    /// The `sluice` binary measured as the lander. Default: the one next to this program
    /// (`cargo build --release -p sluice -p sluice-bench` builds both into `target/release`).
    #[arg(long)]
    sluice: Option<PathBuf>,
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

fn main() -> ExitCode {
    match BenchArgs::parse().run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

impl BenchArgs {
    /// Runs the benchmark and prints its tables.
    fn run(self) -> Result<ExitCode, String> {
        let sluice = match self.sluice {
            Some(path) => path,
            None => sluice_next_to_this_program()?,
        };
        let (work_dir, remove_after) = match self.work_dir {
            Some(dir) => (dir, false),
            None => {
                let name = format!("sluice-bench-{}", hex::encode(rand::random::<[u8; 4]>()));
                (std::env::temp_dir().join(name), true)
            }
        };
        let options = sluice_bench::BenchOptions {
            events: self.events,
            purpose: self.purpose,
            patients: self.patients,
            brokers: self.broker.brokers.clone(),
            properties: self.broker.properties()?,
            work_dir: work_dir.clone(),
            sluice,
            peer: (!self.no_peer).then_some((self.python, self.peer_script)),
            mllp_messages: self.mllp_messages,
            mllp_connections: self.mllp_connections,
        };
        let report = sluice_bench::run(&options);
        if remove_after {
            let _ = std::fs::remove_dir_all(&work_dir);
        }
        println!("{}", report?.render());
        Ok(ExitCode::SUCCESS)
    }
}

/// `sluice` in the directory of this program, which must exist.
fn sluice_next_to_this_program() -> Result<PathBuf, String> {
    let this = std::env::current_exe().map_err(|e| format!("cannot find this program's path: {e}"))?;
    let sluice = this.with_file_name(format!("sluice{}", std::env::consts::EXE_SUFFIX));
    if sluice.is_file() {
        return Ok(sluice);
    }
    Err(format!(
        "no sluice binary at {}: build it with `cargo build --release -p sluice -p sluice-bench`, or give --sluice",
        sluice.display()
    ))
}
