//! Fuzzes one line of an NDJSON batch extract: UTF-8 and JSON reading, FHIR or subject JSON
//! mapping, schema-driven conversion and validation must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_producers::{batch_file::line::map_line, fhir::FhirDefaults};
use sluice_schemas::Catalogue;

fuzz_target!(|line: &[u8]| {
    let defaults = FhirDefaults { organisation: Some("RR8".into()), source_system: "fuzz".into() };
    let now = chrono::DateTime::from_timestamp(1_780_000_000, 0).expect("a valid instant");
    let _ = map_line(line, 1, "fuzz", Catalogue::embedded(), &defaults, now);
});
