//! The object sources' walks: `EventDate` windows for big objects, a `(CreatedDate, Id)`
//! keyset for standard objects, each with an overlap for rows that become queryable late.
//!
//! - Big objects are read in `EventDate` windows `(start, end]` up to the org's time when the
//!   pass began, newest first inside a window (the only order they accept), following
//!   `nextRecordsUrl`. The saved watermark moves to a window's end only after the sink
//!   committed all of it. Each pass reads the overlap again and drops rows whose
//!   `EventIdentifier` was delivered. A window too large for one query is halved until it
//!   fits.
//! - Standard objects are read in `(CreatedDate, Id)` order in batches, each committed, with
//!   the same overlap.
//!
//! A failure stops the pass with the current batch rolled back; the next pass resumes from the
//! last committed one. An object the checkpoint does not know yet starts `since` ago; the
//! others go on where they were, and objects no longer collected keep their positions.

use std::collections::HashSet;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::collect::checkpoint::{CheckpointStore, SkippedFile, SourceState};
use crate::collect::object_options::{ObjectCollectorOptions, ObjectSummary};
use crate::collect::object_state::{
    BigObjectState, KeysetPosition, KeysetState, MILLI, QuietWatch, SkippedWindow, bound_overlap,
    span, to_ms,
};
use crate::collect::pass::{Delivered, Pass};
use crate::collect::sink::{Batch, Row, Sink, Unit};
use crate::collect::source::Source;
use crate::datetime as sf_datetime;
use crate::error::Error;
use crate::objects::fetch::{first_page, is_query_timeout, is_unreadable_page, next_page};
use crate::objects::{
    BigObjectQuery, EventObject, FieldSelection, KeysetQuery, KeysetStart, ObjectKind,
    ObjectRecord, datetime_millis,
};

/// An object as a source: its walk, with the options every object of the collector shares.
#[derive(Debug)]
pub(crate) struct ObjectSource {
    pub(crate) object: EventObject,
    pub(crate) options: Arc<ObjectCollectorOptions>,
}

impl Source for ObjectSource {
    fn name(&self) -> &str {
        self.object.name()
    }

    async fn collect<S: CheckpointStore + ?Sized, K: Sink>(
        &self,
        pass: &mut Pass<'_, S>,
        sink: &mut K,
    ) -> Result<(), Error> {
        let now = pass
            .org_now(self.options.overlap, "half the real-time overlap")
            .await?;
        pass.report.current = Some(self.object.name().to_string());
        pass.report();
        let summary = ObjectWalk::new(&self.object, &self.options, now)
            .collect(pass, sink)
            .await?;
        pass.summary.objects.push(summary);
        Ok(())
    }
}

/// One object's part of a pass.
struct ObjectWalk<'a> {
    object: &'a EventObject,
    options: &'a ObjectCollectorOptions,
    /// The org's time when the pass began: where every window ends.
    now: OffsetDateTime,
}

impl<'a> ObjectWalk<'a> {
    fn new(
        object: &'a EventObject,
        options: &'a ObjectCollectorOptions,
        now: OffsetDateTime,
    ) -> Self {
        ObjectWalk {
            object,
            options,
            now,
        }
    }

    /// Walks the object from its saved position up to `now`, unit after unit, through `pass`.
    async fn collect<S: CheckpointStore + ?Sized, K: Sink>(
        self,
        pass: &mut Pass<'_, S>,
        sink: &mut K,
    ) -> Result<ObjectSummary, Error> {
        let object = self.object;
        let saved = pass.checkpoint.sources.get(object.name()).cloned();
        let mut walk = Walker {
            engine: pass,
            sink,
            object,
            options: self.options,
            now: self.now,
            position: None,
            summary: ObjectSummary {
                object: object.name().to_string(),
                ..ObjectSummary::default()
            },
            saved_rows: 0,
            skipped: Vec::new(),
            overlap_cut_logged: false,
        };
        match (object.kind(), saved) {
            (ObjectKind::BigObject, None) => walk.big_object(BigObjectState::default()).await?,
            (ObjectKind::BigObject, Some(SourceState::BigObject(state))) => {
                walk.big_object(state).await?
            }
            (ObjectKind::Standard, None) => walk.keyset(KeysetState::default()).await?,
            (ObjectKind::Standard, Some(SourceState::Keyset(state))) => walk.keyset(state).await?,
            // Routed to their own source by `Collector::with_sources`.
            (ObjectKind::EventLogObject, _) => {
                return Err(Error::Internal(format!(
                    "{object} is an Event Log Object, collected by its own source"
                )));
            }
            (kind, Some(_)) => {
                return Err(Error::InvalidArgument(format!(
                    "the saved state of {object} is for another kind of object than the \
                     {} it is configured as now: remove its state to collect it again from \
                     `since`, or configure it as before",
                    kind.describe()
                )));
            }
        }
        Ok(walk.summary)
    }
}

