//! The two landers measured as processes of their own: `sluice land --until-caught-up` and the
//! Python peer. Each is timed from start to exit, and its peak resident memory (`VmHWM`) is read
//! from `/proc` while it runs.

use std::{
    io::Read as _,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use sluice_consumers::lake::storage::LakeStorage;

use super::{BenchOptions, LanderRun, Measurement, PROGRESS_EVERY, PeakMemory};

/// How often `/proc/<pid>/status` is read. `VmHWM` is the kernel's own high-water mark, so only
/// memory first touched in the last interval before exit can be missed.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// A finished child process.
struct Finished {
    /// Start to exit.
    elapsed: Duration,
    /// Highest `VmHWM` read.
    peak_memory: PeakMemory,
    /// CPU time (user + system) at the last reading before exit.
    cpu: Duration,
    /// Everything it wrote to stdout.
    stdout: String,
}

/// Runs `command` to its end, with stderr to `log`; an exit other than success is an error that
/// quotes the end of the log.
fn run_measured(mut command: Command, what: &str, log: &Path) -> Result<Finished, String> {
    let log_file = std::fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::from(log_file));
    let started = Instant::now();
    let mut child = command.spawn().map_err(|e| format!("cannot start {what}: {e}"))?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let status_path = format!("/proc/{}/status", child.id());
    let stat_path = format!("/proc/{}/stat", child.id());
    let mut peak: Option<u64> = None;
    let mut cpu = Duration::ZERO;
    let mut last_progress = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("{what}: {e}"))? {
            break status;
        }
        if let Some(kb) = std::fs::read_to_string(&status_path).ok().as_deref().and_then(high_water_mark_kb) {
            peak = Some(peak.map_or(kb, |p| p.max(kb)));
        }
        if let Some(time) = std::fs::read_to_string(&stat_path).ok().as_deref().and_then(cpu_time) {
            cpu = cpu.max(time);
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            let memory = peak.map_or_else(String::new, |kb| format!(", peak RSS so far {} MB", kb / 1000));
            eprintln!("bench:   {what} running for {:.0} s{memory}", started.elapsed().as_secs_f64());
        }
        std::thread::sleep(SAMPLE_EVERY);
    };
    let elapsed = started.elapsed();
    let stdout = reader.join().unwrap_or_default();
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!("{what} failed ({status}); the end of {}:\n{}", log.display(), tail.join("\n")));
    }
    Ok(Finished { elapsed, peak_memory: PeakMemory(peak), cpu, stdout })
}

/// Clock ticks per second of the times in `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: u64 = 100;

