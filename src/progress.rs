//! How long work reports progress and learns that it should stop: on the terminal (a progress bar)
//! or on a job row (flushed to PostgreSQL by the worker, which also relays cancellation).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

/// Implemented by whatever watches the work; methods are cheap and callable from any thread.
pub trait Progress: Send + Sync {
    /// The amount of work in the current phase (images, units, trials).
    fn start_phase(&self, phase: &str, total: u64);
    fn advance(&self, done: u64);
    /// True once somebody asked the work to stop; work checks it between batches and returns
    /// [`Cancelled`] as its error.
    fn cancelled(&self) -> bool;
}

/// The error long work returns when it stopped because it was asked to.
#[derive(Debug, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// Returns `Err(Cancelled)` when the work was asked to stop.
pub fn check(progress: &dyn Progress) -> Result<(), Cancelled> {
    if progress.cancelled() {
        Err(Cancelled)
    } else {
        Ok(())
    }
}

/// A progress bar on standard error (hidden when it is not a terminal); Ctrl-C is the way to stop.
pub struct Terminal {
    bar: Mutex<ProgressBar>,
}

impl Terminal {
    pub fn new() -> Self {
        Self {
            bar: Mutex::new(ProgressBar::hidden()),
        }
    }
}

impl Default for Terminal {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for Terminal {
    fn start_phase(&self, phase: &str, total: u64) {
        let mut bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        bar.finish_and_clear();
        *bar = ProgressBar::new(total).with_message(phase.to_string());
        bar.set_style(
            ProgressStyle::with_template("{msg:>24} [{bar:40}] {pos}/{len} ({per_sec}, {eta})")
                .expect("static template")
                .progress_chars("=> "),
        );
    }

    fn advance(&self, done: u64) {
        self.bar.lock().unwrap_or_else(|e| e.into_inner()).inc(done);
    }

    fn cancelled(&self) -> bool {
        false
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.bar
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .finish_and_clear();
    }
}

/// Counters a job worker flushes to its row; `cancel` is set by the worker when the row says so.
#[derive(Debug, Default)]
pub struct Counters {
    pub phase: Mutex<String>,
    pub done: AtomicU64,
    pub total: AtomicU64,
    pub cancel: AtomicBool,
}

impl Progress for Counters {
    fn start_phase(&self, phase: &str, total: u64) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = phase.to_string();
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }

    fn advance(&self, done: u64) {
        self.done.fetch_add(done, Ordering::Relaxed);
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// For work whose progress nobody watches (tests).
pub struct Silent;

impl Progress for Silent {
    fn start_phase(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn cancelled(&self) -> bool {
        false
    }
}
