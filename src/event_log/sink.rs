//! Where collected rows go: the [`RecordSink`] trait and NDJSON sinks.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{BufWriter, Seek as _, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::ser::SerializeMap;

use crate::error::Error;
use crate::event_log::blocking_io;
use crate::event_log::model::EventLogFile;
use crate::event_log::record::LogRecord;
use crate::format::{OutputFormat, ecs, rfc3339_millis};

/// Receives the rows of each file and makes them durable.
///
/// The [`Collector`](crate::event_log::Collector) calls `begin_file`, `write_row` for every
/// row, then `commit_file`; only after `commit_file` returns does the checkpoint record the
/// file as delivered. If the file fails mid-way it calls `rollback_file` instead, and the file
/// is delivered again from its first row.
pub trait RecordSink: Send {
    /// A file starts.
    fn begin_file(&mut self, file: &EventLogFile)
    -> impl Future<Output = Result<(), Error>> + Send;

    /// One row of the current file.
    fn write_row(
        &mut self,
        file: &EventLogFile,
        row: &LogRecord,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Makes the file's rows durable. Returns a position to store in the checkpoint (such as
    /// the output's length), handed back on restart so the sink can discard anything written
    /// past it; `None` when the sink has no such notion.
    fn commit_file(
        &mut self,
        file: &EventLogFile,
    ) -> impl Future<Output = Result<Option<u64>, Error>> + Send;

    /// Where everything committed so far ends (what `commit_file` last reported, or where the
    /// sink started). The collector records it before the first row of a run, so that a crash
    /// in the very first file can be cut back too. `None` when the sink has no such notion.
    fn committed_position(&self) -> Option<u64> {
        None
    }

    /// Discards what was written since the last commit.
    fn rollback_file(
        &mut self,
        file: &EventLogFile,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// A row as the NDJSON sinks write it: every CSV column under its header name with typed
/// values, plus `EventLogFileId`, `EventType`, `LogDate`, `Interval` and `Sequence`. Datetimes,
/// `LogDate` included, are RFC 3339 UTC with milliseconds (`2024-03-11T00:00:00.000Z`).
#[derive(Debug, Clone, Copy)]
pub struct NdjsonRow<'a> {
    /// The file the row came from.
    pub file: &'a EventLogFile,
    /// The row.
    pub row: &'a LogRecord,
}

impl Serialize for NdjsonRow<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (name, value) in self.row.values() {
            map.serialize_entry(name, &value)?;
        }
        map.serialize_entry("EventLogFileId", &self.file.id)?;
        map.serialize_entry("EventType", self.file.event_type.as_str())?;
        map.serialize_entry("LogDate", &rfc3339_millis(self.file.log_date))?;
        map.serialize_entry("Interval", self.file.interval_or_daily().as_str())?;
        map.serialize_entry("Sequence", &self.file.sequence)?;
        map.end()
    }
}

/// Writes NDJSON to any writer (stdout, a pipe). It cannot take back rows once written, so a
/// crash mid-file may repeat that file's rows: for exactly-once output use
/// [`NdjsonFileSink`].
#[derive(Debug)]
pub struct NdjsonSink<W: Write + Send> {
    out: W,
    line: Vec<u8>,
    /// What `out` is, for error messages.
    name: String,
    format: OutputFormat,
}

impl<W: Write + Send> NdjsonSink<W> {
    /// A sink writing to `out`.
    pub fn new(out: W) -> Self {
        Self::named(out, "the NDJSON output".to_string())
    }

    fn named(out: W, name: String) -> Self {
        NdjsonSink {
            out,
            line: Vec::with_capacity(1024),
            name,
            format: OutputFormat::default(),
        }
    }

