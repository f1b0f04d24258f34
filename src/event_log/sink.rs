//! Where collected rows go: the [`RecordSink`] trait and NDJSON sinks, which also take
//! real-time object rows ([`ObjectSink`]) into the same output.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use serde::Serialize;
use serde::ser::SerializeMap;

use crate::error::Error;
use crate::event_log::checkpoint::sync_dir;
use crate::event_log::model::EventLogFile;
use crate::event_log::record::LogRecord;
use crate::format::ecs::{EcsEncoder, EcsOptions};
use crate::format::json::NdjsonEncoder;
use crate::format::{OutputFormat, ecs, rfc3339_millis};
use crate::realtime::{Batch, EventObject, NdjsonObjectRow, ObjectRecord, ObjectSink};

mod output_file;

use output_file::OutputFile;

/// Receives the rows of each file and makes them durable.
///
/// The [`Collector`](crate::event_log::Collector) calls `begin_file`, `write_row` for every
/// row, then [`start_commit`](Self::start_commit) (by default, `commit_file`); only once that
/// commit completed does the checkpoint record the file as delivered. If the file fails mid-way
/// it calls `rollback_file` instead, and the file is delivered again from its first row.
///
/// # The restart protocol
///
/// A process can die between a commit and the checkpoint save that records it (with a commit
/// running in the background, while the next file is written), so the output can hold rows the
/// checkpoint does not count. Exactly-once delivery needs the sink to take part through
/// *positions*, numbers that say how far the committed output reaches (a file length, a row
/// count, a transaction sequence):
///
/// - `commit_file` makes the file's rows durable and returns the position where the committed
///   output now ends; the collector stores it as
///   [`Checkpoint::sink_position`](crate::event_log::Checkpoint::sink_position) in the same
///   save that records the file.
/// - `committed_position` returns where the committed output ends now: the last commit's
///   position, or, before any, where the sink started. The collector records it before the
///   first row of a new checkpoint, and at the start of every pass compares it with the
///   checkpoint's: a difference means a commit, checkpoint save or rollback failed earlier,
///   and the pass is refused with an [`Error::Sink`] rather than going on from a position
///   nobody can prove.
/// - On restart, open the sink at the checkpoint's `sink_position` and **cut back** everything
///   past it before taking rows: that is the file whose commit the checkpoint never recorded,
///   and it is delivered again. [`NdjsonFileSink::resume`] does this.
/// - `output` names the output, so a checkpoint is never applied to another one.
///
/// A sink without positions (`None` everywhere, like [`NdjsonSink`]) is at-least-once: after a
/// crash, the file being delivered may appear twice.
///
/// # Errors
///
/// Return the sink's own failures with [`Error::sink`], saying whether a retry may help: a
/// retryable error from `write_row` makes the collector roll the file back and download it
/// again, any other ends the pass. After an error whose effect on the output is unknown, refuse
/// every later call until the sink is reopened (the provided sinks do).
///
/// tests/collector.rs holds a complete example over an in-memory transactional store
/// (`TransactionalSink`), tested for exactly-once across a failure mid-file and a restart.
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

    /// Starts making the file's rows durable, as [`commit_file`](Self::commit_file) does, and
    /// returns a [`PendingCommit`] that resolves once they are, with the position.
    ///
    /// The [`Collector`](crate::event_log::Collector) commits through this. While a commit is
    /// [running](PendingCommit::running), it begins the next file and writes its rows, so the
    /// disk works while rows arrive; it records the file in the checkpoint only once the commit
    /// resolved, waits for it before the next commit, and stops at its error. The sink must
    /// treat a started commit as final at once: a `rollback_file` of the next file discards only
    /// what was written after it. If it fails, the output holds the file but the checkpoint
    /// does not, as when a process dies before the save: the next pass's position check
    /// refuses to go on, and a restart cuts the file back.
    ///
    /// The default commits with `commit_file` and returns a commit that is
    /// [done](PendingCommit::done): the collector then records the file before it begins the
    /// next one, the order of every sink that does not override this (a sink that makes rows
    /// durable in the checkpoint's own save relies on it).
    fn start_commit(
        &mut self,
        file: &EventLogFile,
    ) -> impl Future<Output = Result<PendingCommit, Error>> + Send {
        async move { self.commit_file(file).await.map(PendingCommit::done) }
    }

    /// Where everything committed so far ends (what `commit_file` last reported, or where the
    /// sink started). The collector records it before the first row of a run, so that a crash
    /// in the very first file can be cut back too. `None` when the sink has no such notion.
    fn committed_position(&self) -> Option<u64> {
        None
    }

    /// Which output the positions refer to (for a file, its absolute path), recorded in
    /// [`Checkpoint::output`](crate::event_log::Checkpoint::output) by the first pass; a later
    /// pass with a sink naming another output is refused. `None` (the default) when positions
    /// mean nothing or the sink cannot tell.
    fn output(&self) -> Option<String> {
        None
    }

    /// Discards what was written since the last commit.
    fn rollback_file(
        &mut self,
        file: &EventLogFile,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The format this sink writes rows in, when it takes them already encoded through
    /// [`write_encoded`](Self::write_encoded); `None` (the default) when it takes rows.
    ///
    /// With `Some`, the [`Collector`](crate::event_log::Collector) encodes each file's rows in
    /// that file's download task, where they are decoded, so that decoding and encoding run on
    /// the runtime's worker threads beside the collector's own task, which only writes and
    /// commits (bounded by the same byte budget as the rows; a retried file takes
    /// [`write_row`](Self::write_row)). The protocol is unchanged: `begin_file`, the file's
    /// lines, `commit_file` or `rollback_file`.
    fn encoded_format(&self) -> Option<OutputFormat> {
        None
    }

    /// The options of the ECS documents the sink writes, for the encoding done in the
    /// download tasks ([`encoded_format`](Self::encoded_format)); the defaults unless the sink
    /// was given others.
    fn ecs_options(&self) -> EcsOptions {
        EcsOptions::default()
    }

    /// Whole lines of the current file's rows, in file order, encoded in
    /// [`encoded_format`](Self::encoded_format) exactly as [`write_row`](Self::write_row) would
    /// have written them. Called only when `encoded_format` returns `Some`; the default refuses.
    fn write_encoded(
        &mut self,
        file: &EventLogFile,
        lines: &[u8],
    ) -> impl Future<Output = Result<(), Error>> + Send {
        let refused = Error::Internal(format!(
            "the sink was handed {} bytes of encoded rows of EventLogFile {} but takes rows \
             (its encoded_format is None)",
            lines.len(),
            file.id
        ));
        async move { Err(refused) }
    }
}