/// The work of one pass on one object.
struct Walker<'w, 'p, S: ?Sized, K> {
    engine: &'w mut Pass<'p, S>,
    sink: &'w mut K,
    object: &'w EventObject,
    options: &'w ObjectCollectorOptions,
    now: OffsetDateTime,
    /// The sink's position after the last commit, saved with the next save.
    position: Option<u64>,
    summary: ObjectSummary,
    /// `summary.rows` at the last save, for the checkpoint's `rows_delivered`.
    saved_rows: u64,
    /// Skipped windows for the checkpoint's `skipped`, saved with the next save.
    skipped: Vec<(String, SkippedFile)>,
    /// Whether this pass has said that the overlap's identifiers were cut to their bound.
    overlap_cut_logged: bool,
}

/// How a big-object window went.
enum Window {
    Delivered,
    /// Too many rows for one query; nothing was written.
    TooLarge,
    /// A page could not be read (and skipping such pages is on); nothing was written.
    Unreadable(Error),
}

/// How many times one pass narrows an object's windows around unreadable pages. One bad row
/// in an hour's window is found in about 22 halvings; a page that fails in every window is the
/// org's answers (or a proxy) broken, which skipping would turn into losing everything.
const MAX_UNREADABLE_SPLITS: u32 = 128;

/// How many windows one pass gives up on per object before it stops with the error instead:
/// skipping is for a bad row or two, not for an org whose every answer is unreadable.
const MAX_SKIPPED_WINDOWS: u64 = 16;

/// `windows` without the parts inside `skipped` (each `(after, up_to]`): a window once given
/// up on is read around, not failed on again, while it is inside the overlap.
fn around(
    windows: Vec<(OffsetDateTime, OffsetDateTime)>,
    skipped: &[SkippedWindow],
) -> Vec<(OffsetDateTime, OffsetDateTime)> {
    let mut out = windows;
    for w in skipped {
        out = out
            .into_iter()
            .flat_map(|(a, b)| {
                if w.up_to <= a || w.after >= b {
                    return vec![(a, b)];
                }
                let mut parts = Vec::new();
                if a < w.after {
                    parts.push((a, w.after));
                }
                if w.up_to < b {
                    parts.push((w.up_to, b));
                }
                parts
            })
            .collect();
    }
    out
}

impl<S: CheckpointStore + ?Sized, K: Sink> Walker<'_, '_, S, K> {
    fn fields(&self) -> FieldSelection {
        self.options
            .fields
            .get(self.object.name())
            .cloned()
            .unwrap_or_default()
    }

    /// Saves `state` with the sink's position, through the pass's one save.
    fn save(&mut self, state: SourceState) -> Result<(), Error> {
        let name = self.object.name().to_string();
        let skipped = self.skipped.clone();
        let delivered = Delivered {
            source: self.object.name(),
            files: 0,
            rows: self.summary.rows - self.saved_rows,
            bytes: 0,
            newest: None,
        };
        self.engine.save(self.position, Some(&delivered), |next| {
            next.sources.insert(name, state);
            // Through record_skipped, so that the list keeps its bound (MAX_SKIPPED).
            for (id, file) in skipped {
                next.record_skipped(id, file);
            }
            Ok(())
        })?;
        self.saved_rows = self.summary.rows;
        self.skipped.clear();
        Ok(())
    }

    /// Keeps `delivered` within `max_overlap_rows`; returns the new floor if it had to cut.
    fn bound(
        &mut self,
        delivered: &mut std::collections::BTreeMap<String, String>,
    ) -> Option<OffsetDateTime> {
        bound_overlap(
            delivered,
            self.options.max_overlap_rows,
            self.object,
            &mut self.overlap_cut_logged,
        )
    }

