//! Exactly-once collection of real-time objects: `EventDate` windows for big objects, a
//! `(CreatedDate, Id)` keyset for standard objects, each with an overlap for rows that become
//! queryable late.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::client::JwtBearerClient;
use crate::error::Error;
use crate::event_log::{Checkpoint, CheckpointStore, Progress, SourceState, sf_datetime};
use crate::realtime::fetch::{first_page, is_query_timeout, next_page};
use crate::realtime::object::{EventObject, ObjectKind};
use crate::realtime::query::{
    BigObjectQuery, FieldSelection, KeysetQuery, KeysetStart, datetime_millis,
};
use crate::realtime::record::ObjectRecord;
use crate::realtime::sink::{Batch, ObjectSink};
use crate::realtime::state::{BigObjectState, KeysetPosition, KeysetState, QuietWatch};

use crate::realtime::options::{ObjectCollectorOptions, ObjectPassSummary, ObjectSummary};

/// Collects real-time objects exactly once into an [`ObjectSink`], keeping each source's
/// position in the [`Checkpoint`] of a [`CheckpointStore`] (the same one, file lock, output
/// check and sink position as EventLogFile's), under the object's API name.
///
/// - Big objects are read in `EventDate` windows `(start, end]` up to the time the pass began,
///   newest first inside a window (the only order they accept), following `nextRecordsUrl`.
///   The saved watermark moves to a window's end only after the sink committed all of it. Each
///   pass reads the overlap again and drops rows whose `EventIdentifier` was delivered. A
///   window too large for one query is halved until it fits.
/// - Standard objects are read in `(CreatedDate, Id)` order in batches, each committed, with the
///   same overlap.
///
/// A failure stops the pass with the current batch rolled back; the next pass resumes from the
/// last committed one. `REQUEST_LIMIT_EXCEEDED` stops the pass; 401 (re-authentication), 503
/// and timeouts are handled by the client's retries. An object the checkpoint does not know yet
/// starts `since` ago; the others go on where they were, and objects no longer collected keep
/// their positions.
///
/// To collect EventLogFile and objects together, into one output, use
/// [`Collector::with_sources`](crate::event_log::Collector::with_sources).
#[derive(Debug)]
pub struct ObjectCollector<S: CheckpointStore> {
    client: JwtBearerClient,
    objects: Vec<EventObject>,
    store: S,
    checkpoint: Checkpoint,
    options: ObjectCollectorOptions,
}

impl<S: CheckpointStore> ObjectCollector<S> {
    /// A collector of `objects` (see [`EventObject::catalogue`]). Takes the store's lock
    /// ([`CheckpointStore::acquire`]) and loads its checkpoint.
    pub fn new(
        client: JwtBearerClient,
        objects: Vec<EventObject>,
        mut store: S,
        options: ObjectCollectorOptions,
    ) -> Result<Self, Error> {
        options.validate()?;
        store.acquire()?;
        let checkpoint = store.load()?.unwrap_or_default();
        Ok(ObjectCollector {
            client,
            objects,
            store,
            checkpoint,
            options,
        })
    }

    /// The state store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The current checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// Collects every object once, up to the time the pass begins.
    pub async fn run_pass<K: ObjectSink>(
        &mut self,
        sink: &mut K,
    ) -> Result<ObjectPassSummary, Error> {
        self.run_pass_with(sink, &mut |_| {}, &AtomicBool::new(false))
            .await
    }

    /// [`run_pass`](Self::run_pass) with `progress` called after every committed window or
    /// batch (with [`Progress::files_done`] and [`Progress::files_total`] counting objects and
    /// [`Progress::current`] naming the object), and `stop`: once it is true the pass ends
    /// after the current window or batch, with the checkpoint consistent.
    pub async fn run_pass_with<K: ObjectSink>(
        &mut self,
        sink: &mut K,
        progress: &mut (dyn FnMut(&Progress) + Send),
        stop: &AtomicBool,
    ) -> Result<ObjectPassSummary, Error> {
        crate::event_log::begin_output(
            &mut self.checkpoint,
            &mut self.store,
            sink.output(),
            sink.committed_position(),
        )?;
        collect_objects(
            ObjectsRun {
                client: &self.client,
                objects: &self.objects,
                options: &self.options,
                checkpoint: &mut self.checkpoint,
                store: &mut self.store,
            },
            sink,
            progress,
            stop,
        )
        .await
    }
}

