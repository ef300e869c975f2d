//! `sluice keys generate|rotate`: pseudonymisation key files (see [`crate::keys`]).

use std::{path::PathBuf, process::ExitCode};

use clap::Subcommand;

/// `sluice keys`.
#[derive(clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Write a new key file with a random key per purpose (mode 0600; never overwrites).
    Generate {
        /// Purposes to create keys for (repeatable or comma-separated).
        #[arg(long = "purpose", value_delimiter = ',', required = true)]
        purposes: Vec<String>,
        /// Where to write the key file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Give purposes a fresh active key; the old key stays in the file as retired, so files
    /// written with it can still be erased from.
    Rotate {
        /// Purposes whose keys to rotate (repeatable or comma-separated).
        #[arg(long = "purpose", value_delimiter = ',', required = true)]
        purposes: Vec<String>,
        /// The key file (replaced atomically, mode 0600).
        #[arg(long, env = "SLUICE_KEYS_FILE")]
        file: PathBuf,
    },
}

impl KeysArgs {
    /// Writes or rotates a key file; prints which, never a key.
    pub fn run(self) -> Result<ExitCode, String> {
        match self.command {
            KeysCommand::Generate { purposes, out } => {
                crate::keys::write_new_file(&out, &purposes)?;
                println!("wrote {} with keys for {}", out.display(), purposes.join(", "));
            }
            KeysCommand::Rotate { purposes, file } => {
                let ids = crate::keys::rotate(&file, &purposes)?;
                println!("rotated {}: new key ids {}", file.display(), ids.join(", "));
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
