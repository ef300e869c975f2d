//! Fuzzes the FHIR R4 mapping with arbitrary request bodies at every endpoint: reading JSON,
//! resolving references inside Bundles, mapping and validating must never panic, and no refusal
//! may quote the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_producers::fhir::{FhirDefaults, SUPPORTED, map_request};

fuzz_target!(|bytes: &[u8]| {
    let Some((&endpoint, body)) = bytes.split_first() else { return };
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else { return };
    let expected = SUPPORTED.get(usize::from(endpoint) % (SUPPORTED.len() + 1)).copied();
    let defaults = FhirDefaults { organisation: Some("RR8".into()), source_system: "fuzz".into() };
    let received_at = chrono::DateTime::from_timestamp(1_780_000_000, 0).expect("a valid instant");
    let _ = map_request(&json, expected, &defaults, received_at);
});
