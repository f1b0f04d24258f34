//! Incremental collection that loses nothing and repeats nothing.
//!
//! Files are taken in `(CreatedDate, Id)` order. A file counts as delivered only after the sink
//! confirmed its rows were durably written; only then does the checkpoint move. Hourly files can
//! become visible after files with a later `CreatedDate` were already collected, so every pass
//! re-queries a lookback window before the cursor and skips the files the checkpoint lists as
//! completed there.

use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::{self, Either};
use futures_util::{Stream, StreamExt as _, TryStreamExt as _};
use time::OffsetDateTime;

use crate::client::JwtBearerClient;
use crate::error::Error;
use crate::event_log::checkpoint::{
    Checkpoint, CheckpointStore, CompletedFile, EVENT_LOG_FILE_ALL_TYPES, EventLogFileState,
    SkippedFile, SourceState,
};
use crate::event_log::download::FileRecords;
use crate::event_log::figures::DeliveryFigures;
use crate::event_log::model::{EventLogFile, Interval};
use crate::event_log::query::{Cursor, EventLogFileQuery, IntervalFilter};
use crate::event_log::record::LogRecord;
use crate::event_log::sink::{PendingCommit, RecordSink};
use crate::realtime::collector::{ObjectsRun, collect_objects};
use crate::realtime::{EventObject, ObjectCollectorOptions, ObjectPassSummary, ObjectSink};
use crate::retry::full_jitter_backoff;

mod options;
mod positions;

pub use options::{CollectorOptions, PassSummary, Progress, SourcesPassSummary};
pub(crate) use positions::begin_output;
use positions::{adopt_sources, earlier, window_start};

/// Collects EventLogFile rows exactly once across restarts.
///
/// ```no_run
/// # async fn run() -> Result<(), salesforce_jwt::Error> {
/// use std::sync::atomic::AtomicBool;
/// use salesforce_jwt::{JwtBearerClient, JwtBearerConfig};
/// use salesforce_jwt::event_log::{
///     Collector, CollectorOptions, EventLogFileQuery, EventType, FileCheckpointStore,
///     NdjsonFileSink,
/// };
///
/// let client = JwtBearerClient::new(JwtBearerConfig::from_env()?)?;
/// let query = EventLogFileQuery::new().event_types([EventType::Login, EventType::Logout]);
/// let store = FileCheckpointStore::new("collector.checkpoint.json");
/// let mut collector = Collector::new(client, query, store, CollectorOptions::default())?;
/// let mut sink = NdjsonFileSink::resume("events.ndjson", collector.checkpoint())?;
/// let summary = collector
///     .run_pass(&mut sink, &mut |_progress| {}, &AtomicBool::new(false))
///     .await?;
/// println!("{} rows from {} files", summary.rows, summary.files);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Collector<S: CheckpointStore> {
    client: JwtBearerClient,
    template: EventLogFileQuery,
    store: S,
    checkpoint: Checkpoint,
    options: CollectorOptions,
    /// The selected event types, as given (empty: all types, one source).
    event_types: Vec<String>,
    /// Whether EventLogFile is collected at all (see [`Collector::with_sources`]).
    event_log_file: bool,
    /// Real-time objects collected after EventLogFile by
    /// [`run_sources_pass`](Collector::run_sources_pass).
    objects: Vec<EventObject>,
    object_options: ObjectCollectorOptions,
    /// What each source delivered (see [`Collector::figures`]).
    figures: DeliveryFigures,
}

