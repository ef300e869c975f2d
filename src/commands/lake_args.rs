//! Where a command finds a lake: its datasets (a directory or an object-store URL) and its state
//! directory (audit log, committed offsets, locks), as the `--lake` and `--state-dir` options.

use std::path::PathBuf;

use sluice_consumers::lake::storage::LakeStorage;

/// `--lake` and `--state-dir`.
#[derive(clap::Args, Debug, Clone)]
pub struct LakeArgs {
    /// The lake: a directory, or an S3-compatible URL (`s3://bucket/prefix`, connection from the
    /// AWS_* environment variables) together with --state-dir.
    #[arg(long, default_value = "lake")]
    pub lake: String,
    /// Local directory for the lake's audit log, committed offsets and locks. Required for an
    /// object-store lake; for a directory lake it defaults to the lake itself.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

impl LakeArgs {
    /// A directory lake, its state kept in it.
    pub fn directory(dir: impl Into<PathBuf>) -> Self {
        LakeArgs { lake: dir.into().display().to_string(), state_dir: None }
    }

    /// The lake's state directory.
    pub fn state_dir(&self) -> Result<PathBuf, String> {
        match (&self.state_dir, self.local_directory()) {
            (Some(dir), _) => Ok(dir.clone()),
            (None, Some(dir)) => Ok(dir),
            (None, None) => Err(format!(
                "the lake {} is not a directory: name a local --state-dir for its audit log and committed offsets",
                self.lake
            )),
        }
    }

    /// Where datasets go when not in the state directory: the `lake_url` of a lander's configuration.
    pub fn datasets_elsewhere(&self) -> Result<Option<String>, String> {
        let state = self.state_dir()?;
        Ok((self.local_directory() != Some(state)).then(|| self.lake.clone()))
    }

    /// The storage of the lake's datasets.
    pub fn storage(&self) -> Result<LakeStorage, String> {
        LakeStorage::open(&self.lake).map_err(|e| e.to_string())
    }

    fn local_directory(&self) -> Option<PathBuf> {
        match self.lake.strip_prefix("file://") {
            Some(path) => Some(PathBuf::from(path)),
            None if self.lake.contains("://") => None,
            None => Some(PathBuf::from(&self.lake)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_lake_keeps_its_state_in_itself() {
        let lake = LakeArgs::directory("/data/lake");
        assert_eq!(lake.state_dir().unwrap(), PathBuf::from("/data/lake"));
        assert_eq!(lake.datasets_elsewhere().unwrap(), None);
        let url = LakeArgs { lake: "file:///data/lake".into(), state_dir: None };
        assert_eq!(url.state_dir().unwrap(), PathBuf::from("/data/lake"));
        assert_eq!(url.datasets_elsewhere().unwrap(), None);
    }

    #[test]
    fn an_object_store_lake_needs_a_state_directory() {
        let lake = LakeArgs { lake: "s3://clinical/lake".into(), state_dir: None };
        assert!(lake.state_dir().unwrap_err().contains("--state-dir"));
        let lake = LakeArgs { state_dir: Some("/var/lib/sluice".into()), ..lake };
        assert_eq!(lake.state_dir().unwrap(), PathBuf::from("/var/lib/sluice"));
        assert_eq!(lake.datasets_elsewhere().unwrap().as_deref(), Some("s3://clinical/lake"));
    }
}