/// User + system CPU time of a `/proc/<pid>/stat` text (fields 14 and 15, after the command
/// name in parentheses, which may itself hold spaces).
fn cpu_time(stat: &str) -> Option<Duration> {
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// `VmHWM` of a `/proc/<pid>/status` text, in kB.
fn high_water_mark_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `sluice land --until-caught-up` for the research purpose into `<work>/lake-sluice`, and
/// reads what it did from the stop record of its audit log.
pub fn land_with_sluice(
    options: &BenchOptions,
    bootstrap: &str,
    keys_file: &Path,
    message_bytes: u64,
) -> Result<LanderRun, String> {
    let lake = options.work_dir.join("lake-sluice");
    let mut command = Command::new(&options.sluice);
    command
        .args(["land", "--until-caught-up", "--purpose", &options.purpose, "--group-id", "sluice-bench"])
        .arg("--lake")
        .arg(&lake)
        .args(["--brokers", bootstrap])
        .env("SLUICE_KEYS_FILE", keys_file)
        // No telemetry export: the benchmark measures landing, not an OTLP collector.
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    for (key, value) in &options.properties {
        command.arg("-X").arg(format!("{key}={value}"));
    }
    let finished = run_measured(command, "sluice land", &options.work_dir.join("sluice-land.log"))?;
    let stop = last_stop_record(&lake.join("_audit").join("audit.jsonl"))?;
    let count = |value: &serde_json::Value| value.as_u64().unwrap_or(0);
    let sum = |value: &serde_json::Value| value.as_object().map_or(0, |map| map.values().map(count).sum::<u64>());
    let (files, parquet_bytes) = parquet_files(&lake, &options.purpose)?;
    Ok(LanderRun {
        consumed: sum(&stop["consumed"]),
        landed: count(&stop["landed"][&options.purpose]),
        withheld: sum(&stop["withheld"][&options.purpose]),
        dead_lettered: count(&stop["invalid"]),
        files,
        parquet_bytes,
        throughput: Measurement { events: sum(&stop["consumed"]), bytes: message_bytes, elapsed: finished.elapsed },
        peak_memory: finished.peak_memory,
        cpu: finished.cpu,
    })
}

/// The last `stop` record of an audit log; it must say the run caught up, not that it failed.
fn last_stop_record(audit_log: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(audit_log).map_err(|e| format!("cannot read {}: {e}", audit_log.display()))?;
    let stop = text
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find_map(|mut record| (record["event"]["kind"] == "stop").then(|| record["event"].take()))
        .ok_or_else(|| format!("{} has no stop record", audit_log.display()))?;
    if stop["failed"] != false {
        return Err(format!("sluice land stopped with an error: {}", stop["reason"]));
    }
    Ok(stop)
}

/// Number and total size of the landed Parquet files of a purpose in a local lake.
fn parquet_files(lake: &Path, purpose: &str) -> Result<(u64, u64), String> {
    let storage = LakeStorage::local(lake).map_err(|e| e.to_string())?;
    let keys = storage.parquet_files(purpose).map_err(|e| e.to_string())?;
    let mut bytes = 0;
    for key in &keys {
        let path = lake.join(key);
        bytes += std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?.len();
    }
    Ok((keys.len() as u64, bytes))
}

/// Runs the Python peer into `<work>/lake-python` and reads the JSON summary it prints last.
pub fn land_with_python(
    options: &BenchOptions,
    python: &Path,
    script: &Path,
    bootstrap: &str,
    keys_file: &Path,
    message_bytes: u64,
) -> Result<LanderRun, String> {
    let mut command = Command::new(python);
    command
        .arg(script)
        .args(["--brokers", bootstrap, "--purpose", &options.purpose])
        .arg("--lake")
        .arg(options.work_dir.join("lake-python"))
        .arg("--keys-file")
        .arg(keys_file);
    for (key, value) in &options.properties {
        command.arg("-X").arg(format!("{key}={value}"));
    }
    let finished = run_measured(command, "Python peer", &options.work_dir.join("python-peer.log"))?;
    let summary: serde_json::Value = finished
        .stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .ok_or_else(|| "the Python peer printed no JSON summary".to_owned())?;
    let count = |key: &str| summary[key].as_u64().ok_or_else(|| format!("the Python peer's summary has no {key}"));
    let withheld = summary["withheld"].as_object().map_or(0, |map| map.values().filter_map(|n| n.as_u64()).sum());
    Ok(LanderRun {
        consumed: count("consumed")?,
        landed: count("landed")?,
        withheld,
        dead_lettered: count("dead_lettered")?,
        files: count("files")?,
        parquet_bytes: count("bytes_written")?,
        throughput: Measurement { events: count("consumed")?, bytes: message_bytes, elapsed: finished.elapsed },
        peak_memory: finished.peak_memory,
        cpu: finished.cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_water_mark_is_read_from_proc_status() {
        let status = "Name:\tsluice\nVmPeak:\t  900 kB\nVmHWM:\t  123456 kB\nVmRSS:\t 100000 kB\n";
        assert_eq!(high_water_mark_kb(status), Some(123_456));
        assert_eq!(high_water_mark_kb("Name:\tx\n"), None);
        let own = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(high_water_mark_kb(&own).is_some_and(|kb| kb > 0));
    }

    #[test]
    fn cpu_time_is_read_from_proc_stat() {
        let stat = "4242 (sluice land) S 1 4242 4242 0 -1 4194304 500 0 0 0 250 37 0 0 20 0 9 0 100 1000 2000";
        assert_eq!(cpu_time(stat), Some(Duration::from_millis(2_870)));
        assert_eq!(cpu_time("4242 (x) S 1"), None);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(cpu_time(&own).is_some());
    }

    #[test]
    fn a_failed_run_in_the_audit_log_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.jsonl");
        let ok = r#"{"sequence":1,"event":{"kind":"stop","failed":false,"landed":{"research":5}}}"#;
        let failed = r#"{"sequence":2,"event":{"kind":"stop","failed":true,"reason":"disk full"}}"#;
        std::fs::write(&log, format!("{ok}\n")).unwrap();
        assert_eq!(last_stop_record(&log).unwrap()["landed"]["research"], 5);
        std::fs::write(&log, format!("{ok}\n{failed}\n")).unwrap();
        assert!(last_stop_record(&log).unwrap_err().contains("disk full"));
    }
}
