//! A purpose's pseudonymisation keys over time: the active key that new files are written with,
//! and the retired keys that older files were written with.
//!
//! Keys are rotated (a new active key, the old one retired) without rewriting the lake: every
//! landed file records the id of the key it was written with (`sluice.key_id`), so a file stays
//! readable and, through its retired key, still erasable after any number of rotations. A
//! pseudonym from before a rotation does not match one from after it; that is the point of
//! rotating, and analysts are told so by the key id in each file.

use crate::pseudonymise::PurposeKey;

/// The keys of one purpose.
#[derive(Debug, Clone)]
pub struct KeyRing {
    /// The key new files are written with.
    active: PurposeKey,
    /// Keys of earlier files, kept so that erasure can still find a patient's rows in them.
    retired: Vec<PurposeKey>,
}

impl KeyRing {
    /// A ring with an active key and the retired keys. Refuses duplicate key ids, which would
    /// make a file's `sluice.key_id` ambiguous.
    pub fn new(active: PurposeKey, retired: Vec<PurposeKey>) -> Result<Self, String> {
        let mut ids: Vec<&str> = std::iter::once(active.id()).chain(retired.iter().map(PurposeKey::id)).collect();
        ids.sort_unstable();
        if let Some(pair) = ids.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(format!("key id `{}` is used twice", pair[0]));
        }
        Ok(KeyRing { active, retired })
    }

    /// Every key of the ring: the active one first, then the retired ones.
    pub fn keys(&self) -> impl Iterator<Item = &PurposeKey> {
        std::iter::once(&self.active).chain(&self.retired)
    }

    /// A ring of one key, with nothing retired.
    pub fn single(active: PurposeKey) -> Self {
        KeyRing { active, retired: Vec::new() }
    }

    /// The key new files are written with.
    pub fn active(&self) -> &PurposeKey {
        &self.active
    }

    /// The retired keys, oldest first.
    pub fn retired(&self) -> &[PurposeKey] {
        &self.retired
    }

    /// The key with this id, active or retired.
    pub fn by_id(&self, id: &str) -> Option<&PurposeKey> {
        std::iter::once(&self.active).chain(&self.retired).find(|key| key.id() == id)
    }
}

/// Refuses purposes that share a secret, active or retired: two purposes under one secret give
/// each patient the same pseudonym (and the same time shift) in both, which links their data.
/// The error names the purposes and key ids, never a secret.
pub fn check_distinct<'r>(rings: impl IntoIterator<Item = (&'r str, &'r KeyRing)>) -> Result<(), String> {
    let keys: Vec<(&str, &PurposeKey)> =
        rings.into_iter().flat_map(|(purpose, ring)| ring.keys().map(move |key| (purpose, key))).collect();
    for (index, (purpose, key)) in keys.iter().enumerate() {
        if let Some((other, other_key)) =
            keys[index + 1..].iter().find(|(other, other_key)| other != purpose && key.shares_secret_with(other_key))
        {
            return Err(format!(
                "purposes `{purpose}` (key `{}`) and `{other}` (key `{}`) share a secret; each purpose needs its own \
                 (`sluice keys generate`), or their pseudonyms would be equal and link their data",
                key.id(),
                other_key.id()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, byte: u8) -> PurposeKey {
        PurposeKey::new(id, &[byte; 32]).unwrap()
    }

    #[test]
    fn keys_are_found_by_id_and_ids_must_be_unique() {
        let ring = KeyRing::new(key("r-2026-11", 1), vec![key("r-2026-05", 2)]).unwrap();
        assert_eq!(ring.active().id(), "r-2026-11");
        assert_eq!(ring.by_id("r-2026-05").unwrap().patient_pseudonym("x"), key("r-2026-05", 2).patient_pseudonym("x"));
        assert!(ring.by_id("r-2025-11").is_none());
        let error = KeyRing::new(key("same", 1), vec![key("same", 2)]).unwrap_err();
        assert_eq!(error, "key id `same` is used twice");
    }

    #[test]
    fn purposes_sharing_a_secret_are_refused_by_purpose_and_key_id() {
        let planning = KeyRing::new(key("p-2026-11", 1), vec![key("p-2026-05", 2)]).unwrap();
        let research = KeyRing::single(key("r-2026-11", 3));
        check_distinct([("planning", &planning), ("research", &research)]).unwrap();
        // A retired planning secret reused as research's active one.
        let reused = KeyRing::single(key("r-2026-12", 2));
        let error = check_distinct([("planning", &planning), ("research", &reused)]).unwrap_err();
        assert!(
            error.contains("`planning` (key `p-2026-05`)") && error.contains("`research` (key `r-2026-12`)"),
            "{error}"
        );
        assert!(!error.contains("0202"), "no secret in the message: {error}");
        // One purpose may hold a secret once only anyway; the check is between purposes.
        check_distinct([("research", &research)]).unwrap();
    }
}
