//! `sluice bench`: the landing benchmark (see [`crate::bench`] and docs/BENCHMARKS.md).

use std::{path::PathBuf, process::ExitCode};

use super::args::BrokerArgs;

/// `sluice bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
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

impl BenchArgs {
    /// Runs the benchmark and prints its tables.
    pub fn run(self) -> Result<ExitCode, String> {
        let (work_dir, remove_after) = match self.work_dir {
            Some(dir) => (dir, false),
            None => {
                let name = format!("sluice-bench-{}", hex::encode(rand::random::<[u8; 4]>()));
                (std::env::temp_dir().join(name), true)
            }
        };
        let options = crate::bench::BenchOptions {
            events: self.events,
            purpose: self.purpose,
            patients: self.patients,
            brokers: self.broker.brokers.clone(),
            properties: self.broker.properties()?,
            work_dir: work_dir.clone(),
            sluice: std::env::current_exe().map_err(|e| format!("cannot find this sluice binary: {e}"))?,
            peer: (!self.no_peer).then_some((self.python, self.peer_script)),
            mllp_messages: self.mllp_messages,
            mllp_connections: self.mllp_connections,
        };
        let report = crate::bench::run(&options);
        if remove_after {
            let _ = std::fs::remove_dir_all(&work_dir);
        }
        println!("{}", report?.render());
        Ok(ExitCode::SUCCESS)
    }
}
