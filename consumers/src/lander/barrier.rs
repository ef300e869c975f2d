//! The consent barrier: a batch of clinical messages is released only once the consent topic
//! has been read up to where it ended when the batch had been read, so every opt-out Kafka
//! acknowledged before then applies to the batch (fail closed).
//!
//! Where the topic ends is asked as soon as a batch is read ([`AwaitingConsent`]); the lander
//! lands the batch before it while the broker answers ([`Barrier::land`]).

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use rdkafka::message::OwnedMessage;
use sluice_schemas::Decoder;

use super::{
    LanderConsumer, apply_revocations, block, consent_reader::ConsentEnds, consent_reader::ConsentReader,
    partition::TopicPartition, state::LandingState,
};
use crate::Result;

/// A batch of clinical messages read, and the consent topic's ends asked for after it was read.
pub(super) struct AwaitingConsent {
    /// The messages, in the order read.
    pub(super) messages: Vec<OwnedMessage>,
    /// Where the consent topic ended once they had been read.
    pub(super) ends: ConsentEnds,
}

/// Waits for the ends asked for the awaiting batch; never completes when no batch awaits.
pub(super) async fn answer_for(awaiting: &mut Option<AwaitingConsent>) -> Result<Vec<(i32, i64)>> {
    match awaiting {
        Some(batch) => batch.ends.answer().await,
        None => std::future::pending().await,
    }
}

/// Whether a message is from one of the `revoked` partitions.
pub(super) fn is_revoked(revoked: &[TopicPartition], message: &OwnedMessage) -> bool {
    revoked.iter().any(|source| source.holds(message))
}

/// Drops the awaiting batch's messages from partitions just revoked: their new owner reads them.
pub(super) fn forget_revoked(awaiting: &mut Option<AwaitingConsent>, revoked: &[TopicPartition]) {
    if let Some(batch) = awaiting.as_mut().filter(|_| !revoked.is_empty()) {
        batch.messages.retain(|m| !is_revoked(revoked, m));
    }
}

/// What releasing a batch through its consent barrier needs besides the landing state.
pub(super) struct Barrier<'a, 'c> {
    /// The clinical consumer (for revocations and checkpoint commits).
    pub(super) consumer: &'a LanderConsumer,
    /// Reads the consent topic up to the ends asked for.
    pub(super) consent_reader: &'a mut ConsentReader,
    /// Decodes the clinical events.
    pub(super) decoder: &'a Decoder<'c>,
    /// How long reading the consent topic may take before landing holds.
    pub(super) timeout: Duration,
}

impl Barrier<'_, '_> {
    /// Awaits the batch's consent ends, then lands it (see [`Self::land_with`]).
    pub(super) async fn land(&mut self, mut batch: AwaitingConsent, state: &mut LandingState<'_>) -> Result<()> {
        let asked = Instant::now();
        let ends = batch.ends.answer().await?;
        tracing::debug!(waited_ms = asked.elapsed().as_millis() as u64, "consent barrier answered");
        self.land_with(batch.messages, &ends, state).await
    }

    /// Reads the consent topic up to `ends` (every consent change Kafka acknowledged before the
    /// batch was read is then applied), and only then decodes, checks and buffers the batch's
    /// events, checkpointing the partitions that are due.
    pub(super) async fn land_with(
        &mut self,
        mut batch: Vec<OwnedMessage>,
        ends: &[(i32, i64)],
        state: &mut LandingState<'_>,
    ) -> Result<()> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        block(|| self.consent_reader.read_to(ends, self.decoder, state, deadline))?;
        let consent_read = started.elapsed();
        // Decided at the time of release: changes dated up to now are in force, ended ones not.
        state.advance_consent_clock();
        if state.owes_erasures() {
            // Opt-outs just read recall rows released before them: land and erase now, before
            // this batch, so that what is erased is exactly what was released before the
            // opt-out was known, and rows released under it (a Type 1 patient's rows from
            // outside general practice, say) are not erased with them.
            state.checkpoint(self.consumer, None).await?;
        }
        let revoked = apply_revocations(self.consumer, state)?;
        batch.retain(|m| !is_revoked(&revoked, m));
        // Partitions lost at a checkpoint inside this batch: the rest of their events are left
        // to their new owner.
        let mut lost: BTreeSet<TopicPartition> = BTreeSet::new();
        for message in &batch {
            if lost.iter().any(|source| source.holds(message)) {
                continue;
            }
            let event = state.read_clinical(self.decoder, message)?;
            if let Some(partition) = state.window_closed_by(&event) {
                state.checkpoint(self.consumer, Some(&BTreeSet::from([partition.clone()]))).await?;
                if !state.still_reading(&event) {
                    lost.insert(partition);
                    continue;
                }
            }
            state.buffer_clinical(message, event)?;
        }
        tracing::debug!(
            messages = batch.len(),
            consent_read_ms = consent_read.as_millis() as u64,
            landed_ms = started.elapsed().as_millis() as u64,
            "batch released"
        );
        apply_revocations(self.consumer, state)?;
        let due = state.buffers.partitions_due(state.config);
        if !due.is_empty() {
            state.checkpoint(self.consumer, Some(&due)).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::{Message, Timestamp};

    use super::*;

    fn message(topic: &str, partition: i32, offset: i64) -> OwnedMessage {
        OwnedMessage::new(None, None, topic.to_owned(), Timestamp::NotAvailable, partition, offset, None)
    }

    #[test]
    fn only_the_revoked_partitions_leave_the_awaiting_batch() {
        let revoked = vec![TopicPartition::new("clinical.adt", 1)];
        assert!(is_revoked(&revoked, &message("clinical.adt", 1, 7)));
        assert!(!is_revoked(&revoked, &message("clinical.adt", 2, 7)));
        assert!(!is_revoked(&revoked, &message("clinical.observation", 1, 7)));

        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let _entered = runtime.enter();
        let ends = ConsentEnds::answered(vec![(0, 3)]);
        let mut awaiting = Some(AwaitingConsent {
            messages: vec![message("clinical.adt", 1, 7), message("clinical.adt", 2, 8), message("clinical.adt", 1, 9)],
            ends,
        });
        forget_revoked(&mut awaiting, &[]);
        assert_eq!(awaiting.as_ref().unwrap().messages.len(), 3, "nothing revoked, nothing dropped");
        forget_revoked(&mut awaiting, &revoked);
        let left: Vec<(i32, i64)> =
            awaiting.as_ref().unwrap().messages.iter().map(|m| (m.partition(), m.offset())).collect();
        assert_eq!(left, [(2, 8)]);
        assert_eq!(runtime.block_on(answer_for(&mut awaiting)).unwrap(), [(0, 3)]);
        let mut nothing_awaits = None;
        forget_revoked(&mut nothing_awaits, &revoked);
        assert!(nothing_awaits.is_none());
    }
}
