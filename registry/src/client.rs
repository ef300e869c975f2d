//! Reading an estate's own schema registry: what catalogued version each of its ids is.
//!
//! A trust that already runs a Confluent Schema Registry frames records with *its* ids. The
//! lander, given `--schema-registry URL`, asks that registry for the schema of each id it meets
//! (`GET /schemas/ids/{id}`), once, and matches it to a catalogued version by its Parsing
//! Canonical Form. An id whose schema is not catalogued is answered "none" and its records go to
//! the dead-letter topic with that reason; a registry that cannot be reached is an error that
//! stops the reader, so no record is judged on a missing answer.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
    time::Duration,
};

use sluice_schemas::{Catalogue, SchemaIdResolver, apache_avro::Schema, fingerprint_of};

/// How long one request to the registry may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A schema registry's ids, resolved to catalogued versions and remembered (a registry never
/// changes what an id names).
pub struct RegistryIds {
    /// The registry's base URL, without a trailing slash.
    url: String,
    /// The HTTP client.
    agent: ureq::Agent,
    /// The fingerprints of every catalogued version: what an id may resolve to.
    catalogued: HashSet<u64>,
    /// Answers so far: id -> the catalogued fingerprint, or `None` for a schema not catalogued.
    known: Mutex<HashMap<u32, Option<u64>>>,
}

impl RegistryIds {
    /// Ids of the registry at `url`, matched against `catalogue`.
    pub fn new(url: &str, catalogue: &Catalogue) -> Self {
        let catalogued = catalogue
            .subject_names()
            .flat_map(|subject| catalogue.versions(subject).expect("listed subject"))
            .map(|version| version.fingerprint())
            .collect();
        let config =
            ureq::Agent::config_builder().timeout_global(Some(REQUEST_TIMEOUT)).http_status_as_error(false).build();
        RegistryIds {
            url: url.trim_end_matches('/').to_owned(),
            agent: ureq::Agent::new_with_config(config),
            catalogued,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Asks the registry for the schema of `id`.
    fn fetch(&self, id: u32) -> Result<Option<u64>, String> {
        let url = format!("{}/schemas/ids/{id}", self.url);
        let mut response = self.agent.get(&url).call().map_err(|error| format!("GET {url}: {error}"))?;
        let status = response.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        if status != 200 {
            return Err(format!("GET {url}: HTTP {status}"));
        }
        let body = response.body_mut().read_to_string().map_err(|error| format!("GET {url}: {error}"))?;
        let answer: serde_json::Value =
            serde_json::from_str(&body).map_err(|_| format!("GET {url}: the answer is not JSON"))?;
        if answer.get("schemaType").and_then(|t| t.as_str()).is_some_and(|t| t != "AVRO") {
            return Ok(None);
        }
        let Some(text) = answer.get("schema").and_then(|s| s.as_str()) else {
            return Err(format!("GET {url}: the answer has no schema"));
        };
        let Ok(schema) = Schema::parse_str(text) else { return Ok(None) };
        let fingerprint = fingerprint_of(&schema);
        Ok(self.catalogued.contains(&fingerprint).then_some(fingerprint))
    }
}

impl SchemaIdResolver for RegistryIds {
    fn catalogued_fingerprint(&self, id: u32) -> Result<Option<u64>, String> {
        if let Some(known) = self.known.lock().expect("no panics while holding the lock").get(&id) {
            return Ok(*known);
        }
        let answer = self.fetch(id)?;
        match answer {
            Some(_) => tracing::info!(id, url = self.url, "schema registry id resolved to a catalogued version"),
            None => tracing::warn!(id, url = self.url, "schema registry id is not a catalogued version"),
        }
        self.known.lock().expect("no panics while holding the lock").insert(id, answer);
        Ok(answer)
    }
}

/// The ids a producer frames with at an estate's own registry: for every catalogued version of
/// each topic's subject (`topic_subjects`: topic -> catalogue subject), the id the registry holds
/// it under in subject `<topic>-value`, registering it there if the registry does not hold it
/// yet (the catalogue is reviewed; the registry may still refuse, under its own compatibility
/// rules). Keyed by the version's fingerprint, for [`sluice_schemas::Encoder::with_schema_ids`].
pub fn ids_for_producing(
    url: &str,
    catalogue: &Catalogue,
    topic_subjects: impl IntoIterator<Item = (String, String)>,
) -> Result<std::collections::BTreeMap<u64, u32>, String> {
    let url = url.trim_end_matches('/');
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder().timeout_global(Some(REQUEST_TIMEOUT)).http_status_as_error(false).build(),
    );
    let post = |path: String, schema: &str| -> Result<(u16, serde_json::Value), String> {
        let body = serde_json::json!({ "schema": schema }).to_string();
        let mut response = agent
            .post(&path)
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .send(body)
            .map_err(|error| format!("POST {path}: {error}"))?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().map_err(|error| format!("POST {path}: {error}"))?;
        Ok((status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)))
    };
    let mut ids = std::collections::BTreeMap::new();
    for (topic, subject) in topic_subjects {
        let Ok(versions) = catalogue.versions(&subject) else { continue };
        let registry_subject = format!("{topic}{}", crate::catalogue_registry::VALUE_SUFFIX);
        for version in versions {
            let (status, answer) = post(format!("{url}/subjects/{registry_subject}"), version.json())?;
            let (status, answer) = if status == 404 {
                post(format!("{url}/subjects/{registry_subject}/versions"), version.json())?
            } else {
                (status, answer)
            };
            let id = answer.get("id").and_then(serde_json::Value::as_u64).and_then(|id| u32::try_from(id).ok());
            let Some(id) = id.filter(|_| status == 200) else {
                let message = answer.get("message").and_then(|m| m.as_str()).unwrap_or("no id in the answer");
                return Err(format!("{} under subject {registry_subject}: HTTP {status}: {message}", version.label()));
            };
            if let Some(other) = ids.insert(version.fingerprint(), id).filter(|other| *other != id) {
                return Err(format!("{} has two ids at the registry ({other} and {id})", version.label()));
            }
        }
    }
    Ok(ids)
}