/// A commit started by [`RecordSink::start_commit`]: a future that resolves once the file's
/// rows are durable, with the position to store in the checkpoint.
#[must_use = "the file's rows are durable only once the commit resolved"]
pub struct PendingCommit(Pending);

enum Pending {
    Done(Option<u64>),
    Running(BoxFuture<'static, Result<Option<u64>, Error>>),
    /// A running commit that failed, kept so that polling again gives the error again.
    Failed(Error),
}

impl PendingCommit {
    /// A commit that completed: the rows are durable, and `position` is what
    /// [`RecordSink::commit_file`] would return.
    pub fn done(position: Option<u64>) -> Self {
        PendingCommit(Pending::Done(position))
    }

    /// A commit that completes when `durable` resolves, with the position it gives. It must
    /// make progress without being polled (a task, a blocking thread): the collector polls it
    /// only while it waits for the next file's rows.
    pub fn running(
        durable: impl Future<Output = Result<Option<u64>, Error>> + Send + 'static,
    ) -> Self {
        PendingCommit(Pending::Running(durable.boxed()))
    }

    /// Whether the commit is known to have completed ([`done`](Self::done), or a running one
    /// that resolved successfully).
    pub fn is_done(&self) -> bool {
        matches!(self.0, Pending::Done(_))
    }
}

/// Resolves once the rows are durable; polled again, it gives the same outcome.
impl Future for PendingCommit {
    type Output = Result<Option<u64>, Error>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let outcome = match &mut self.0 {
            Pending::Done(position) => return std::task::Poll::Ready(Ok(*position)),
            Pending::Failed(error) => return std::task::Poll::Ready(Err(error.clone())),
            Pending::Running(durable) => std::task::ready!(durable.as_mut().poll(cx)),
        };
        // The finished future must not be polled again.
        self.0 = match &outcome {
            Ok(position) => Pending::Done(*position),
            Err(error) => Pending::Failed(error.clone()),
        };
        std::task::Poll::Ready(outcome)
    }
}

