//! `sluice demo`: the whole pipeline on one machine, from synthetic source to Parquet.
//!
//! It starts librdkafka's in-process mock cluster (unless brokers are given), creates the topics
//! of `infra/topics.toml`, publishes the synthetic source's consent changes and then its clinical
//! events while a lander consumes them concurrently (the mock broker keeps only a few MB per
//! partition, so consuming while producing keeps every event readable), and stops the lander once
//! it has consumed every partition up to the high watermark that producing left. The summary
//! reconciles produced = landed + withheld + dead-lettered for every purpose and fails loudly
//! when anything does not add up.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rdkafka::mocking::MockCluster;
use sluice_consumers::{
    LandingReport, RunUntil,
    audit::AuditLog,
    compact::{CompactionOptions, compact},
    lake::storage::LakeStorage,
    lineage::LineageConfig,
    pseudonymise::PurposeKey,
};
use sluice_producers::{EventPublisher, PublishReport, PublisherConfig, SyntheticSource, SyntheticSourceConfig};
use sluice_schemas::{Catalogue, Framing};
use tokio::sync::watch;

use crate::{broker, pipeline::LandingPipeline, topics::Topics};

/// Marks a lake directory written by the demo, which a later demo run may replace.
const DEMO_MARKER: &str = ".sluice-demo";