impl<S: CheckpointStore> Collector<S> {
    /// Loads the checkpoint from `store` (a new one is created). `template` chooses event types
    /// and interval; its date filters and cursor are replaced by the collector's own.
    ///
    /// Each selected event type keeps its own position in the checkpoint (see
    /// [`Checkpoint`]): a type the checkpoint does not know yet starts `options.since` ago,
    /// the others go on where they were, and types no longer selected keep their positions.
    /// Refused, with what to do: another interval than the checkpoint's, and all event types
    /// with a checkpoint that collected them one by one (their rows would be delivered again).
    pub fn new(
        client: JwtBearerClient,
        template: EventLogFileQuery,
        store: S,
        options: CollectorOptions,
    ) -> Result<Self, Error> {
        Self::with_sources(
            client,
            Some(template),
            Vec::new(),
            store,
            options,
            ObjectCollectorOptions::default(),
        )
    }

    /// A collector of several sources over one checkpoint and one output: EventLogFile as
    /// [`new`](Self::new) does when `event_log_file` is given (`None`: not collected, and no
    /// EventLogFile position is added to the checkpoint), then each of `objects` as
    /// [`ObjectCollector`](crate::realtime::ObjectCollector) does, with `object_options`. Run it with
    /// [`run_sources_pass`](Self::run_sources_pass).
    ///
    /// Every source keeps its own position under its own key: a source the checkpoint does not
    /// know yet starts from `since`, the others go on where they were, and sources left out
    /// keep their positions for when they come back.
    pub fn with_sources(
        client: JwtBearerClient,
        event_log_file: Option<EventLogFileQuery>,
        objects: Vec<EventObject>,
        mut store: S,
        options: CollectorOptions,
        object_options: ObjectCollectorOptions,
    ) -> Result<Self, Error> {
        object_options.validate()?;
        let collect_event_log_file = event_log_file.is_some();
        let template = event_log_file.unwrap_or_default();
        if options.concurrency == 0 || options.max_file_attempts == 0 {
            return Err(Error::InvalidArgument(
                "collector concurrency and max_file_attempts must be at least 1".into(),
            ));
        }
        store.acquire()?;
        let loaded = store.load()?;
        let mut checkpoint = loaded.clone().unwrap_or_default();
        let mut event_types: Vec<String> = Vec::new();
        for t in template.selected_event_types() {
            // SOQL matches EventType without regard to case, so `login` selects Login's
            // files: it must find Login's position too, not start a second one.
            let known = checkpoint.sources.keys().find_map(|k| {
                k.strip_prefix(EVENT_LOG_FILE_ALL_TYPES)?
                    .strip_prefix('/')
                    .filter(|known| known.eq_ignore_ascii_case(t.as_str()))
            });
            let name = known.unwrap_or(t.as_str()).to_string();
            if !event_types.iter().any(|s| s.eq_ignore_ascii_case(&name)) {
                event_types.push(name);
            }
        }
        // Whole UTC days: a first run at 14:23 with `since` 1d must still take yesterday's
        // daily file, whose LogDate is midnight.
        let floor = earlier(client.clock().now(), options.since, "since")?
            .replace_time(time::Time::MIDNIGHT);
        if collect_event_log_file {
            adopt_sources(
                &mut checkpoint,
                &event_types,
                template.selected_interval(),
                floor,
            )?;
        }
        if loaded.as_ref() != Some(&checkpoint) {
            // Saved before anything is delivered, so that a crash in the first file restarts
            // over the same window.
            store.save(&checkpoint)?;
        }
        let template = EventLogFileQuery::new()
            .event_types(template.selected_event_types().iter().cloned())
            .interval(template.selected_interval());
        Ok(Collector {
            client,
            template,
            store,
            checkpoint,
            options,
            event_types,
            event_log_file: collect_event_log_file,
            objects,
            object_options,
            figures: DeliveryFigures::new(),
        })
    }

    /// Counts deliveries into `figures` instead of the collector's own, so that the figures of
    /// a collector that replaces another (after a failure) go on from the other's.
    pub fn with_figures(mut self, figures: DeliveryFigures) -> Self {
        self.figures = figures;
        self
    }

    /// What each source delivered: a handle another task can read while a pass runs.
    pub fn figures(&self) -> &DeliveryFigures {
        &self.figures
    }

