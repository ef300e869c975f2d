//! The figures of one `sluice-bench` run, and the table it prints.

use std::{fmt::Write as _, time::Duration};

use sluice::demo::group;

/// Events moved in a stretch of time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measurement {
    /// Events (or messages) moved.
    pub events: u64,
    /// Their bytes: Kafka message values, or for MLLP the framed HL7 messages.
    pub bytes: u64,
    /// Wall-clock time taken.
    pub elapsed: Duration,
}

impl Measurement {
    /// Events per second.
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Megabytes (10^6 bytes) per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Peak resident memory of a process, in kB (`VmHWM`), when it could be read.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeakMemory(pub Option<u64>);

impl PeakMemory {
    /// In MB (10^6 bytes), when known.
    pub fn mb(&self) -> Option<f64> {
        self.0.map(|kb| kb as f64 * 1024.0 / 1e6)
    }
}

/// What one lander (sluice or the Python peer) did with the clinical topics.
#[derive(Debug, Clone, Default)]
pub struct LanderRun {
    /// Clinical messages consumed.
    pub consumed: u64,
    /// Rows landed for the purpose.
    pub landed: u64,
    /// Events withheld for the purpose (opt-outs, no NHS number).
    pub withheld: u64,
    /// Messages that could not be decoded.
    pub dead_lettered: u64,
    /// Parquet files written.
    pub files: u64,
    /// Bytes of Parquet written.
    pub parquet_bytes: u64,
    /// From process start to exit, over the consumed messages' bytes.
    pub throughput: Measurement,
    /// Peak resident memory of the process.
    pub peak_memory: PeakMemory,
    /// CPU time (user + system) the process used.
    pub cpu: Duration,
}

impl LanderRun {
    /// Events consumed per second of CPU: what the lander costs, whatever the broker's speed.
    pub fn events_per_cpu_sec(&self) -> f64 {
        self.consumed as f64 / self.cpu.as_secs_f64().max(1e-9)
    }
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Clinical events loaded.
    pub events: u64,
    /// Synthetic patients.
    pub patients: u32,
    /// The purpose landed.
    pub purpose: String,
    /// Which broker the run used.
    pub broker: String,
    /// Publishing the consent changes.
    pub consent: Measurement,
    /// Publishing the clinical events.
    pub synthetic_producer: Measurement,
    /// The bare librdkafka consumer: the ceiling.
    pub raw: Measurement,
    /// `sluice land`.
    pub sluice: LanderRun,
    /// The Python peer, unless skipped.
    pub peer: Option<LanderRun>,
    /// HL7 v2 over MLLP, unless skipped: messages, their framed bytes, and the connections used.
    pub mllp: Option<(Measurement, usize)>,
}

/// The targets of the performance issue, checked in every run's table.
const LANDING_SHARE_OF_RAW: f64 = 0.70;
const TIMES_PYTHON: f64 = 5.0;
const PEAK_RSS_MB: f64 = 300.0;

impl BenchReport {
    /// sluice's landing rate as a share of the raw consume rate.
    pub fn share_of_raw(&self) -> f64 {
        self.sluice.throughput.events_per_sec() / self.raw.events_per_sec()
    }

    /// How many times the Python peer's rate sluice lands at.
    pub fn times_python(&self) -> Option<f64> {
        self.peer.as_ref().map(|peer| self.sluice.throughput.events_per_sec() / peer.throughput.events_per_sec())
    }

    /// The Markdown tables printed at the end of a run.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nsluice-bench: {} clinical events, {} patients, landing for {}, broker: {}\n",
            group(self.events),
            group(u64::from(self.patients)),
            self.purpose,
            self.broker
        );
        let _ = writeln!(out, "| measurement | events | MB | seconds | events/s | MB/s | ratio |");
        let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: | --- |");
        row(&mut out, "raw consume (librdkafka, no processing)", &self.raw, "ceiling");
        let share = format!("sluice / raw = {:.2}", self.share_of_raw());
        row(&mut out, "sluice land (decode, consent, pseudonymise, Parquet)", &self.sluice.throughput, &share);
        if let (Some(peer), Some(times)) = (&self.peer, self.times_python()) {
            let ratio = format!("sluice / Python = {times:.1}");
            row(&mut out, "Python peer (confluent-kafka, fastavro, pyarrow)", &peer.throughput, &ratio);
        }
        row(&mut out, "producer: synthetic events", &self.synthetic_producer, "");
        row(&mut out, "producer: consent changes", &self.consent, "");
        if let Some((mllp, connections)) = &self.mllp {
            let label = format!("producer: HL7 v2 over MLLP, {connections} connections (MB of HL7)");
            row(&mut out, &label, mllp, "one ACK per message");
        }

        let _ = writeln!(
            out,
            "\n| lander | consumed | landed | withheld | dead-lettered | files | Parquet MB | peak RSS MB | CPU s | events per CPU s |"
        );
        let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        lander_row(&mut out, "sluice", &self.sluice);
        if let Some(peer) = &self.peer {
            lander_row(&mut out, "Python peer", peer);
        }

        let _ = writeln!(out, "\n| target | wanted | measured | met |");
        let _ = writeln!(out, "| --- | --- | --- | --- |");
        let share = self.share_of_raw();
        target(
            &mut out,
            "landing rate / raw consume rate",
            ">= 70%",
            &format!("{:.0}%", share * 100.0),
            share >= LANDING_SHARE_OF_RAW,
        );
        if let Some(times) = self.times_python() {
            target(&mut out, "landing rate / Python peer", ">= 5x", &format!("{times:.1}x"), times >= TIMES_PYTHON);
        }
        if let Some(peer) = &self.peer {
            let times = self.sluice.events_per_cpu_sec() / peer.events_per_cpu_sec();
            let measured = format!("{times:.1}x");
            target(&mut out, "events per CPU second / Python peer", ">= 5x", &measured, times >= TIMES_PYTHON);
        }
        if let Some(mb) = self.sluice.peak_memory.mb() {
            let wanted = format!("< {PEAK_RSS_MB} MB at 1M events");
            target(&mut out, "lander peak RSS", &wanted, &format!("{mb:.0} MB"), mb < PEAK_RSS_MB);
        }
        out
    }
}

fn row(out: &mut String, label: &str, m: &Measurement, ratio: &str) {
    let _ = writeln!(
        out,
        "| {label} | {} | {:.1} | {:.2} | {} | {:.1} | {ratio} |",
        group(m.events),
        m.bytes as f64 / 1e6,
        m.elapsed.as_secs_f64(),
        group(m.events_per_sec().round() as u64),
        m.mb_per_sec()
    );
}

fn lander_row(out: &mut String, label: &str, run: &LanderRun) {
    let memory = run.peak_memory.mb().map_or_else(|| "n/a".to_owned(), |mb| format!("{mb:.0}"));
    let _ = writeln!(
        out,
        "| {label} | {} | {} | {} | {} | {} | {:.1} | {memory} | {:.1} | {} |",
        group(run.consumed),
        group(run.landed),
        group(run.withheld),
        group(run.dead_lettered),
        run.files,
        run.parquet_bytes as f64 / 1e6,
        run.cpu.as_secs_f64(),
        group(run.events_per_cpu_sec().round() as u64)
    );
}

fn target(out: &mut String, what: &str, wanted: &str, measured: &str, met: bool) {
    let _ = writeln!(out, "| {what} | {wanted} | {measured} | {} |", if met { "yes" } else { "NO" });
}