    /// Reports progress after a committed window or batch; whether the pass is asked to stop.
    fn committed(&mut self, rows: u64) -> bool {
        self.engine.report.rows += rows;
        self.engine.report();
        if self.engine.stop_requested() {
            self.engine.summary.stopped = true;
        }
        self.engine.summary.stopped
    }

    async fn big_object(&mut self, mut state: BigObjectState) -> Result<(), Error> {
        let end = to_ms(self.now);
        let mut start = to_ms(match state.watermark {
            Some(w) => w - span(self.options.overlap),
            None => self.now - span(self.options.since),
        });
        if let Some(floor) = state.overlap_floor {
            start = start.max(to_ms(floor));
        }
        // Windows oldest first: the watermark can only move past a contiguous delivered prefix.
        // Each is cut when the one before is done, `width` wide: a window with few rows makes the
        // next one twice as wide (up to `max_window`), one with many halves it, so a sparse
        // object costs a query per stretch of rows rather than one per hour, and a busy one
        // is not split again and again.
        let base = span(self.options.window).max(MILLI);
        let max_width = span(self.options.max_window).max(base);
        let mut width: time::Duration = base;
        let mut next_start = start;
        // The windows still to read, the next one on top: a cut window's parts around skipped
        // windows, or the halves of one that was too large.
        let mut windows: Vec<(OffsetDateTime, OffsetDateTime)> = Vec::new();
        let mut unreadable_splits = 0u32;
        loop {
            if windows.is_empty() {
                if next_start >= end {
                    break;
                }
                let b = to_ms((next_start + width).min(end)).max(next_start + MILLI);
                windows = around(vec![(next_start, b)], &state.skipped_windows);
                windows.reverse();
                next_start = b;
                continue;
            }
            let Some((a, b)) = windows.pop() else {
                continue;
            };
            let rows_before = self.summary.rows;
            let outcome = match self.big_object_window(&mut state, a, b).await? {
                Window::Unreadable(error) if b - a < 2 * MILLI => {
                    if self.summary.skipped_windows >= MAX_SKIPPED_WINDOWS {
                        return Err(self.broken(error, a, b, unreadable_splits));
                    }
                    self.skip_window(&mut state.skipped_windows, a, b, &error);
                    Window::Delivered
                }
                other => other,
            };
            match outcome {
                Window::Delivered => {
                    state.watermark = Some(state.watermark.map_or(b, |w| w.max(b)));
                    if let Some(w) = state.watermark {
                        let keep_after = w - span(self.options.overlap);
                        state.delivered_in_overlap.retain(|_, date| {
                            sf_datetime::parse(date).is_ok_and(|d| d > keep_after)
                        });
                        state.skipped_windows.retain(|s| s.up_to > keep_after);
                        state.overlap_floor = state.overlap_floor.filter(|f| *f > keep_after);
                    }
                    if let Some(floor) = self.bound(&mut state.delivered_in_overlap) {
                        state.overlap_floor =
                            Some(state.overlap_floor.map_or(floor, |f| f.max(floor)));
                    }
                    self.save(SourceState::BigObject(state.clone()))?;
                    let delivered = self.summary.rows - rows_before;
                    if delivered < self.options.max_rows_per_window / 4 {
                        width = width.saturating_mul(2).min(max_width);
                    } else if delivered > self.options.max_rows_per_window / 2 {
                        width = (width / 2_i32).max(base);
                    }
                    if self.committed(delivered) {
                        // The watermark is saved at this window's end: the next pass goes on
                        // from there.
                        return Ok(());
                    }
                }
                Window::TooLarge => {
                    let mid = to_ms(a + (b - a) / 2);
                    tracing::info!(object = %self.object, after = %datetime_millis(a), up_to = %datetime_millis(b), "EventDate window too large for one query; splitting it in halves");
                    self.summary.splits += 1;
                    width = ((b - a) / 2_i32).max(base);
                    windows.push((mid, b));
                    windows.push((a, mid));
                }
                Window::Unreadable(error) => {
                    unreadable_splits += 1;
                    if unreadable_splits > MAX_UNREADABLE_SPLITS {
                        return Err(self.broken(error, a, b, unreadable_splits - 1));
                    }
                    let mid = to_ms(a + (b - a) / 2);
                    tracing::warn!(object = %self.object, after = %datetime_millis(a), up_to = %datetime_millis(b), error = %error, "a page of this EventDate window cannot be read; narrowing the window around it");
                    windows.push((mid, b));
                    windows.push((a, mid));
                }
            }
        }
        self.quiet_watch(&mut state.quiet);
        self.save(SourceState::BigObject(state))
    }