impl fmt::Debug for PendingCommit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Pending::Done(position) => f
                .debug_tuple("PendingCommit::done")
                .field(position)
                .finish(),
            Pending::Running(_) => f.write_str("PendingCommit::running(..)"),
            Pending::Failed(error) => f.debug_tuple("PendingCommit::failed").field(error).finish(),
        }
    }
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
    /// The first I/O error, after which the sink refuses everything: what the output holds
    /// past its last commit is unknown, so only reopening (and cutting back) is safe.
    poisoned: Option<Error>,
    format: OutputFormat,
    /// `data_stream.namespace` and `salesforce.instance_url` of ECS documents.
    ecs: EcsOptions,
    /// Log-file rows' JSON, with the keys of the current file's columns cached.
    encoders: Encoders,
    /// Bytes handed to `out` so far.
    written: u64,
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
            poisoned: None,
            format: OutputFormat::default(),
            ecs: EcsOptions::default(),
            encoders: Encoders::default(),
            written: 0,
        }
    }

    /// Fails when an earlier I/O error poisoned the sink.
    fn guard(&self) -> Result<(), Error> {
        match &self.poisoned {
            None => Ok(()),
            Some(first) => Err(Error::sink(
                format!(
                    "{} failed earlier, so what it holds past its last commit is unknown; it \
                     takes nothing more until reopened (NdjsonFileSink::resume cuts the file \
                     back to the checkpoint)",
                    self.name
                ),
                first.clone(),
                false,
            )),
        }
    }

    /// Passes `result` on, poisoning the sink if it is an error.
    fn poison_on_error<T>(&mut self, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(e) = &result
            && self.poisoned.is_none()
        {
            self.poisoned = Some(e.clone());
        }
        result
    }

    /// Writes `format`: plain rows ([`OutputFormat::Ndjson`], the default) or ECS documents
    /// ([`OutputFormat::Ecs`]), one a line either way.
    pub fn with_format(mut self, format: OutputFormat) -> Self {
        self.format = format;
        self
    }

    /// The `data_stream.namespace` and `salesforce.instance_url` of the ECS documents it
    /// writes ([`OutputFormat::Ecs`]).
    pub fn with_ecs_options(mut self, options: EcsOptions) -> Self {
        self.encoders = Encoders::new(&options);
        self.ecs = options;
        self
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// The direct encoders of log-file rows, one per format.
#[derive(Debug, Default)]
pub(crate) struct Encoders {
    ndjson: NdjsonEncoder,
    ecs: EcsEncoder,
}

impl Encoders {
    /// Encoders writing ECS documents with `ecs`.
    pub(crate) fn new(ecs: &EcsOptions) -> Self {
        Encoders {
            ndjson: NdjsonEncoder::default(),
            ecs: EcsEncoder::new(ecs.clone()),
        }
    }
}

/// Appends the row's line (newline included) to `out`: the same bytes as `serde_json` writes
/// for [`NdjsonRow`] or [`ecs::EcsRow`] (tests/encode.rs compares them), written directly. On
/// error `out` may hold part of the line: the caller drops the buffer with the error.
pub(crate) fn append_row(
    out: &mut Vec<u8>,
    encoders: &mut Encoders,
    format: OutputFormat,
    file: &EventLogFile,
    row: &LogRecord,
) -> Result<(), Error> {
    let written = match format {
        OutputFormat::Ecs => {
            encoders.ecs.encode(out, file, row);
            Ok(())
        }
        OutputFormat::Ndjson => encoders.ndjson.encode(out, file, row),
    };
    written.map_err(|e| Error::Csv {
        id: file.id.clone(),
        line: row.line(),
        message: format!("cannot encode the row as JSON: {e}"),
    })?;
    out.push(b'\n');
    Ok(())
}

fn encode_object(
    line: &mut Vec<u8>,
    format: OutputFormat,
    ecs_options: &EcsOptions,
    object: &EventObject,
    record: &ObjectRecord,
) -> Result<(), Error> {
    line.clear();
    let written = match format {
        OutputFormat::Ecs => serde_json::to_writer(
            &mut *line,
            &ecs::object_document_with(object.name(), record.fields(), ecs_options),
        ),
        OutputFormat::Ndjson => {
            serde_json::to_writer(&mut *line, &NdjsonObjectRow { object, record })
        }
    };
    written.map_err(|e| Error::Internal(format!("cannot encode a {object} row as JSON: {e}")))?;
    line.push(b'\n');
    Ok(())
}

impl<W: Write + Send> NdjsonSink<W> {
    fn write_line(&mut self) -> Result<(), Error> {
        let line = std::mem::take(&mut self.line);
        let written = self.write_bytes(&line);
        self.line = line;
        written
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.guard()?;
        let written = self
            .out
            .write_all(bytes)
            .map_err(|e| Error::io(format!("writing {}", self.name), e));
        self.written += bytes.len() as u64;
        self.poison_on_error(written)
    }

    fn flush_out(&mut self) -> Result<(), Error> {
        self.guard()?;
        let flushed = self
            .out
            .flush()
            .map_err(|e| Error::io(format!("flushing {}", self.name), e));
        self.poison_on_error(flushed)
    }
}

/// Object rows as one JSON object a line: [`NdjsonObjectRow`] with [`OutputFormat::Ndjson`],
/// [`ecs::object_document`] with [`OutputFormat::Ecs`].
impl<W: Write + Send> ObjectSink for NdjsonSink<W> {
    async fn begin(&mut self, _batch: &Batch<'_>) -> Result<(), Error> {
        self.guard()
    }

    async fn write(&mut self, batch: &Batch<'_>, record: &ObjectRecord) -> Result<(), Error> {
        self.guard()?;
        encode_object(&mut self.line, self.format, &self.ecs, batch.object, record)?;
        self.write_line()
    }

    async fn commit(&mut self, _batch: &Batch<'_>) -> Result<Option<u64>, Error> {
        self.flush_out()?;
        Ok(None)
    }

    async fn rollback(&mut self, batch: &Batch<'_>) -> Result<(), Error> {
        self.guard()?;
        tracing::warn!(object = %batch.object, "batch failed mid-way; rows already written to the stream cannot be taken back and will be written again");
        Ok(())
    }
}

impl<W: Write + Send> RecordSink for NdjsonSink<W> {
    async fn begin_file(&mut self, _file: &EventLogFile) -> Result<(), Error> {
        Ok(())
    }

    async fn write_row(&mut self, file: &EventLogFile, row: &LogRecord) -> Result<(), Error> {
        self.guard()?;
        self.line.clear();
        append_row(&mut self.line, &mut self.encoders, self.format, file, row)?;
        self.write_line()
    }

    fn encoded_format(&self) -> Option<OutputFormat> {
        Some(self.format)
    }

    fn ecs_options(&self) -> EcsOptions {
        self.ecs.clone()
    }

    async fn write_encoded(&mut self, _file: &EventLogFile, lines: &[u8]) -> Result<(), Error> {
        self.write_bytes(lines)
    }

    async fn commit_file(&mut self, _file: &EventLogFile) -> Result<Option<u64>, Error> {
        self.flush_out()?;
        Ok(None)
    }

    async fn rollback_file(&mut self, file: &EventLogFile) -> Result<(), Error> {
        self.guard()?;
        tracing::warn!(id = %file.id, "file failed mid-way; rows already written to the stream cannot be taken back and will be written again");
        Ok(())
    }
}

/// Writes NDJSON to a file with exactly-once rows across crashes.
///
/// `commit_file` flushes and fsyncs and reports the file's length; the collector stores it in
/// the checkpoint. Through [`RecordSink::start_commit`] the fsync runs on a blocking thread
/// while the collector writes the next file. On restart, [`open`](Self::open) truncates
/// anything past that length (rows of a file that was not confirmed), and `rollback_file` does
/// the same after a failed file.
///
/// On Linux, whole 4 KiB blocks of the output go straight to the disk (`O_DIRECT`) where the
/// filesystem allows it, and only each commit's last partial block through the page cache: the
/// kernel's copy of every byte into the cache, and its writeback, were a quarter to a half of
/// the collector's CPU. A reader of the output (a shipper tailing it) then reads it from the
/// disk. Where `O_DIRECT` is refused, everything goes through the page cache.
#[derive(Debug)]
pub struct NdjsonFileSink {
    path: PathBuf,
    /// The absolute path, for [`RecordSink::output`].
    output: String,
    ndjson: NdjsonSink<OutputFile>,
    committed: u64,
    writeback: Writeback,
}

/// Bytes written after which the sink asks the disk, in the background, for what it wrote so
/// far (see [`Writeback`]).
const WRITEBACK_BYTES: u64 = 16 << 20;

/// An fdatasync started on a blocking thread every [`WRITEBACK_BYTES`] and not waited for, so
/// that the disk writes while rows are still arriving. Without it a file's lines reach the disk
/// only in the commit's fdatasync (the kernel starts writeback on its own only past a tenth of
/// the memory), and with files of hundreds of MB the pass stood still for most of a second at
/// every commit: about 2.7 s of a 10 s pass with six 116 MB files in ECS, measured with
/// strace. A commit's own sync is started the same way ([`RecordSink::start_commit`]).
///
/// Each sync waits for the one before it and fails with its error: an error is reported to
/// one fdatasync only, so a commit must fail if an earlier background one failed.
#[derive(Default)]
struct Writeback {
    /// Bytes written when the last one started.
    started_at: u64,
    /// The last one started; it resolves once it and all before it did.
    running: Option<BackgroundSync>,
}

/// An fdatasync of the output on a blocking thread, awaited by the sink and by the commit it
/// was started for.
type BackgroundSync = Shared<BoxFuture<'static, Result<(), Error>>>;

impl Writeback {
    /// The outcome of the last one started, if it has finished.
    fn finished(&self) -> Option<Result<(), Error>> {
        self.running.as_ref()?.clone().now_or_never()
    }
}

impl fmt::Debug for Writeback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writeback")
            .field("started_at", &self.started_at)
            .field("running", &self.running.is_some())
            .finish()
    }
}