    /// The client the collector sends its requests with (its API usage and budget).
    pub fn client(&self) -> &JwtBearerClient {
        &self.client
    }

    /// The current checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The keys of the selected sources.
    fn selected_keys(&self) -> Vec<String> {
        if self.event_types.is_empty() {
            vec![Checkpoint::event_log_file_key(None)]
        } else {
            self.event_types
                .iter()
                .map(|t| Checkpoint::event_log_file_key(Some(t)))
                .collect()
        }
    }

    /// The key of the source `file` belongs to, if it is selected.
    fn key_of(&self, file: &EventLogFile) -> Option<String> {
        if self.event_types.is_empty() {
            return Some(Checkpoint::event_log_file_key(None));
        }
        let found = self
            .event_types
            .iter()
            .find(|t| t.eq_ignore_ascii_case(file.event_type.as_str()))?;
        Some(Checkpoint::event_log_file_key(Some(found)))
    }

    fn state(&self, key: &str) -> Option<&EventLogFileState> {
        match self.checkpoint.sources.get(key)? {
            SourceState::EventLogFile(state) => Some(state),
            _ => None,
        }
    }

    /// The query the next pass sends: one for the whole selection, from the lowest position
    /// among the selected event types (each file is then checked against its own type's).
    pub fn pass_query(&self) -> EventLogFileQuery {
        let states: Vec<&EventLogFileState> = self
            .selected_keys()
            .iter()
            .filter_map(|k| self.state(k))
            .collect();
        let mut query = self.template.clone();
        if let Some(floor) = states.iter().map(|s| s.log_date_floor).min() {
            query = query.log_date_from(floor);
        }
        let starts: Option<Vec<OffsetDateTime>> = states
            .iter()
            .map(|s| {
                s.cursor
                    .as_ref()
                    .map(|c| window_start(s, c, self.options.lookback))
            })
            .collect();
        match starts.and_then(|s| s.into_iter().min()) {
            Some(start) => query.created_date_from(start),
            None => query,
        }
    }

    /// Whether `file` is still to be collected by its type's position.
    fn is_pending(&self, file: &EventLogFile) -> bool {
        let Some(state) = self.key_of(file).and_then(|k| self.state(&k)) else {
            return false;
        };
        // Under `auto` the query selects every interval; a position created with another
        // interval keeps taking only its own.
        let interval_selected = match state.interval {
            IntervalFilter::All | IntervalFilter::Auto => true,
            IntervalFilter::Daily => file.interval_or_daily() == Interval::Daily,
            IntervalFilter::Hourly => file.interval_or_daily() == Interval::Hourly,
        };
        interval_selected
            && !state.completed.contains_key(&file.id)
            && file.log_date >= state.log_date_floor
            && state
                .cursor
                .as_ref()
                .is_none_or(|c| file.created_date >= window_start(state, c, self.options.lookback))
    }

    /// Whether `file`, under [`IntervalFilter::Auto`], holds events its day's other interval
    /// delivers: a daily file of a day published hourly, or an hourly file of a day already
    /// collected from its daily file.
    fn is_repeat(&self, file: &EventLogFile, hourly_days: &BTreeSet<String>) -> bool {
        let Some(state) = self.key_of(file).and_then(|k| self.state(&k)) else {
            return false;
        };
        if state.interval != IntervalFilter::Auto {
            return false;
        }
        let day = day_key(file);
        let repeat = match (file.interval_or_daily(), state.days.get(&day)) {
            (Interval::Daily, Some(IntervalFilter::Hourly)) => true,
            (Interval::Daily, _) => hourly_days.contains(&day),
            (Interval::Hourly, Some(IntervalFilter::Daily)) => true,
            _ => false,
        };
        if repeat {
            tracing::debug!(id = %file.id, event_type = %file.event_type, interval = file.interval_or_daily().as_str(), day, "EventLogFile left out: its events come from the day's other interval");
        }
        repeat
    }

