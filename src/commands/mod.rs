//! The `sluice` subcommands, one module each: its arguments (a clap struct, whose doc comments
//! are the command's `--help`) and its `run`, which does the work and returns the exit status.
//! `src/main.rs` only parses the command line, sets up telemetry and calls `run`.
//!
//! | command | module |
//! | --- | --- |
//! | `sluice demo` | [`demo`] |
//! | `sluice produce synthetic\|hl7\|fhir\|file` | [`produce`] |
//! | `sluice land` | [`land`] |
//! | `sluice topics apply` | [`topics`] |
//! | `sluice keys generate\|rotate` | [`keys`] |
//! | `sluice compact` | [`compact`] |
//! | `sluice erase` | [`erase`] |
//! | `sluice report` | [`report`] |
//! | `sluice policy check` | [`policy`] |
//! | `sluice disclosure check` | [`disclosure`] |
//! | `sluice audit verify\|publish` | [`audit`] |
//! | `sluice schemas check\|list` | [`schemas`] |
//!
//! Options several commands share are in [`args`] (brokers, topics), [`lake_args`] (`--lake`,
//! `--state-dir`) and [`listener_args`] (TLS and bearer tokens of the listeners). The benchmark
//! is not a subcommand: it is its own program, `benches/harness` (`sluice-bench`).

pub mod args;
pub mod audit;
pub mod compact;
pub mod demo;
pub mod disclosure;
pub mod erase;
pub mod keys;
pub mod lake_args;
pub mod land;
pub mod listener_args;
pub mod policy;
pub mod produce;
pub mod registry;
pub mod report;
pub mod schemas;
pub mod topics;

use tokio::sync::watch;

/// A new multi-threaded async runtime.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// Runs a long-running service on a new async runtime: `service` gets a receiver that turns
/// true on the first SIGINT or SIGTERM, and should then finish what it has in hand and return.
pub(crate) fn run_service<T>(
    service: impl AsyncFnOnce(watch::Receiver<bool>) -> Result<T, String>,
) -> Result<T, String> {
    runtime()?.block_on(async {
        let shutdown = crate::services::shutdown_on_signals()?;
        service(shutdown).await
    })
}
