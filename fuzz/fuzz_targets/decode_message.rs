//! Fuzzes everything a lander does with the bytes of a Kafka message it did not produce:
//! framing, writer-schema lookup, Avro decoding with resolution to the newest version, and then
//! either reading a consent change or pseudonymising a clinical record. None of it may panic.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sluice_consumers::{
    consent::ConsentChange,
    policy::{LandingPlan, Policy},
    pseudonymise::{PurposeKey, pseudonymise},
};
use sluice_schemas::{Catalogue, Decoder, subjects};

static PLANS: LazyLock<Vec<LandingPlan>> = LazyLock::new(|| {
    let catalogue = Catalogue::embedded();
    // Every standard policy, so every transform they use meets arbitrary records.
    Policy::BUILTIN_PURPOSES
        .iter()
        .map(|purpose| Policy::builtin(purpose).unwrap())
        .flat_map(|policy| subjects::CLINICAL.map(|s| policy.plan(catalogue.latest(s).unwrap()).unwrap()))
        .collect()
});

thread_local! {
    static DECODER: Decoder<'static> = Decoder::new(Catalogue::embedded());
}

static KEY: LazyLock<PurposeKey> = LazyLock::new(|| PurposeKey::new("fuzz", &[7; 32]).unwrap());

/// Random bytes rarely hit a known fingerprint, so inputs that do not start with a framing marker
/// get a valid single-object header for the version their first byte picks, and the rest of the
/// input as the Avro body: that way the fuzzer exercises decoding with every real schema.
fn framed(input: &[u8]) -> Vec<u8> {
    match input {
        [0xC3, ..] | [0x00, ..] | [] => input.to_vec(),
        [pick, body @ ..] => {
            let catalogue = Catalogue::embedded();
            let versions: Vec<_> = catalogue.subject_names().flat_map(|s| catalogue.versions(s).unwrap()).collect();
            let version = versions[usize::from(*pick) % versions.len()];
            let mut message = vec![0xC3, 0x01];
            message.extend_from_slice(&version.fingerprint().to_le_bytes());
            message.extend_from_slice(body);
            message
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let message = framed(input);
    DECODER.with(|decoder| {
        let Ok(event) = decoder.decode(&message) else { return };
        if event.reader.subject() == subjects::CONSENT {
            let _ = ConsentChange::from_record(&event.value);
        } else {
            for plan in PLANS.iter().filter(|p| p.subject == event.reader.subject()) {
                let _ = pseudonymise(plan, &KEY, &event.value);
            }
        }
    });
});
