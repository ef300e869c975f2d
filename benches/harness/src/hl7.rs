//! The HL7 v2 producer rate: sluice's MLLP listener, in this process, publishing into topics of
//! its own (`bench-mllp.*`, so the landing measurements are not disturbed), and interface-engine
//! senders on several connections. Each sender sends one message, waits for its ACK and only
//! then sends the next, as interface engines do; an `AA` means Kafka stored the message's events.

use std::{net::SocketAddr, path::Path, time::Instant};

use rdkafka::ClientConfig;
use sluice_producers::{PublisherConfig, hl7::listener::MllpListenerConfig};
use sluice_schemas::NhsNumber;
use sluice_testkit::mllp::MllpSender;
use tokio::sync::watch;

use super::{Measurement, PROGRESS_EVERY};
use sluice::topics::Topics;

/// A realistic admission (ADT^A01) as a PAS sends it; each message gets its own control id
/// (MSH-10) and patient. Synthetic: the names, address and numbers are made up.
const ADMISSION: &str = include_str!("../../../producers/tests/fixtures/hl7/adt_a01_admit.hl7");
/// The control id and NHS number of the fixture, replaced in every message.
const FIXTURE_CONTROL_ID: &str = "PAS0000101";
const FIXTURE_NHS_NUMBER: &str = "9990000018";

/// Sends `messages` admissions over `connections` MLLP connections to a listener in this process
/// and measures from the first send to the last ACK. Returns the messages and their framed bytes.
pub async fn send_over_mllp(
    client: &ClientConfig,
    work_dir: &Path,
    messages: u64,
    connections: usize,
) -> Result<(Measurement, usize), String> {
    let mut topics = Topics::embedded();
    for topic in &mut topics.topic {
        topic.name = format!("bench-mllp.{}", topic.name);
    }
    sluice::provision::apply(client, &topics).await?;
    let config = MllpListenerConfig { state_dir: Some(work_dir.join("mllp-state")), ..MllpListenerConfig::default() };
    let address: SocketAddr = "127.0.0.1:0".parse().expect("a valid address");
    let listener = sluice::services::bind_hl7(client, &topics, address, config, PublisherConfig::default()).await?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, shutdown) = watch::channel(false);
    let serving = tokio::spawn(sluice::services::serve_hl7(listener, shutdown));

    let connections = connections.max(1);
    let started = Instant::now();
    let senders: Vec<_> = (0..connections)
        .map(|sender| {
            let share = messages / connections as u64 + u64::from((sender as u64) < messages % connections as u64);
            tokio::spawn(send(address, sender, share))
        })
        .collect();
    let mut bytes = 0;
    for sender in senders {
        bytes += sender.await.map_err(|e| format!("an MLLP sender panicked: {e}"))??;
    }
    let elapsed = started.elapsed();
    let _ = stop.send(true);
    let counts = serving.await.map_err(|e| format!("the MLLP listener panicked: {e}"))??;
    let [_, accepted, ..] = counts.snapshot();
    if accepted != messages {
        return Err(format!("{messages} HL7 messages were sent but the listener stored {accepted}"));
    }
    Ok((Measurement { events: messages, bytes, elapsed }, connections))
}

/// One interface engine: `count` admissions, one at a time, each acknowledged `AA` before the
/// next. Returns the framed bytes sent.
async fn send(address: SocketAddr, sender: usize, count: u64) -> Result<u64, String> {
    let mut engine = MllpSender::connect(address).await.map_err(|e| format!("cannot connect to {address}: {e}"))?;
    let mut bytes = 0;
    let mut last_progress = Instant::now();
    for n in 0..count {
        let control_id = format!("BENCH{sender:03}{n:09}");
        let message = admission(&control_id, sender as u64 * 1_000_000_000 + n);
        let (ack, framed) = engine.send(message.as_bytes()).await.map_err(|e| format!("MLLP: {e}"))?;
        bytes += framed as u64;
        if ack.get("MSA-1").as_deref() != Some("AA") {
            return Err(format!("message {control_id} was not accepted: {:?}", ack.get("MSA-1")));
        }
        if sender == 0 && last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            eprintln!("bench:   sender 0: {n} of {count} messages acknowledged");
        }
    }
    Ok(bytes)
}

/// The fixture admission with segments ended by carriage returns, its own control id and the
/// `n`-th valid synthetic NHS number.
fn admission(control_id: &str, n: u64) -> String {
    ADMISSION.replace('\n', "\r").replacen(FIXTURE_CONTROL_ID, control_id, 1).replacen(
        FIXTURE_NHS_NUMBER,
        &nhs_number(n).digits(),
        1,
    )
}

/// A valid NHS number (Modulus 11) in the 999 range, different for each `n` below 10^8.
fn nhs_number(n: u64) -> NhsNumber {
    (0..)
        .map(|step: u64| 999_000_000 + (n * 7 + step) % 1_000_000)
        .find_map(NhsNumber::from_first_nine_value)
        .expect("one in eleven numbers has no check digit, so one is found within a few steps")
}

#[cfg(test)]
mod tests {
    use sluice_producers::hl7::message::Message;

    use super::*;

    #[test]
    fn each_admission_has_its_own_control_id_and_a_valid_nhs_number() {
        let first = Message::parse(admission("BENCH000000000001", 1).as_bytes()).unwrap();
        let second = Message::parse(admission("BENCH000000000002", 2).as_bytes()).unwrap();
        assert_eq!(first.get("MSH-10").as_deref(), Some("BENCH000000000001"));
        assert_eq!(second.get("MSH-10").as_deref(), Some("BENCH000000000002"));
        let numbers: Vec<String> = [&first, &second].iter().map(|m| m.get("PID-3").unwrap_or_default()).collect();
        assert_ne!(numbers[0], numbers[1]);
        for number in numbers {
            assert!(NhsNumber::parse(&number).is_ok());
        }
    }
}
