//! Pseudonymisation keys: from a key file named by `SLUICE_KEYS_FILE`, or generated for one run.
//!
//! Keys never come from the command line or a policy file and are never printed. A key file is
//! TOML with one table per purpose:
//!
//! ```toml
//! [research]
//! key_id = "research-2026-11"
//! secret_hex = "…64 or more hex digits…"
//! ```

use std::{collections::BTreeMap, path::Path};

use rand::RngCore;
use serde::Deserialize;
use sluice_consumers::pseudonymise::PurposeKey;

/// Environment variable naming the key file.
pub const KEYS_FILE_VARIABLE: &str = "SLUICE_KEYS_FILE";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    key_id: String,
    secret_hex: String,
}

/// Reads the keys for `purposes` from a key file.
pub fn load(path: &Path, purposes: &[String]) -> Result<BTreeMap<String, PurposeKey>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
    let entries: BTreeMap<String, KeyEntry> = toml::from_str(&text)
        .map_err(|_| format!("key file {} is not valid (expected [purpose] key_id, secret_hex)", path.display()))?;
    purposes
        .iter()
        .map(|purpose| {
            let entry = entries
                .get(purpose)
                .ok_or_else(|| format!("key file {} has no key for `{purpose}`", path.display()))?;
            let secret = hex::decode(entry.secret_hex.trim())
                .map_err(|_| format!("the secret of key `{}` is not hex", entry.key_id))?;
            Ok((purpose.clone(), PurposeKey::new(&entry.key_id, &secret)?))
        })
        .collect()
}

/// Fresh random keys for one run: pseudonyms from this run cannot be linked to any other run's.
pub fn generate(purposes: &[String]) -> BTreeMap<String, PurposeKey> {
    let mut rng = rand::rng();
    purposes
        .iter()
        .map(|purpose| {
            let mut secret = [0u8; 32];
            rng.fill_bytes(&mut secret);
            let mut id = [0u8; 4];
            rng.fill_bytes(&mut id);
            let key =
                PurposeKey::new(&format!("ephemeral-{purpose}-{}", hex::encode(id)), &secret).expect("32-byte key");
            (purpose.clone(), key)
        })
        .collect()
}

/// Keys from `SLUICE_KEYS_FILE` if it is set, otherwise generated for this run. The second
/// value says where the keys came from, for the summary.
pub fn from_environment_or_generate(purposes: &[String]) -> Result<(BTreeMap<String, PurposeKey>, String), String> {
    match std::env::var_os(KEYS_FILE_VARIABLE) {
        Some(path) => {
            let path = Path::new(&path);
            Ok((load(path, purposes)?, format!("key file {}", path.display())))
        }
        None => {
            Ok((generate(purposes), format!("generated for this run (set {KEYS_FILE_VARIABLE} to use a key file)")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_read_per_purpose_and_errors_never_show_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let secret = "ab".repeat(32);
        std::fs::write(&path, format!("[research]\nkey_id = \"r1\"\nsecret_hex = \"{secret}\"\n")).unwrap();
        let keys = load(&path, &["research".into()]).unwrap();
        assert_eq!(keys["research"].id(), "r1");
        let error = load(&path, &["planning".into()]).unwrap_err();
        assert!(error.contains("planning"));
        std::fs::write(&path, format!("[research]\nkey_id = \"r1\"\nsecret_hex = \"{}\"\n", "zz".repeat(32))).unwrap();
        let error = load(&path, &["research".into()]).unwrap_err();
        assert!(!error.contains("zz"), "{error}");
    }

    #[test]
    fn generated_keys_differ_per_purpose() {
        let keys = generate(&["planning".into(), "research".into()]);
        assert_ne!(keys["planning"].pseudonym("x"), keys["research"].pseudonym("x"));
    }
}
