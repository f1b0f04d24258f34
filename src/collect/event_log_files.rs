//! The EventLogFile source's walk: files in `(CreatedDate, Id)` order, exactly once across
//! restarts.
//!
//! A file counts as delivered only after the sink confirmed its rows were durably written;
//! only then does the checkpoint move. Hourly files can become visible after files with a
//! later `CreatedDate` were already collected, so every pass re-queries a lookback window
//! before the cursor and skips the files the checkpoint lists as completed there.

use std::collections::BTreeSet;
use std::pin::Pin;

use futures_util::future::{self, Either};
use futures_util::{Stream, StreamExt as _, TryStreamExt as _};
use time::OffsetDateTime;

use crate::client::JwtBearerClient;
use crate::collect::checkpoint::{
    Checkpoint, CheckpointStore, CompletedFile, EVENT_LOG_FILE_ALL_TYPES, EventLogFileState,
    SkippedFile, SourceState,
};
use crate::collect::options::CollectorOptions;
use crate::collect::pass::{Delivered, Pass};
use crate::collect::positions::window_start;
use crate::collect::sink::{PendingCommit, Row, Sink, Unit};
use crate::collect::source::Source;
use crate::error::Error;
use crate::event_log_file::{
    Cursor, EventLogFile, EventLogFileQuery, FileRecords, Interval, IntervalFilter, LogRecord,
};
use crate::retry::full_jitter_backoff;

/// What the EventLogFile source reads: the event types and interval selected, and how.
#[derive(Debug)]
pub(crate) struct EventLogFiles {
    /// The selection (event types and interval), without dates or cursor.
    pub(crate) template: EventLogFileQuery,
    /// The selected event types, as given (empty: all types, one source).
    pub(crate) event_types: Vec<String>,
    pub(crate) options: CollectorOptions,
    /// Download slots shared with other collectors (see
    /// [`Collector::with_download_slots`](crate::collect::Collector::with_download_slots)).
    pub(crate) slots: Option<std::sync::Arc<tokio::sync::Semaphore>>,
}

impl EventLogFiles {
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