    /// Writes `format`: plain rows ([`OutputFormat::Ndjson`], the default) or ECS documents
    /// ([`OutputFormat::Ecs`]), one a line either way.
    pub fn with_format(mut self, format: OutputFormat) -> Self {
        self.format = format;
        self
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

fn encode_row(
    line: &mut Vec<u8>,
    format: OutputFormat,
    file: &EventLogFile,
    row: &LogRecord,
) -> Result<(), Error> {
    line.clear();
    let written = match format {
        OutputFormat::Ecs => serde_json::to_writer(&mut *line, &ecs::EcsRow { file, row }),
        OutputFormat::Ndjson => serde_json::to_writer(&mut *line, &NdjsonRow { file, row }),
    };
    written.map_err(|e| Error::Csv {
        id: file.id.clone(),
        line: row.line(),
        message: format!("cannot encode the row as JSON: {e}"),
    })?;
    line.push(b'\n');
    Ok(())
}

impl<W: Write + Send> RecordSink for NdjsonSink<W> {
    async fn begin_file(&mut self, _file: &EventLogFile) -> Result<(), Error> {
        Ok(())
    }

    async fn write_row(&mut self, file: &EventLogFile, row: &LogRecord) -> Result<(), Error> {
        encode_row(&mut self.line, self.format, file, row)?;
        self.out
            .write_all(&self.line)
            .map_err(|e| Error::io(format!("writing {}", self.name), e))
    }

    async fn commit_file(&mut self, _file: &EventLogFile) -> Result<Option<u64>, Error> {
        self.out
            .flush()
            .map_err(|e| Error::io(format!("flushing {}", self.name), e))?;
        Ok(None)
    }

    async fn rollback_file(&mut self, file: &EventLogFile) -> Result<(), Error> {
        tracing::warn!(id = %file.id, "file failed mid-way; rows already written to the stream cannot be taken back and will be written again");
        Ok(())
    }
}

/// Writes NDJSON to a file with exactly-once rows across crashes.
///
/// `commit_file` flushes and fsyncs and reports the file's length; the collector stores it in
/// the checkpoint. On restart, [`open`](Self::open) truncates anything past that length (rows of
/// a file that was not confirmed), and `rollback_file` does the same after a failed file.
#[derive(Debug)]
pub struct NdjsonFileSink {
    path: PathBuf,
    ndjson: NdjsonSink<BufWriter<File>>,
    committed: u64,
}

impl NdjsonFileSink {
    /// Opens (or creates) `path`. `committed` is the checkpoint's
    /// [`sink_position`](crate::event_log::Checkpoint::sink_position): the file is cut back to
    /// it. With `None` (no checkpoint yet) new rows are appended after what the file holds.
    ///
    /// A file shorter than `committed` is refused: rows that were delivered are missing from it,
    /// so it was truncated or replaced by something else.
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
            // other's rows. The lock is released when the sink is dropped or the process dies.
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
                        "the output holds {len} bytes but the checkpoint says {c} bytes were \
                         delivered: the output was truncated or replaced. Restore it, or start \
                         over with a new checkpoint"
                    ),
                });
            }
            Some(c) => c,
        };
        if len > committed {
            tracing::info!(path = %path.display(), discarded = len - committed, "discarding rows of an unconfirmed file from an earlier run");
        }
        let name = path.display().to_string();
        let mut sink = NdjsonFileSink {
            path,
            ndjson: NdjsonSink::named(BufWriter::with_capacity(256 * 1024, file), name),
            committed,
        };
        sink.cut_back()?;
        Ok(sink)
    }

    /// Writes `format` (see [`NdjsonSink::with_format`]). One output file should hold one
    /// format: set the same one on every run.
    pub fn with_format(mut self, format: OutputFormat) -> Self {
        self.ndjson = self.ndjson.with_format(format);
        self
    }

    /// The output's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cut_back(&mut self) -> Result<(), Error> {
        let committed = self.committed;
        let path = self.path.display().to_string();
        // Discard buffered bytes by flushing them first: BufWriter cannot drop its buffer, and
        // the truncation below removes them from the file anyway.
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
            .map_err(|e| Error::io(format!("syncing {path}"), e))?;
        Ok(())
    }
}

impl RecordSink for NdjsonFileSink {
    async fn begin_file(&mut self, _file: &EventLogFile) -> Result<(), Error> {
        Ok(())
    }

    async fn write_row(&mut self, file: &EventLogFile, row: &LogRecord) -> Result<(), Error> {
        self.ndjson.write_row(file, row).await
    }

    async fn commit_file(&mut self, file: &EventLogFile) -> Result<Option<u64>, Error> {
        self.ndjson.commit_file(file).await?;
        let path = self.path.display().to_string();
        let file = self.ndjson.out.get_mut();
        blocking_io(|| file.sync_data()).map_err(|e| Error::io(format!("syncing {path}"), e))?;
        self.committed = file
            .stream_position()
            .map_err(|e| Error::io(format!("reading the position in {path}"), e))?;
        Ok(Some(self.committed))
    }

    fn committed_position(&self) -> Option<u64> {
        Some(self.committed)
    }

    async fn rollback_file(&mut self, _file: &EventLogFile) -> Result<(), Error> {
        blocking_io(|| self.cut_back())
    }
}
