//! What a [`Collector`](super::Collector) is told (its options) and what it tells (progress
//! and pass summaries).

use std::time::Duration;

use crate::error::Error;
use crate::event_log::model::EventLogFile;
use crate::realtime::ObjectPassSummary;

/// Tuning for a [`Collector`](super::Collector).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectorOptions {
    /// How far before the cursor each pass looks again for files that became visible late
    /// (default 3 days: Salesforce creates files up to three days after the events).
    pub lookback: Duration,
    /// How far back the first run starts, by `LogDate` (default 1 day).
    pub since: Duration,
    /// Files downloaded at once (default 4).
    pub concurrency: usize,
    /// Attempts per file when its download fails in a retryable way (default 8, so a burst of
    /// seven failures of one file in a row, each cut off or refused with 503, is ridden out).
    /// Between attempts the collector waits the `Retry-After` the error carried, else a
    /// full-jitter exponential backoff from the client's
    /// [`RetryPolicy`](crate::RetryPolicy) (`initial_backoff` doubling up to `max_backoff`). An
    /// error no retry can fix ends the attempts at once.
    pub max_file_attempts: u32,
    /// What to do with a file that cannot be collected for reasons of its own (a malformed
    /// row, a body that stays shorter than `LogFileLength`, a file that is gone): `false` (the
    /// default) stops the pass with the error, so nothing is lost without a person deciding;
    /// `true` records it in [`Checkpoint::skipped`](crate::event_log::Checkpoint::skipped),
    /// logs an error, and goes on, so one bad file does not block every later one. Failures
    /// that are not about one file (the network, the API limit, authentication) always stop
    /// the pass.
    pub skip_failed_files: bool,
}

impl Default for CollectorOptions {
    fn default() -> Self {
        CollectorOptions {
            lookback: Duration::from_secs(3 * 24 * 3600),
            since: Duration::from_secs(24 * 3600),
            concurrency: 4,
            max_file_attempts: 8,
            skip_failed_files: false,
        }
    }
}

/// Progress of a pass, reported after every file and every 1024 rows within a file; for
/// real-time objects, at each object's start and after every committed window or batch, with
/// `files_done`/`files_total` counting objects, `current` naming the object and `bytes` 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Files completed in this pass.
    pub files_done: usize,
    /// Files this pass will collect.
    pub files_total: usize,
    /// Rows delivered in this pass (rows of a file that failed and was retried are counted
    /// again).
    pub rows: u64,
    /// CSV bytes of completed files.
    pub bytes: u64,
    /// Time since the pass started.
    pub elapsed: Duration,
    /// The file being collected.
    pub current: Option<String>,
}

impl Progress {
    /// Throughput of completed files, in MB/s of CSV.
    pub fn megabytes_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.bytes as f64 / 1e6 / secs
        } else {
            0.0
        }
    }
}

/// What a pass did.
#[derive(Debug, Clone)]
pub struct PassSummary {
    /// Files delivered.
    pub files: usize,
    /// Files given up on (only with [`CollectorOptions::skip_failed_files`]), with why.
    pub skipped: Vec<(EventLogFile, Error)>,
    /// Rows delivered.
    pub rows: u64,
    /// CSV bytes delivered.
    pub bytes: u64,
    /// Whether the pass stopped early because it was asked to.
    pub stopped: bool,
    /// How long it took.
    pub elapsed: Duration,
}

/// What a [`Collector::run_sources_pass`](super::Collector::run_sources_pass) did.
#[derive(Debug, Clone)]
pub struct SourcesPassSummary {
    /// EventLogFile's part (all zero when EventLogFile is not collected).
    pub event_log_file: PassSummary,
    /// The real-time objects' part.
    pub objects: ObjectPassSummary,
    /// The [`Error::ApiBudgetReached`](crate::Error::ApiBudgetReached) that stopped the pass,
    /// when the org's API usage reached the client's budget: the pass ended cleanly (what was
    /// committed is recorded) and [`stopped`](Self::stopped) is true.
    pub budget_reached: Option<crate::Error>,
}

impl SourcesPassSummary {
    /// Rows delivered from every source.
    pub fn rows(&self) -> u64 {
        self.event_log_file.rows + self.objects.rows()
    }

    /// Whether the pass stopped early because it was asked to, or because the API budget was
    /// reached ([`budget_reached`](Self::budget_reached)).
    pub fn stopped(&self) -> bool {
        self.event_log_file.stopped || self.objects.stopped
    }

    /// A pass that the API budget stopped before EventLogFile's part ended.
    pub(crate) fn stopped_by_budget(error: crate::Error) -> Self {
        SourcesPassSummary {
            event_log_file: PassSummary {
                files: 0,
                skipped: Vec::new(),
                rows: 0,
                bytes: 0,
                stopped: true,
                elapsed: Duration::ZERO,
            },
            objects: ObjectPassSummary {
                stopped: true,
                ..ObjectPassSummary::default()
            },
            budget_reached: Some(error),
        }
    }
}
