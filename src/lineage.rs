//! Emitting a landing run's OpenLineage events ([`sluice_consumers::lineage`]): each is appended
//! to the lineage file as one JSON line (synced, the durable record) and POSTed to the lineage
//! endpoint when one is configured. A POST that fails is logged and landing goes on: lineage
//! informs, it never holds data back.
//!
//! [`land`] wraps a lander run ([`crate::pipeline::LandingPipeline::run`] calls it): START just
//! before the lander starts (before it reads the consent topic, so a run that cannot even start
//! still shows as started, then failed), COMPLETE with the run's counts when it ends normally
//! (stopped, or caught up), FAIL with the error when it returns one.

use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    io::Write as _,
    path::PathBuf,
    time::Duration,
};

use rdkafka::ClientConfig;
use serde_json::Value;
use sluice_consumers::{
    LanderConfig, LandingReport, RunUntil,
    lander::PurposeSetup,
    lineage::{LandingLineage, LineageConfig},
};
use sluice_schemas::Catalogue;
use tokio::sync::watch;
use tracing::{error, info, warn};

/// Writes and sends one run's events.
pub struct LineageEmitter {
    /// The lineage file, open for appending.
    file: Option<(PathBuf, File)>,
    /// The endpoint and the HTTP client that posts to it.
    endpoint: Option<(String, ureq::Agent)>,
}

impl LineageEmitter {
    /// Opens the lineage file (creating it and its directory) and checks the endpoint's URL.
    pub fn open(config: &LineageConfig) -> Result<Self, String> {
        let file = match &config.file {
            Some(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| format!("cannot create the lineage directory {}: {e}", dir.display()))?;
                }
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("cannot open the lineage file {}: {e}", path.display()))?;
                Some((path.clone(), file))
            }
            None => None,
        };
        let endpoint = match &config.url {
            Some(url) if !url.starts_with("http://") => {
                return Err(format!(
                    "lineage URL `{url}`: only http:// endpoints are supported (this build has no TLS); put \
                     HTTPS endpoints behind a local proxy"
                ));
            }
            Some(url) => {
                let timeout = Duration::from_secs(config.timeout_secs.max(1));
                let agent =
                    ureq::Agent::new_with_config(ureq::Agent::config_builder().timeout_global(Some(timeout)).build());
                Some((url.clone(), agent))
            }
            None => None,
        };
        Ok(LineageEmitter { file, endpoint })
    }

    /// Appends the event to the file (an error if it cannot be written and synced), then POSTs
    /// it (a warning if that fails).
    pub async fn emit(&mut self, event: &Value) -> Result<(), String> {
        let body = serde_json::to_vec(event).map_err(|e| format!("cannot serialise a lineage event: {e}"))?;
        if let Some((path, file)) = &mut self.file {
            let mut line = body.clone();
            line.push(b'\n');
            // One short line and a sync: not worth a blocking task.
            file.write_all(&line)
                .and_then(|()| file.sync_data())
                .map_err(|e| format!("cannot write the lineage file {}: {e}", path.display()))?;
        }
        if let Some((url, agent)) = &self.endpoint {
            let (target, agent) = (url.clone(), agent.clone());
            let posted = tokio::task::spawn_blocking(move || {
                agent.post(&target).content_type("application/json").send(&body[..]).map(|_| ())
            })
            .await;
            match posted {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    warn!(%url, error = %e, event_type = %event["eventType"], "lineage event not delivered; landing goes on")
                }
                Err(e) => warn!(%url, error = %e, "lineage POST task failed; landing goes on"),
            }
        }
        Ok(())
    }
}

/// Runs a lander, emitting its START, then COMPLETE or FAIL events as `lineage` says (nothing
/// when it says nothing). A lineage file that cannot be opened or take the START event stops the
/// run before it starts; a COMPLETE or FAIL that cannot be written is logged as an error and the
/// run's own outcome returned.
pub async fn land(
    lineage: &LineageConfig,
    client: &ClientConfig,
    config: &LanderConfig,
    setups: &BTreeMap<String, PurposeSetup>,
    until: RunUntil,
    shutdown: watch::Receiver<bool>,
    on_progress: impl FnMut(u64),
) -> Result<LandingReport, String> {
    let catalogue = Catalogue::embedded();
    if !lineage.enabled() {
        return sluice_consumers::run(client, config, setups, catalogue, until, shutdown, on_progress)
            .await
            .map_err(|e| e.to_string());
    }
    let mut emitter = LineageEmitter::open(lineage)?;
    let run = LandingLineage::new(client, config, setups, catalogue);
    emitter.emit(&run.start()).await?;
    info!(run_id = %run.run_id(), "lineage: run started");
    let outcome = sluice_consumers::run(client, config, setups, catalogue, until, shutdown, on_progress)
        .await
        .map_err(|e| e.to_string());
    let end = match &outcome {
        Ok(report) => run.complete(report),
        Err(message) => run.fail(message),
    };
    if let Err(e) = emitter.emit(&end).await {
        error!(run_id = %run.run_id(), error = %e, "the run's last lineage event was not recorded");
    }
    outcome
}
