//! The library's [`CheckpointStore`] and [`Sink`] over PostgreSQL: a file's rows and the
//! checkpoint that records the file are committed in one fenced transaction.
//!
//! The rows go into that transaction while the file downloads, a batch at a time (see
//! [`BATCH_BYTES`]), so a file of any size costs a few batches of memory; the transaction
//! commits only at the checkpoint's save.

use std::sync::{Arc, Mutex, PoisonError};

use salesforce_jwt::Error;
use salesforce_jwt::collect::{Checkpoint, CheckpointStore, Row, Sink, Unit};
use salesforce_jwt::format::event_id::{log_row_event_id, object_event_id};
use salesforce_jwt::sink::{NdjsonObjectRow, NdjsonRow};

use crate::error::PgError;
use crate::lease::Lease;
use crate::nul::escape_nul;
use crate::store::{Delivered, EventRow, RowsTransaction, encode_checkpoint};
use crate::worker::PgWorker;

/// What [`PgSink::output`] names: the positions are commit sequence numbers of this table in
/// the database that also holds the checkpoint.
pub const PG_OUTPUT: &str = "PostgreSQL table salesforce_events";

/// Rows are handed to PostgreSQL in batches of about this many bytes of JSON. With the
/// batches the transaction has not taken yet (two at most) and the one it copies, this bounds
/// the memory a file's rows take, whatever the file's size; large enough that a batch costs
/// far more in rows than in its round trip.
const BATCH_BYTES: usize = 256 << 10;

/// Rows handed over from the sink to the store, and the last position known to be durable.
#[derive(Debug, Default)]
struct Staging {
    /// The `sink_position` of the checkpoint last loaded or saved: how many files' commits the
    /// table holds for this `(org, source)`, as a sequence number.
    durable: Option<u64>,
    /// A committed file's rows and the position its checkpoint must carry, waiting for `save`.
    staged: Option<(u64, Staged)>,
    /// Rows found already in `salesforce_events` since the store was made.
    already_present: u64,
}

/// A committed file's rows, waiting for the save that makes them durable.
#[derive(Debug)]
enum Staged {
    /// All of them, fewer than a batch: they go in with the save.
    Rows(Vec<EventRow>),
    /// The transaction that received them while the file downloaded.
    Streamed(RowsTransaction),
}

type Shared = Arc<Mutex<Staging>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Staging> {
    // The data stays consistent across a panic (plain assignments), so a poisoned lock is
    // still usable.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The checkpoint of one `(org, source)` in PostgreSQL, written only under its [`Lease`].
///
/// Paired with a [`PgSink`] ([`sink`](Self::sink)): the sink hands a file's rows to a
/// transaction as they come, and `save` inserts them into `salesforce_events` in that same
/// transaction, which checks the lease's fencing token and writes the checkpoint. If `save`
/// fails, nothing of the file is durable and the collector delivers it again.
///
/// A row whose `event_id` the table already holds for the `(org, source)` (Salesforce
/// publishes the same rows in a daily and an hourly file, and a file can hold a row twice) is
/// counted as delivered and not inserted again ([`PgSink::already_present`]).
///
/// A `save` whose outcome is unknown (the connection broke during COMMIT) may have committed:
/// start over from a new collector (which `load`s the checkpoint) after any failed save, as
/// sf-ingest does, so the position is read back rather than guessed.
#[derive(Debug)]
pub struct PgCheckpointStore {
    worker: PgWorker,
    org: String,
    source: String,
    lease: Option<Lease>,
    ttl: std::time::Duration,
    shared: Shared,
}

impl PgCheckpointStore {
    /// The checkpoint of `(org, source)`. Without [`with_lease`](Self::with_lease),
    /// [`acquire`](CheckpointStore::acquire) claims the lease for `ttl`.
    pub fn new(
        worker: PgWorker,
        org: impl Into<String>,
        source: impl Into<String>,
        ttl: std::time::Duration,
    ) -> Self {
        PgCheckpointStore {
            worker,
            org: org.into(),
            source: source.into(),
            lease: None,
            ttl,
            shared: Shared::default(),
        }
    }

    /// Writes under `lease`, claimed by the caller (who renews it).
    pub fn with_lease(mut self, lease: Lease) -> Self {
        self.org = lease.org.clone();
        self.source = lease.source.clone();
        self.lease = Some(lease);
        self
    }

    /// The lease this store writes under, once claimed.
    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }

    /// The sink whose rows this store commits. Make it before handing the store to a
    /// collector.
    pub fn sink(&self) -> PgSink {
        PgSink {
            shared: Arc::clone(&self.shared),
            worker: self.worker.clone(),
            rows: Vec::new(),
            bytes: 0,
            streaming: None,
        }
    }

    fn context(&self, doing: &str) -> String {
        format!(
            "{doing} the checkpoint of org {:?} source {:?} in PostgreSQL",
            self.org, self.source
        )
    }
}

