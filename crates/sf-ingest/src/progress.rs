//! Progress: a bar per org on a terminal, log lines otherwise.

use std::io::Write as _;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use salesforce_jwt::collect::{PassSummary, Progress};

use crate::metrics::OrgMetrics;

/// How often a log line reports a pass in progress at info level (every file is at debug).
const LINE_EVERY: Duration = Duration::from_secs(30);

/// Bars (a person watching a terminal) or lines (a journal, a log shipper, a test).
#[derive(Debug, Clone)]
pub enum Display {
    Bars(MultiProgress),
    Lines,
}

impl Display {
    pub fn bars() -> Self {
        Display::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
    }

    /// The progress of one org (task), reported to `metrics` too.
    pub fn org(&self, name: &str, metrics: OrgMetrics) -> OrgProgress {
        let bar = match self {
            Display::Bars(multi) => {
                let bar = multi.add(ProgressBar::new(0));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>16} [{bar:30}] {pos}/{len} files  {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_prefix(name.to_string());
                Some(bar)
            }
            Display::Lines => None,
        };
        OrgProgress {
            name: name.to_string(),
            bar,
            files_done: 0,
            last_line: Instant::now(),
            metrics,
        }
    }
}

/// One org's progress display; the collector calls [`update`](Self::update) as work advances.
#[derive(Debug)]
pub struct OrgProgress {
    name: String,
    bar: Option<ProgressBar>,
    files_done: usize,
    last_line: Instant,
    metrics: OrgMetrics,
}

impl OrgProgress {
    pub fn update(&mut self, p: &Progress) {
        self.metrics.working_on(p.current.as_deref());
        if let Some(bar) = &self.bar {
            // EventLogFiles when the pass has any; otherwise the sources (objects only).
            let (done, total) = if p.files_total > 0 {
                (p.files_done, p.files_total)
            } else {
                (p.sources_done, p.sources_total)
            };
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            bar.set_message(format!(
                "{} rows  {:.1} MB/s",
                p.rows,
                p.megabytes_per_second()
            ));
            return;
        }
        let file_done = p.files_done != self.files_done;
        self.files_done = p.files_done;
        if p.files_done == 0 && p.rows == 0 {
            tracing::info!(org = %self.name, files_total = p.files_total, "pass started");
        } else if self.last_line.elapsed() >= LINE_EVERY {
            self.last_line = Instant::now();
            tracing::info!(org = %self.name, files_done = p.files_done, files_total = p.files_total, rows = p.rows, "progress");
        } else if file_done {
            tracing::debug!(org = %self.name, files_done = p.files_done, files_total = p.files_total, rows = p.rows, "progress");
        }
    }

    /// The end of a pass: its figures, and every file given up on. `already_present` (for
    /// `--out postgres://`): rows of the pass that salesforce_events held already, counted as
    /// delivered.
    pub fn pass_done(
        &mut self,
        all: &PassSummary,
        rows_delivered_in_all: u64,
        already_present: Option<u64>,
    ) {
        self.files_done = 0;
        if !all.stopped {
            self.metrics.succeeded(time::OffsetDateTime::now_utc());
        }
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "{} rows, {} in all",
                all.rows, rows_delivered_in_all
            ));
        }
        for o in &all.objects {
            tracing::info!(org = %self.name, object = %o.object, rows = o.rows, batches = o.batches, duplicates_dropped = o.duplicates_dropped, storage_warning = o.storage_warning, "object done");
        }
        for (file, error) in &all.skipped {
            tracing::error!(org = %self.name, id = %file.id, event_type = %file.event_type, log_date = %file.log_date, error = %error, "SKIPPED EventLogFile");
        }
        // Two decimals are all a person or a dashboard needs.
        let round = |x: f64| (x * 100.0).round() / 100.0;
        tracing::info!(
            org = %self.name,
            files = all.files,
            rows = all.event_log_file_rows(),
            megabytes = round(all.bytes as f64 / 1e6),
            seconds = round(all.elapsed.as_secs_f64()),
            stopped = all.stopped,
            rows_delivered_in_all,
            already_present,
            "pass done"
        );
    }

    /// This org task's metrics.
    pub fn metrics(&self) -> &OrgMetrics {
        &self.metrics
    }

    /// A short state (a lease claimed, held elsewhere, lost) on the bar; the log has the
    /// details.
    pub fn note(&self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(text.to_string());
        }
    }

    /// Marks the bar as failed (the error itself is logged by the caller).
    pub fn failed(&self) {
        if let Some(bar) = &self.bar {
            bar.set_message("FAILED, see the log".to_string());
        }
    }
}

/// Log lines written between bar redraws, so that bars and lines do not garble each other.
#[derive(Clone)]
pub struct BarsWriter(pub MultiProgress);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BarsWriter {
    type Writer = SuspendedLine;

    fn make_writer(&'a self) -> SuspendedLine {
        SuspendedLine {
            multi: self.0.clone(),
            buf: Vec::new(),
        }
    }
}

/// One log event, written out when dropped.
pub struct SuspendedLine {
    multi: MultiProgress,
    buf: Vec<u8>,
}

impl std::io::Write for SuspendedLine {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for SuspendedLine {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        self.multi.suspend(|| {
            let _ = std::io::stderr().write_all(&buf);
        });
    }
}
