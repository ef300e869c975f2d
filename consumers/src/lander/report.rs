//! What a landing run did, counted so that every consumed event is accounted for.

use std::collections::BTreeMap;

use crate::lake::parquet::LandedFile;

/// What a run did, for the summary and for reconciliation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LandingReport {
    /// Clinical messages consumed, per subject (from the topic they were read from).
    pub consumed: BTreeMap<String, u64>,
    /// Clinical messages sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Consent messages sent to the dead-letter topic.
    pub consent_dead_lettered: u64,
    /// Consent changes applied (at start-up and while running).
    pub consent_changes: u64,
    /// Rows landed, per purpose.
    pub landed: BTreeMap<String, u64>,
    /// Rows not landed again because the purpose's table already held them, per purpose: a
    /// landing committed to the table whose offsets the group had not committed (the lander
    /// stopped, or lost the partition, in between).
    pub already_in_table: BTreeMap<String, u64>,
    /// Events withheld, per purpose and reason label.
    pub withheld: BTreeMap<String, BTreeMap<String, u64>>,
    /// Events released although the patient holds an opt-out the purpose is exempt from, per
    /// purpose and opt-out label.
    pub released_under_exemption: BTreeMap<String, BTreeMap<String, u64>>,
    /// Rows erased from already landed files after later opt-outs.
    pub erased_rows: u64,
    /// Offsets skipped over in clinical partitions (data removed by the broker before it was read).
    pub skipped_offsets: u64,
    /// Files written, in order.
    pub files: Vec<LandedFile>,
    /// Studies the consent topic names that this lander lands for no purpose: a study id spelt
    /// differently in a policy and in consent records would otherwise go unnoticed.
    pub consent_for_unserved_studies: std::collections::BTreeSet<String>,
    /// Clinical events whose `source_organisation` the register of source organisations does
    /// not list, per code: a Type 1 opt-out covers them (fail closed) until the register says
    /// what the organisation is.
    pub unknown_source_organisations: BTreeMap<String, u64>,
}

impl LandingReport {
    /// Adds another report's counts (and files) to this one.
    pub fn absorb(&mut self, other: LandingReport) {
        for (subject, n) in other.consumed {
            *self.consumed.entry(subject).or_default() += n;
        }
        for (purpose, n) in other.landed {
            *self.landed.entry(purpose).or_default() += n;
        }
        for (purpose, n) in other.already_in_table {
            *self.already_in_table.entry(purpose).or_default() += n;
        }
        add_nested(&mut self.withheld, other.withheld);
        add_nested(&mut self.released_under_exemption, other.released_under_exemption);
        self.erased_rows += other.erased_rows;
        self.dead_lettered += other.dead_lettered;
        self.consent_dead_lettered += other.consent_dead_lettered;
        self.consent_changes += other.consent_changes;
        self.skipped_offsets += other.skipped_offsets;
        self.files.extend(other.files);
        self.consent_for_unserved_studies.extend(other.consent_for_unserved_studies);
        for (code, n) in other.unknown_source_organisations {
            *self.unknown_source_organisations.entry(code).or_default() += n;
        }
    }

    /// All clinical messages consumed.
    pub fn consumed_total(&self) -> u64 {
        self.consumed.values().sum()
    }

    /// Events withheld from one purpose, all reasons.
    pub fn withheld_total(&self, purpose: &str) -> u64 {
        self.withheld.get(purpose).map_or(0, |reasons| reasons.values().sum())
    }

    /// Checks, for each purpose, that every consumed message is accounted for exactly once:
    /// consumed = landed + withheld + dead-lettered. Returns the purposes that do not add up.
    pub fn unreconciled(&self, purposes: &[String]) -> Vec<String> {
        purposes
            .iter()
            .filter(|p| {
                let landed = self.landed.get(*p).copied().unwrap_or(0);
                let already_in_table = self.already_in_table.get(*p).copied().unwrap_or(0);
                landed + already_in_table + self.withheld_total(p) + self.dead_lettered != self.consumed_total()
            })
            .cloned()
            .collect()
    }
}

fn add_nested(mine: &mut BTreeMap<String, BTreeMap<String, u64>>, theirs: BTreeMap<String, BTreeMap<String, u64>>) {
    for (outer, counts) in theirs {
        let mine = mine.entry(outer).or_default();
        for (inner, n) in counts {
            *mine.entry(inner).or_default() += n;
        }
    }
}
