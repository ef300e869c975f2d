//! What a lander needs for each purpose besides its configuration: the purpose's policy and keys.

use std::{collections::BTreeMap, path::Path};

use crate::{Error, Result, keyring::KeyRing, policy::Policy, pseudonymise::PurposeKey};

/// One purpose's policy (field actions and consent rules) and keys.
#[derive(Debug, Clone)]
pub struct PurposeSetup {
    /// The purpose's policy; its `purpose` must be the purpose it is set up for.
    pub policy: Policy,
    /// The purpose's keys: the active one for new files, retired ones for erasure.
    pub keys: KeyRing,
}

impl PurposeSetup {
    /// The built-in policy of `purpose` (direct-care, planning or research) with one key.
    pub fn builtin(purpose: &str, key: PurposeKey) -> Result<Self> {
        let policy = Policy::builtin(purpose).ok_or_else(|| Error::NoPolicy(purpose.to_owned()))?;
        Ok(PurposeSetup { policy, keys: KeyRing::single(key) })
    }
}

/// Built-in policies for purposes keyed by name, each with its one key.
pub fn setups_from_builtin(keys: &BTreeMap<String, PurposeKey>) -> Result<BTreeMap<String, PurposeSetup>> {
    keys.iter().map(|(purpose, key)| Ok((purpose.clone(), PurposeSetup::builtin(purpose, key.clone())?))).collect()
}

/// Policies from `<dir>/<purpose>.toml` for each purpose with a key ring (a study's file is
/// `study:<id>.toml`). A purpose without a file fails: the policy is never guessed.
pub fn setups_from_dir(dir: &Path, rings: BTreeMap<String, KeyRing>) -> Result<BTreeMap<String, PurposeSetup>> {
    rings
        .into_iter()
        .map(|(purpose, keys)| {
            let path = dir.join(format!("{purpose}.toml"));
            if !path.exists() {
                return Err(Error::NoPolicy(purpose));
            }
            Ok((purpose, PurposeSetup { policy: Policy::load(&path)?, keys }))
        })
        .collect()
}