impl NdjsonFileSink {
    /// Opens (or creates) `path` to go on from `checkpoint`: the file is cut back to the
    /// checkpoint's [`sink_position`](crate::event_log::Checkpoint::sink_position), as with
    /// [`open`](Self::open), but only after checking that the checkpoint belongs to this file
    /// ([`Checkpoint::output`](crate::event_log::Checkpoint::output)). A checkpoint of another
    /// output is refused before the file is touched, so reusing a checkpoint with the wrong
    /// output never cuts back an unrelated file. (A checkpoint migrated from version 1 names
    /// no output and cannot be checked; the first pass records this one.)
    pub fn resume(
        path: impl AsRef<Path>,
        checkpoint: &crate::event_log::Checkpoint,
    ) -> Result<Self, Error> {
        let path = path.as_ref();
        if let Some(recorded) = &checkpoint.output {
            let current = output_name(path)?;
            if *recorded != current {
                return Err(Error::Checkpoint {
                    path: path.to_path_buf(),
                    message: format!(
                        "the checkpoint given for this output belongs to another output, \
                         {recorded}; its position means nothing here, so this file was left \
                         untouched. Use the checkpoint (--state) that belongs to {current}, or \
                         a new one (which starts from --since)"
                    ),
                });
            }
        }
        Self::open(path, checkpoint.sink_position)
    }

