//! Pseudonymisation keys: from a key file named by `SLUICE_KEYS_FILE`, from the key file's text
//! in `SLUICE_KEYS` (for secret stores that inject environment variables), or generated for one
//! run.
//!
//! Keys never come from the command line or a policy file and are never printed. A key file is
//! TOML with one table per purpose; earlier keys stay listed as `retired` after a rotation so
//! that files written with them can still be erased from:
//!
//! ```toml
//! [research]
//! key_id = "research-2026-11"
//! secret_hex = "…64 or more hex digits…"
//!
//! [[research.retired]]
//! key_id = "research-2026-05"
//! secret_hex = "…"
//! ```

use std::{collections::BTreeMap, path::Path};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sluice_consumers::{keyring::KeyRing, pseudonymise::PurposeKey};

/// Environment variable naming the key file.
pub const KEYS_FILE_VARIABLE: &str = "SLUICE_KEYS_FILE";
/// Environment variable holding the key file's text itself.
pub const KEYS_TEXT_VARIABLE: &str = "SLUICE_KEYS";

/// One key as written in the file.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    /// Recorded in every file written with the key.
    key_id: String,
    /// The secret, hex.
    secret_hex: String,
}

/// A purpose's table: the active key and the retired ones.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct PurposeEntry {
    /// The active key's id.
    key_id: String,
    /// The active key's secret, hex.
    secret_hex: String,
    /// Keys of files written before the last rotations, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    retired: Vec<KeyEntry>,
}

fn parse_file(text: &str, origin: &str) -> Result<BTreeMap<String, PurposeEntry>, String> {
    // The parser's message may quote the offending line, which could hold a secret: never pass it on.
    toml::from_str(text).map_err(|_| {
        format!(
            "key file {origin} is not valid (expected [purpose] key_id, secret_hex and optional [[purpose.retired]])"
        )
    })
}

fn key_of(entry: &KeyEntry) -> Result<PurposeKey, String> {
    let secret =
        hex::decode(entry.secret_hex.trim()).map_err(|_| format!("the secret of key `{}` is not hex", entry.key_id))?;
    PurposeKey::new(&entry.key_id, &secret)
}

fn ring_of(entry: &PurposeEntry) -> Result<KeyRing, String> {
    let active = key_of(&KeyEntry { key_id: entry.key_id.clone(), secret_hex: entry.secret_hex.clone() })?;
    let retired = entry.retired.iter().map(key_of).collect::<Result<Vec<_>, _>>()?;
    KeyRing::new(active, retired)
}

fn rings_from_text(text: &str, origin: &str, purposes: &[String]) -> Result<BTreeMap<String, KeyRing>, String> {
    let entries = parse_file(text, origin)?;
    // Every purpose of the file, not only those asked for: a file that gives two purposes one
    // secret is wrong whichever of them runs.
    let all = entries
        .iter()
        .map(|(purpose, entry)| Ok((purpose.as_str(), ring_of(entry).map_err(|e| format!("key file {origin}: {e}"))?)))
        .collect::<Result<Vec<_>, String>>()?;
    sluice_consumers::keyring::check_distinct(all.iter().map(|(purpose, ring)| (*purpose, ring)))
        .map_err(|e| format!("key file {origin}: {e}"))?;
    purposes
        .iter()
        .map(|purpose| {
            let entry = entries.get(purpose).ok_or_else(|| format!("key file {origin} has no key for `{purpose}`"))?;
            Ok((purpose.clone(), ring_of(entry).map_err(|e| format!("key file {origin}: {e}"))?))
        })
        .collect()
}

/// Reads the key rings for `purposes` from a key file.
pub fn load_rings(path: &Path, purposes: &[String]) -> Result<BTreeMap<String, KeyRing>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
    rings_from_text(&text, &path.display().to_string(), purposes)
}

/// Reads the active keys for `purposes` from a key file.
pub fn load(path: &Path, purposes: &[String]) -> Result<BTreeMap<String, PurposeKey>, String> {
    Ok(active(load_rings(path, purposes)?))
}