    /// The files the next pass will collect, in `(CreatedDate, Id)` order, completed ones left
    /// out.
    pub async fn pending_files(&self) -> Result<Vec<EventLogFile>, Error> {
        let listed: Vec<EventLogFile> = self
            .client
            .event_log_files(&self.pass_query())
            .try_collect()
            .await?;
        // The days published hourly, completed files included: their daily file repeats them.
        let hourly_days: BTreeSet<String> = listed
            .iter()
            .filter(|f| f.interval_or_daily() == Interval::Hourly)
            .map(day_key)
            .collect();
        let mut files: Vec<EventLogFile> = listed
            .into_iter()
            .filter(|f| self.is_pending(f) && !self.is_repeat(f, &hourly_days))
            .collect();
        // Salesforce already orders them; sorting again costs nothing and makes the order a
        // property of this code rather than of the server.
        files.sort_by(|a, b| (a.created_date, &a.id).cmp(&(b.created_date, &b.id)));
        files.dedup_by(|a, b| a.id == b.id);
        Ok(files)
    }

    /// Records `file` as delivered (its rows durably written up to `sink_position`) and saves
    /// the checkpoint. Confirm files in the order [`pending_files`](Self::pending_files) gave
    /// them.
    pub fn complete(
        &mut self,
        file: &EventLogFile,
        rows: u64,
        sink_position: Option<u64>,
    ) -> Result<(), Error> {
        self.record(file, rows, sink_position, None)
    }

    /// Records `file` as done (delivered, or given up on with `skipped`) and saves the
    /// checkpoint; the in-memory checkpoint changes only once the save succeeded.
    fn record(
        &mut self,
        file: &EventLogFile,
        rows: u64,
        sink_position: Option<u64>,
        skipped: Option<SkippedFile>,
    ) -> Result<(), Error> {
        let mut next = self.checkpoint.clone();
        let key = self.key_of(file);
        let Some(SourceState::EventLogFile(state)) =
            key.as_ref().and_then(|k| next.sources.get_mut(k))
        else {
            return Err(Error::InvalidArgument(format!(
                "EventLogFile {} has EventType {}, which this collector does not select",
                file.id, file.event_type
            )));
        };
        state.completed.insert(
            file.id.clone(),
            CompletedFile {
                created_date: file.created_date,
                rows,
            },
        );
        if state.interval == IntervalFilter::Auto {
            let collected_as = match file.interval_or_daily() {
                Interval::Hourly => IntervalFilter::Hourly,
                _ => IntervalFilter::Daily,
            };
            state.days.entry(day_key(file)).or_insert(collected_as);
        }
        let cursor = Cursor::of(file);
        if state.cursor.as_ref().is_none_or(|c| *c < cursor) {
            state.cursor = Some(cursor);
        }
        if let Some(cursor) = state.cursor.clone() {
            // Files created before the window can no longer be collected.
            let start = window_start(state, &cursor, self.options.lookback);
            state.completed.retain(|_, f| f.created_date >= start);
            state.window_start = Some(start);
            // A day's files are all created within two days of its end (daily ones the day
            // after, hourly ones hours after the event), so days ending more than two days
            // before the window have no file left to come.
            if let Some(oldest) = start.checked_sub(time::Duration::days(3)) {
                let oldest = oldest.date().to_string();
                state
                    .days
                    .retain(|day, _| day.rsplit(' ').next().is_some_and(|d| d >= oldest.as_str()));
            }
        }
        if sink_position.is_some() {
            next.sink_position = sink_position;
        }
        let delivered = skipped.is_none();
        match skipped {
            Some(skipped) => {
                next.record_skipped(file.id.clone(), skipped);
            }
            None => {
                next.files_delivered += 1;
                next.rows_delivered += rows;
            }
        }
        // Inline on the runtime thread: the store is borrowed, so it cannot move to a blocking
        // thread, and a save is one small write and an fsync. Downloads ahead keep buffering
        // meanwhile (bounded), and this works on any runtime flavour.
        self.store.save(&next)?;
        self.checkpoint = next;
        if delivered {
            self.figures.delivered(
                EVENT_LOG_FILE_ALL_TYPES,
                rows,
                file.log_file_length,
                period_end(file),
            );
        }
        tracing::debug!(id = %file.id, event_type = %file.event_type, rows, "EventLogFile done");
        Ok(())
    }

