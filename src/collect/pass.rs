//! The steps every unit of every source goes through once its rows are committed: the
//! checkpoint saves the source's new position with the sink's, the figures and the progress
//! move, and a stop request is seen before the next unit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use time::OffsetDateTime;

use crate::client::JwtBearerClient;
use crate::collect::checkpoint::{Checkpoint, CheckpointStore};
use crate::collect::figures::DeliveryFigures;
use crate::collect::options::{PassSummary, Progress};
use crate::collect::sink::SaveListener;
use crate::error::Error;

/// One pass of a [`Collector`](crate::collect::Collector): what every source's walk borrows.
pub(crate) struct Pass<'p, S: ?Sized> {
    pub(crate) client: &'p JwtBearerClient,
    pub(crate) store: &'p mut S,
    pub(crate) checkpoint: &'p mut Checkpoint,
    pub(crate) figures: &'p DeliveryFigures,
    pub(crate) report: Progress,
    pub(crate) summary: PassSummary,
    /// The org's time when the first object source began: every object's windows end there.
    org_time: Option<OffsetDateTime>,
    started: Instant,
    progress: &'p mut (dyn FnMut(&Progress) + Send),
    stop: &'p AtomicBool,
    /// The sink's ([`Sink::save_listener`](crate::collect::Sink::save_listener)), told the
    /// sink position after every save.
    pub(crate) listener: Option<SaveListener>,
}

/// A committed unit, as the checkpoint and the figures count it.
pub(crate) struct Delivered<'a> {
    /// The figures' source: `EventLogFile`, or the object's API name.
    pub(crate) source: &'a str,
    /// EventLogFiles delivered (1 for a log file, 0 for an object's unit).
    pub(crate) files: u64,
    pub(crate) rows: u64,
    /// Bytes read from Salesforce for the unit.
    pub(crate) bytes: u64,
    /// The newest event the unit can hold.
    pub(crate) newest: Option<OffsetDateTime>,
}

impl<'p, S: CheckpointStore + ?Sized> Pass<'p, S> {
    pub(crate) fn new(
        client: &'p JwtBearerClient,
        store: &'p mut S,
        checkpoint: &'p mut Checkpoint,
        figures: &'p DeliveryFigures,
        progress: &'p mut (dyn FnMut(&Progress) + Send),
        stop: &'p AtomicBool,
        sources_total: usize,
    ) -> Self {
        Pass {
            client,
            store,
            checkpoint,
            figures,
            report: Progress {
                sources_total,
                ..Progress::default()
            },
            summary: PassSummary::default(),
            org_time: None,
            started: Instant::now(),
            progress,
            stop,
            listener: None,
        }
    }

    /// Saves the checkpoint as `update` leaves it, with the sink's committed `position` (when
    /// the sink has positions) and what `delivered` adds to the running totals: the one way a
    /// source's position moves. The in-memory checkpoint changes only once the save succeeded,
    /// so a failed save leaves the unit to be delivered again.
    pub(crate) fn save(
        &mut self,
        position: Option<u64>,
        delivered: Option<&Delivered<'_>>,
        update: impl FnOnce(&mut Checkpoint) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut next = self.checkpoint.clone();
        update(&mut next)?;
        if position.is_some() {
            next.sink_position = position;
        }
        if let Some(d) = delivered {
            next.files_delivered += d.files;
            next.rows_delivered += d.rows;
        }
        if next != *self.checkpoint {
            // Inline on the runtime thread: the store is borrowed, so it cannot move to a
            // blocking thread, and a save is one small write and an fsync. Downloads ahead keep
            // buffering meanwhile (bounded), and this works on any runtime flavour.
            self.store.save(&next)?;
            *self.checkpoint = next;
        }
        // After the save, never before: a sink that appends on this word must find its rows
        // recorded, or a crash between the two would deliver them twice. Its error ends the
        // pass with the unit recorded: such a sink finishes the work when it is opened again.
        if let (Some(listener), Some(position)) = (&self.listener, self.checkpoint.sink_position) {
            listener.saved(position)?;
        }
        Ok(())
    }

    /// The org's time, one for every object of the pass (fixed when the first asks), so that
    /// all windows end at the same instant of Salesforce's clock, never at ours. A token
    /// request gives the clock's offset when none was seen yet; a skew past half the source's
    /// `overlap` is warned about (`what` names that half).
    pub(crate) async fn org_now(
        &mut self,
        overlap: std::time::Duration,
        what: &str,
    ) -> Result<OffsetDateTime, Error> {
        if let Some(now) = self.org_time {
            return Ok(now);
        }
        if self.client.org_clock_offset().is_none() {
            self.client.access_token().await?;
        }
        // Past half the overlap, the rows a skew-blind window would lose or hold back are no
        // longer a rounding matter: say so, once per crossing.
        self.client.check_org_clock(overlap / 2, what);
        let now = self.client.org_now();
        self.org_time = Some(now);
        Ok(now)
    }

    /// Counts a committed unit with rows: the figures, the units and the bytes.
    pub(crate) fn count(&mut self, unit: Delivered<'_>) {
        self.figures
            .delivered(unit.source, unit.rows, unit.bytes, unit.newest);
        self.report.units_done += 1;
        self.report.bytes += unit.bytes;
        self.summary.bytes += unit.bytes;
    }

    /// [`count`](Self::count), then the progress report.
    pub(crate) fn delivered(&mut self, unit: Delivered<'_>) {
        self.count(unit);
        self.report();
    }

    /// Calls the progress callback with the report as it stands.
    pub(crate) fn report(&mut self) {
        self.report.elapsed = self.started.elapsed();
        (self.progress)(&self.report);
    }

    /// Whether the caller asked the pass to stop; a source checks it between units.
    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// A source starts; the source reports when it has something to say (EventLogFile once
    /// its files are listed, an object at once).
    pub(crate) fn source_started(&mut self, name: &str) {
        self.report.source = Some(name.to_string());
        self.report.current = None;
    }

    /// The source started last is done.
    pub(crate) fn source_done(&mut self) {
        self.report.sources_done += 1;
        self.report.current = None;
        self.report();
    }

    /// Counts `rows` more rows of the current unit (`count` so far), reporting progress every
    /// [`PROGRESS_EVERY_ROWS`].
    pub(crate) fn rows_written(&mut self, count: &mut u64, rows: u64) {
        let before = *count;
        *count += rows;
        self.report.rows += rows;
        if before / PROGRESS_EVERY_ROWS != *count / PROGRESS_EVERY_ROWS {
            self.report();
        }
    }

    /// The summary, with the rows and time of the report.
    pub(crate) fn finish(mut self) -> PassSummary {
        self.summary.rows = self.report.rows;
        self.summary.elapsed = self.started.elapsed();
        self.summary
    }
}

/// Rows between progress reports inside a unit: often enough for a live display, rare enough
/// to cost nothing next to the rows themselves.
const PROGRESS_EVERY_ROWS: u64 = 1024;