/// What can stop the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The broker could not be started or reached, or topics could not be created.
    #[error("broker: {0}")]
    Broker(String),
    /// Publishing failed.
    #[error("producing: {0}")]
    Produce(#[from] sluice_producers::Error),
    /// Landing failed.
    #[error("landing: {0}")]
    Land(#[from] sluice_consumers::Error),
    /// The lander (or its lineage file) failed.
    #[error("landing: {0}")]
    Landing(String),
    /// The lake directory cannot be used.
    #[error("lake: {0}")]
    Lake(String),
    /// The synthetic source's settings are invalid.
    #[error("source: {0}")]
    Source(String),
}

/// Everything the demo needs.
pub struct DemoOptions {
    /// Synthetic source settings (patients, events, opt-out shares, seed).
    pub source: SyntheticSourceConfig,
    /// Purposes to land for.
    pub purposes: Vec<String>,
    /// Pseudonymisation key per purpose.
    pub keys: BTreeMap<String, PurposeKey>,
    /// Where the lake goes.
    pub lake_dir: PathBuf,
    /// Bootstrap servers of an existing cluster, or `None` for the in-process mock cluster.
    pub brokers: Option<String>,
    /// Extra librdkafka properties.
    pub properties: Vec<(String, String)>,
    /// Framing of produced messages.
    pub framing: Framing,
    /// Topic definitions.
    pub topics: Topics,
    /// Rows buffered before a checkpoint.
    pub max_buffered_rows: usize,
    /// Commits between two checkpoints of each dataset's Delta table
    /// ([`sluice_consumers::lander::LanderConfig::table_checkpoint_interval`]).
    pub table_checkpoint_interval: std::num::NonZeroU64,
    /// Draw progress bars on the terminal.
    pub show_progress: bool,
}

/// What the demo did.
#[derive(Debug)]
pub struct DemoSummary {
    /// Where the broker was.
    pub broker: String,
    /// Consent changes acknowledged by Kafka.
    pub consent_published: u64,
    /// Clinical events acknowledged by Kafka.
    pub produced: PublishReport,
    /// What the lander did.
    pub landing: LandingReport,
    /// Purposes landed.
    pub purposes: Vec<String>,
    /// The lake.
    pub lake_dir: PathBuf,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
    /// The run was interrupted by Ctrl-C.
    pub interrupted: bool,
    /// Files before and after compacting the lake at the end.
    pub compaction: Option<(u64, u64)>,
}

impl DemoSummary {
    /// Everything that does not add up; empty when every event is accounted for exactly once.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.interrupted {
            problems.push("the run was interrupted before every event was landed".to_owned());
        }
        if self.produced.total() != self.landing.consumed_total() {
            problems.push(format!(
                "{} clinical events were acknowledged by Kafka but {} were consumed",
                self.produced.total(),
                self.landing.consumed_total()
            ));
        }
        if self.landing.skipped_offsets > 0 {
            problems.push(format!(
                "{} events were removed by the broker before they were read",
                self.landing.skipped_offsets
            ));
        }
        for purpose in self.landing.unreconciled(&self.purposes) {
            problems.push(format!("purpose {purpose}: consumed != landed + withheld + dead-lettered"));
        }
        problems
    }

    /// The human-readable summary printed at the end of the demo.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let landing = &self.landing;
        let _ = writeln!(out, "\nsluice demo finished in {:.1} s on {}\n", self.elapsed.as_secs_f64(), self.broker);
        let per_subject: Vec<String> =
            self.produced.per_subject.iter().map(|(s, n)| format!("{s} {}", group(*n))).collect();
        let _ = writeln!(
            out,
            "  produced       {:>10} clinical events ({})",
            group(self.produced.total()),
            per_subject.join(", ")
        );
        let _ = writeln!(
            out,
            "                 {:>10} consent changes (opt-outs and withdrawals)",
            group(self.consent_published)
        );
        let _ = writeln!(out, "  consumed       {:>10}", group(landing.consumed_total()));
        let _ = writeln!(out, "  dead-lettered  {:>10}\n", group(landing.dead_lettered));
        let reasons: Vec<String> = {
            let mut all: Vec<String> = landing.withheld.values().flat_map(|r| r.keys().cloned()).collect();
            all.sort();
            all.dedup();
            all
        };
        let _ = write!(out, "  {:<14}{:>10}{:>10}", "purpose", "landed", "withheld");
        for reason in &reasons {
            let _ = write!(out, "  {reason:>22}");
        }
        let _ = writeln!(out);
        for purpose in &self.purposes {
            let _ = write!(
                out,
                "  {purpose:<14}{:>10}{:>10}",
                group(landing.landed.get(purpose).copied().unwrap_or(0)),
                group(landing.withheld_total(purpose))
            );
            for reason in &reasons {
                let n = landing.withheld.get(purpose).and_then(|r| r.get(reason)).copied().unwrap_or(0);
                let _ = write!(out, "  {:>22}", group(n));
            }
            let _ = writeln!(out);
        }
        let bytes: u64 = landing.files.iter().map(|f| f.bytes).sum();
        let _ = writeln!(
            out,
            "\n  {} Parquet files, {:.1} MB, under {}",
            landing.files.len(),
            bytes as f64 / 1e6,
            self.lake_dir.display()
        );
        // Per dataset (purpose and subject), over its event_date or event_month partitions.
        let mut datasets: BTreeMap<PathBuf, (usize, usize, std::collections::BTreeSet<PathBuf>)> = BTreeMap::new();
        for file in &landing.files {
            let path = self.lake_dir.join(&file.key);
            let partition = path.parent().unwrap_or(Path::new("."));
            let dataset = match partition.file_name() {
                Some(name)
                    if ["event_date=", "event_month="].iter().any(|key| name.to_string_lossy().starts_with(key)) =>
                {
                    partition.parent().unwrap_or(partition)
                }
                _ => partition,
            };
            let entry = datasets.entry(dataset.to_owned()).or_default();
            entry.0 += 1;
            entry.1 += file.rows;
            entry.2.insert(partition.to_owned());
        }
        for (dir, (files, rows, partitions)) in &datasets {
            let _ = writeln!(
                out,
                "    {:<48} {:>10} rows {files:>6} files landed {:>4} date or month directories",
                format!("{}/", dir.display()),
                group(*rows as u64),
                partitions.len()
            );
        }
        if let Some((before, after)) = self.compaction {
            let _ = writeln!(out, "  compacted: {before} files merged into {after} (sluice compact)");
        }
        let problems = self.problems();
        if problems.is_empty() {
            let _ =
                writeln!(out, "\n  reconciliation: every event landed or withheld exactly once, for every purpose: OK");
        } else {
            let _ = writeln!(out, "\n  RECONCILIATION FAILED:");
            for problem in &problems {
                let _ = writeln!(out, "    - {problem}");
            }
        }
        if let Some((dir, _)) = datasets.iter().next() {
            let example = dir.display();
            let _ = writeln!(
                out,
                "\nOpen the data (no patient identifiers in it; pseudonyms differ per purpose). Each dataset is a \
                 Delta table; name its version with your results (docs/TABLES.md):"
            );
            let _ = writeln!(
                out,
                "  python3 -c \"from deltalake import DeltaTable; t = DeltaTable('{example}'); print(t.version()); print(t.to_pandas().head())\""
            );
            let _ = writeln!(out, "  python3 -c \"import polars as pl; print(pl.read_delta('{example}').head())\"");
            let _ = writeln!(
                out,
                "  duckdb -c \"INSTALL delta; LOAD delta; SELECT * FROM delta_scan('{example}') LIMIT 5\""
            );
        }
        out
    }
}

