//! OpenLineage run events of a landing run: START when it begins, COMPLETE with what it landed
//! when it ends, FAIL with the error when it stops on one. All events of a run share its `runId`.
//!
//! * job: namespace `sluice`, name `land:<group id>`;
//! * inputs: the clinical topics, namespace `kafka://<first bootstrap server>`, with the Avro
//!   reader schema (the newest of the subject) as a `schema` facet and, on COMPLETE, the messages
//!   consumed as `inputStatistics`;
//! * outputs: one dataset `<purpose>/<subject>` per purpose and subject, namespace the lake's
//!   location (`file:///...` or the object-store URL), with the policy's output columns as a
//!   `schema` facet and, on COMPLETE, `outputStatistics` (rows, bytes and files written).
//!
//! Events hold names, types and counts only: never a field value. This module only builds the
//! events; writing and sending them is the caller's (the `sluice` command's) concern.

use std::{collections::BTreeMap, path::PathBuf};

use chrono::{SecondsFormat, Utc};
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sluice_schemas::Catalogue;
use uuid::Uuid;

use crate::{LanderConfig, LandingReport, consent::Purpose, lander::PurposeSetup};

mod facets;

/// URI of the producer of the events: this version of sluice.
pub const PRODUCER: &str = concat!(env!("CARGO_PKG_REPOSITORY"), "/tree/v", env!("CARGO_PKG_VERSION"));
/// JSON schema of a RunEvent.
pub const RUN_EVENT_SCHEMA: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
/// Namespace of sluice's jobs.
pub const JOB_NAMESPACE: &str = "sluice";

/// Where a lander's lineage events go. Nothing is emitted when neither is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LineageConfig {
    /// A file each event is appended to as one JSON line (and synced): the durable record.
    pub file: Option<PathBuf>,
    /// An OpenLineage HTTP endpoint each event is POSTed to, such as Marquez's
    /// `http://marquez:5000/api/v1/lineage`. Failures are logged and never stop landing.
    pub url: Option<String>,
    /// Seconds a POST may take before it is given up.
    pub timeout_secs: u64,
}

impl Default for LineageConfig {
    /// Nothing emitted; a POST given up after 10 seconds.
    fn default() -> Self {
        LineageConfig { file: None, url: None, timeout_secs: 10 }
    }
}

impl LineageConfig {
    /// Whether any event is to be emitted.
    pub fn enabled(&self) -> bool {
        self.file.is_some() || self.url.is_some()
    }
}

/// One input or output dataset of the run.
#[derive(Debug, Clone)]
struct Dataset {
    namespace: String,
    name: String,
    /// The `schema` facet's fields, when known.
    fields: Option<Vec<Value>>,
}

impl Dataset {
    fn json(&self, extra: Option<(&str, Map<String, Value>)>) -> Value {
        let mut out = json!({ "namespace": self.namespace, "name": self.name });
        if let Some(fields) = &self.fields {
            out["facets"] = json!({ "schema": facets::schema(fields.clone()) });
        }
        if let Some((key, facets)) = extra {
            out[key] = Value::Object(facets);
        }
        out
    }
}

/// The lineage of one landing run: builds its events.
#[derive(Debug, Clone)]
pub struct LandingLineage {
    run_id: Uuid,
    job_name: String,
    /// Clinical topics, by subject.
    inputs: BTreeMap<String, Dataset>,
    /// Output datasets, by name (`<purpose>/<subject>`).
    outputs: BTreeMap<String, Dataset>,
}

