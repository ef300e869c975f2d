//! The two keys the lander files its work under: a source partition, and the file a row will
//! be written to.

use std::fmt;

/// A source partition: a clinical topic and one of its partitions. Offsets are committed, files
/// rolled and revocations applied per source partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct TopicPartition {
    /// The topic.
    pub(crate) topic: String,
    /// The partition.
    pub(crate) partition: i32,
}

impl TopicPartition {
    /// The partition `partition` of `topic`.
    pub(crate) fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition { topic: topic.into(), partition }
    }

    /// The partition a Kafka message was read from.
    pub(crate) fn of(message: &impl rdkafka::Message) -> Self {
        TopicPartition::new(message.topic(), message.partition())
    }

    /// The partition as a `(topic, partition)` pair.
    pub(crate) fn key(&self) -> (String, i32) {
        (self.topic.clone(), self.partition)
    }

    /// Whether `message` was read from this partition.
    pub(crate) fn holds(&self, message: &impl rdkafka::Message) -> bool {
        self.partition == message.partition() && self.topic == message.topic()
    }
}

impl From<(String, i32)> for TopicPartition {
    fn from((topic, partition): (String, i32)) -> Self {
        TopicPartition { topic, partition }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// Which file a row goes to: one per purpose, source partition and landed event period. Files
/// are written in this key's order (purpose, then source partition, then period).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PendingFileKey {
    /// Index of the purpose in the lander's configuration.
    pub(crate) purpose: usize,
    /// The source partition the rows were read from.
    pub(crate) source: TopicPartition,
    /// The UTC day or month of the events as landed (days or months since 1970-01-01, as the
    /// purpose's policy partitions); `None` when the policy lands no event time.
    pub(crate) period: Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_files_order_by_purpose_then_partition_then_period() {
        let key = |purpose, topic: &str, partition, period| PendingFileKey {
            purpose,
            source: TopicPartition::new(topic, partition),
            period,
        };
        let mut keys = [
            key(1, "clinical.adt", 0, Some(3)),
            key(0, "clinical.observation", 0, None),
            key(0, "clinical.adt", 2, Some(1)),
            key(0, "clinical.adt", 2, None),
            key(0, "clinical.adt", 10, Some(0)),
        ];
        keys.sort();
        let order: Vec<String> = keys.iter().map(|k| format!("{} {} {:?}", k.purpose, k.source, k.period)).collect();
        assert_eq!(
            order,
            [
                "0 clinical.adt/2 None",
                "0 clinical.adt/2 Some(1)",
                "0 clinical.adt/10 Some(0)",
                "0 clinical.observation/0 None",
                "1 clinical.adt/0 Some(3)"
            ]
        );
    }
}