    /// Records `file` as given up on: it leaves the pending set like a completed file, and
    /// stays listed in the checkpoint's `skipped` with the error.
    fn skip(&mut self, file: &EventLogFile, error: &Error) -> Result<(), Error> {
        let skipped = SkippedFile {
            event_type: file.event_type.to_string(),
            created_date: file.created_date,
            error: error.to_string(),
        };
        self.record(file, 0, None, Some(skipped))
    }

    /// Whether `file` gets another attempt after `error`; if so, waits the backoff first.
    async fn pause_before_retry(&self, file: &EventLogFile, error: &Error, attempt: u32) -> bool {
        if !error.is_retryable() || attempt >= self.options.max_file_attempts {
            return false;
        }
        let policy = self.client.config().retry_policy();
        let delay = match error.retry_after() {
            // The server said when; a Retry-After beyond the policy's whole time budget means
            // the outage outlasts this pass, and the caller's schedule decides.
            Some(asked) if asked > policy.max_elapsed => return false,
            Some(asked) => asked,
            None => full_jitter_backoff(policy, attempt),
        };
        tracing::warn!(id = %file.id, attempt, delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), error = %error, "log file failed; downloading it again");
        self.client.clock().sleep(delay).await;
        true
    }

    /// Runs one pass over every source: EventLogFile (as [`run_pass`](Self::run_pass)), then
    /// each real-time object, all into `sink` with one checkpoint. `progress` is called as work
    /// advances (for objects, [`Progress::files_done`] and [`Progress::files_total`] count
    /// objects and [`Progress::current`] names the object). When `stop` becomes true the pass
    /// ends after the current file, window or batch, with the checkpoint consistent.
    ///
    /// When the client's [API budget](crate::JwtBearerClientBuilder::api_budget) is reached
    /// the pass ends the same way, with
    /// [`SourcesPassSummary::budget_reached`] set. A pass that starts while the last usage
    /// seen is at or above the budget first sends one
    /// [`probe_api_usage`](crate::JwtBearerClient::probe_api_usage) request and goes on only
    /// if usage has fallen below it.
    pub async fn run_sources_pass<K: RecordSink + ObjectSink>(
        &mut self,
        sink: &mut K,
        progress: &mut (dyn FnMut(&Progress) + Send),
        stop: &AtomicBool,
    ) -> Result<SourcesPassSummary, Error> {
        if self.client.api_budget_reached().is_some() {
            // The last pass stopped at the budget: only a response tells whether usage fell,
            // so one request asks before any query is sent.
            self.client.probe_api_usage().await?;
            if let Some(reached) = self.client.api_budget_reached() {
                return Ok(SourcesPassSummary::stopped_by_budget(reached));
            }
        }
        let event_log_file = match self.run_pass(sink, progress, stop).await {
            Ok(summary) => summary,
            Err(error) if error.is_api_budget_reached() => {
                return Ok(SourcesPassSummary::stopped_by_budget(error));
            }
            Err(error) => return Err(error),
        };
        let mut objects = ObjectPassSummary::default();
        let mut budget_reached = None;
        if event_log_file.stopped {
            objects.stopped = true;
        } else if !self.objects.is_empty() {
            // The EventLogFile pass checked the output and recorded it; an object sink must
            // agree with itself as a record sink, which a sink implementing both does.
            begin_output(
                &mut self.checkpoint,
                &mut self.store,
                ObjectSink::output(sink),
                ObjectSink::committed_position(sink),
            )?;
            let collected = collect_objects(
                ObjectsRun {
                    client: &self.client,
                    objects: &self.objects,
                    options: &self.object_options,
                    checkpoint: &mut self.checkpoint,
                    store: &mut self.store,
                    figures: &self.figures,
                },
                sink,
                progress,
                stop,
            )
            .await;
            objects = match collected {
                Ok(summary) => summary,
                // Units committed so far are recorded; the object being read is taken up again
                // from its last committed position by the next pass.
                Err(error) if error.is_api_budget_reached() => {
                    budget_reached = Some(error);
                    ObjectPassSummary {
                        stopped: true,
                        ..ObjectPassSummary::default()
                    }
                }
                Err(error) => return Err(error),
            };
        }
        Ok(SourcesPassSummary {
            event_log_file,
            objects,
            budget_reached,
        })
    }

    /// Runs one pass: queries the pending files, streams each one's rows into `sink` in order,
    /// commits, and records it. A file that fails in a retryable way is rolled back and
    /// downloaded again (up to `max_file_attempts`). `progress` is called as work advances.
    /// When `stop` becomes true the pass ends after the current file, with the checkpoint
    /// consistent.
    ///
    /// Only EventLogFile: a collector made by [`with_sources`](Self::with_sources) without it
    /// delivers nothing here, and its objects are collected by
    /// [`run_sources_pass`](Self::run_sources_pass).
    pub async fn run_pass<K: RecordSink>(
        &mut self,
        sink: &mut K,
        progress: &mut (dyn FnMut(&Progress) + Send),
        stop: &AtomicBool,
    ) -> Result<PassSummary, Error> {
        let started = Instant::now();
        // Before the output is checked: another org's checkpoint says nothing about it.
        crate::event_log::begin_org(&self.client, &mut self.checkpoint, &mut self.store).await?;
        begin_output(
            &mut self.checkpoint,
            &mut self.store,
            RecordSink::output(sink),
            RecordSink::committed_position(sink),
        )?;
        if !self.event_log_file {
            return Ok(PassSummary {
                files: 0,
                skipped: Vec::new(),
                rows: 0,
                bytes: 0,
                stopped: false,
                elapsed: started.elapsed(),
            });
        }
        let files = self.pending_files().await?;
        let mut pass = Pass {
            report: Progress {
                files_done: 0,
                files_total: files.len(),
                rows: 0,
                bytes: 0,
                elapsed: Duration::ZERO,
                current: None,
            },
            started,
            progress,
            committing: None,
        };
        (pass.progress)(&pass.report);
        // A sink that takes encoded lines has them encoded in the download tasks, beside the
        // decoding, so that this task only writes and commits.
        let encoding = sink.encoded_format();
        let mut downloads = self.client.download_files(
            files,
            self.options.concurrency,
            encoding,
            sink.ecs_options(),
        );
        let mut stopped = false;
        let mut skipped = Vec::new();
        while let Some(prefetched) = downloads.next().await {
            if stop.load(Ordering::SeqCst) {
                stopped = true;
                break;
            }
            let file = prefetched.file.clone();
            pass.report.current = Some(file.id.clone());
            let mut attempt = 1;
            let mut next = Some(prefetched);
            let outcome = loop {
                // The first attempt reads the prefetched download (encoded lines or rows); a
                // retry downloads the file again and hands the sink rows.
                let source = match next.take() {
                    Some(records) if encoding.is_some() => Source::Encoded(Box::new(records)),
                    Some(records) => Source::Rows(Box::pin(records)),
                    None => match self.client.log_records(&file).await {
                        Ok(rows) => Source::Rows(Box::pin(rows)),
                        Err(error) => {
                            if self.pause_before_retry(&file, &error, attempt).await {
                                attempt += 1;
                                continue;
                            }
                            break Err(error);
                        }
                    },
                };
                sink.begin_file(&file).await?;
                match self.deliver(sink, &file, source, &mut pass).await? {
                    Ok(count) => break Ok(count),
                    Err((error, delivered)) => {
                        // The file before is recorded before this one is taken back and
                        // waited for again.
                        self.settle(&mut pass).await?;
                        sink.rollback_file(&file).await?;
                        pass.report.rows -= delivered;
                        if self.pause_before_retry(&file, &error, attempt).await {
                            attempt += 1;
                            continue;
                        }
                        break Err(error);
                    }
                }
            };
            // Files are recorded in order: the one before first.
            self.settle(&mut pass).await?;
            match outcome {
                Ok(rows) => {
                    let commit = sink.start_commit(&file).await?;
                    let done = commit.is_done();
                    pass.committing = Some(Committing { file, rows, commit });
                    if done {
                        // A sink that commits at once may rely on the save following its
                        // commit before the next file begins (PgSink does).
                        self.settle(&mut pass).await?;
                    }
                }
                Err(error) if self.options.skip_failed_files && concerns_only_this_file(&error) => {
                    tracing::error!(id = %file.id, event_type = %file.event_type, error = %error, "skipping a log file that cannot be collected; it is listed in the checkpoint");
                    self.skip(&file, &error)?;
                    skipped.push((file.clone(), error));
                    pass.file_done(&file);
                }
                Err(error) => return Err(error),
            }
        }
        self.settle(&mut pass).await?;
        let report = pass.report;
        Ok(PassSummary {
            files: report.files_done - skipped.len(),
            skipped,
            rows: report.rows,
            bytes: report.bytes,
            stopped,
            elapsed: started.elapsed(),
        })
    }
}

