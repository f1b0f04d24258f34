//! Stopping cleanly: SIGINT or SIGTERM asks every org to stop after its current file; a second
//! signal ends the process at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// A stop request shared by every org: the flag the library's `run_pass` checks between files,
/// and a channel that wakes the waits between passes.
#[derive(Debug, Clone)]
pub struct Stop {
    flag: Arc<AtomicBool>,
    wake: watch::Sender<bool>,
}

impl Stop {
    pub fn new() -> Self {
        Stop {
            flag: Arc::new(AtomicBool::new(false)),
            wake: watch::Sender::new(false),
        }
    }

    pub fn request(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.wake.send_replace(true);
    }

    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// What `Collector::run_pass` watches.
    pub fn flag(&self) -> &AtomicBool {
        &self.flag
    }

    /// Returns once a stop is requested.
    pub async fn wait(&self) {
        let mut rx = self.wake.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|stopped| *stopped).await;
    }

    /// Sleeps `duration`; `true` when a stop request ended the sleep early.
    pub async fn sleep(&self, duration: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => self.requested(),
            () = self.wait() => true,
        }
    }
}

/// Listens for SIGINT and SIGTERM: the first requests `stop`, the second exits with 128 + its
/// number. Quitting mid-file is safe: the next run cuts the output back to the checkpoint.
pub fn install(stop: Stop) -> std::io::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        let (name, _) = next(&mut interrupt, &mut terminate).await;
        tracing::warn!(
            signal = name,
            "stopping after the current file of each org, with checkpoints consistent (send the signal again to quit at once)"
        );
        stop.request();
        let (name, number) = next(&mut interrupt, &mut terminate).await;
        tracing::warn!(
            signal = name,
            "quitting at once; the next run discards unconfirmed rows from the outputs"
        );
        std::process::exit(128 + number);
    });
    Ok(())
}

async fn next(
    interrupt: &mut tokio::signal::unix::Signal,
    terminate: &mut tokio::signal::unix::Signal,
) -> (&'static str, i32) {
    tokio::select! {
        _ = interrupt.recv() => ("SIGINT", 2),
        _ = terminate.recv() => ("SIGTERM", 15),
    }
}