    fn state<'c>(checkpoint: &'c Checkpoint, key: &str) -> Option<&'c EventLogFileState> {
        match checkpoint.sources.get(key)? {
            SourceState::EventLogFile(state) => Some(state),
            _ => None,
        }
    }

    /// The query the next pass sends: one for the whole selection, from the lowest position
    /// among the selected event types (each file is then checked against its own type's).
    pub(crate) fn pass_query(&self, checkpoint: &Checkpoint) -> EventLogFileQuery {
        let states: Vec<&EventLogFileState> = self
            .selected_keys()
            .iter()
            .filter_map(|k| Self::state(checkpoint, k))
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
    fn is_pending(&self, checkpoint: &Checkpoint, file: &EventLogFile) -> bool {
        let Some(state) = self.key_of(file).and_then(|k| Self::state(checkpoint, &k)) else {
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
    fn is_repeat(
        &self,
        checkpoint: &Checkpoint,
        file: &EventLogFile,
        hourly_days: &BTreeSet<String>,
    ) -> bool {
        let Some(state) = self.key_of(file).and_then(|k| Self::state(checkpoint, &k)) else {
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
    pub(crate) async fn pending_files(
        &self,
        client: &JwtBearerClient,
        checkpoint: &Checkpoint,
    ) -> Result<Vec<EventLogFile>, Error> {
        let listed: Vec<EventLogFile> = client
            .event_log_files(&self.pass_query(checkpoint))
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
            .filter(|f| {
                self.is_pending(checkpoint, f) && !self.is_repeat(checkpoint, f, &hourly_days)
            })
            .collect();
        // Salesforce already orders them; sorting again costs nothing and makes the order a
        // property of this code rather than of the server.
        files.sort_by(|a, b| (a.created_date, &a.id).cmp(&(b.created_date, &b.id)));
        files.dedup_by(|a, b| a.id == b.id);
        Ok(files)
    }

    /// Records `file` as done (delivered, or given up on with `skipped`) in the checkpoint,
    /// through the pass's one save.
    pub(crate) fn record<S: CheckpointStore + ?Sized>(
        &self,
        pass: &mut Pass<'_, S>,
        file: &EventLogFile,
        rows: u64,
        sink_position: Option<u64>,
        skipped: Option<SkippedFile>,
    ) -> Result<(), Error> {
        let key = self.key_of(file);
        let lookback = self.options.lookback;
        let delivered = skipped.is_none().then(|| Delivered {
            source: EVENT_LOG_FILE_ALL_TYPES,
            files: 1,
            rows,
            bytes: file.log_file_length,
            newest: period_end(file),
        });
        pass.save(sink_position, delivered.as_ref(), |next| {
            let Some(SourceState::EventLogFile(state)) =
                key.as_ref().and_then(|k| next.sources.get_mut(k))
            else {
                return Err(Error::InvalidArgument(format!(
                    "EventLogFile {} has EventType {}, which this collector does not select",
                    file.id, file.event_type
                )));
            };
            advance(state, file, rows, lookback);
            if let Some(skipped) = skipped {
                next.record_skipped(file.id.clone(), skipped);
            }
            Ok(())
        })?;
        pass.report.files_done += 1;
        // A file recorded while the next one is written leaves that one current.
        if pass.report.current.as_ref() == Some(&file.id) {
            pass.report.current = None;
        }
        match delivered {
            Some(delivered) => {
                pass.summary.files += 1;
                pass.delivered(delivered);
            }
            None => pass.report(),
        }
        tracing::debug!(id = %file.id, event_type = %file.event_type, rows, "EventLogFile done");
        Ok(())
    }

    /// Whether `file` gets another attempt after `error`; if so, waits the backoff first.
    async fn pause_before_retry(
        &self,
        client: &JwtBearerClient,
        file: &EventLogFile,
        error: &Error,
        attempt: u32,
    ) -> bool {
        if !error.is_retryable() || attempt >= self.options.max_file_attempts {
            return false;
        }
        let policy = client.config().retry_policy();
        let delay = match error.retry_after() {
            // The server said when; a Retry-After beyond the policy's whole time budget means
            // the outage outlasts this pass, and the caller's schedule decides.
            Some(asked) if asked > policy.max_elapsed => return false,
            Some(asked) => asked,
            None => full_jitter_backoff(policy, attempt),
        };
        tracing::warn!(id = %file.id, attempt, delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), error = %error, "log file failed; downloading it again");
        client.clock().sleep(delay).await;
        true
    }
}

impl Source for EventLogFiles {
    fn name(&self) -> &str {
        EVENT_LOG_FILE_ALL_TYPES
    }

    /// Queries the pending files, streams each one's rows into `sink` in order, commits, and
    /// records it. A file that fails in a retryable way is rolled back and downloaded again (up
    /// to `max_file_attempts`). A stop request ends the walk after the current file, with the
    /// checkpoint consistent.
    async fn collect<S: CheckpointStore + ?Sized, K: Sink>(
        &self,
        pass: &mut Pass<'_, S>,
        sink: &mut K,
    ) -> Result<(), Error> {
        let client = pass.client;
        let files = self.pending_files(client, pass.checkpoint).await?;
        pass.report.files_total = files.len();
        pass.report();
        // A sink that takes encoded lines has them encoded in the download tasks, beside the
        // decoding, so that this task only writes and commits.
        let encoding = sink.encoded_format();
        let mut downloads = client.download_files(
            files,
            self.options.concurrency,
            encoding,
            sink.ecs_options(),
            self.slots.clone(),
        );
        // The file whose commit runs while the next one is written (at most one).
        let mut committing: Option<Committing> = None;
        while let Some(prefetched) = downloads.next().await {
            if pass.stop_requested() {
                pass.summary.stopped = true;
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
                    Some(records) if encoding.is_some() => Rows::Encoded(Box::new(records)),
                    Some(records) => Rows::Rows(Box::pin(records)),
                    None => match client.log_records(&file).await {
                        Ok(rows) => Rows::Rows(Box::pin(rows)),
                        Err(error) => {
                            if self
                                .pause_before_retry(client, &file, &error, attempt)
                                .await
                            {
                                attempt += 1;
                                continue;
                            }
                            break Err(error);
                        }
                    },
                };
                sink.begin(&Unit::LogFile(&file)).await?;
                match self
                    .deliver(sink, &file, source, pass, &mut committing)
                    .await?
                {
                    Ok(count) => break Ok(count),
                    Err((error, delivered)) => {
                        // The file before is recorded before this one is taken back and
                        // waited for again.
                        self.settle(pass, &mut committing).await?;
                        sink.rollback(&Unit::LogFile(&file)).await?;
                        pass.report.rows -= delivered;
                        if self
                            .pause_before_retry(client, &file, &error, attempt)
                            .await
                        {
                            attempt += 1;
                            continue;
                        }
                        break Err(error);
                    }
                }
            };
            // Files are recorded in order: the one before first.
            self.settle(pass, &mut committing).await?;
            match outcome {
                Ok(rows) => {
                    let commit = sink.start_commit(&Unit::LogFile(&file)).await?;
                    let done = commit.is_done();
                    committing = Some(Committing { file, rows, commit });
                    if done {
                        // A sink that commits at once may rely on the save following its
                        // commit before the next file begins (PgSink does).
                        self.settle(pass, &mut committing).await?;
                    }
                }
                Err(error) if self.options.skip_failed_files && concerns_only_this_file(&error) => {
                    tracing::error!(id = %file.id, event_type = %file.event_type, error = %error, "skipping a log file that cannot be collected; it is listed in the checkpoint");
                    let skipped = SkippedFile {
                        event_type: file.event_type.to_string(),
                        created_date: file.created_date,
                        error: error.to_string(),
                    };
                    self.record(pass, &file, 0, None, Some(skipped))?;
                    pass.summary.skipped.push((file.clone(), error));
                }
                Err(error) => return Err(error),
            }
        }
        self.settle(pass, &mut committing).await
    }
}

impl EventLogFiles {
    /// Streams a file's rows (or encoded lines) into the sink. The inner error is the file's,
    /// with how many rows had been written (for the progress count); the outer one ends the
    /// pass (the commit of the file before failed).
    async fn deliver<S: CheckpointStore + ?Sized, K: Sink>(
        &self,
        sink: &mut K,
        file: &EventLogFile,
        source: Rows,
        pass: &mut Pass<'_, S>,
        committing: &mut Option<Committing>,
    ) -> Result<Result<u64, (Error, u64)>, Error> {
        let mut count = 0u64;
        match source {
            Rows::Encoded(mut records) => loop {
                let Some(piece) = self
                    .while_committing(records.next_encoded(), pass, committing)
                    .await?
                else {
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
            Rows::Rows(mut rows) => loop {
                let Some(row) = self.while_committing(rows.next(), pass, committing).await? else {
                    break;
                };
                let written = match row {
                    Ok(record) => {
                        sink.write(Row::LogFile {
                            file,
                            record: &record,
                        })
                        .await
                    }
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
    async fn while_committing<F: Future, S: CheckpointStore + ?Sized>(
        &self,
        next: F,
        pass: &mut Pass<'_, S>,
        committing: &mut Option<Committing>,
    ) -> Result<F::Output, Error> {
        let mut next = std::pin::pin!(next);
        if let Some(running) = committing.as_mut() {
            match future::select(next.as_mut(), &mut running.commit).await {
                Either::Left((item, _)) => return Ok(item),
                Either::Right((durable, _)) => self.record_committed(durable, pass, committing)?,
            }
        }
        Ok(next.await)
    }

    /// Waits until the running commit (if any) made its file's rows durable, then records it.
    async fn settle<S: CheckpointStore + ?Sized>(
        &self,
        pass: &mut Pass<'_, S>,
        committing: &mut Option<Committing>,
    ) -> Result<(), Error> {
        match committing.as_mut() {
            Some(running) => {
                let durable = (&mut running.commit).await;
                self.record_committed(durable, pass, committing)
            }
            None => Ok(()),
        }
    }

    /// Records the file of the running commit, which resolved with `durable`.
    fn record_committed<S: CheckpointStore + ?Sized>(
        &self,
        durable: Result<Option<u64>, Error>,
        pass: &mut Pass<'_, S>,
        committing: &mut Option<Committing>,
    ) -> Result<(), Error> {
        let Some(Committing { file, rows, .. }) = committing.take() else {
            return Ok(());
        };
        self.record(pass, &file, rows, durable?, None)
    }
}

/// Moves `state` past `file`, delivered with `rows` rows (or given up on).
fn advance(
    state: &mut EventLogFileState,
    file: &EventLogFile,
    rows: u64,
    lookback: std::time::Duration,
) {
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
        let start = window_start(state, &cursor, lookback);
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
}

/// A delivered file whose commit was started ([`Sink::start_commit`]) and that the
/// checkpoint does not record yet.
struct Committing {
    file: EventLogFile,
    rows: u64,
    commit: PendingCommit,
}

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
enum Rows {
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