    /// Opens (or creates) `path` at a position, without checking which output the checkpoint
    /// belongs to: prefer [`resume`](Self::resume). `committed` is the checkpoint's
    /// [`sink_position`](crate::event_log::Checkpoint::sink_position): the file is cut back to
    /// it. With `None` (no checkpoint yet) new rows are appended after what the file holds.
    ///
    /// A file shorter than `committed` is refused: rows that were delivered are missing from it,
    /// so it was truncated or replaced by something else.
    pub fn open(path: impl AsRef<Path>, committed: Option<u64>) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let context = |what: &str| format!("{what} the output file {}", path.display());
        let (file, created) = match OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)
        {
            Ok(file) => (file, true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(|e| Error::io(context("opening"), e))?;
                (file, false)
            }
            Err(e) => return Err(Error::io(context("creating"), e)),
        };
        if created {
            // A new file's rows are durable only once its directory entry is: without this a
            // power loss could take the whole file after its rows were confirmed.
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            sync_dir(&dir).map_err(|e| {
                Error::io(
                    format!(
                        "syncing the directory {} of the new output file",
                        dir.display()
                    ),
                    e,
                )
            })?;
        }
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
        let output = output_name(&path)?;
        let out = OutputFile::new(file, &path, committed)
            .map_err(|e| Error::io(context("reading the end of"), e))?;
        let mut sink = NdjsonFileSink {
            path,
            output,
            ndjson: NdjsonSink::named(out, name),
            committed,
            writeback: Writeback::default(),
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

    /// See [`NdjsonSink::with_ecs_options`].
    pub fn with_ecs_options(mut self, options: EcsOptions) -> Self {
        self.ndjson = self.ndjson.with_ecs_options(options);
        self
    }

    /// The output's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cut_back(&mut self) -> Result<(), Error> {
        let committed = self.committed;
        let path = self.path.display().to_string();
        self.ndjson.out.discard();
        let file = self.ndjson.out.file();
        file.set_len(committed)
            .map_err(|e| Error::io(format!("truncating {path}"), e))?;
        file.sync_all()
            .map_err(|e| Error::io(format!("syncing {path}"), e))?;
        self.reload()
    }

    /// Points the writer at the committed end, once the file was cut there.
    fn reload(&mut self) -> Result<(), Error> {
        let committed = self.committed;
        self.ndjson
            .out
            .reload(committed)
            .map_err(|e| Error::io(format!("reading the end of {}", self.path.display()), e))
    }
}