fn store_error(context: String, e: PgError) -> Error {
    let retryable = e.is_retryable();
    Error::checkpoint_store(context, e, retryable)
}

impl CheckpointStore for PgCheckpointStore {
    fn acquire(&mut self) -> Result<(), Error> {
        if self.lease.is_some() {
            return Ok(());
        }
        let (org, source, ttl) = (self.org.clone(), self.source.clone(), self.ttl);
        let lease = self
            .worker
            .run_blocking(move |store| async move { store.claim(&org, &source, ttl).await })
            .map_err(|e| store_error(self.context("claiming the lease of"), e))?;
        self.lease = Some(lease);
        Ok(())
    }

    fn load(&self) -> Result<Option<Checkpoint>, Error> {
        let (org, source) = (self.org.clone(), self.source.clone());
        let value = self
            .worker
            .run_blocking(move |store| async move {
                store
                    .load_checkpoint::<serde_json::Value>(&org, &source)
                    .await
            })
            .map_err(|e| store_error(self.context("loading"), e))?;
        let Some(value) = value else {
            lock(&self.shared).durable = None;
            return Ok(None);
        };
        let checkpoint = serde_json::to_vec(&value)
            .map_err(|e| e.to_string())
            .and_then(|bytes| Checkpoint::from_json(&bytes))
            .map_err(|message| {
                store_error(
                    self.context("reading"),
                    PgError::Checkpoint {
                        org: self.org.clone(),
                        source_name: self.source.clone(),
                        message,
                    },
                )
            })?;
        lock(&self.shared).durable = checkpoint.sink_position;
        Ok(Some(checkpoint))
    }

    fn save(&mut self, checkpoint: &Checkpoint) -> Result<(), Error> {
        let Some(lease) = self.lease.clone() else {
            return Err(Error::InvalidArgument(format!(
                "{}: the store has no lease; call acquire first (Collector::new does)",
                self.context("saving")
            )));
        };
        // Taken out whatever happens next: a failed save must leave nothing of the file
        // behind (its transaction is committed here or rolled back when dropped), so the
        // collector's redelivery starts from a clean slate.
        let staged = lock(&self.shared).staged.take();
        let staged = match staged {
            Some((position, staged)) if checkpoint.sink_position == Some(position) => Some(staged),
            Some((position, _)) => {
                return Err(Error::InvalidArgument(format!(
                    "{}: rows staged at position {position} but the checkpoint records {:?}; \
                     every commit_file must be followed by the save that records it",
                    self.context("saving"),
                    checkpoint.sink_position
                )));
            }
            None => None,
        };
        let value = encode_checkpoint(&lease, checkpoint)
            .map_err(|e| store_error(self.context("saving"), e))?;
        let delivered = self
            .worker
            .run_blocking(move |store| async move {
                match staged {
                    Some(Staged::Streamed(rows)) => rows.commit(lease, value).await,
                    Some(Staged::Rows(rows)) => store.deliver(&lease, rows, &value).await,
                    None => store
                        .commit(&lease, &[], &value)
                        .await
                        .map(|()| Delivered::default()),
                }
            })
            .map_err(|e| store_error(self.context("saving"), e))?;
        if delivered.rows > 0 {
            tracing::debug!(
                org = %self.org,
                source = %self.source,
                rows = delivered.rows,
                already_present = delivered.already_present,
                "rows committed into salesforce_events (already_present: delivered before, not inserted again)"
            );
        }
        let mut shared = lock(&self.shared);
        shared.already_present += delivered.already_present;
        if checkpoint.sink_position.is_some() {
            shared.durable = checkpoint.sink_position;
        }
        Ok(())
    }
}

/// Rows bound for `salesforce_events`, made durable by the paired [`PgCheckpointStore`]'s
/// `save` (see there). Its positions are commit sequence numbers: the checkpoint's
/// `sink_position` counts the files committed through it, so the collector's start-of-pass
/// check compares the database's count with its own.
///
/// Memory: a file's rows go to PostgreSQL in batches of about 256 KiB while the file
/// downloads, waiting when PostgreSQL is slower, so a file of any size takes a few batches.
#[derive(Debug)]
pub struct PgSink {
    shared: Shared,
    worker: PgWorker,
    /// The batch being filled.
    rows: Vec<EventRow>,
    /// Its size, as JSON.
    bytes: usize,
    /// The current file's transaction, once a batch was full.
    streaming: Option<RowsTransaction>,
}

/// Log-file and object rows take the same path: a unit's rows are staged at `commit` and made
/// durable with the checkpoint that records the unit.
impl Sink for PgSink {
    async fn begin(&mut self, _unit: &Unit<'_>) -> Result<(), Error> {
        self.restart();
        Ok(())
    }

