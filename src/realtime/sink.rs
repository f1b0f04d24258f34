//! Where collected real-time rows go: the [`ObjectSink`] trait and NDJSON sinks.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{BufWriter, Seek as _, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::ser::SerializeMap;
use time::OffsetDateTime;

use crate::error::Error;
use crate::realtime::object::EventObject;
use crate::realtime::record::ObjectRecord;

/// A unit of delivery: the rows of one `EventDate` window of a big object, or one keyset batch
/// of a standard object. The collector's state advances past it only after
/// [`ObjectSink::commit`] returns.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// The object the rows come from.
    pub object: &'a EventObject,
    /// The exclusive lower bound (`EventDate` or `CreatedDate`).
    pub after: OffsetDateTime,
    /// The inclusive upper bound.
    pub up_to: OffsetDateTime,
}

/// Receives real-time rows and makes them durable, like
/// [`RecordSink`](crate::event_log::RecordSink) for EventLogFile rows.
///
/// The collector calls `begin`, `write` for each new row, then `commit`; only after `commit`
/// returns does the source's state advance. If the batch fails it calls `rollback`, and the
/// batch is read again later.
pub trait ObjectSink: Send {
    /// A batch starts.
    fn begin(&mut self, batch: &Batch<'_>) -> impl Future<Output = Result<(), Error>> + Send;

    /// One row of the current batch.
    fn write(
        &mut self,
        batch: &Batch<'_>,
        record: &ObjectRecord,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Makes the batch's rows durable. Returns a position to save with the state (such as the
    /// output's length), handed back on restart so the sink can discard anything written past
    /// it; `None` when the sink has no such notion.
    fn commit(
        &mut self,
        batch: &Batch<'_>,
    ) -> impl Future<Output = Result<Option<u64>, Error>> + Send;

    /// Discards what was written since the last commit.
    fn rollback(&mut self, batch: &Batch<'_>) -> impl Future<Output = Result<(), Error>> + Send;
}

/// A row as the NDJSON sinks write it: every field under its API name with its JSON value
/// (relationships nested), plus `"SObjectType": "<object name>"`.
#[derive(Debug, Clone, Copy)]
pub struct NdjsonObjectRow<'a> {
    /// The object the row comes from.
    pub object: &'a EventObject,
    /// The row.
    pub record: &'a ObjectRecord,
}

impl Serialize for NdjsonObjectRow<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fields = self.record.fields();
        let mut map = s.serialize_map(Some(fields.len() + 1))?;
        for (name, value) in fields {
            if name != "SObjectType" {
                map.serialize_entry(name, value)?;
            }
        }
        map.serialize_entry("SObjectType", self.object.name())?;
        map.end()
    }
}

fn encode(line: &mut Vec<u8>, object: &EventObject, record: &ObjectRecord) -> Result<(), Error> {
    line.clear();
    serde_json::to_writer(&mut *line, &NdjsonObjectRow { object, record })
        .map_err(|e| Error::Internal(format!("cannot encode a {object} row as JSON: {e}")))?;
    line.push(b'\n');
    Ok(())
}

/// Writes NDJSON to any writer. It cannot take rows back, so a failure mid-batch may repeat
/// that batch's rows: for exactly-once output use [`NdjsonObjectFileSink`].
#[derive(Debug)]
pub struct NdjsonObjectSink<W: Write + Send> {
    out: W,
    line: Vec<u8>,
    name: String,
}

impl<W: Write + Send> NdjsonObjectSink<W> {
    /// A sink writing to `out`.
    pub fn new(out: W) -> Self {
        Self::named(out, "the NDJSON output".to_string())
    }