impl RecordSink for NdjsonFileSink {
    async fn begin_file(&mut self, _file: &EventLogFile) -> Result<(), Error> {
        self.check_background()
    }

    async fn write_row(&mut self, file: &EventLogFile, row: &LogRecord) -> Result<(), Error> {
        self.ndjson.write_row(file, row).await?;
        self.start_writeback_if_due();
        Ok(())
    }

    fn encoded_format(&self) -> Option<OutputFormat> {
        self.ndjson.encoded_format()
    }

    fn ecs_options(&self) -> EcsOptions {
        self.ndjson.ecs_options()
    }

    async fn write_encoded(&mut self, file: &EventLogFile, lines: &[u8]) -> Result<(), Error> {
        self.ndjson.write_encoded(file, lines).await?;
        self.start_writeback_if_due();
        Ok(())
    }

    async fn commit_file(&mut self, file: &EventLogFile) -> Result<Option<u64>, Error> {
        self.ndjson.commit_file(file).await?;
        self.commit_now().await
    }

    async fn start_commit(&mut self, file: &EventLogFile) -> Result<PendingCommit, Error> {
        self.ndjson.commit_file(file).await?;
        let (sync, position) = self.start_commit_sync()?;
        Ok(PendingCommit::running(async move {
            sync.await.map(|()| Some(position))
        }))
    }

    fn committed_position(&self) -> Option<u64> {
        Some(self.committed)
    }

    fn output(&self) -> Option<String> {
        Some(self.output.clone())
    }

    async fn rollback_file(&mut self, _file: &EventLogFile) -> Result<(), Error> {
        self.ndjson.guard()?;
        let rolled_back = self.cut_back_in_background().await;
        self.ndjson.poison_on_error(rolled_back)
    }
}

/// The same file and protocol as [`RecordSink`]: object rows and EventLogFile rows share one
/// committed position, so one checkpoint cuts the file back whatever source wrote last.
impl ObjectSink for NdjsonFileSink {
    async fn begin(&mut self, _batch: &Batch<'_>) -> Result<(), Error> {
        self.check_background()
    }

    async fn write(&mut self, batch: &Batch<'_>, record: &ObjectRecord) -> Result<(), Error> {
        ObjectSink::write(&mut self.ndjson, batch, record).await?;
        self.start_writeback_if_due();
        Ok(())
    }

    async fn commit(&mut self, batch: &Batch<'_>) -> Result<Option<u64>, Error> {
        ObjectSink::commit(&mut self.ndjson, batch).await?;
        self.commit_now().await
    }

    async fn rollback(&mut self, _batch: &Batch<'_>) -> Result<(), Error> {
        self.ndjson.guard()?;
        let rolled_back = self.cut_back_in_background().await;
        self.ndjson.poison_on_error(rolled_back)
    }

    fn committed_position(&self) -> Option<u64> {
        Some(self.committed)
    }

    fn output(&self) -> Option<String> {
        Some(self.output.clone())
    }
}

impl NdjsonFileSink {
    /// Starts a [`Writeback`] once [`WRITEBACK_BYTES`] were written since the last one, unless
    /// that one still runs. Only an optimization: when the handle cannot be duplicated, the
    /// commit's sync does all the work, as without it.
    fn start_writeback_if_due(&mut self) {
        // Direct writes are on the disk already (but for the device's cache, which the
        // commit's sync flushes).
        if self.ndjson.out.is_direct() {
            return;
        }
        if self.ndjson.written - self.writeback.started_at < WRITEBACK_BYTES {
            return;
        }
        if self.writeback.running.is_some() && self.writeback.finished().is_none() {
            return;
        }
        let what = format!("syncing {} in the background", self.path.display());
        let _ = self.start_sync(what);
    }

    /// Starts an fdatasync of everything written so far on a blocking thread, after the one
    /// running (see [`Writeback`]).
    fn start_sync(&mut self, what: String) -> Result<BackgroundSync, Error> {
        let handle = self
            .ndjson
            .out
            .file()
            .try_clone()
            .map_err(|e| Error::io(format!("{what}: duplicating the file handle"), e))?;
        // Started now, not when first polled: a commit's sync is awaited only after the next
        // file was written.
        let task = tokio::task::spawn_blocking(move || handle.sync_data());
        let previous = self.writeback.running.take();
        let sync = async move {
            if let Some(previous) = previous {
                previous.await?;
            }
            blocking_outcome(what, task.await)
        }
        .boxed()
        .shared();
        self.writeback.started_at = self.ndjson.written;
        self.writeback.running = Some(sync.clone());
        Ok(sync)
    }

