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

/// A fresh 32-byte secret and a random 4-byte suffix (hex) for its key id.
fn random_key_material() -> ([u8; 32], String) {
    let mut rng = rand::rng();
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let mut id = [0u8; 4];
    rng.fill_bytes(&mut id);
    (secret, hex::encode(id))
}

/// Fresh random keys for one run: pseudonyms from this run cannot be linked to any other run's.
pub fn generate(purposes: &[String]) -> BTreeMap<String, PurposeKey> {
    purposes
        .iter()
        .map(|purpose| {
            let (secret, suffix) = random_key_material();
            let key = PurposeKey::new(&format!("ephemeral-{purpose}-{suffix}"), &secret).expect("32-byte key");
            (purpose.clone(), key)
        })
        .collect()
}

/// Writes a new key file with a fresh random key per purpose, readable by its owner only.
/// Refuses to overwrite an existing file: losing a key makes its pseudonyms unreproducible.
pub fn write_new_file(path: &Path, purposes: &[String]) -> Result<(), String> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut text = String::from("# sluice pseudonymisation keys: keep secret, back up, never commit.\n");
    for purpose in purposes {
        let (secret, suffix) = random_key_material();
        text.push_str(&format!(
            "\n[{purpose:?}]\nkey_id = \"{purpose}-{suffix}\"\nsecret_hex = \"{}\"\n",
            hex::encode(secret)
        ));
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create key file {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Keys from `SLUICE_KEYS_FILE`, required for services whose pseudonyms must stay stable.
pub fn from_environment(purposes: &[String]) -> Result<BTreeMap<String, PurposeKey>, String> {
    let path = std::env::var_os(KEYS_FILE_VARIABLE)
        .ok_or_else(|| format!("set {KEYS_FILE_VARIABLE} to a key file (create one with `sluice keys generate`)"))?;
    load(Path::new(&path), purposes)
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
    fn a_written_key_file_loads_is_private_and_is_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let purposes = vec!["research".to_owned(), "study:IRAS-1".to_owned()];
        write_new_file(&path, &purposes).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let keys = load(&path, &purposes).unwrap();
        assert!(keys["study:IRAS-1"].id().starts_with("study:IRAS-1-"));
        assert!(write_new_file(&path, &purposes).unwrap_err().contains("cannot create"));
    }

    #[test]
    fn generated_keys_differ_per_purpose() {
        let keys = generate(&["planning".into(), "research".into()]);
        assert_ne!(keys["planning"].pseudonym("x"), keys["research"].pseudonym("x"));
    }
}
