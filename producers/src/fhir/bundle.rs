//! References inside a request: the entries of a Bundle by `fullUrl` and by `Type/id`,
//! `contained` resources by `#id`, and which Conditions an Encounter ranks as primary.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::FhirDefaults;
use super::values::Object;

/// The entries of one Bundle, indexed for reference resolution.
#[derive(Debug, Default)]
pub(super) struct BundleIndex<'a> {
    resources: Vec<&'a Object>,
    by_full_url: HashMap<&'a str, usize>,
    by_type_and_id: HashMap<(&'a str, &'a str), usize>,
    /// `diagnosis[].condition.reference` values (as written and as `Condition/<id>`) of every
    /// Encounter in the Bundle, where the diagnosis has rank 1.
    primary_conditions: HashSet<String>,
}

impl<'a> BundleIndex<'a> {
    /// Indexes `(fullUrl, resource)` pairs; the first entry wins when two share a key.
    pub(super) fn new(entries: impl IntoIterator<Item = (Option<&'a str>, &'a Object)>) -> Self {
        let mut index = BundleIndex::default();
        for (full_url, resource) in entries {
            let position = index.resources.len();
            index.resources.push(resource);
            if let Some(full_url) = full_url {
                index.by_full_url.entry(full_url).or_insert(position);
            }
            if let (Some(kind), Some(id)) = (text(resource, "resourceType"), text(resource, "id")) {
                index.by_type_and_id.entry((kind, id)).or_insert(position);
            }
            if text(resource, "resourceType") == Some("Encounter") {
                index.primary_conditions.extend(primary_condition_references(resource).flat_map(with_relative));
            }
        }
        index
    }

    fn find(&self, reference: &str) -> Option<&'a Object> {
        if let Some(&position) = self.by_full_url.get(reference) {
            return Some(self.resources[position]);
        }
        let (kind, id) = type_and_id(reference)?;
        self.by_type_and_id.get(&(kind, id)).map(|&position| self.resources[position])
    }
}

/// Where a resource is being mapped: alone or in a Bundle, with the settings and the time of
/// receipt.
#[derive(Debug, Clone, Copy)]
pub(super) struct Context<'a> {
    /// Settings for values resources may not carry.
    pub defaults: &'a FhirDefaults,
    /// When the request arrived.
    pub received_at: DateTime<Utc>,
    /// The Bundle the resource came in, if any.
    pub bundle: Option<&'a BundleIndex<'a>>,
    /// The resource's `fullUrl` in that Bundle.
    pub full_url: Option<&'a str>,
}

impl<'a> Context<'a> {
    /// The resource a literal reference points to: a contained resource of `resource` for
    /// `#id`, else a Bundle entry by `fullUrl` or by `Type/id` (an absolute URL or a
    /// `_history` suffix is reduced to its `Type/id`).
    pub(super) fn resolve(&self, reference: &str, resource: &'a Object) -> Option<&'a Object> {
        if let Some(id) = reference.strip_prefix('#') {
            let contained = resource.get("contained")?.as_array()?;
            return contained.iter().filter_map(Value::as_object).find(|c| text(c, "id") == Some(id));
        }
        self.bundle?.find(reference)
    }

    /// Whether an Encounter in the Bundle lists `condition` (this context's resource) as its
    /// diagnosis of rank 1, or the Encounter that `condition` itself refers to does.
    pub(super) fn is_primary_condition(&self, condition: &'a Object) -> bool {
        let mut names: Vec<String> = self.full_url.map(str::to_owned).into_iter().collect();
        if let Some(id) = text(condition, "id") {
            names.push(format!("Condition/{id}"));
        }
        if let Some(bundle) = self.bundle
            && names.iter().any(|name| bundle.primary_conditions.contains(name))
        {
            return true;
        }
        // A contained Encounter refers back to its container as `#`.
        let encounter = condition
            .get("encounter")
            .and_then(|e| e.get("reference"))
            .and_then(Value::as_str)
            .and_then(|reference| Some((reference.starts_with('#'), self.resolve(reference, condition)?)));
        match encounter {
            Some((contained, encounter)) if text(encounter, "resourceType") == Some("Encounter") => {
                primary_condition_references(encounter)
                    .flat_map(with_relative)
                    .any(|reference| (contained && reference == "#") || names.contains(&reference))
            }
            _ => false,
        }
    }
}

/// A string member, without type errors (those are reported where the member is mapped).
fn text<'a>(object: &'a Object, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str).filter(|t| !t.is_empty())
}

/// `Type/id` from the end of a relative or absolute reference, without `_history/<version>`.
fn type_and_id(reference: &str) -> Option<(&str, &str)> {
    let mut segments: Vec<&str> = reference.split('/').collect();
    if segments.len() >= 4 && segments[segments.len() - 2] == "_history" {
        segments.truncate(segments.len() - 2);
    }
    match segments[..] {
        [.., kind, id] if !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_alphabetic()) && !id.is_empty() => {
            Some((kind, id))
        }
        _ => None,
    }
}

fn primary_condition_references(encounter: &Object) -> impl Iterator<Item = &str> {
    encounter
        .get("diagnosis")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|diagnosis| diagnosis.get("rank").and_then(Value::as_u64) == Some(1))
        .filter_map(|diagnosis| diagnosis.get("condition")?.get("reference")?.as_str())
}

/// A reference as written and, when it ends in `Type/id`, that relative form too.
fn with_relative(reference: &str) -> Vec<String> {
    let mut forms = vec![reference.to_owned()];
    if let Some((kind, id)) = type_and_id(reference) {
        forms.push(format!("{kind}/{id}"));
    }
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_reduce_to_type_and_id() {
        assert_eq!(type_and_id("Patient/p1"), Some(("Patient", "p1")));
        assert_eq!(type_and_id("https://pas.example/fhir/Patient/p1/_history/3"), Some(("Patient", "p1")));
        assert_eq!(type_and_id("urn:uuid:2c6f0a8e-1b7d-4f43-9d8e-0f3c3f1c9a10"), None);
        assert_eq!(type_and_id("Patient/"), None);
    }
}