impl<S: CheckpointStore> Collector<S> {
    /// Streams a file's rows (or encoded lines) into the sink. The inner error is the file's,
    /// with how many rows had been written (for the progress count); the outer one ends the
    /// pass (the commit of the file before failed).
    async fn deliver<K: RecordSink>(
        &mut self,
        sink: &mut K,
        file: &EventLogFile,
        source: Source,
        pass: &mut Pass<'_>,
    ) -> Result<Result<u64, (Error, u64)>, Error> {
        let mut count = 0u64;
        match source {
            Source::Encoded(mut records) => loop {
                let Some(piece) = self.while_committing(records.next_encoded(), pass).await? else {
                    break;
                };
                let written = match piece {
                    Ok(piece) => sink
                        .write_encoded(file, &piece.lines)
                        .await
                        .map(|()| piece.rows),
                    Err(e) => Err(e),
                };
                match written {
                    Ok(rows) => pass.rows_written(&mut count, rows),
                    Err(e) => return Ok(Err((e, count))),
                }
            },
            Source::Rows(mut rows) => loop {
                let Some(row) = self.while_committing(rows.next(), pass).await? else {
                    break;
                };
                let written = match row {
                    Ok(row) => sink.write_row(file, &row).await,
                    Err(e) => Err(e),
                };
                match written {
                    Ok(()) => pass.rows_written(&mut count, 1),
                    Err(e) => return Ok(Err((e, count))),
                }
            },
        }
        Ok(Ok(count))
    }