    fn named(out: W, name: String) -> Self {
        NdjsonObjectSink {
            out,
            line: Vec::with_capacity(1024),
            name,
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write + Send> ObjectSink for NdjsonObjectSink<W> {
    async fn begin(&mut self, _batch: &Batch<'_>) -> Result<(), Error> {
        Ok(())
    }

    async fn write(&mut self, batch: &Batch<'_>, record: &ObjectRecord) -> Result<(), Error> {
        encode(&mut self.line, batch.object, record)?;
        self.out
            .write_all(&self.line)
            .map_err(|e| Error::io(format!("writing {}", self.name), e))
    }

    async fn commit(&mut self, _batch: &Batch<'_>) -> Result<Option<u64>, Error> {
        self.out
            .flush()
            .map_err(|e| Error::io(format!("flushing {}", self.name), e))?;
        Ok(None)
    }

    async fn rollback(&mut self, batch: &Batch<'_>) -> Result<(), Error> {
        tracing::warn!(object = %batch.object, "batch failed mid-way; rows already written to the stream cannot be taken back and will be written again");
        Ok(())
    }
}

/// Writes NDJSON to a file with exactly-once rows across crashes: `commit` fsyncs and reports
/// the file's length, saved with the state; [`open`](Self::open) cuts the file back to the saved
/// length (rows of a batch that was not confirmed), and `rollback` does the same.
#[derive(Debug)]
pub struct NdjsonObjectFileSink {
    path: PathBuf,
    ndjson: NdjsonObjectSink<BufWriter<File>>,
    committed: u64,
}

impl NdjsonObjectFileSink {
    /// Opens (or creates) `path`, cut back to `committed` (the store's
    /// [`sink_position`](crate::realtime::ObjectStateStore::sink_position)); with `None`, new
    /// rows are appended after what the file holds. A file shorter than `committed` is refused:
    /// delivered rows are missing from it.
    pub fn open(path: impl AsRef<Path>, committed: Option<u64>) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let context = |what: &str| format!("{what} the output file {}", path.display());
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(context("opening"), e))?;
        match file.try_lock() {
            Ok(()) => {}
            // Two collectors appending to one output would interleave and cut back each
            // other's rows. The lock goes with the sink (or the process).
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::io(
                    format!(
                        "{} is in use by another collector; run one collector per output file",
                        path.display()
                    ),
                    std::io::Error::from(std::io::ErrorKind::WouldBlock),
                ));
            }
            // Some network filesystems have no locks; collecting matters more than the guard.
            Err(std::fs::TryLockError::Error(e)) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot lock the output file; make sure only one collector writes to it");
            }
        }
        let len = file
            .metadata()
            .map_err(|e| Error::io(context("reading the length of"), e))?
            .len();
        let committed = match committed {
            None => len,
            Some(c) if len < c => {
                return Err(Error::Checkpoint {
                    path: path.clone(),
                    message: format!(
                        "the output holds {len} bytes but the saved state says {c} bytes were \
                         delivered: the output was truncated or replaced. Restore it, or start \
                         over with a new state"
                    ),
                });
            }
            Some(c) => c,
        };
        if len > committed {
            tracing::info!(path = %path.display(), discarded = len - committed, "discarding rows of an unconfirmed batch from an earlier run");
        }
        let name = path.display().to_string();
        let mut sink = NdjsonObjectFileSink {
            path,
            ndjson: NdjsonObjectSink::named(BufWriter::with_capacity(256 * 1024, file), name),
            committed,
        };
        sink.cut_back()?;
        Ok(sink)
    }

    /// The output's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cut_back(&mut self) -> Result<(), Error> {
        let committed = self.committed;
        let path = self.path.display().to_string();
        // BufWriter cannot drop its buffer: flush it, then the truncation removes it.
        self.ndjson
            .out
            .flush()
            .map_err(|e| Error::io(format!("flushing {path}"), e))?;
        let file = self.ndjson.out.get_mut();
        file.set_len(committed)
            .map_err(|e| Error::io(format!("truncating {path}"), e))?;
        file.seek(SeekFrom::Start(committed))
            .map_err(|e| Error::io(format!("seeking in {path}"), e))?;
        file.sync_all()
            .map_err(|e| Error::io(format!("syncing {path}"), e))
    }
}

impl ObjectSink for NdjsonObjectFileSink {
    async fn begin(&mut self, _batch: &Batch<'_>) -> Result<(), Error> {
        Ok(())
    }

    async fn write(&mut self, batch: &Batch<'_>, record: &ObjectRecord) -> Result<(), Error> {
        self.ndjson.write(batch, record).await
    }

    async fn commit(&mut self, batch: &Batch<'_>) -> Result<Option<u64>, Error> {
        self.ndjson.commit(batch).await?;
        let path = self.path.display().to_string();
        let file = self.ndjson.out.get_mut();
        file.sync_data()
            .map_err(|e| Error::io(format!("syncing {path}"), e))?;
        self.committed = file
            .stream_position()
            .map_err(|e| Error::io(format!("reading the position in {path}"), e))?;
        Ok(Some(self.committed))
    }

    async fn rollback(&mut self, _batch: &Batch<'_>) -> Result<(), Error> {
        self.cut_back()
    }
}