/// What [`collect_objects`] works with: borrowed from an [`ObjectCollector`] or a
/// [`Collector`](crate::event_log::Collector) with objects.
pub(crate) struct ObjectsRun<'a, S> {
    pub(crate) client: &'a JwtBearerClient,
    pub(crate) objects: &'a [EventObject],
    pub(crate) options: &'a ObjectCollectorOptions,
    pub(crate) checkpoint: &'a mut Checkpoint,
    pub(crate) store: &'a mut S,
}

/// One pass over `run.objects`, after the output was checked against the checkpoint.
pub(crate) async fn collect_objects<S: CheckpointStore, K: ObjectSink>(
    run: ObjectsRun<'_, S>,
    sink: &mut K,
    progress: &mut (dyn FnMut(&Progress) + Send),
    stop: &AtomicBool,
) -> Result<ObjectPassSummary, Error> {
    let now = run.client.clock().now();
    let mut summary = ObjectPassSummary::default();
    let mut position = run.checkpoint.sink_position;
    let mut report = Progress {
        files_done: 0,
        files_total: run.objects.len(),
        rows: 0,
        bytes: 0,
        elapsed: Duration::ZERO,
        current: None,
    };
    let started = Instant::now();
    for object in run.objects {
        if stop.load(Ordering::SeqCst) {
            summary.stopped = true;
            break;
        }
        report.current = Some(object.name().to_string());
        progress(&report);
        let mut pass = Pass {
            client: run.client,
            options: run.options,
            store: &mut *run.store,
            checkpoint: &mut *run.checkpoint,
            sink: &mut *sink,
            object,
            now,
            position: &mut position,
            summary: ObjectSummary {
                object: object.name().to_string(),
                ..ObjectSummary::default()
            },
            saved_rows: 0,
            report: &mut report,
            started,
            progress: &mut *progress,
            stop,
            stopped: false,
        };
        let saved = pass.checkpoint.sources.get(object.name()).cloned();
        match (object.kind(), saved) {
            (ObjectKind::BigObject, None) => {
                pass.big_object(BigObjectState::default()).await?;
            }
            (ObjectKind::BigObject, Some(SourceState::BigObject(state))) => {
                pass.big_object(state).await?;
            }
            (ObjectKind::Standard, None) => pass.keyset(KeysetState::default()).await?,
            (ObjectKind::Standard, Some(SourceState::Keyset(state))) => {
                pass.keyset(state).await?;
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
        let stopped = pass.stopped;
        summary.objects.push(pass.summary);
        report.files_done += 1;
        report.current = None;
        report.elapsed = started.elapsed();
        progress(&report);
        if stopped {
            summary.stopped = true;
            break;
        }
    }
    // The output shows the last window's rows once the pass returns.
    sink.published().await?;
    Ok(summary)
}

/// The work of one pass on one object.
struct Pass<'a, S, K> {
    client: &'a JwtBearerClient,
    options: &'a ObjectCollectorOptions,
    store: &'a mut S,
    checkpoint: &'a mut Checkpoint,
    sink: &'a mut K,
    object: &'a EventObject,
    now: OffsetDateTime,
    position: &'a mut Option<u64>,
    summary: ObjectSummary,
    /// `summary.rows` at the last save, for the checkpoint's `rows_delivered`.
    saved_rows: u64,
    report: &'a mut Progress,
    started: Instant,
    progress: &'a mut (dyn FnMut(&Progress) + Send),
    stop: &'a AtomicBool,
    /// Whether the pass stopped on request before the object was done.
    stopped: bool,
}

/// How a big-object window went.
enum Window {
    Delivered,
    /// Too many rows for one query; nothing was written.
    TooLarge,
}

const MILLI: time::Duration = time::Duration::milliseconds(1);

fn to_ms(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t)
}