/// The active key of each ring.
pub fn active(rings: BTreeMap<String, KeyRing>) -> BTreeMap<String, PurposeKey> {
    rings.into_iter().map(|(purpose, ring)| (purpose, ring.active().clone())).collect()
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
    let mut text = format!("{HEADER}\n");
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

/// Key rings by purpose, with where they came from (for summaries; never the keys).
pub type Rings = (BTreeMap<String, KeyRing>, String);

/// Key rings from `SLUICE_KEYS` or `SLUICE_KEYS_FILE`, required for services whose pseudonyms
/// must stay stable. `None` when neither is set.
pub fn rings_from_environment(purposes: &[String]) -> Result<Option<Rings>, String> {
    if let Some(text) = std::env::var_os(KEYS_TEXT_VARIABLE) {
        let text = text.into_string().map_err(|_| format!("{KEYS_TEXT_VARIABLE} is not UTF-8"))?;
        let origin = format!("from {KEYS_TEXT_VARIABLE}");
        return Ok(Some((rings_from_text(&text, &origin, purposes)?, origin)));
    }
    match std::env::var_os(KEYS_FILE_VARIABLE) {
        Some(path) => {
            let path = Path::new(&path);
            Ok(Some((load_rings(path, purposes)?, format!("key file {}", path.display()))))
        }
        None => Ok(None),
    }
}

fn not_configured() -> String {
    format!(
        "set {KEYS_FILE_VARIABLE} to a key file (create one with `sluice keys generate`) or {KEYS_TEXT_VARIABLE} to its text"
    )
}

/// Key rings from the environment, which must name them.
pub fn required_rings(purposes: &[String]) -> Result<BTreeMap<String, KeyRing>, String> {
    Ok(rings_from_environment(purposes)?.ok_or_else(not_configured)?.0)
}

/// Active keys from the environment, which must name them.
pub fn from_environment(purposes: &[String]) -> Result<BTreeMap<String, PurposeKey>, String> {
    Ok(active(required_rings(purposes)?))
}

/// Keys from the environment if set, otherwise generated for this run. The second value says
/// where the keys came from, for the summary.
pub fn from_environment_or_generate(purposes: &[String]) -> Result<(BTreeMap<String, PurposeKey>, String), String> {
    match rings_from_environment(purposes)? {
        Some((rings, origin)) => Ok((active(rings), origin)),
        None => {
            Ok((generate(purposes), format!("generated for this run (set {KEYS_FILE_VARIABLE} to use a key file)")))
        }
    }
}

/// Rotates the keys of `purposes` in a key file: each gets a fresh random active key and its
/// previous key joins its retired keys. The file is replaced atomically and stays mode 0600.
/// Returns the new key ids.
pub fn rotate(path: &Path, purposes: &[String]) -> Result<Vec<String>, String> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
    let mut entries = parse_file(&text, &path.display().to_string())?;
    let mut new_ids = Vec::new();
    for purpose in purposes {
        let entry = entries
            .get_mut(purpose)
            .ok_or_else(|| format!("key file {} has no key for `{purpose}` to rotate", path.display()))?;
        let (secret, suffix) = random_key_material();
        let new_id = format!("{purpose}-{suffix}");
        let old = KeyEntry {
            key_id: std::mem::replace(&mut entry.key_id, new_id.clone()),
            secret_hex: std::mem::replace(&mut entry.secret_hex, hex::encode(secret)),
        };
        entry.retired.push(old);
        new_ids.push(new_id);
    }
    let body = toml::to_string(&entries).map_err(|e| format!("cannot write the key file: {e}"))?;
    let text = format!("{HEADER}\n{body}");
    let temporary = path.with_extension("rotating");
    let write = || -> std::io::Result<()> {
        let mut file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| format!("cannot replace key file {}: {e}", path.display()))?;
    Ok(new_ids)
}

/// First line of every key file written by sluice.
const HEADER: &str = "# sluice pseudonymisation keys: keep secret, back up, never commit.";

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
    fn rotation_keeps_the_old_key_as_retired_and_rings_find_both() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let purposes = vec!["research".to_owned(), "planning".to_owned()];
        write_new_file(&path, &purposes).unwrap();
        let before = load_rings(&path, &purposes).unwrap();
        let new_ids = rotate(&path, &["research".to_owned()]).unwrap();
        let after = load_rings(&path, &purposes).unwrap();
        let old = before["research"].active();
        assert_eq!(after["research"].active().id(), new_ids[0]);
        assert_ne!(after["research"].active().patient_pseudonym("x"), old.patient_pseudonym("x"));
        let retired = after["research"].by_id(old.id()).expect("the old key is retired, not lost");
        assert_eq!(retired.patient_pseudonym("x"), old.patient_pseudonym("x"));
        assert_eq!(
            after["planning"].active().patient_pseudonym("x"),
            before["planning"].active().patient_pseudonym("x")
        );
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        rotate(&path, &["research".to_owned()]).unwrap();
        assert_eq!(load_rings(&path, &purposes).unwrap()["research"].retired().len(), 2);
        assert!(rotate(&path, &["study:X".to_owned()]).unwrap_err().contains("no key for `study:X`"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(HEADER));
        assert_eq!(rings_from_text(&text, "env", &purposes).unwrap()["research"].retired().len(), 2);
    }

    #[test]
    fn a_key_file_giving_two_purposes_one_secret_is_refused_without_showing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let (shared, own) = ("c3".repeat(32), "d4".repeat(32));
        std::fs::write(
            &path,
            format!(
                "[planning]\nkey_id = \"p1\"\nsecret_hex = \"{own}\"\n\n[[planning.retired]]\nkey_id = \"p0\"\n\
                 secret_hex = \"{shared}\"\n\n[research]\nkey_id = \"r1\"\nsecret_hex = \"{shared}\"\n"
            ),
        )
        .unwrap();
        // Refused even when only one of the two purposes is asked for.
        let error = load(&path, &["research".into()]).unwrap_err();
        assert!(error.contains("`planning` (key `p0`)") && error.contains("`research` (key `r1`)"), "{error}");
        assert!(error.contains("share a secret") && !error.contains("c3c3"), "{error}");
    }

    #[test]
    fn generated_keys_differ_per_purpose() {
        let keys = generate(&["planning".into(), "research".into()]);
        assert_ne!(keys["planning"].patient_pseudonym("x"), keys["research"].patient_pseudonym("x"));
    }
}
