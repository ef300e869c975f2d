//! Fuzzes what `sluice registry serve` does with a client's schema text: looking it up under a
//! subject, and checking its compatibility against the catalogue. Any text must give an answer or
//! an error, never a panic.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sluice_registry::CatalogueRegistry;
use sluice_schemas::Catalogue;

static REGISTRY: LazyLock<CatalogueRegistry> = LazyLock::new(|| {
    CatalogueRegistry::new(
        Catalogue::embedded(),
        [("clinical.adt".to_owned(), "adt".to_owned()), ("clinical.observation".to_owned(), "observation".to_owned())],
    )
});

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    for subject in ["clinical.adt-value", "clinical.observation-value", "nothing-value"] {
        let _ = REGISTRY.find(subject, &text);
        let _ = REGISTRY.compatibility(subject, "latest", &text);
    }
});