    /// Gives up on the window `(a, b]` (one millisecond by now) whose page cannot be read: it
    /// is listed in the checkpoint's `skipped` with the next save, and read around while it
    /// is inside the overlap.
    fn skip_window(
        &mut self,
        skipped: &mut Vec<SkippedWindow>,
        a: OffsetDateTime,
        b: OffsetDateTime,
        error: &Error,
    ) {
        let key = format!(
            "{} {} ({}, {}]",
            self.object,
            self.time_field(),
            datetime_millis(a),
            datetime_millis(b)
        );
        tracing::error!(object = %self.object, window = %key, error = %error, "skipping a window whose page cannot be read; it is listed in the checkpoint");
        self.summary.skipped_windows += 1;
        skipped.push(SkippedWindow { after: a, up_to: b });
        self.skipped.push((
            key,
            SkippedFile {
                event_type: self.object.name().to_string(),
                created_date: b,
                error: error.to_string(),
            },
        ));
    }

    /// The field the object's windows are on.
    fn time_field(&self) -> &'static str {
        match self.object.kind() {
            ObjectKind::BigObject => "EventDate",
            ObjectKind::Standard => "CreatedDate",
            ObjectKind::EventLogObject => "Timestamp",
        }
    }

    /// The error that ends skipping: too many unreadable pages for a bad row or two.
    fn broken(&self, error: Error, a: OffsetDateTime, b: OffsetDateTime, splits: u32) -> Error {
        Error::UnexpectedResponse(format!(
            "{error} ({} window ({}, {}]); this pass already narrowed {splits} windows of {} \
             around unreadable pages and skipped {}: the org's answers (or a proxy's), not a \
             row, look broken, so the pass stops",
            self.time_field(),
            datetime_millis(a),
            datetime_millis(b),
            self.object,
            self.summary.skipped_windows
        ))
    }

    /// An unreadable page's error, naming the window and how to skip it.
    fn unreadable(&self, error: Error, a: OffsetDateTime, b: OffsetDateTime) -> Error {
        let message = match &error {
            Error::UnexpectedResponse(message) if is_unreadable_page(&error) => message,
            _ => return error,
        };
        Error::UnexpectedResponse(format!(
            "{message} ({} window ({}, {}]); to skip such a page and go on, recording it in the \
             checkpoint's `skipped`, set \
             ObjectCollectorOptions::skip_unreadable_pages",
            self.time_field(),
            datetime_millis(a),
            datetime_millis(b)
        ))
    }

    /// Reads one window and delivers its new rows, or reports it too large (before writing).
    async fn big_object_window(
        &mut self,
        state: &mut BigObjectState,
        a: OffsetDateTime,
        b: OffsetDateTime,
    ) -> Result<Window, Error> {
        let splittable = b - a >= 2 * MILLI;
        let max_rows = self.options.max_rows_per_window;
        let soql = BigObjectQuery::new(self.object)?
            .fields(self.fields())
            .window(a, b)
            .to_soql()?;
        let skip = self.options.skip_unreadable_pages;
        let mut page = match first_page(self.engine.client, self.object, &soql).await {
            Err(e) if splittable && is_query_timeout(&e) => return Ok(Window::TooLarge),
            Err(e) if skip && is_unreadable_page(&e) => return Ok(Window::Unreadable(e)),
            Err(e) => return Err(self.unreadable(e, a, b)),
            Ok(page) => page,
        };
        if splittable && !page.done && page.total_size > max_rows {
            return Ok(Window::TooLarge);
        }
        let object = self.object;
        let batch = Batch {
            object,
            after: a,
            up_to: b,
        };
        let mut delivery = Delivery::default();
        let mut pages = 1;
        let mut seen = 0u64;
        loop {
            let records = std::mem::take(&mut page.records);
            delivery.bytes += page.bytes;
            seen += records.len() as u64;
            for record in records {
                let key = record.dedupe_key();
                if state.delivered_in_overlap.contains_key(&key)
                    || !delivery.keys.insert(key.clone())
                {
                    self.summary.duplicates_dropped += 1;
                    continue;
                }
                let date = record.event_date().unwrap_or(b);
                if let Err(e) = delivery.write(self.sink, &batch, &record).await {
                    return Err(delivery.fail(self.sink, &batch, e).await);
                }
                delivery.newest = Some(delivery.newest.map_or(date, |n| n.max(date)));
                delivery.new.push((key, sf_datetime::format(date)));
            }
            let Some(next) = page.next_records_url.take().filter(|_| !page.done) else {
                // Salesforce said there are more rows but offered no way to them: only a
                // narrower window can reach them.
                if page.total_size > seen {
                    if splittable {
                        delivery.abandon(self.sink, &batch).await?;
                        return Ok(Window::TooLarge);
                    }
                    tracing::warn!(object = %object, total = page.total_size, read = seen, "a 1 ms EventDate window holds more rows than Salesforce returned");
                }
                break;
            };
            if splittable && seen > max_rows {
                // totalSize was missing or wrong: the bound still holds.
                delivery.abandon(self.sink, &batch).await?;
                return Ok(Window::TooLarge);
            }
            pages += 1;
            page = match next_page(self.engine.client, object, &next, pages).await {
                Ok(p) => p,
                Err(e) if skip && is_unreadable_page(&e) => {
                    delivery.abandon(self.sink, &batch).await?;
                    return Ok(Window::Unreadable(e));
                }
                Err(e) => {
                    let e = self.unreadable(e, a, b);
                    return Err(delivery.fail(self.sink, &batch, e).await);
                }
            };
        }
        if let Some(position) = delivery.commit(self.sink, &batch).await? {
            self.position = Some(position);
        }
        delivery.count(self.engine, self.object);
        if !delivery.new.is_empty() {
            self.summary.batches += 1;
        }
        self.summary.rows += delivery.new.len() as u64;
        state.delivered_in_overlap.extend(delivery.new);
        Ok(Window::Delivered)
    }

    async fn keyset(&mut self, mut state: KeysetState) -> Result<(), Error> {
        let overlap = span(self.options.overlap);
        let mut lower = to_ms(match (&state.last, state.scanned_to) {
            (Some(last), _) => last.created_date - overlap,
            (None, Some(scanned)) => scanned - overlap,
            (None, None) => self.now - span(self.options.since),
        });
        if let Some(floor) = state.overlap_floor {
            lower = lower.max(to_ms(floor));
        }
        let end = to_ms(self.now);
        let object = self.object;
        let skip = self.options.skip_unreadable_pages;
        let mut start = KeysetStart::After(lower);
        // While narrowing around an unreadable page: the lowest `CreatedDate` bound known to
        // take that page in, and its error. Batches read up to halfway there until the range
        // is a millisecond.
        let mut failing: Option<(OffsetDateTime, Error)> = None;
        let mut unreadable_splits = 0u32;
        loop {
            let from = match &start {
                KeysetStart::After(t) => *t,
                KeysetStart::AfterKey { created_date, .. } => *created_date,
                KeysetStart::Beginning => lower,
            };
            if from >= end {
                break;
            }
            // A range given up on before is jumped over, and read up to, never into.
            if let Some(w) = state
                .skipped_windows
                .iter()
                .find(|w| w.after <= from && from < w.up_to)
            {
                start = KeysetStart::After(w.up_to);
                continue;
            }
            let up_to = match failing.take() {
                Some((f, error)) if f - from < 2 * MILLI => {
                    // The rows at `from` after the last key were in the failed batches too.
                    let after = match start {
                        KeysetStart::AfterKey { .. } => from - MILLI,
                        _ => from,
                    };
                    if self.summary.skipped_windows >= MAX_SKIPPED_WINDOWS {
                        return Err(self.broken(error, after, f, unreadable_splits));
                    }
                    self.skip_window(&mut state.skipped_windows, after, f, &error);
                    self.save(SourceState::Keyset(state.clone()))?;
                    start = KeysetStart::After(f);
                    continue;
                }
                Some((f, error)) => {
                    failing = Some((f, error));
                    to_ms(from + (f - from) / 2)
                }
                None => end,
            };
            let up_to = state
                .skipped_windows
                .iter()
                .filter(|w| w.after > from)
                .map(|w| w.after)
                .fold(up_to, OffsetDateTime::min);
            let soql = KeysetQuery::new(object)?
                .fields(self.fields())
                .start(start.clone())
                .up_to(up_to)
                .limit(self.options.batch_size)
                .to_soql()?;
            let batch = Batch {
                object,
                after: lower,
                up_to: end,
            };
            let mut page = match first_page(self.engine.client, object, &soql).await {
                Ok(page) => page,
                Err(e) if skip && is_unreadable_page(&e) => {
                    unreadable_splits += 1;
                    if unreadable_splits > MAX_UNREADABLE_SPLITS {
                        return Err(self.broken(e, from, up_to, unreadable_splits - 1));
                    }
                    tracing::warn!(object = %object, after = %datetime_millis(from), up_to = %datetime_millis(up_to), error = %e, "a page of this CreatedDate range cannot be read; narrowing the range around it");
                    failing = Some((up_to, e));
                    continue;
                }
                Err(e) => return Err(self.unreadable(e, from, up_to)),
            };
            let mut delivery = Delivery::default();
            let mut pages = 1;
            let mut read = 0u64;
            let mut batch_last: Option<KeysetPosition> = None;
            let mut batch_best = state.last.clone();
            let mut unreadable = None;
            loop {
                delivery.bytes += page.bytes;
                for record in std::mem::take(&mut page.records) {
                    read += 1;
                    let key = match keyset_key(object, &record) {
                        Ok(key) => key,
                        Err(e) => return Err(delivery.fail(self.sink, &batch, e).await),
                    };
                    batch_last = Some(key.clone());
                    if state.delivered_in_overlap.contains_key(&key.id)
                        || !delivery.keys.insert(key.id.clone())
                    {
                        self.summary.duplicates_dropped += 1;
                        continue;
                    }
                    if let Err(e) = delivery.write(self.sink, &batch, &record).await {
                        return Err(delivery.fail(self.sink, &batch, e).await);
                    }
                    if batch_best.as_ref().is_none_or(|last| key > *last) {
                        batch_best = Some(key.clone());
                    }
                    delivery.newest = Some(
                        delivery
                            .newest
                            .map_or(key.created_date, |n| n.max(key.created_date)),
                    );
                    delivery
                        .new
                        .push((key.id, sf_datetime::format(key.created_date)));
                }
                let Some(next) = page.next_records_url.take().filter(|_| !page.done) else {
                    break;
                };
                pages += 1;
                page = match next_page(self.engine.client, object, &next, pages).await {
                    Ok(p) => p,
                    Err(e) if skip && is_unreadable_page(&e) => {
                        delivery.abandon(self.sink, &batch).await?;
                        unreadable = Some(e);
                        break;
                    }
                    Err(e) => {
                        let e = self.unreadable(e, from, up_to);
                        return Err(delivery.fail(self.sink, &batch, e).await);
                    }
                };
            }
            if let Some(e) = unreadable {
                unreadable_splits += 1;
                if unreadable_splits > MAX_UNREADABLE_SPLITS {
                    return Err(self.broken(e, from, up_to, unreadable_splits - 1));
                }
                tracing::warn!(object = %object, after = %datetime_millis(from), up_to = %datetime_millis(up_to), error = %e, "a page of this CreatedDate range cannot be read; narrowing the range around it");
                failing = Some((up_to, e));
                continue;
            }
            if let Some(position) = delivery.commit(self.sink, &batch).await? {
                self.position = Some(position);
            }
            delivery.count(self.engine, object);
            state.last = batch_best;
            if !delivery.new.is_empty() {
                self.summary.batches += 1;
            }
            let delivered = delivery.new.len() as u64;
            self.summary.rows += delivered;
            state.delivered_in_overlap.extend(delivery.new);
            if let Some(last) = &state.last {
                let keep_after = last.created_date - overlap;
                state
                    .delivered_in_overlap
                    .retain(|_, date| sf_datetime::parse(date).is_ok_and(|d| d > keep_after));
                state.overlap_floor = state.overlap_floor.filter(|f| *f > keep_after);
                state.skipped_windows.retain(|w| w.up_to > keep_after);
            }
            if let Some(floor) = self.bound(&mut state.delivered_in_overlap) {
                state.overlap_floor = Some(state.overlap_floor.map_or(floor, |f| f.max(floor)));
            }
            self.save(SourceState::Keyset(state.clone()))?;
            if self.committed(delivered) {
                // `last` is saved; `scanned_to` stays, so the next pass goes on from `last`.
                return Ok(());
            }
            match batch_last {
                Some(last) if read >= u64::from(self.options.batch_size) => {
                    start = KeysetStart::AfterKey {
                        created_date: last.created_date,
                        id: last.id,
                    };
                }
                // A range cut short (narrowed, or up to a skipped one) is done: on past it.
                _ if up_to < end => start = KeysetStart::After(up_to),
                _ => break,
            }
        }
        state.scanned_to = Some(end);
        self.quiet_watch(&mut state.quiet);
        self.save(SourceState::Keyset(state))
    }

    /// Zero rows for `quiet_warning_after` looks exactly like storage switched off: say so once.
    fn quiet_watch(&mut self, quiet: &mut QuietWatch) {
        if quiet.after_pass(
            self.object,
            self.summary.rows,
            self.now,
            self.options.quiet_warning_after,
        ) {
            self.summary.storage_warning = true;
        }
    }
}

