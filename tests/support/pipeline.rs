//! A broker with sluice's topics, a key file and a lake, and `sluice land` processes run against
//! them: what the process-level tests share.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use rdkafka::{
    ClientConfig, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
};
use sluice::{provision, topics::Topics};
use sluice_consumers::pseudonymise::PurposeKey;
use sluice_producers::{EventPublisher, PublisherConfig, SyntheticSource};
use sluice_schemas::Catalogue;

use super::{high_watermarks, landed_ids, tansu::Tansu};

/// Everything the process-level tests share: a broker with the topics, a key file, a lake.
pub struct Pipeline {
    pub broker: Tansu,
    pub topics: Topics,
    pub dir: tempfile::TempDir,
}

impl Pipeline {
    pub async fn start() -> Pipeline {
        let broker = Tansu::start();
        let topics = Topics::embedded();
        provision::apply(&broker.client(), &topics).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        sluice::keys::write_new_file(&dir.path().join("keys.toml"), &["research".to_owned()]).unwrap();
        Pipeline { broker, topics, dir }
    }

    pub fn lake(&self) -> std::path::PathBuf {
        self.dir.path().join("lake")
    }

    /// The research key the landers use (from the pipeline's key file).
    pub fn research_key(&self) -> PurposeKey {
        sluice::keys::load(&self.dir.path().join("keys.toml"), &["research".to_owned()])
            .unwrap()
            .remove("research")
            .unwrap()
    }

    /// The event pseudonyms the research purpose must receive from the first `count` events.
    pub fn permitted(&self, source: &SyntheticSource, count: usize) -> std::collections::HashSet<String> {
        permitted(source, &self.research_key(), count)
    }

    /// Publishes `source`'s consent changes and clinical events (the part from `skip` on).
    pub async fn publish(&self, source: &SyntheticSource, skip: usize, take: usize) {
        let publisher = EventPublisher::new(
            &self.broker.client(),
            Catalogue::embedded(),
            self.topics.by_subject(),
            PublisherConfig::default(),
        )
        .unwrap();
        if skip == 0 {
            publisher.publish_all(source.consent_events(), |_| {}).await.unwrap();
        }
        publisher.publish_all(source.clinical_events().skip(skip).take(take), |_| {}).await.unwrap();
    }

    /// Starts a `sluice land` process in group `group`; its log goes to `<dir>/<name>.log`.
    pub fn lander(&self, group: &str, name: &str) -> Child {
        self.lander_with(group, name, &[])
    }

    /// Starts a `sluice land` process with extra arguments.
    pub fn lander_with(&self, group: &str, name: &str, extra: &[&str]) -> Child {
        let lake = self.lake().display().to_string();
        let mut args = vec!["--lake", &lake];
        args.extend_from_slice(extra);
        self.lander_command(group, name, &args).spawn().unwrap()
    }

    /// The command of a `sluice land` process writing its log to `<dir>/<name>.log`; `args`
    /// must say where the lake is.
    pub fn lander_command(&self, group: &str, name: &str, args: &[&str]) -> Command {
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).unwrap();
        let mut command = super::sluice();
        command
            .args(["land", "--purpose", "research", "--group-id", group, "--idle-flush-secs", "1"])
            .args(["--max-buffered-rows", "700", "--brokers", &self.broker.bootstrap()])
            .args(args)
            .env("SLUICE_KEYS_FILE", self.dir.path().join("keys.toml"))
            // The lander's own default filter, as an operator gets it.
            .env_remove("SLUICE_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        command
    }

    /// A lander's log so far.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// The last `lines` lines of every lander's log, for a failure to show what the landers were
    /// doing (the logs never hold a patient identifier).
    pub fn log_tails(&self, lines: usize) -> String {
        let mut logs: Vec<_> = std::fs::read_dir(self.dir.path())
            .map(|entries| {
                entries.flatten().map(|e| e.path()).filter(|p| p.extension() == Some("log".as_ref())).collect()
            })
            .unwrap_or_default();
        logs.sort();
        logs.iter()
            .map(|path| {
                let text = strip_ansi(&std::fs::read_to_string(path).unwrap_or_default());
                let tail: Vec<&str> = text.lines().rev().take(lines).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- {} (last {lines} lines)\n{}", path.display(), tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until a lander's log shows `text` (ANSI colours removed).
    pub fn wait_for_log(&self, name: &str, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !strip_ansi(&self.log(name)).contains(text) {
            assert!(Instant::now() < deadline, "{name} never logged `{text}`:\n{}", self.log(name));
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the group has committed every clinical partition up to its current end.
    pub fn wait_until_committed(&self, group: &str, timeout: Duration) {
        let client = self.broker.client();
        let targets = high_watermarks(&client, &self.topics.clinical());
        let deadline = Instant::now() + timeout;
        loop {
            let committed = group_committed(&client, group, &targets);
            if targets.iter().all(|(key, end)| committed.get(key).copied().unwrap_or(0) >= *end) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "group {group} did not catch up: {} of {} committed\nbehind: {:?}\n{}",
                committed.values().sum::<i64>(),
                targets.values().sum::<i64>(),
                targets
                    .iter()
                    .filter(|(key, end)| committed.get(*key).copied().unwrap_or(0) < **end)
                    .map(|(key, end)| (key, committed.get(key).copied().unwrap_or(0), *end))
                    .collect::<Vec<_>>(),
                self.log_tails(30)
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Sends SIGTERM and returns the process's summary output; it must exit 0.
pub fn stop(mut lander: Child) -> String {
    let pid = lander.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while lander.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "lander did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = lander.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "lander failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// Clinical events a stopped lander reports having consumed (and committed).
pub fn consumed(summary: &str) -> u64 {
    summary.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no count in {summary}"))
}

pub fn group_committed(
    client: &ClientConfig,
    group: &str,
    targets: &BTreeMap<(String, i32), i64>,
) -> HashMap<(String, i32), i64> {
    let consumer: BaseConsumer = client.clone().set("group.id", group).create().unwrap();
    let mut list = TopicPartitionList::new();
    for (topic, partition) in targets.keys() {
        list.add_partition(topic, *partition);
    }
    let Ok(committed) = consumer.committed_offsets(list, Duration::from_secs(10)) else { return HashMap::new() };
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(n) => Some(((e.topic().to_owned(), e.partition()), n)),
            _ => None,
        })
        .collect()
}

/// The event pseudonyms the research purpose must receive from the first `count` events,
/// under `key`.
pub fn permitted(source: &SyntheticSource, key: &PurposeKey, count: usize) -> std::collections::HashSet<String> {
    source
        .clinical_events()
        .take(count)
        .filter(|e| {
            let patient = source.patient(e.truth.patient);
            e.truth.nhs_number_sent && !patient.national_opt_out && !(patient.type1_opt_out && e.truth.gp_sourced)
        })
        .map(|e| super::event_pseudonym(key, &e.truth.event_id))
        .collect()
}

pub fn assert_exactly(lake: &Path, expected: &std::collections::HashSet<String>) {
    let landed = landed_ids(lake);
    assert!(landed.values().all(|n| *n == 1), "an event landed twice");
    let landed: std::collections::HashSet<String> = landed.into_keys().collect();
    assert_eq!(landed.len(), expected.len(), "landed {} of {} permitted events", landed.len(), expected.len());
    assert_eq!(&landed, expected);
}
