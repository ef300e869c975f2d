//! Progress output for long work: a bar on a terminal, otherwise a plain line on stderr every
//! few seconds, so logs of unattended runs still show that work moves.

use std::{
    cell::Cell,
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain progress line is printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// Reports the progress of one piece of work measured in bytes, with a count of items.
pub struct Reporter {
    /// What is counted, e.g. `lines`.
    items: &'static str,
    /// The bar, on a terminal.
    bar: Option<ProgressBar>,
    /// When the last plain line was printed.
    last_plain: Cell<Instant>,
}

impl Reporter {
    /// A reporter drawing a bar when `terminal` is true.
    pub fn new(items: &'static str, terminal: bool) -> Self {
        let bar = terminal.then(|| {
            let style = ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ({eta} left)")
                .expect("a valid template");
            ProgressBar::new(0).with_style(style)
        });
        Reporter { items, bar, last_plain: Cell::new(Instant::now()) }
    }

    /// `done` of `total` bytes, `items` items.
    pub fn update(&self, done: u64, total: u64, items: u64) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(total);
                bar.set_position(done);
                bar.set_message(format!("{items} {}", self.items));
            }
            None if self.last_plain.get().elapsed() >= PLAIN_EVERY => {
                self.last_plain.set(Instant::now());
                let percent = if total == 0 { 100.0 } else { done as f64 * 100.0 / total as f64 };
                eprintln!("progress: {items} {} ({percent:.1}% of {total} bytes)", self.items);
            }
            None => {}
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