fn span(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

impl<S: CheckpointStore, K: ObjectSink> Pass<'_, S, K> {
    fn fields(&self) -> FieldSelection {
        self.options
            .fields
            .get(self.object.name())
            .cloned()
            .unwrap_or_default()
    }

    /// Saves `state` with the sink's position; the in-memory checkpoint changes only once the
    /// save succeeded.
    fn save(&mut self, state: SourceState) -> Result<(), Error> {
        let mut next = self.checkpoint.clone();
        next.sources.insert(self.object.name().to_string(), state);
        if self.position.is_some() {
            next.sink_position = *self.position;
        }
        next.rows_delivered += self.summary.rows - self.saved_rows;
        if next != *self.checkpoint {
            self.store.save(&next)?;
            *self.checkpoint = next;
            self.sink.recorded(self.checkpoint.sink_position)?;
        }
        self.saved_rows = self.summary.rows;
        Ok(())
    }

    /// Reports progress after a committed window or batch; whether the pass is asked to stop.
    fn committed(&mut self, rows: u64) -> bool {
        self.report.rows += rows;
        self.report.elapsed = self.started.elapsed();
        (self.progress)(self.report);
        if self.stop.load(Ordering::SeqCst) {
            self.stopped = true;
        }
        self.stopped
    }

    async fn big_object(&mut self, mut state: BigObjectState) -> Result<(), Error> {
        let end = to_ms(self.now);
        let start = to_ms(match state.watermark {
            Some(w) => w - span(self.options.overlap),
            None => self.now - span(self.options.since),
        });
        // Windows oldest first: the watermark can only move past a contiguous delivered prefix.
        let width = span(self.options.window).max(MILLI);
        let mut windows = Vec::new();
        let mut a = start;
        while a < end {
            let b = to_ms((a + width).min(end)).max(a + MILLI);
            windows.push((a, b));
            a = b;
        }
        windows.reverse();
        while let Some((a, b)) = windows.pop() {
            let rows_before = self.summary.rows;
            match self.big_object_window(&mut state, a, b).await? {
                Window::Delivered => {
                    state.watermark = Some(state.watermark.map_or(b, |w| w.max(b)));
                    if let Some(w) = state.watermark {
                        let keep_after = w - span(self.options.overlap);
                        state.delivered_in_overlap.retain(|_, date| {
                            sf_datetime::parse(date).is_ok_and(|d| d > keep_after)
                        });
                    }
                    self.save(SourceState::BigObject(state.clone()))?;
                    if self.committed(self.summary.rows - rows_before) {
                        // The watermark is saved at this window's end: the next pass goes on
                        // from there.
                        return Ok(());
                    }
                }
                Window::TooLarge => {
                    let mid = to_ms(a + (b - a) / 2);
                    tracing::info!(object = %self.object, after = %datetime_millis(a), up_to = %datetime_millis(b), "EventDate window too large for one query; splitting it in halves");
                    self.summary.splits += 1;
                    windows.push((mid, b));
                    windows.push((a, mid));
                }
            }
        }
        self.quiet_watch(&mut state.quiet);
        self.save(SourceState::BigObject(state))
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
        let mut page = match first_page(self.client, self.object, &soql).await {
            Err(e) if splittable && is_query_timeout(&e) => return Ok(Window::TooLarge),
            other => other?,
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
            page = match next_page(self.client, object, &next, pages).await {
                Ok(p) => p,
                Err(e) => return Err(delivery.fail(self.sink, &batch, e).await),
            };
        }
        if let Some(position) = delivery.commit(self.sink, &batch).await? {
            *self.position = Some(position);
        }
        if !delivery.new.is_empty() {
            self.summary.batches += 1;
        }
        self.summary.rows += delivery.new.len() as u64;
        state.delivered_in_overlap.extend(delivery.new);
        Ok(Window::Delivered)
    }

    async fn keyset(&mut self, mut state: KeysetState) -> Result<(), Error> {
        let overlap = span(self.options.overlap);
        let lower = to_ms(match (&state.last, state.scanned_to) {
            (Some(last), _) => last.created_date - overlap,
            (None, Some(scanned)) => scanned - overlap,
            (None, None) => self.now - span(self.options.since),
        });
        let end = to_ms(self.now);
        let object = self.object;
        let mut start = KeysetStart::After(lower);
        loop {
            let soql = KeysetQuery::new(object)?
                .fields(self.fields())
                .start(start.clone())
                .up_to(end)
                .limit(self.options.batch_size)
                .to_soql()?;
            let batch = Batch {
                object,
                after: lower,
                up_to: end,
            };
            let mut page = first_page(self.client, object, &soql).await?;
            let mut delivery = Delivery::default();
            let mut pages = 1;
            let mut read = 0u64;
            let mut batch_last: Option<KeysetPosition> = None;
            loop {
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
                    if state.last.as_ref().is_none_or(|last| key > *last) {
                        state.last = Some(key.clone());
                    }
                    delivery
                        .new
                        .push((key.id, sf_datetime::format(key.created_date)));
                }
                let Some(next) = page.next_records_url.take().filter(|_| !page.done) else {
                    break;
                };
                pages += 1;
                page = match next_page(self.client, object, &next, pages).await {
                    Ok(p) => p,
                    Err(e) => return Err(delivery.fail(self.sink, &batch, e).await),
                };
            }
            if let Some(position) = delivery.commit(self.sink, &batch).await? {
                *self.position = Some(position);
            }
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
                _ => break,
            }
        }
        state.scanned_to = Some(end);
        self.quiet_watch(&mut state.quiet);
        self.save(SourceState::Keyset(state))
    }

    /// Zero rows for `quiet_warning_after` looks exactly like storage switched off: say so once.
    fn quiet_watch(&mut self, quiet: &mut QuietWatch) {
        if self.summary.rows > 0 {
            *quiet = QuietWatch::default();
            return;
        }
        let since = *quiet.empty_since.get_or_insert(self.now);
        if !quiet.warned && self.now - since >= span(self.options.quiet_warning_after) {
            quiet.warned = true;
            self.summary.storage_warning = true;
            tracing::warn!(
                object = %self.object,
                quiet_since = %sf_datetime::format(since),
                "{} has returned no rows since {}: {}",
                self.object,
                sf_datetime::format(since),
                self.object.storage_hint()
            );
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
}

impl Delivery {
    async fn write<K: ObjectSink>(
        &mut self,
        sink: &mut K,
        batch: &Batch<'_>,
        record: &ObjectRecord,
    ) -> Result<(), Error> {
        if !self.begun {
            sink.begin(batch).await?;
            self.begun = true;
        }
        sink.write(batch, record).await
    }

    async fn commit<K: ObjectSink>(
        &mut self,
        sink: &mut K,
        batch: &Batch<'_>,
    ) -> Result<Option<u64>, Error> {
        if !self.begun {
            return Ok(None);
        }
        match sink.commit(batch).await {
            Ok(position) => Ok(position),
            Err(e) => Err(self.fail(sink, batch, e).await),
        }
    }

    /// Takes back what was written (the window is read again, narrower).
    async fn abandon<K: ObjectSink>(
        &mut self,
        sink: &mut K,
        batch: &Batch<'_>,
    ) -> Result<(), Error> {
        if self.begun {
            sink.rollback(batch).await?;
        }
        Ok(())
    }

    /// Rolls the batch back after `error`, which is returned (a rollback failure is logged: the
    /// original error is the one to act on).
    async fn fail<K: ObjectSink>(
        &mut self,
        sink: &mut K,
        batch: &Batch<'_>,
        error: Error,
    ) -> Error {
        if self.begun
            && let Err(e) = sink.rollback(batch).await
        {
            tracing::error!(object = %batch.object, error = %e, "rolling back a failed batch failed too");
        }
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn milliseconds_are_kept_and_below_dropped() {
        assert_eq!(
            to_ms(datetime!(2024-07-08 07:26:18.2399 UTC)),
            datetime!(2024-07-08 07:26:18.239 UTC)
        );
    }
}
