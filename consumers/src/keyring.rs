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
        assert_eq!(ring.by_id("r-2026-05").unwrap().pseudonym("x"), key("r-2026-05", 2).pseudonym("x"));
        assert!(ring.by_id("r-2025-11").is_none());
        let error = KeyRing::new(key("same", 1), vec![key("same", 2)]).unwrap_err();
        assert_eq!(error, "key id `same` is used twice");
    }
}