    /// Starts the sync of a commit (the buffer already flushed) and moves the committed
    /// position to where the output ends: a rollback of the next file must keep this one.
    fn start_commit_sync(&mut self) -> Result<(BackgroundSync, u64), Error> {
        let path = self.path.display().to_string();
        let position = self.ndjson.out.position();
        let started = self
            .start_sync(format!("syncing {path}"))
            .map(|sync| (sync, position));
        let (sync, position) = self.ndjson.poison_on_error(started)?;
        self.committed = position;
        Ok((sync, position))
    }

    /// A commit waited for (the buffer already flushed): the position, durable.
    async fn commit_now(&mut self) -> Result<Option<u64>, Error> {
        let before = self.committed;
        let (sync, position) = self.start_commit_sync()?;
        if let Err(e) = self.ndjson.poison_on_error(sync.await) {
            self.committed = before;
            return Err(e);
        }
        Ok(Some(position))
    }

    /// Fails, poisoning the sink, when a sync that finished meanwhile failed: after a commit
    /// that failed in the background, the next file stops before its first row.
    fn check_background(&mut self) -> Result<(), Error> {
        self.ndjson.guard()?;
        if let Some(Err(e)) = self.writeback.finished() {
            self.writeback.running = None;
            return self.ndjson.poison_on_error(Err(e));
        }
        Ok(())
    }

    /// Waits for the running [`Writeback`], if any; its error is the output's.
    async fn finish_writeback(&mut self) -> Result<(), Error> {
        match self.writeback.running.take() {
            Some(sync) => sync.await,
            None => Ok(()),
        }
    }

    /// [`cut_back`](Self::cut_back) with the truncation and fsync on a blocking thread.
    async fn cut_back_in_background(&mut self) -> Result<(), Error> {
        self.finish_writeback().await?;
        self.ndjson.out.discard();
        let committed = self.committed;
        let path = self.path.display().to_string();
        on_blocking_thread(
            self.ndjson.out.file(),
            format!("cutting {path} back to {committed} bytes"),
            move |f| {
                f.set_len(committed)?;
                f.sync_all()
            },
        )
        .await?;
        self.reload()
    }
}

/// The absolute path that names the output file `path` in a checkpoint: symbolic links and
/// `..` resolved, so that two spellings of one file agree; for a file not created yet, its
/// resolved directory and its name.
fn output_name(path: &Path) -> Result<String, Error> {
    let resolved = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            let dir = std::fs::canonicalize(dir).map_err(|e| {
                Error::io(format!("resolving the directory of {}", path.display()), e)
            })?;
            dir.join(path.file_name().unwrap_or_default())
        }
        Err(e) => return Err(Error::io(format!("resolving {}", path.display()), e)),
    };
    Ok(resolved.to_string_lossy().into_owned())
}

/// Runs `work` (an fsync, a truncation) on a duplicate handle of `file` on tokio's blocking
/// threads, so that a slow disk does not stall the runtime thread, whatever its flavour.
async fn on_blocking_thread(
    file: &File,
    what: String,
    work: impl FnOnce(&File) -> std::io::Result<()> + Send + 'static,
) -> Result<(), Error> {
    let handle = file
        .try_clone()
        .map_err(|e| Error::io(format!("{what}: duplicating the file handle"), e))?;
    blocking_outcome(
        what,
        tokio::task::spawn_blocking(move || work(&handle)).await,
    )
}

