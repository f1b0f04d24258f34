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
use crate::format::ecs::EcsEncoder;
use crate::format::json::NdjsonEncoder;
use crate::format::{OutputFormat, ecs, rfc3339_millis};
use crate::realtime::{Batch, EventObject, NdjsonObjectRow, ObjectRecord, ObjectSink};

mod output_file;

use output_file::{AlignedBuffer, OutputFile};

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
/// - On restart, open the sink at the checkpoint's `sink_position` and discard everything
///   past it before taking rows: that is the file whose commit the checkpoint never recorded,
///   and it is delivered again. [`NdjsonFileSink::resume`] does this without ever cutting its
///   output back: rows reach the output only once [`recorded`](Self::recorded) says the
///   checkpoint holds them, so what it discards are staged rows.
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
    /// refuses to go on, and a restart discards the file's rows.
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

    /// The checkpoint was saved with `position` as its
    /// [`sink_position`](crate::event_log::Checkpoint::sink_position): the rows committed up to
    /// it are recorded as delivered and can no longer be delivered again. A sink that keeps
    /// committed rows from readers until then shows them now ([`NdjsonFileSink`] appends them
    /// to its output file, which therefore only grows); the work may go on in the background,
    /// and [`published`](Self::published) waits for it.
    ///
    /// The collectors call it after every checkpoint save that follows a commit; code that
    /// drives a sink itself (with [`Collector::complete`](crate::event_log::Collector::complete))
    /// must do the same. The default does nothing.
    fn recorded(&mut self, position: Option<u64>) -> Result<(), Error> {
        let _ = position;
        Ok(())
    }

    /// Waits until everything [`recorded`](Self::recorded) is where readers see it, and fails
    /// if that failed. The collectors call it at the end of every pass. The default returns at
    /// once.
    fn published(&mut self) -> impl Future<Output = Result<(), Error>> + Send {
        async { Ok(()) }
    }

    /// Where everything committed so far ends (what `commit_file` last reported, or where the
    /// sink started). The collector records it before the first row of a run, so that a crash
    /// in the very first file can be discarded too. `None` when the sink has no such notion.
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
                     takes nothing more until reopened (NdjsonFileSink::resume goes on from \
                     the checkpoint)",
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
    object: &EventObject,
    record: &ObjectRecord,
) -> Result<(), Error> {
    line.clear();
    let written = match format {
        OutputFormat::Ecs => serde_json::to_writer(
            &mut *line,
            &ecs::object_document(object.name(), record.fields()),
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
        encode_object(&mut self.line, self.format, batch.object, record)?;
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

/// Writes NDJSON to a file with exactly-once rows across crashes, a file that only grows.
///
/// A file's (or a window's) rows are written to a staging file beside the output
/// (`OUTPUT.staging.0` to `.3`, in turn), not to the output: a shipper tailing the output
/// re-reads it from its start when it shrinks, so rows that might be taken back never reach
/// it. `commit_file` fsyncs the staged rows and reports where the output will end with them;
/// the collector stores that position in the checkpoint, and then tells the sink
/// ([`RecordSink::recorded`]), which appends the staged rows to the output at that fixed offset
/// on a blocking thread while the next file is written. A failed file discards its staged rows
/// only.
///
/// On restart, [`open`](Self::open) finishes an append the checkpoint recorded but a crash
/// interrupted, from the staging file (writing the same bytes at the same offset again is
/// harmless): nothing is appended before the checkpoint names it, so the output never holds
/// rows to take back. Through [`RecordSink::start_commit`] the fsync runs while the next file
/// is written. Dropping the sink waits for the appends already recorded, then releases the
/// output.
///
/// On Linux, whole 4 KiB blocks go straight to the disk (`O_DIRECT`) where the filesystem
/// allows it, staged and appended, and only each commit's last partial block through the page
/// cache: the kernel's copy of every byte into the cache, and its writeback, were a quarter to
/// a half of the collector's CPU. A reader of the output (a shipper tailing it) then reads it
/// from the disk. Where `O_DIRECT` is refused, everything goes through the page cache.
#[derive(Debug)]
pub struct NdjsonFileSink {
    path: PathBuf,
    /// The absolute path, for [`RecordSink::output`].
    output: String,
    /// The rows of the file being written, into its staging file.
    ndjson: NdjsonSink<OutputFile>,
    /// Where the committed rows end in the output: its length once every commit was recorded
    /// and appended.
    committed: u64,
    writeback: Writeback,
    slots: Vec<Slot>,
    /// The slot the current file's rows go to, from its `begin_file` to its commit.
    writing: Option<usize>,
    /// The slot of the last commit that staged rows.
    last_slot: usize,
    /// The thread that appends recorded rows to the output, one commit after another (boxed:
    /// a sink is moved around whole, inside enums of sinks).
    appends: Box<Appends>,
    /// The last append started; it resolves once it and all before it did.
    publishing: Option<BackgroundSync>,
}

/// The staging files' first block: [`STAGING_MAGIC`], then the output offset of the first
/// staged byte and how many were staged, written at commit. The rows follow, block-aligned for
/// direct writes and reads.
const STAGING_HEADER: u64 = output_file::BLOCK as u64;

const STAGING_MAGIC: &str = "salesforce-jwt staged rows v1";

/// Staging files, used in turn: some hold commits waiting for their appends (a slow fsync
/// holds them up) while the next file is written to another.
const STAGING_SLOTS: usize = 4;

/// A staging file.
struct Slot {
    path: PathBuf,
    file: File,
    /// The committed rows it holds, until their append is done.
    unit: Option<Staged>,
}

/// Committed rows in a staging file: the output's bytes `start..end`.
struct Staged {
    start: u64,
    end: u64,
    /// Their append to the output, once the checkpoint recorded them.
    publication: Option<BackgroundSync>,
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("path", &self.path)
            .field(
                "unit",
                &self
                    .unit
                    .as_ref()
                    .map(|u| (u.start, u.end, u.publication.is_some())),
            )
            .finish()
    }
}

/// The output file's writer and a buffer to read staged rows into.
#[derive(Debug)]
struct Appender {
    out: OutputFile,
    buffer: AlignedBuffer,
}

impl Appender {
    /// Appends the `count` rows staged at `staging` to the output at `start` (durable after
    /// [`sync`](Self::sync)). Idempotent: after a crash mid-way, doing it again writes the same
    /// bytes at the same place, and the output never gets shorter.
    fn append(&mut self, staging: &Path, start: u64, count: u64) -> std::io::Result<()> {
        if self.out.position() != start {
            self.out.reload(start)?;
        }
        let Appender { out, buffer } = self;
        output_file::read_at(staging, STAGING_HEADER, count, buffer, |bytes| {
            out.write_all(bytes)
        })?;
        out.flush()
    }

    fn sync(&self) -> std::io::Result<()> {
        self.out.file().sync_data()
    }
}

/// An append of staged rows to the output, for the [`Appends`] thread.
struct AppendJob {
    staging: PathBuf,
    start: u64,
    count: u64,
    /// The error's context.
    what: String,
}

/// Where an [`AppendJob`]'s outcome goes: once its rows are durable in the output.
type AppendDone = tokio::sync::oneshot::Sender<Result<(), Error>>;

/// A thread that appends staged rows to the output in the order they were queued, and owns
/// the output's writer (and so its lock). A thread rather than tokio's blocking pool: dropping
/// the sink waits for the appends queued, whatever runtime (or none) it is dropped on, so that
/// the output is complete and unlocked once the drop returns.
struct Appends {
    jobs: Option<std::sync::mpsc::Sender<(AppendJob, AppendDone)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Appends {
    /// Starts the thread; `output` names the output in errors.
    fn start(mut appender: Appender, output: String) -> std::io::Result<Self> {
        let (jobs, queued) = std::sync::mpsc::channel::<(AppendJob, AppendDone)>();
        let thread = std::thread::Builder::new()
            .name("output-appends".into())
            .spawn(move || {
                // After a failure the output's end is unknown: every later append fails too.
                let mut failed: Option<Error> = None;
                // Appended, not synced yet: one fdatasync covers every append queued by then.
                let mut unsynced: Vec<tokio::sync::oneshot::Sender<Result<(), Error>>> = Vec::new();
                loop {
                    let next = if unsynced.is_empty() {
                        queued.recv().ok()
                    } else {
                        queued.try_recv().ok()
                    };
                    let Some((job, done)) = next else {
                        if unsynced.is_empty() {
                            break;
                        }
                        let synced = match &failed {
                            Some(e) => Err(e.clone()),
                            None => appender
                                .sync()
                                .map_err(|e| Error::io(format!("syncing {output}"), e)),
                        };
                        if let Err(e) = &synced {
                            failed.get_or_insert_with(|| e.clone());
                        }
                        for done in unsynced.drain(..) {
                            let _ = done.send(synced.clone());
                        }
                        continue;
                    };
                    let appended = match &failed {
                        Some(e) => Err(e.clone()),
                        None => appender
                            .append(&job.staging, job.start, job.count)
                            .map_err(|e| Error::io(job.what, e)),
                    };
                    match appended {
                        Ok(()) => unsynced.push(done),
                        Err(e) => {
                            failed.get_or_insert_with(|| e.clone());
                            let _ = done.send(Err(e));
                        }
                    }
                }
            })?;
        Ok(Appends {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Queues `job`; the future resolves once it (and every job before it) is done.
    fn queue(&mut self, job: AppendJob) -> BackgroundSync {
        let (done, outcome) = tokio::sync::oneshot::channel();
        let sent = self
            .jobs
            .as_ref()
            .map(|jobs| jobs.send((job, done)).is_ok())
            .unwrap_or(false);
        async move {
            if !sent {
                return Err(Error::Internal(
                    "the thread that appends to the output has ended".into(),
                ));
            }
            outcome.await.unwrap_or_else(|_| {
                Err(Error::Internal(
                    "the thread that appends to the output ended before an append".into(),
                ))
            })
        }
        .boxed()
        .shared()
    }
}

impl Drop for Appends {
    /// Finishes the appends queued (rows the checkpoint recorded), then releases the output.
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl fmt::Debug for Appends {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Appends")
            .field("running", &self.thread.is_some())
            .finish()
    }
}

/// The header of a staging file holding the output's bytes `start..start + count`.
fn staging_header(start: u64, count: u64) -> Vec<u8> {
    let mut header = format!("{STAGING_MAGIC}\n{start} {count}\n").into_bytes();
    header.resize(STAGING_HEADER as usize, b' ');
    header
}

/// `(start, count)` from a staging file's header, if it is one.
fn parse_staging_header(header: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(header).ok()?;
    let mut lines = text.lines();
    if lines.next()? != STAGING_MAGIC {
        return None;
    }
    let (start, count) = lines.next()?.split_once(' ')?;
    Some((start.parse().ok()?, count.parse().ok()?))
}

/// The committed rows a staging file holds: `(start, count)`, read from its header and checked
/// against its length.
fn staged_in(file: &File) -> Option<(u64, u64)> {
    let len = file.metadata().ok()?.len();
    if len < STAGING_HEADER {
        return None;
    }
    let mut header = vec![0u8; STAGING_HEADER as usize];
    output_file::read_exact_at(file, &mut header, 0).ok()?;
    let (start, count) = parse_staging_header(&header)?;
    (len - STAGING_HEADER >= count).then_some((start, count))
}

impl NdjsonFileSink {
    /// Opens (or creates) `path` to go on from `checkpoint`, as with [`open`](Self::open), but
    /// only after checking that the checkpoint belongs to this file
    /// ([`Checkpoint::output`](crate::event_log::Checkpoint::output)). A checkpoint of another
    /// output is refused before the file is touched, so reusing a checkpoint with the wrong
    /// output never changes an unrelated file. (A checkpoint migrated from version 1 names no
    /// output and cannot be checked; the first pass records this one.)
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
    /// [`sink_position`](crate::event_log::Checkpoint::sink_position). When the output is
    /// shorter, a crash interrupted the append of rows the checkpoint recorded: they are
    /// appended again from the staging file. With `None` (no checkpoint yet) new rows are
    /// appended after what the file holds.
    ///
    /// A file shorter than `committed` without the staged rows that make up the difference is
    /// refused: rows that were delivered are missing from it, so it was truncated or replaced.
    /// A file longer than `committed` was left by an earlier version, which appended rows
    /// before the checkpoint recorded them: it is cut back once, as that version did.
    pub fn open(path: impl AsRef<Path>, committed: Option<u64>) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let context = |what: &str| format!("{what} the output file {}", path.display());
        let (file, created) =
            open_or_create(&path).map_err(|(what, e)| Error::io(context(what), e))?;
        match file.try_lock() {
            Ok(()) => {}
            // Two collectors appending to one output would interleave their rows and staging
            // files. The lock is released when the sink is dropped or the process dies.
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
        let mut slots = Vec::with_capacity(STAGING_SLOTS);
        let mut any_created = created;
        for n in 0..STAGING_SLOTS {
            let mut name = path.clone().into_os_string();
            name.push(format!(".staging.{n}"));
            let slot_path = PathBuf::from(name);
            let (slot_file, created) = open_or_create(&slot_path).map_err(|(what, e)| {
                Error::io(
                    format!("{what} the staging file {}", slot_path.display()),
                    e,
                )
            })?;
            any_created |= created;
            slots.push(Slot {
                path: slot_path,
                file: slot_file,
                unit: None,
            });
        }
        if any_created {
            // A new file's rows are durable only once its directory entry is: without this a
            // power loss could take the whole file after its rows were confirmed.
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            sync_dir(&dir).map_err(|e| {
                Error::io(
                    format!(
                        "syncing the directory {} of the new output or staging files",
                        dir.display()
                    ),
                    e,
                )
            })?;
        }
        let mut len = file
            .metadata()
            .map_err(|e| Error::io(context("reading the length of"), e))?
            .len();
        let committed = committed.unwrap_or(len);
        if len > committed {
            tracing::warn!(path = %path.display(), discarded = len - committed, "cutting back rows of an unconfirmed file that an earlier version appended before its checkpoint recorded them; from now on the output only grows");
            file.set_len(committed)
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::io(context("cutting back"), e))?;
            len = committed;
        }
        let out = OutputFile::new(file, &path, len)
            .map_err(|e| Error::io(context("reading the end of"), e))?;
        let mut appender = Appender {
            out,
            buffer: AlignedBuffer::new(),
        };
        // Recorded rows a kill kept from the output: up to one staged commit per staging
        // file, in order (a second commit can be recorded while the first one's append runs).
        let staged: Vec<(&Slot, u64, u64)> = slots
            .iter()
            .filter_map(|slot| staged_in(&slot.file).map(|(start, count)| (slot, start, count)))
            .collect();
        let mut at = len;
        while at < committed {
            let next = staged
                .iter()
                .filter(|(_, start, count)| {
                    *start <= at && at < start + count && start + count <= committed
                })
                .max_by_key(|(_, start, count)| start + count);
            let Some(&(slot, start, count)) = next else {
                return Err(Error::Checkpoint {
                    path: path.clone(),
                    message: format!(
                        "the output holds {at} bytes but the checkpoint says {committed} \
                         bytes were delivered, and no staging file holds the difference: the \
                         output was truncated or replaced. Restore it, or start over with a \
                         new checkpoint"
                    ),
                });
            };
            tracing::info!(path = %path.display(), staging = %slot.path.display(), bytes = start + count - at, "appending rows that the checkpoint recorded before an earlier run ended");
            appender.append(&slot.path, start, count).map_err(|e| {
                Error::io(
                    format!(
                        "appending the rows staged in {} to {}",
                        slot.path.display(),
                        path.display()
                    ),
                    e,
                )
            })?;
            at = start + count;
        }
        if len < committed {
            appender
                .sync()
                .map_err(|e| Error::io(context("syncing"), e))?;
        }
        // Every recorded row is in the output now. Staged rows left from earlier runs must
        // never be taken for this run's, whose headers are the only ones from here on.
        for slot in &slots {
            slot.file
                .set_len(0)
                .and_then(|()| slot.file.sync_all())
                .map_err(|e| {
                    Error::io(
                        format!("emptying the staging file {}", slot.path.display()),
                        e,
                    )
                })?;
        }
        let writer_file = slots[0]
            .file
            .try_clone()
            .map_err(|e| Error::io(context("duplicating a staging file handle of"), e))?;
        let writer = OutputFile::new(writer_file, &slots[0].path, STAGING_HEADER)
            .map_err(|e| Error::io(context("opening the staging file of"), e))?;
        let appends = Appends::start(appender, path.display().to_string())
            .map(Box::new)
            .map_err(|e| Error::io(context("starting the thread that appends to"), e))?;
        let name = path.display().to_string();
        let output = output_name(&path)?;
        Ok(NdjsonFileSink {
            path,
            output,
            ndjson: NdjsonSink::named(writer, format!("the staged rows of {name}")),
            committed,
            writeback: Writeback::default(),
            slots,
            // The first rows may come without `begin_file`, as with any sink.
            writing: Some(0),
            last_slot: STAGING_SLOTS - 1,
            appends,
            publishing: None,
        })
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

    /// Points the writer at the next staging file for a new file's rows, once that file's
    /// earlier rows are in the output; nothing when a file's rows are being staged already (a
    /// retry after a rollback).
    async fn begin_unit(&mut self) -> Result<(), Error> {
        self.check_background()?;
        if self.writing.is_some() {
            return Ok(());
        }
        let slot = (self.last_slot + 1) % STAGING_SLOTS;
        let ready = self.free_slot(slot).await;
        self.ndjson.poison_on_error(ready)?;
        let slot_path = self.slots[slot].path.clone();
        let retargeted = self.slots[slot]
            .file
            .try_clone()
            .and_then(|file| self.ndjson.out.retarget(file, &slot_path, STAGING_HEADER));
        let retargeted = retargeted.map_err(|e| {
            Error::io(
                format!("opening the staging file {}", slot_path.display()),
                e,
            )
        });
        self.ndjson.poison_on_error(retargeted)?;
        self.writing = Some(slot);
        Ok(())
    }

    /// Waits until the rows `slot` holds are in the output.
    async fn free_slot(&mut self, slot: usize) -> Result<(), Error> {
        let Some(staged) = &self.slots[slot].unit else {
            return Ok(());
        };
        let Some(publication) = staged.publication.clone() else {
            return Err(Error::sink(
                format!("staging rows for {}", self.path.display()),
                format!(
                    "the rows committed up to byte {} were never recorded, so they cannot be \
                     appended and their staging file cannot be reused. After saving a \
                     checkpoint, call RecordSink::recorded (or ObjectSink::recorded) with its \
                     sink_position, as the collectors do",
                    staged.end
                ),
                false,
            ));
        };
        publication.await?;
        self.slots[slot].unit = None;
        Ok(())
    }

    /// Records in the staging file which output bytes its rows are (the buffer already
    /// flushed), and moves the committed position past them: a rollback of the next file must
    /// keep them.
    fn stage(&mut self) -> Result<(), Error> {
        let Some(slot) = self.writing else {
            return Ok(());
        };
        let count = self.ndjson.out.position() - STAGING_HEADER;
        if count == 0 {
            // Nothing to append: the next file's rows take the same staging file.
            return Ok(());
        }
        let start = self.committed;
        let header = staging_header(start, count);
        output_file::write_all_at(&self.slots[slot].file, &header, 0).map_err(|e| {
            Error::io(
                format!("writing the header of {}", self.slots[slot].path.display()),
                e,
            )
        })?;
        self.slots[slot].unit = Some(Staged {
            start,
            end: start + count,
            publication: None,
        });
        self.committed = start + count;
        self.last_slot = slot;
        self.writing = None;
        Ok(())
    }

    /// Starts the appends of the committed rows the checkpoint now records (up to `position`),
    /// in order, each after the one before.
    fn publish_recorded(&mut self, position: Option<u64>) -> Result<(), Error> {
        self.ndjson.guard()?;
        let Some(position) = position else {
            return Ok(());
        };
        let mut ready: Vec<usize> = (0..self.slots.len())
            .filter(|&n| {
                self.slots[n]
                    .unit
                    .as_ref()
                    .is_some_and(|u| u.publication.is_none() && u.end <= position)
            })
            .collect();
        ready.sort_by_key(|&n| self.slots[n].unit.as_ref().map(|u| u.start));
        for slot in ready {
            self.start_publication(slot);
        }
        Ok(())
    }

    /// Starts the append of the rows `slot` holds, after the appends queued before it.
    fn start_publication(&mut self, slot: usize) {
        let Some((start, count)) = self.slots[slot]
            .unit
            .as_ref()
            .map(|u| (u.start, u.end - u.start))
        else {
            return;
        };
        let what = format!(
            "appending the rows staged in {} to {}",
            self.slots[slot].path.display(),
            self.path.display()
        );
        let publication = self.appends.queue(AppendJob {
            staging: self.slots[slot].path.clone(),
            start,
            count,
            what,
        });
        if let Some(staged) = self.slots[slot].unit.as_mut() {
            staged.publication = Some(publication.clone());
        }
        self.publishing = Some(publication);
    }

    /// Waits for every append started; its error is the output's.
    async fn wait_published(&mut self) -> Result<(), Error> {
        self.ndjson.guard()?;
        let Some(publishing) = self.publishing.clone() else {
            return Ok(());
        };
        let outcome = publishing.await;
        self.ndjson.poison_on_error(outcome)
    }

    /// Fails unless a file's rows are being staged: after a commit, rows written without
    /// `begin` (named `begin`) would land behind the committed ones in their staging file.
    fn expect_begun(&self, begin: &str) -> Result<(), Error> {
        if self.writing.is_some() {
            return Ok(());
        }
        Err(Error::Internal(format!(
            "rows were written to {} after a commit without {begin}; call {begin} before the \
             rows of every file or batch",
            self.path.display()
        )))
    }

    /// Discards the rows staged since the last commit.
    fn discard_unit(&mut self) -> Result<(), Error> {
        self.ndjson.guard()?;
        self.ndjson.out.discard();
        if let Some(slot) = self.writing {
            let reloaded = self.ndjson.out.reload(STAGING_HEADER).map_err(|e| {
                Error::io(
                    format!(
                        "going back to the start of {}",
                        self.slots[slot].path.display()
                    ),
                    e,
                )
            });
            self.ndjson.poison_on_error(reloaded)?;
        }
        Ok(())
    }
}

/// Opens `path` for reading and writing, creating it if needed; whether it was created. The
/// error says what failed.
fn open_or_create(path: &Path) -> Result<(File, bool), (&'static str, std::io::Error)> {
    match OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(file) => Ok((file, true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map(|file| (file, false))
            .map_err(|e| ("opening", e)),
        Err(e) => Err(("creating", e)),
    }
}

impl RecordSink for NdjsonFileSink {
    async fn begin_file(&mut self, _file: &EventLogFile) -> Result<(), Error> {
        self.begin_unit().await
    }

    async fn write_row(&mut self, file: &EventLogFile, row: &LogRecord) -> Result<(), Error> {
        self.expect_begun("begin_file")?;
        self.ndjson.write_row(file, row).await?;
        self.start_writeback_if_due();
        Ok(())
    }

    fn encoded_format(&self) -> Option<OutputFormat> {
        self.ndjson.encoded_format()
    }

    async fn write_encoded(&mut self, file: &EventLogFile, lines: &[u8]) -> Result<(), Error> {
        self.expect_begun("begin_file")?;
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

    fn recorded(&mut self, position: Option<u64>) -> Result<(), Error> {
        self.publish_recorded(position)
    }

    async fn published(&mut self) -> Result<(), Error> {
        self.wait_published().await
    }

    fn committed_position(&self) -> Option<u64> {
        Some(self.committed)
    }

    fn output(&self) -> Option<String> {
        Some(self.output.clone())
    }

    async fn rollback_file(&mut self, _file: &EventLogFile) -> Result<(), Error> {
        self.discard_unit()
    }
}

/// The same file and protocol as [`RecordSink`]: object rows and EventLogFile rows share one
/// committed position and one output, whatever source wrote last.
impl ObjectSink for NdjsonFileSink {
    async fn begin(&mut self, _batch: &Batch<'_>) -> Result<(), Error> {
        self.begin_unit().await
    }

    async fn write(&mut self, batch: &Batch<'_>, record: &ObjectRecord) -> Result<(), Error> {
        self.expect_begun("begin")?;
        ObjectSink::write(&mut self.ndjson, batch, record).await?;
        self.start_writeback_if_due();
        Ok(())
    }

    async fn commit(&mut self, batch: &Batch<'_>) -> Result<Option<u64>, Error> {
        ObjectSink::commit(&mut self.ndjson, batch).await?;
        self.commit_now().await
    }

    async fn rollback(&mut self, _batch: &Batch<'_>) -> Result<(), Error> {
        self.discard_unit()
    }

    fn recorded(&mut self, position: Option<u64>) -> Result<(), Error> {
        self.publish_recorded(position)
    }

    async fn published(&mut self) -> Result<(), Error> {
        self.wait_published().await
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

    /// Starts the sync of a commit's staged rows (the buffer already flushed) and moves the
    /// committed position past them: a rollback of the next file must keep them.
    fn start_commit_sync(&mut self) -> Result<(BackgroundSync, u64), Error> {
        let path = self.path.display().to_string();
        let staged = self.stage();
        self.ndjson.poison_on_error(staged)?;
        let started = self.start_sync(format!("syncing the staged rows of {path}"));
        let sync = self.ndjson.poison_on_error(started)?;
        Ok((sync, self.committed))
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

    /// Fails, poisoning the sink, when a sync or append that finished meanwhile failed: after
    /// a commit that failed in the background, the next file stops before its first row.
    fn check_background(&mut self) -> Result<(), Error> {
        self.ndjson.guard()?;
        if let Some(Err(e)) = self.writeback.finished() {
            self.writeback.running = None;
            return self.ndjson.poison_on_error(Err(e));
        }
        let appended = self
            .publishing
            .as_ref()
            .and_then(|p| p.clone().now_or_never());
        if let Some(Err(e)) = appended {
            return self.ndjson.poison_on_error(Err(e));
        }
        Ok(())
    }
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
        RecordSink::recorded(&mut sink, Some(position)).unwrap();
        RecordSink::published(&mut sink).await.unwrap();
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
        assert_eq!(std::fs::read(&path).unwrap(), b"", "not recorded yet");
        RecordSink::recorded(&mut sink, Some(8)).unwrap();
        RecordSink::published(&mut sink).await.unwrap();
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
