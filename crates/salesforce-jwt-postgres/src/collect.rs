//! The library's [`CheckpointStore`] and [`RecordSink`] over PostgreSQL: a file's rows and the
//! checkpoint that records the file are committed in one fenced transaction.

use std::sync::{Arc, Mutex, PoisonError};

use salesforce_jwt::Error;
use salesforce_jwt::event_log::{
    Checkpoint, CheckpointStore, EventLogFile, LogRecord, NdjsonRow, RecordSink,
};
use salesforce_jwt::format::event_id::{log_row_event_id, object_event_id};
use salesforce_jwt::realtime::{Batch, NdjsonObjectRow, ObjectRecord, ObjectSink};

use crate::error::PgError;
use crate::lease::Lease;
use crate::store::EventRow;
use crate::worker::PgWorker;

/// What [`PgSink::output`] names: the positions are commit sequence numbers of this table in
/// the database that also holds the checkpoint.
pub const PG_OUTPUT: &str = "PostgreSQL table salesforce_events";

/// Rows handed over from the sink to the store, and the last position known to be durable.
#[derive(Debug, Default)]
struct Staging {
    /// The `sink_position` of the checkpoint last loaded or saved: how many files' commits the
    /// table holds for this `(org, source)`, as a sequence number.
    durable: Option<u64>,
    /// A committed file's rows and the position its checkpoint must carry, waiting for `save`.
    staged: Option<(u64, Vec<EventRow>)>,
}

type Shared = Arc<Mutex<Staging>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Staging> {
    // The data stays consistent across a panic (plain assignments), so a poisoned lock is
    // still usable.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The checkpoint of one `(org, source)` in PostgreSQL, written only under its [`Lease`].
///
/// Paired with a [`PgSink`] ([`sink`](Self::sink)): the sink stages a file's rows at
/// `commit_file`, and `save` inserts them into `salesforce_events` in the same transaction that
/// checks the lease's fencing token and writes the checkpoint. If `save` fails, nothing of the
/// file is durable and the collector delivers it again.
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
            rows: Vec::new(),
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
        // behind, so the collector's redelivery starts from a clean slate.
        let staged = lock(&self.shared).staged.take();
        let rows = match staged {
            Some((position, rows)) if checkpoint.sink_position == Some(position) => rows,
            Some((position, _)) => {
                return Err(Error::InvalidArgument(format!(
                    "{}: rows staged at position {position} but the checkpoint records {:?}; \
                     every commit_file must be followed by the save that records it",
                    self.context("saving"),
                    checkpoint.sink_position
                )));
            }
            None => Vec::new(),
        };
        let value = checkpoint.clone();
        self.worker
            .run_blocking(move |store| async move { store.commit(&lease, &rows, &value).await })
            .map_err(|e| store_error(self.context("saving"), e))?;
        if checkpoint.sink_position.is_some() {
            lock(&self.shared).durable = checkpoint.sink_position;
        }
        Ok(())
    }
}

/// Rows bound for `salesforce_events`, made durable by the paired [`PgCheckpointStore`]'s
/// `save` (see there). Its positions are commit sequence numbers: the checkpoint's
/// `sink_position` counts the files committed through it, so the collector's start-of-pass
/// check compares the database's count with its own.
#[derive(Debug)]
pub struct PgSink {
    shared: Shared,
    rows: Vec<EventRow>,
}

impl RecordSink for PgSink {
    async fn begin_file(&mut self, _file: &EventLogFile) -> Result<(), Error> {
        self.rows.clear();
        Ok(())
    }

    async fn write_row(&mut self, file: &EventLogFile, row: &LogRecord) -> Result<(), Error> {
        let record = serde_json::to_vec(&NdjsonRow { file, row }).map_err(|e| Error::Csv {
            id: file.id.clone(),
            line: row.line(),
            message: format!("cannot encode the row as JSON: {e}"),
        })?;
        self.rows.push(EventRow {
            event_id: log_row_event_id(file, row),
            record,
        });
        Ok(())
    }

    async fn commit_file(&mut self, _file: &EventLogFile) -> Result<Option<u64>, Error> {
        Ok(Some(self.stage()))
    }

    fn committed_position(&self) -> Option<u64> {
        self.durable()
    }

    fn output(&self) -> Option<String> {
        Some(PG_OUTPUT.to_string())
    }

    async fn rollback_file(&mut self, _file: &EventLogFile) -> Result<(), Error> {
        self.discard();
        Ok(())
    }
}

/// Real-time rows take the same path: a window's (or keyset batch's) rows are staged at
/// `commit` and made durable with the checkpoint that records the window.
impl ObjectSink for PgSink {
    async fn begin(&mut self, _batch: &Batch<'_>) -> Result<(), Error> {
        self.rows.clear();
        Ok(())
    }

    async fn write(&mut self, batch: &Batch<'_>, record: &ObjectRecord) -> Result<(), Error> {
        let object = batch.object;
        let json = serde_json::to_vec(&NdjsonObjectRow { object, record }).map_err(|e| {
            Error::sink(
                format!("encoding a {} row as JSON", object.name()),
                e,
                false,
            )
        })?;
        self.rows.push(EventRow {
            event_id: object_event_id(object.name(), record.fields()),
            record: json,
        });
        Ok(())
    }

    async fn commit(&mut self, _batch: &Batch<'_>) -> Result<Option<u64>, Error> {
        Ok(Some(self.stage()))
    }

    async fn rollback(&mut self, _batch: &Batch<'_>) -> Result<(), Error> {
        self.discard();
        Ok(())
    }

    fn committed_position(&self) -> Option<u64> {
        self.durable()
    }

    fn output(&self) -> Option<String> {
        Some(PG_OUTPUT.to_string())
    }
}

impl PgSink {
    /// Hands the rows written since the last commit to the store, under the next position.
    fn stage(&mut self) -> u64 {
        let mut shared = lock(&self.shared);
        let position = shared.durable.unwrap_or(0) + 1;
        shared.staged = Some((position, std::mem::take(&mut self.rows)));
        position
    }

    fn durable(&self) -> Option<u64> {
        Some(lock(&self.shared).durable.unwrap_or(0))
    }

    fn discard(&mut self) {
        self.rows.clear();
        lock(&self.shared).staged = None;
    }
}