fn keyset_key(object: &EventObject, record: &ObjectRecord) -> Result<KeysetPosition, Error> {
    match (record.created_date(), record.id()) {
        (Some(created_date), Some(id)) => Ok(KeysetPosition {
            created_date,
            id: id.to_string(),
        }),
        _ => Err(Error::UnexpectedResponse(format!(
            "a {object} row came without CreatedDate or Id, which the (CreatedDate, Id) cursor \
             needs; if {object} is a big object, configure it as ObjectKind::BigObject"
        ))),
    }
}

/// The rows of one batch on their way to the sink. `begin` is sent with the first new row, so
/// an empty window costs the sink nothing.
#[derive(Default)]
struct Delivery {
    begun: bool,
    keys: HashSet<String>,
    new: Vec<(String, String)>,
    /// Bytes of the query pages read for the batch.
    bytes: u64,
    /// The newest `EventDate` (or `CreatedDate`) among `new`.
    newest: Option<OffsetDateTime>,
}

impl Delivery {
    /// Adds the committed batch to `figures` (nothing for a batch with no new row).
    fn count<S: CheckpointStore + ?Sized>(&self, pass: &mut Pass<'_, S>, object: &EventObject) {
        if self.begun {
            pass.count(Delivered {
                source: object.name(),
                files: 0,
                rows: self.new.len() as u64,
                bytes: self.bytes,
                newest: self.newest,
            });
        }
    }

