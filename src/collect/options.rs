//! What a [`Collector`](super::Collector) is told (its options) and what it tells (progress
//! and pass summaries).

use std::time::Duration;

use crate::collect::ObjectSummary;
use crate::error::Error;
use crate::event_log_file::EventLogFile;

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
    /// `true` records it in [`Checkpoint::skipped`](crate::collect::Checkpoint::skipped),
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

/// Progress of a pass, reported when a source starts, after every delivered unit (an
/// EventLogFile, an object's window or batch) and every 1024 rows within a log file. Its counts
/// mean the same for every source and run over the whole pass.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Progress {
    /// The source being collected: `EventLogFile`, or an object's API name.
    pub source: Option<String>,
    /// Sources finished in this pass.
    pub sources_done: usize,
    /// Sources this pass collects (EventLogFile counts as one).
    pub sources_total: usize,
    /// Units delivered in this pass, every source: EventLogFiles, object windows and batches.
    pub units_done: u64,
    /// EventLogFiles completed (delivered or skipped) in this pass.
    pub files_done: usize,
    /// EventLogFiles this pass will collect (known once their listing returned).
    pub files_total: usize,
    /// Rows delivered in this pass, every source (rows of a file that failed and was retried
    /// are counted again).
    pub rows: u64,
    /// Bytes read from Salesforce for the delivered units: the CSV of log files, the query
    /// pages of objects.
    pub bytes: u64,
    /// Time since the pass started.
    pub elapsed: Duration,
    /// The unit being delivered: the EventLogFile's Id, or the object's API name.
    pub current: Option<String>,
}

impl Progress {
    /// Throughput of delivered units, in MB/s of what was read from Salesforce.
    pub fn megabytes_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.bytes as f64 / 1e6 / secs
        } else {
            0.0
        }
    }
}

/// What a pass did, over every source.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PassSummary {
    /// EventLogFiles delivered.
    pub files: usize,
    /// EventLogFiles given up on (only with [`CollectorOptions::skip_failed_files`]), with why.
    pub skipped: Vec<(EventLogFile, Error)>,
    /// Rows delivered, every source.
    pub rows: u64,
    /// Bytes read from Salesforce for the delivered units: the CSV of log files, the query
    /// pages of objects.
    pub bytes: u64,
    /// What each object delivered, in the order collected.
    pub objects: Vec<ObjectSummary>,
    /// Whether the pass stopped early: asked to, or at the API budget
    /// ([`budget_reached`](Self::budget_reached)).
    pub stopped: bool,
    /// The [`Error::ApiBudgetReached`](crate::Error::ApiBudgetReached) that stopped the pass,
    /// when the org's API usage reached the client's budget: the pass ended cleanly (what was
    /// committed is recorded) and [`stopped`](Self::stopped) is true.
    pub budget_reached: Option<Error>,
    /// How long it took.
    pub elapsed: Duration,
}

impl PassSummary {
    /// Rows delivered from EventLogFile.
    pub fn event_log_file_rows(&self) -> u64 {
        self.rows - self.object_rows()
    }

    /// Rows delivered from objects.
    pub fn object_rows(&self) -> u64 {
        self.objects.iter().map(|o| o.rows).sum()
    }
}
