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
    subjects::CLINICAL.iter().map(|s| Policy::baseline().plan(catalogue.latest(s).unwrap()).unwrap()).collect()
});

thread_local! {
    static DECODER: Decoder<'static> = Decoder::new(Catalogue::embedded());
}

static KEY: LazyLock<PurposeKey> = LazyLock::new(|| PurposeKey::new("fuzz", &[7; 32]).unwrap());

fuzz_target!(|message: &[u8]| {
    DECODER.with(|decoder| {
        let Ok(event) = decoder.decode(message) else { return };
        if event.reader.subject() == subjects::CONSENT {
            let _ = ConsentChange::from_record(&event.value);
        } else if let Some(plan) = PLANS.iter().find(|p| p.subject == event.reader.subject()) {
            let _ = pseudonymise(plan, &KEY, &event.value);
        }
    });
});
