//! A deadline for test steps that can hang inside a blocking call.
//!
//! An `assert!` on elapsed time cannot fire while the thread that would check it is stuck in
//! librdkafka, and a hung test binary holds CI until its own hard limit. A [`Watchdog`] runs on
//! its own thread: if the step it guards is not done in time, it prints every thread's stack
//! (when `gdb` is installed) and ends the test process, so CI reports a failure and goes on.

use std::{
    io::Write,
    sync::mpsc::{self, RecvTimeoutError},
    time::Duration,
};

/// Ends the process unless dropped within its limit.
pub struct Watchdog {
    /// Dropping it tells the watching thread the step finished.
    _finished: mpsc::Sender<()>,
}

impl Watchdog {
    /// Starts watching `step` (named in the message) for at most `limit`.
    pub fn start(step: &str, limit: Duration) -> Self {
        let (finished, watch) = mpsc::channel::<()>();
        let step = step.to_owned();
        std::thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = watch.recv_timeout(limit) {
                // Written to the process's stderr, not the test harness's captured output,
                // which would be lost with the process.
                let mut stderr = std::io::stderr();
                let _ =
                    writeln!(stderr, "\n{step} did not finish within {} s: stopping this test binary", limit.as_secs());
                print_stacks(&mut stderr);
                std::process::exit(124);
            }
        });
        Watchdog { _finished: finished }
    }
}

/// Prints the stack of every thread of this process through `gdb`, if it is installed.
fn print_stacks(stderr: &mut std::io::Stderr) {
    let printed = std::process::Command::new("gdb")
        .args(["-p", &std::process::id().to_string(), "-batch", "-ex", "thread apply all bt"])
        .stdin(std::process::Stdio::null())
        .status();
    if printed.is_err() {
        let _ = writeln!(stderr, "(gdb is not installed: no stacks)");
    }
}