impl LandingLineage {
    /// The lineage of a run of `config`, with a new run id. Schemas come from the catalogue
    /// (inputs) and the purposes' landing plans (outputs); a dataset whose plan cannot be made
    /// (the run will fail on it) has no schema facet.
    pub fn new(
        client: &ClientConfig,
        config: &LanderConfig,
        setups: &BTreeMap<String, PurposeSetup>,
        catalogue: &Catalogue,
    ) -> Self {
        let bootstrap = client.get("bootstrap.servers").unwrap_or_default();
        let kafka = format!("kafka://{}", bootstrap.split(',').next().unwrap_or_default().trim());
        let lake = lake_namespace(config);
        let mut inputs = BTreeMap::new();
        let mut outputs = BTreeMap::new();
        for (subject, topic) in &config.clinical_topics {
            let latest = catalogue.latest(subject).ok();
            let fields = latest.and_then(|v| serde_json::to_value(v.schema()).ok()).map(|s| facets::avro_fields(&s));
            inputs.insert(subject.clone(), Dataset { namespace: kafka.clone(), name: topic.clone(), fields });
            for purpose in &config.purposes {
                let purpose = purpose.parse::<Purpose>().map_or_else(|_| purpose.clone(), |p| p.name());
                let fields = setups
                    .get(&purpose)
                    .zip(latest)
                    .and_then(|(setup, latest)| setup.policy.plan(latest).ok())
                    .map(|plan| facets::plan_fields(&plan));
                let name = format!("{purpose}/{subject}");
                outputs.insert(name.clone(), Dataset { namespace: lake.clone(), name, fields });
            }
        }
        LandingLineage { run_id: Uuid::new_v4(), job_name: format!("land:{}", config.group_id), inputs, outputs }
    }

    /// The run's id, shared by all its events.
    pub fn run_id(&self) -> Uuid {
        self.run_id
    }

    /// The START event.
    pub fn start(&self) -> Value {
        self.event("START", Map::new(), self.inputs.values().map(|d| d.json(None)).collect(), self.outputs_json(None))
    }

    /// The COMPLETE event, with the run's counts.
    pub fn complete(&self, report: &LandingReport) -> Value {
        let inputs = self
            .inputs
            .iter()
            .map(|(subject, dataset)| {
                let consumed = report.consumed.get(subject).copied().unwrap_or(0);
                let facets = Map::from_iter([("inputStatistics".to_owned(), facets::input_statistics(consumed))]);
                dataset.json(Some(("inputFacets", facets)))
            })
            .collect();
        self.event("COMPLETE", Map::new(), inputs, self.outputs_json(Some(report)))
    }

    /// The FAIL event, with the error (sluice's errors name no patient and hold no field value).
    pub fn fail(&self, error: &str) -> Value {
        let run_facets = Map::from_iter([("errorMessage".to_owned(), facets::error_message(error))]);
        self.event("FAIL", run_facets, self.inputs.values().map(|d| d.json(None)).collect(), self.outputs_json(None))
    }

    /// The outputs, with statistics of the files a report lists when given.
    fn outputs_json(&self, report: Option<&LandingReport>) -> Vec<Value> {
        let Some(report) = report else {
            return self.outputs.values().map(|d| d.json(None)).collect();
        };
        // (rows, bytes, files) per dataset; a file's key starts with its dataset's name.
        let mut written: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
        for file in &report.files {
            let Some(name) = self.outputs.keys().find(|name| file.key.starts_with(&format!("{name}/"))) else {
                continue;
            };
            let entry = written.entry(name.as_str()).or_default();
            entry.0 += file.rows as u64;
            entry.1 += file.bytes;
            entry.2 += 1;
        }
        self.outputs
            .iter()
            .map(|(name, dataset)| {
                let (rows, bytes, files) = written.get(name.as_str()).copied().unwrap_or_default();
                let facets =
                    Map::from_iter([("outputStatistics".to_owned(), facets::output_statistics(rows, bytes, files))]);
                dataset.json(Some(("outputFacets", facets)))
            })
            .collect()
    }

    fn event(
        &self,
        event_type: &str,
        run_facets: Map<String, Value>,
        inputs: Vec<Value>,
        outputs: Vec<Value>,
    ) -> Value {
        json!({
            "eventType": event_type,
            "eventTime": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            "run": { "runId": self.run_id.to_string(), "facets": run_facets },
            "job": {
                "namespace": JOB_NAMESPACE,
                "name": self.job_name,
                "facets": { "jobType": facets::job_type() },
            },
            "inputs": inputs,
            "outputs": outputs,
            "producer": PRODUCER,
            "schemaURL": RUN_EVENT_SCHEMA,
        })
    }
}

/// The namespace of the lake's datasets: its object-store URL, or `file://` and its directory.
fn lake_namespace(config: &LanderConfig) -> String {
    match &config.lake_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let dir = config.lake_dir.canonicalize().unwrap_or_else(|_| config.lake_dir.clone());
            format!("file://{}", dir.display())
        }
    }
}

#[cfg(test)]
mod tests;