/// A number with thousands separators.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Runs the demo. Ctrl-C stops producing, lands what was consumed, commits and returns.
pub async fn run(options: DemoOptions) -> Result<DemoSummary, DemoError> {
    let started = Instant::now();
    let source = SyntheticSource::new(options.source.clone()).map_err(DemoError::Source)?;
    prepare_lake(&options.lake_dir)?;

    // Keep the mock cluster alive for the whole run: dropping it stops the broker.
    let mock_cluster;
    let (bootstrap, broker_label) = match &options.brokers {
        Some(brokers) => (brokers.clone(), format!("brokers {brokers}")),
        None => {
            mock_cluster = Some(
                MockCluster::new(1).map_err(|e| DemoError::Broker(format!("cannot start the mock cluster: {e}")))?,
            );
            let cluster = mock_cluster.as_ref().expect("just set");
            for topic in &options.topics.topic {
                cluster
                    .create_topic(&topic.name, topic.partitions, 1)
                    .map_err(|e| DemoError::Broker(format!("cannot create topic {}: {e}", topic.name)))?;
            }
            (cluster.bootstrap_servers(), "an embedded librdkafka mock cluster".to_owned())
        }
    };
    let client = broker::client_config(&bootstrap, &options.properties);
    if options.brokers.is_some() {
        // Create what is missing; drift on an existing cluster is for `sluice topics apply` to report.
        crate::provision::apply(&client, &options.topics).await.map_err(DemoError::Broker)?;
    }

    let catalogue = Catalogue::embedded();
    let publisher_config = PublisherConfig { framing: options.framing, ..PublisherConfig::default() };
    let publisher = EventPublisher::new(&client, catalogue, options.topics.by_subject(), publisher_config)?;
    let consent = publisher.publish_all(source.consent_events(), |_| {}).await?;

    let bars = MultiProgress::with_draw_target(if options.show_progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let style = ProgressStyle::with_template("{prefix:>8} [{bar:40}] {pos:>9}/{len} {per_sec:>12} {msg}")
        .expect("valid template")
        .progress_chars("=> ");
    let total = source.config().events;
    let produce_bar = bars.add(ProgressBar::new(total).with_style(style.clone()).with_prefix("produce"));
    let land_bar = bars.add(ProgressBar::new(total).with_style(style).with_prefix("land"));

    // Each purpose under its built-in policy (policies/<purpose>.toml, compiled in), with the
    // run's OpenLineage events next to the audit log.
    let pipeline = LandingPipeline::builder(&client, &options.topics)
        .lake_dir(&options.lake_dir)
        .purposes(&options.purposes)
        .builtin_policies(options.keys.clone())
        .lineage(LineageConfig {
            file: Some(options.lake_dir.join("_lineage").join("openlineage.jsonl")),
            ..LineageConfig::default()
        })
        .configure(|config| {
            config.group_id = format!("sluice-demo-{}", hex::encode(rand::random::<[u8; 4]>()));
            config.max_buffered_rows = options.max_buffered_rows;
            config.table_checkpoint_interval = options.table_checkpoint_interval;
            config.idle_flush_secs = 2;
        })
        .build()
        .map_err(DemoError::Landing)?;
    let (targets_tx, targets_rx) = watch::channel(None);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let produce = async {
        let report = publisher.publish_all(source.clinical_events(), |n| produce_bar.set_position(n)).await?;
        produce_bar.finish();
        let targets = tokio::task::block_in_place(|| broker::high_watermarks(&client, &options.topics.clinical()))
            .map_err(DemoError::Broker)?;
        let _ = targets_tx.send(Some(targets));
        Ok::<_, DemoError>(report)
    };
    let land = async {
        let report = pipeline
            .run(RunUntil::CaughtUp(targets_rx), shutdown_rx, |n| land_bar.set_position(n))
            .await
            .map_err(DemoError::Landing)?;
        land_bar.finish();
        Ok::<_, DemoError>(report)
    };
    tokio::pin!(produce);
    tokio::pin!(land);
    let mut produced: Option<PublishReport> = None;
    let mut interrupted = false;
    let landing = loop {
        tokio::select! {
            report = &mut produce, if produced.is_none() && !interrupted => produced = Some(report?),
            report = &mut land => break report?,
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                let _ = shutdown_tx.send(true);
            }
        }
    };
    // A demo lands a month of history at once, in many small files per date: merge them, as an
    // operator would with `sluice compact`.
    let compaction = if interrupted {
        None
    } else {
        let lake = options.lake_dir.clone();
        let audit_path = pipeline.config.audit_log_path();
        let compacted = tokio::task::spawn_blocking(move || {
            let mut audit = AuditLog::open(&audit_path)?;
            let storage = LakeStorage::local(&lake)?;
            compact(&lake, &storage, CompactionOptions::default(), &mut audit)
        })
        .await
        .expect("compaction does not panic")?;
        Some((compacted.files_before, compacted.files_after))
    };
    Ok(DemoSummary {
        broker: broker_label,
        consent_published: consent.total(),
        produced: produced.unwrap_or_default(),
        landing,
        purposes: options.purposes,
        lake_dir: options.lake_dir,
        elapsed: started.elapsed(),
        interrupted,
        compaction,
    })
}

/// Makes sure the lake directory can be used: new, empty, or a previous demo's lake (replaced).
fn prepare_lake(lake: &Path) -> Result<(), DemoError> {
    let error = |e: std::io::Error| DemoError::Lake(format!("{}: {e}", lake.display()));
    if lake.exists() {
        let empty = std::fs::read_dir(lake).map_err(error)?.next().is_none();
        if !empty {
            if !lake.join(DEMO_MARKER).exists() {
                return Err(DemoError::Lake(format!(
                    "{} is not empty and was not written by a previous demo; choose another --lake",
                    lake.display()
                )));
            }
            std::fs::remove_dir_all(lake).map_err(error)?;
        }
    }
    std::fs::create_dir_all(lake).map_err(error)?;
    std::fs::write(lake.join(DEMO_MARKER), "written by `sluice demo`; a later demo run replaces this directory\n")
        .map_err(error)
}