    /// Waits for `next` (the next rows of a file); meanwhile, the file whose commit runs is
    /// recorded as soon as the commit resolves, not when this file ends: a download that hangs
    /// must not hold back the checkpoint of the file before it.
    async fn while_committing<F: Future>(
        &mut self,
        next: F,
        pass: &mut Pass<'_>,
    ) -> Result<F::Output, Error> {
        let mut next = std::pin::pin!(next);
        if let Some(committing) = pass.committing.as_mut() {
            match future::select(next.as_mut(), &mut committing.commit).await {
                Either::Left((item, _)) => return Ok(item),
                Either::Right((durable, _)) => self.record_committed(durable, pass)?,
            }
        }
        Ok(next.await)
    }

    /// Waits until the running commit (if any) made its file's rows durable, then records it.
    async fn settle(&mut self, pass: &mut Pass<'_>) -> Result<(), Error> {
        match pass.committing.as_mut() {
            Some(committing) => {
                let durable = (&mut committing.commit).await;
                self.record_committed(durable, pass)
            }
            None => Ok(()),
        }
    }

    /// Records the file of the running commit, which resolved with `durable`.
    fn record_committed(
        &mut self,
        durable: Result<Option<u64>, Error>,
        pass: &mut Pass<'_>,
    ) -> Result<(), Error> {
        let Some(Committing { file, rows, .. }) = pass.committing.take() else {
            return Ok(());
        };
        self.complete(&file, rows, durable?)?;
        pass.report.bytes += file.log_file_length;
        pass.file_done(&file);
        Ok(())
    }
}

