//! Which HL7 messages have already been stored, so that a message a sender repeats (because our
//! ACK never reached it) is acknowledged again without being published twice.
//!
//! A message is known by its sender (MSH-3 and MSH-4) and control id (MSH-10). Only messages
//! whose events Kafka acknowledged are remembered: a message that was refused or could not be
//! stored may be corrected and sent again under the same control id, and is then processed anew.
//! The most recent `capacity` messages are kept in memory; with a journal file they survive a
//! restart. The journal is appended and synced after Kafka's acknowledgement and before the ACK
//! to the sender, so the only window for a duplicate is a crash between those two steps.

use std::{
    collections::{HashSet, VecDeque},
    fs::{File, OpenOptions},
    io::{self, BufRead, BufReader, Write},
    path::{Path, PathBuf},
};

/// The outcome of [`SeenMessages::claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Not seen before: the caller stores it, then calls [`SeenMessages::stored`] or
    /// [`SeenMessages::release`].
    New,
    /// Already stored: acknowledge again, publish nothing.
    AlreadyStored,
    /// Being stored right now on another connection.
    InFlight,
}

/// Stored messages, newest `capacity` of them, optionally journalled to a file.
#[derive(Debug)]
pub struct SeenMessages {
    /// Keys in the order they were stored, oldest first, for eviction.
    order: VecDeque<String>,
    /// The same keys, for lookup.
    stored: HashSet<String>,
    /// Keys claimed and not yet stored or released.
    in_flight: HashSet<String>,
    /// Most keys remembered.
    capacity: usize,
    /// The journal, when persisted.
    journal: Option<Journal>,
}

/// The append-only journal file: one key per line.
#[derive(Debug)]
struct Journal {
    /// Where it lives.
    path: PathBuf,
    /// Open for appending.
    file: File,
    /// Lines in the file, to know when to compact it.
    lines: usize,
}

impl SeenMessages {
    /// Remembers in memory only: repeats across a restart are not recognised.
    pub fn in_memory(capacity: usize) -> Self {
        SeenMessages {
            order: VecDeque::new(),
            stored: HashSet::new(),
            in_flight: HashSet::new(),
            capacity: capacity.max(1),
            journal: None,
        }
    }

    /// Opens (or creates) the journal at `path` and loads the newest `capacity` keys from it.
    pub fn open(path: &Path, capacity: usize) -> io::Result<Self> {
        let mut seen = SeenMessages::in_memory(capacity);
        let mut lines = 0;
        match File::open(path) {
            Ok(file) => {
                for line in BufReader::new(file).lines() {
                    seen.remember(line?);
                    lines += 1;
                }
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        seen.journal = Some(Journal { path: path.to_owned(), file, lines });
        if lines > 2 * seen.capacity {
            seen.compact()?;
        }
        Ok(seen)
    }

    /// Claims a message for storing, unless it is stored or being stored.
    pub fn claim(&mut self, key: &str) -> Claim {
        if self.stored.contains(key) {
            Claim::AlreadyStored
        } else if !self.in_flight.insert(key.to_owned()) {
            Claim::InFlight
        } else {
            Claim::New
        }
    }

    /// Records a claimed message as stored (journalled and synced when persisted).
    pub fn stored(&mut self, key: &str) -> io::Result<()> {
        self.in_flight.remove(key);
        let key = key.replace(['\n', '\r'], " ");
        self.remember(key.clone());
        let Some(journal) = &mut self.journal else { return Ok(()) };
        journal.file.write_all(format!("{key}\n").as_bytes())?;
        journal.file.sync_data()?;
        journal.lines += 1;
        if journal.lines > 2 * self.capacity {
            self.compact()?;
        }
        Ok(())
    }

    /// Gives up a claim: the message was not stored and may come again.
    pub fn release(&mut self, key: &str) {
        self.in_flight.remove(key);
    }

    /// How many stored messages are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn remember(&mut self, key: String) {
        if self.stored.insert(key.clone()) {
            self.order.push_back(key);
        }
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.stored.remove(&oldest);
            }
        }
    }

    /// Rewrites the journal with only the remembered keys: a temporary file, synced, renamed
    /// over the old one, so a crash leaves one complete journal or the other.
    fn compact(&mut self) -> io::Result<()> {
        let Some(journal) = &mut self.journal else { return Ok(()) };
        let temporary = journal.path.with_extension("compacting");
        let mut file = File::create(&temporary)?;
        let mut text = String::new();
        for key in &self.order {
            text.push_str(key);
            text.push('\n');
        }
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, &journal.path)?;
        if let Some(dir) = journal.path.parent() {
            File::open(if dir.as_os_str().is_empty() { Path::new(".") } else { dir })?.sync_all()?;
        }
        journal.file = OpenOptions::new().append(true).open(&journal.path)?;
        journal.lines = self.order.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_message_is_recognised_and_a_released_one_is_not() {
        let mut seen = SeenMessages::in_memory(10);
        assert_eq!(seen.claim("PAS^RR8\t1"), Claim::New);
        assert_eq!(seen.claim("PAS^RR8\t1"), Claim::InFlight);
        seen.stored("PAS^RR8\t1").unwrap();
        assert_eq!(seen.claim("PAS^RR8\t1"), Claim::AlreadyStored);
        assert_eq!(seen.claim("LIMS^RR8\t1"), Claim::New, "control ids are per sender");
        seen.release("LIMS^RR8\t1");
        assert_eq!(seen.claim("LIMS^RR8\t1"), Claim::New, "a message that was not stored may come again");
    }

    #[test]
    fn only_the_newest_capacity_messages_are_remembered() {
        let mut seen = SeenMessages::in_memory(3);
        for id in 0..5 {
            assert_eq!(seen.claim(&id.to_string()), Claim::New);
            seen.stored(&id.to_string()).unwrap();
        }
        assert_eq!(seen.len(), 3);
        assert_eq!(seen.claim("1"), Claim::New);
        assert_eq!(seen.claim("4"), Claim::AlreadyStored);
    }

    #[test]
    fn the_journal_survives_a_restart_and_is_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hl7-stored-messages.journal");
        {
            let mut seen = SeenMessages::open(&path, 4).unwrap();
            for id in 0..20 {
                seen.claim(&format!("PAS^RR8\t{id}"));
                seen.stored(&format!("PAS^RR8\t{id}")).unwrap();
            }
        }
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines <= 8, "compacted to at most twice the capacity, found {lines} lines");
        let mut seen = SeenMessages::open(&path, 4).unwrap();
        assert_eq!(seen.len(), 4);
        assert_eq!(seen.claim("PAS^RR8\t19"), Claim::AlreadyStored);
        assert_eq!(seen.claim("PAS^RR8\t15"), Claim::New);
    }
}