    async fn write(&mut self, row: Row<'_>) -> Result<(), Error> {
        match row {
            Row::LogFile { file, record } => {
                let json = serde_json::to_vec(&NdjsonRow { file, row: record }).map_err(|e| {
                    Error::Csv {
                        id: file.id.clone(),
                        line: record.line(),
                        message: format!("cannot encode the row as JSON: {e}"),
                    }
                })?;
                self.push(
                    EventRow {
                        event_id: log_row_event_id(file, record),
                        record: json,
                    },
                    || format!("handing the rows of EventLogFile {} to PostgreSQL", file.id),
                )
                .await
            }
            Row::Object { object, record } => {
                let json =
                    serde_json::to_vec(&NdjsonObjectRow { object, record }).map_err(|e| {
                        Error::sink(
                            format!("encoding a {} row as JSON", object.name()),
                            e,
                            false,
                        )
                    })?;
                self.push(
                    EventRow {
                        event_id: object_event_id(object.name(), record.fields()),
                        record: json,
                    },
                    || format!("handing {} rows to PostgreSQL", object.name()),
                )
                .await
            }
            // A source this sink does not know yet: refused rather than dropped.
            _ => Err(Error::sink(
                "handing rows to PostgreSQL",
                "a row of a source this sink does not know",
                false,
            )),
        }
    }

    async fn commit(&mut self, unit: &Unit<'_>) -> Result<Option<u64>, Error> {
        let context = match unit {
            Unit::LogFile(file) => {
                format!("handing the rows of EventLogFile {} to PostgreSQL", file.id)
            }
            other => format!("handing {} rows to PostgreSQL", other.source()),
        };
        self.stage(|| context.clone()).await.map(Some)
    }

    fn committed_position(&self) -> Option<u64> {
        self.durable()
    }

    fn output(&self) -> Option<String> {
        Some(PG_OUTPUT.to_string())
    }

    async fn rollback(&mut self, _unit: &Unit<'_>) -> Result<(), Error> {
        self.discard();
        Ok(())
    }
}

impl PgSink {
    /// Rows found already in `salesforce_events` (delivered before: the same rows in a daily
    /// and an hourly file, or twice in one file) since the paired store was made. They count as
    /// delivered; only the first of them is in the table.
    pub fn already_present(&self) -> u64 {
        lock(&self.shared).already_present
    }

    /// Adds `row` to the batch, which goes to the file's transaction once full: the wait for
    /// PostgreSQL bounds the memory.
    async fn push(
        &mut self,
        mut row: EventRow,
        context: impl FnOnce() -> String,
    ) -> Result<(), Error> {
        escape_nul(&mut row);
        self.bytes += row.record.len() + row.event_id.len();
        self.rows.push(row);
        if self.bytes >= BATCH_BYTES {
            self.flush().await.map_err(|e| sink_error(context(), e))?;
        }
        Ok(())
    }

    /// Sends the batch to the file's transaction, opening it on the first batch.
    async fn flush(&mut self) -> Result<(), PgError> {
        let capacity = self.rows.len();
        let rows = std::mem::replace(&mut self.rows, Vec::with_capacity(capacity));
        self.bytes = 0;
        let streaming = match self.streaming.as_mut() {
            Some(streaming) => streaming,
            None => {
                let opened = self
                    .worker
                    .run(|store| async move { Ok(store.open_rows()) })
                    .await?;
                self.streaming.insert(opened)
            }
        };
        if let Err(e) = streaming.send(rows).await {
            self.streaming = None;
            return Err(e);
        }
        Ok(())
    }

    /// Hands the rows written since the last commit to the store, under the next position.
    async fn stage(&mut self, context: impl FnOnce() -> String) -> Result<u64, Error> {
        if self.streaming.is_some() && !self.rows.is_empty() {
            self.flush().await.map_err(|e| sink_error(context(), e))?;
        }
        let staged = match self.streaming.take() {
            Some(streaming) => Staged::Streamed(streaming),
            None => Staged::Rows(std::mem::take(&mut self.rows)),
        };
        self.bytes = 0;
        let mut shared = lock(&self.shared);
        let position = shared.durable.unwrap_or(0) + 1;
        shared.staged = Some((position, staged));
        Ok(position)
    }

    fn durable(&self) -> Option<u64> {
        Some(lock(&self.shared).durable.unwrap_or(0))
    }

    /// Drops what was written since the last commit; a transaction that received some of it
    /// rolls back. A staged commit stays for its save.
    fn restart(&mut self) {
        self.rows.clear();
        self.bytes = 0;
        self.streaming = None;
    }

    /// Drops what was written since the last commit, and a staged commit.
    fn discard(&mut self) {
        self.restart();
        lock(&self.shared).staged = None;
    }
}

fn sink_error(context: String, e: PgError) -> Error {
    let retryable = e.is_retryable();
    Error::sink(context, e, retryable)
}