/// A pass's running state: its progress and the file whose commit runs.
struct Pass<'p> {
    report: Progress,
    started: Instant,
    progress: &'p mut (dyn FnMut(&Progress) + Send),
    /// The file whose commit runs while the next one is written (at most one).
    committing: Option<Committing>,
}

impl Pass<'_> {
    /// Reports `file` done, delivered or skipped.
    fn file_done(&mut self, file: &EventLogFile) {
        self.report.files_done += 1;
        self.report.elapsed = self.started.elapsed();
        // A file recorded while the next one is written leaves that one current.
        if self.report.current.as_ref() == Some(&file.id) {
            self.report.current = None;
        }
        (self.progress)(&self.report);
    }

    /// Counts `rows` more rows of the current file (`count` so far), reporting progress every
    /// [`PROGRESS_EVERY_ROWS`].
    fn rows_written(&mut self, count: &mut u64, rows: u64) {
        let before = *count;
        *count += rows;
        self.report.rows += rows;
        if before / PROGRESS_EVERY_ROWS != *count / PROGRESS_EVERY_ROWS {
            self.report.elapsed = self.started.elapsed();
            (self.progress)(&self.report);
        }
    }
}

/// A delivered file whose commit was started ([`RecordSink::start_commit`]) and that the
/// checkpoint does not record yet.
struct Committing {
    file: EventLogFile,
    rows: u64,
    commit: PendingCommit,
}

/// Rows between progress reports inside a file: often enough for a live display, rare enough to
/// cost nothing next to the rows themselves.
const PROGRESS_EVERY_ROWS: u64 = 1024;

/// The end of the period `file` covers: its newest event is at most this recent. An `Interval`
/// this crate does not know counts as a day, the longest there is.
fn period_end(file: &EventLogFile) -> Option<OffsetDateTime> {
    let length = match file.interval_or_daily() {
        Interval::Hourly => time::Duration::HOUR,
        Interval::Daily | Interval::Other(_) => time::Duration::DAY,
    };
    file.log_date.checked_add(length)
}

/// Whether `error` is about one file rather than the org, the network or the credentials.
fn concerns_only_this_file(error: &Error) -> bool {
    match error {
        Error::Csv { .. } | Error::TruncatedLogFile { .. } => true,
        Error::Api(api) => api.status == 404,
        _ => false,
    }
}

type RowStream = Pin<Box<dyn Stream<Item = Result<LogRecord, Error>> + Send>>;

/// Where a file's rows come from on one attempt.
enum Source {
    /// The prefetched download, its rows already encoded for the sink.
    Encoded(Box<FileRecords>),
    /// Rows, prefetched or downloaded again.
    Rows(RowStream),
}

/// `"{EventType} {YYYY-MM-DD}"`: the day of `file`'s `LogDate` (UTC) for its event type, the
/// unit [`IntervalFilter::Auto`] takes from one interval.
fn day_key(file: &EventLogFile) -> String {
    let day = file.log_date.to_offset(time::UtcOffset::UTC).date();
    format!("{} {day}", file.event_type.as_str())
}