    async fn write<K: Sink>(
        &mut self,
        sink: &mut K,
        batch: &Batch<'_>,
        record: &ObjectRecord,
    ) -> Result<(), Error> {
        if !self.begun {
            sink.begin(&Unit::Batch(*batch)).await?;
            self.begun = true;
        }
        sink.write(Row::Object {
            object: batch.object,
            record,
        })
        .await
    }

    async fn commit<K: Sink>(
        &mut self,
        sink: &mut K,
        batch: &Batch<'_>,
    ) -> Result<Option<u64>, Error> {
        if !self.begun {
            return Ok(None);
        }
        match sink.commit(&Unit::Batch(*batch)).await {
            Ok(position) => Ok(position),
            Err(e) => Err(self.fail(sink, batch, e).await),
        }
    }

    /// Takes back what was written (the window is read again, narrower).
    async fn abandon<K: Sink>(&mut self, sink: &mut K, batch: &Batch<'_>) -> Result<(), Error> {
        if self.begun {
            sink.rollback(&Unit::Batch(*batch)).await?;
        }
        Ok(())
    }

    /// Rolls the batch back after `error`, which is returned (a rollback failure is logged: the
    /// original error is the one to act on).
    async fn fail<K: Sink>(&mut self, sink: &mut K, batch: &Batch<'_>, error: Error) -> Error {
        if self.begun
            && let Err(e) = sink.rollback(&Unit::Batch(*batch)).await
        {
            tracing::error!(object = %batch.object, error = %e, "rolling back a failed batch failed too");
        }
        error
    }
}