/// The error of a file operation run on a blocking thread, described as `what`.
fn blocking_outcome(
    what: String,
    outcome: Result<std::io::Result<()>, tokio::task::JoinError>,
) -> Result<(), Error> {
    match outcome {
        Ok(done) => done.map_err(|e| Error::io(what, e)),
        Err(e) => Err(Error::Internal(format!(
            "{what}: the blocking task failed: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn file() -> EventLogFile {
        crate::event_log::model::test_file()
    }

    #[tokio::test]
    async fn through_the_page_cache_the_disk_is_asked_for_written_lines_before_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = NdjsonFileSink::open(dir.path().join("out.ndjson"), None).unwrap();
        sink.ndjson.out.without_direct().unwrap();
        let file = file();
        let lines = vec![b'x'; 1 << 20];
        for _ in 0..(WRITEBACK_BYTES >> 20) - 1 {
            sink.write_encoded(&file, &lines).await.unwrap();
        }
        assert!(
            sink.writeback.running.is_none(),
            "not before WRITEBACK_BYTES"
        );
        sink.write_encoded(&file, &lines).await.unwrap();
        assert!(sink.writeback.running.is_some(), "started");
        assert_eq!(sink.writeback.started_at, WRITEBACK_BYTES);
        assert_eq!(
            sink.commit_file(&file).await.unwrap(),
            Some(WRITEBACK_BYTES)
        );
        assert!(
            matches!(sink.writeback.finished(), Some(Ok(()))),
            "the commit's sync, after the background one, finished"
        );
    }

    /// Direct writes are on the disk when they return: no writeback runs beside them, and the
    /// commit still syncs (the device's cache, the file's length).
    #[tokio::test]
    async fn direct_writes_start_no_writeback() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let mut sink = NdjsonFileSink::open(&path, None).unwrap();
        if !sink.ndjson.out.is_direct() {
            return;
        }
        let file = file();
        let lines = vec![b'x'; 1 << 20];
        for _ in 0..(WRITEBACK_BYTES >> 20) + 1 {
            sink.write_encoded(&file, &lines).await.unwrap();
        }
        assert!(sink.writeback.running.is_none());
        sink.write_encoded(&file, b"\n").await.unwrap();
        let position = WRITEBACK_BYTES + (1 << 20) + 1;
        assert_eq!(sink.commit_file(&file).await.unwrap(), Some(position));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), position);
    }

    /// What a background sync that failed leaves for the next one to find.
    fn failed_sync(what: &str) -> BackgroundSync {
        let error = Error::io(what, std::io::Error::other("EIO"));
        async move { Err(error) }.boxed().shared()
    }

    #[tokio::test]
    async fn a_failed_background_sync_fails_the_commit_and_poisons_the_sink() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = NdjsonFileSink::open(dir.path().join("out.ndjson"), None).unwrap();
        let file = file();
        sink.write_encoded(&file, b"{}\n").await.unwrap();
        // An EIO is reported to one fdatasync only, so the commit's own sync would not see it.
        sink.writeback.running = Some(failed_sync("syncing out.ndjson in the background"));
        let error = sink.commit_file(&file).await.unwrap_err().to_string();
        assert!(
            error.contains("in the background") && error.contains("EIO"),
            "{error}"
        );
        assert!(
            sink.write_encoded(&file, b"{}\n").await.is_err(),
            "poisoned"
        );
        assert_eq!(RecordSink::committed_position(&sink), Some(0));
    }

    #[tokio::test]
    async fn a_started_commit_is_final_at_once_and_durable_when_it_resolves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let mut sink = NdjsonFileSink::open(&path, None).unwrap();
        let file = file();
        sink.write_encoded(&file, b"{\"a\":1}\n").await.unwrap();
        let pending = sink.start_commit(&file).await.unwrap();
        assert!(!pending.is_done(), "the sync runs in the background");
        assert_eq!(RecordSink::committed_position(&sink), Some(8));
        // The next file is written and fails before the commit was waited for: its rollback
        // keeps the committed file.
        sink.begin_file(&file).await.unwrap();
        sink.write_encoded(&file, b"{\"b\":2}\n").await.unwrap();
        sink.rollback_file(&file).await.unwrap();
        assert_eq!(pending.await.unwrap(), Some(8));
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\":1}\n");
    }

    #[tokio::test]
    async fn a_started_commit_that_fails_stops_the_next_file_and_poisons_the_sink() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = NdjsonFileSink::open(dir.path().join("out.ndjson"), None).unwrap();
        let file = file();
        sink.write_encoded(&file, b"{}\n").await.unwrap();
        sink.writeback.running = Some(failed_sync("syncing out.ndjson in the background"));
        let mut pending = sink.start_commit(&file).await.unwrap();
        let error = (&mut pending).await.unwrap_err().to_string();
        assert!(error.contains("EIO"), "{error}");
        assert_eq!(
            pending.await.unwrap_err().to_string(),
            error,
            "the same outcome when polled again"
        );
        let next = sink.begin_file(&file).await.unwrap_err().to_string();
        assert!(next.contains("EIO"), "{next}");
        assert!(
            sink.write_encoded(&file, b"{}\n").await.is_err(),
            "poisoned"
        );
    }
}
