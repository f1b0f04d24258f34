//! Where collected rows go: NDJSON to a file, exactly once ([`NdjsonFileSink`]), or to any
//! stream, at least once ([`NdjsonSink`]); both implement the one [`Sink`] trait.
//!
//! A file output and its restart protocol: a commit reports the file's length, which the
//! checkpoint saves; reopening at that position cuts off whatever came after it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), salesforce_jwt::Error> {
//! use salesforce_jwt::collect::{Batch, Row, Sink, Unit};
//! use salesforce_jwt::objects::{EventObject, ObjectRecord};
//! use salesforce_jwt::sink::NdjsonFileSink;
//! use salesforce_jwt::time::macros::datetime;
//!
//! let dir = std::env::temp_dir().join(format!("sink-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("events.ndjson");
//! let trail = EventObject::named("SetupAuditTrail").unwrap();
//! let row: ObjectRecord = serde_json::from_str(r#"{"Id": "0Ym1", "Action": "login"}"#).unwrap();
//! let unit = Unit::Batch(Batch {
//!     object: &trail,
//!     after: datetime!(2025-06-10 11:00 UTC),
//!     up_to: datetime!(2025-06-10 12:00 UTC),
//! });
//!
//! let mut sink = NdjsonFileSink::open(&path, None)?;
//! sink.begin(&unit).await?;
//! sink.write(Row::Object { object: &trail, record: &row }).await?;
//! let committed = sink.commit(&unit).await?; // the length the checkpoint saves
//! sink.begin(&unit).await?;
//! sink.write(Row::Object { object: &trail, record: &row }).await?;
//! drop(sink); // a crash before this second commit
//!
//! let sink = NdjsonFileSink::open(&path, committed)?; // cut back to the checkpoint
//! assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
//! # drop(sink); std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(()) }
//! ```

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use serde::Serialize;
use serde::ser::SerializeMap;

use crate::collect::checkpoint::sync_dir;
use crate::collect::{PendingCommit, Row, Sink, Unit};
use crate::error::Error;
use crate::event_log_file::{EventLogFile, LogRecord};
use crate::format::ecs::EcsOptions;
use crate::format::encoders::{Encoders, append_row};
use crate::format::{OutputFormat, ecs, rfc3339_millis};
use crate::objects::{EventObject, ObjectRecord};

mod output_file;

use output_file::OutputFile;

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

/// A row as the NDJSON sinks write it: every field under its API name with its JSON value
/// (relationships nested), plus `"SObjectType": "<object name>"`.
#[derive(Debug, Clone, Copy)]
pub struct NdjsonObjectRow<'a> {
    /// The object the row comes from.
    pub object: &'a EventObject,
    /// The row.
    pub record: &'a ObjectRecord,
}

impl NdjsonObjectRow<'_> {
    /// Appends the row's JSON line (without the newline) to `out`: the same bytes as
    /// `serde_json::to_writer(out, self)`, with the values copied from the record's JSON texts
    /// ([`ObjectRecord::write_ndjson`]) rather than serialized from a map.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.record.write_ndjson(self.object.name(), out);
    }
}

impl Serialize for NdjsonObjectRow<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // From the fields' JSON texts, not `fields()`: no map is built for a row on its way out.
        let mut map = s.serialize_map(Some(self.record.len() + 1))?;
        for (name, value) in self.record.serializable_fields() {
            if name != "SObjectType" {
                map.serialize_entry(name, &value)?;
            }
        }
        map.serialize_entry("SObjectType", self.object.name())?;
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

/// Log-file rows as [`NdjsonRow`] and object rows as [`NdjsonObjectRow`] with
/// [`OutputFormat::Ndjson`]; ECS documents with [`OutputFormat::Ecs`]; one JSON object a line.
impl<W: Write + Send> Sink for NdjsonSink<W> {
    async fn begin(&mut self, _unit: &Unit<'_>) -> Result<(), Error> {
        self.guard()
    }

    async fn write(&mut self, row: Row<'_>) -> Result<(), Error> {
        self.guard()?;
        self.line.clear();
        match row {
            Row::LogFile { file, record } => append_row(
                &mut self.line,
                &mut self.encoders,
                self.format,
                file,
                record,
            )?,
            Row::Object { object, record } => {
                encode_object(&mut self.line, self.format, &self.ecs, object, record)?
            }
        }
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

    async fn commit(&mut self, _unit: &Unit<'_>) -> Result<Option<u64>, Error> {
        self.flush_out()?;
        Ok(None)
    }

    async fn rollback(&mut self, unit: &Unit<'_>) -> Result<(), Error> {
        self.guard()?;
        tracing::warn!(unit = %unit, "a unit failed mid-way; rows already written to the stream cannot be taken back and will be written again");
        Ok(())
    }
}

/// Writes NDJSON to a file with exactly-once rows across crashes.
///
/// `commit` flushes and fsyncs and reports the file's length; the collector stores it in
/// the checkpoint. Through [`Sink::start_commit`] the fsync runs on a blocking thread
/// while the collector writes the next file. On restart, [`open`](Self::open) truncates
/// anything past that length (rows of a file that was not confirmed), and `rollback` does
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
    /// The absolute path, for [`Sink::output`].
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
/// strace. A commit's own sync is started the same way ([`Sink::start_commit`]).
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
    /// checkpoint's [`sink_position`](crate::collect::Checkpoint::sink_position), as with
    /// [`open`](Self::open), but only after checking that the checkpoint belongs to this file
    /// ([`Checkpoint::output`](crate::collect::Checkpoint::output)). A checkpoint of another
    /// output is refused before the file is touched, so reusing a checkpoint with the wrong
    /// output never cuts back an unrelated file. (A checkpoint migrated from version 1 names
    /// no output and cannot be checked; the first pass records this one.)
    pub fn resume(
        path: impl AsRef<Path>,
        checkpoint: &crate::collect::Checkpoint,
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
                         untouched. Use the checkpoint that belongs to {current}, or \
                         a new one (which starts from `since`)"
                    ),
                });
            }
        }
        Self::open(path, checkpoint.sink_position)
    }

    /// Opens (or creates) `path` at a position, without checking which output the checkpoint
    /// belongs to: prefer [`resume`](Self::resume). `committed` is the checkpoint's
    /// [`sink_position`](crate::collect::Checkpoint::sink_position): the file is cut back to
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

/// Log-file and object rows share one committed position, so one checkpoint cuts the file
/// back whatever source wrote last.
impl Sink for NdjsonFileSink {
    async fn begin(&mut self, _unit: &Unit<'_>) -> Result<(), Error> {
        self.check_background()
    }

    async fn write(&mut self, row: Row<'_>) -> Result<(), Error> {
        self.ndjson.write(row).await?;
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

    async fn commit(&mut self, unit: &Unit<'_>) -> Result<Option<u64>, Error> {
        self.ndjson.commit(unit).await?;
        self.commit_now().await
    }

    async fn start_commit(&mut self, unit: &Unit<'_>) -> Result<PendingCommit, Error> {
        self.ndjson.commit(unit).await?;
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

    async fn rollback(&mut self, _unit: &Unit<'_>) -> Result<(), Error> {
        self.ndjson.guard()?;
        let rolled_back = self.cut_back_in_background().await;
        self.ndjson.poison_on_error(rolled_back)
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
        crate::event_log_file::test_file()
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
            sink.commit(&Unit::LogFile(&file)).await.unwrap(),
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
        assert_eq!(
            sink.commit(&Unit::LogFile(&file)).await.unwrap(),
            Some(position)
        );
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
        let error = sink
            .commit(&Unit::LogFile(&file))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("in the background") && error.contains("EIO"),
            "{error}"
        );
        assert!(
            sink.write_encoded(&file, b"{}\n").await.is_err(),
            "poisoned"
        );
        assert_eq!(Sink::committed_position(&sink), Some(0));
    }

    #[tokio::test]
    async fn a_started_commit_is_final_at_once_and_durable_when_it_resolves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let mut sink = NdjsonFileSink::open(&path, None).unwrap();
        let file = file();
        sink.write_encoded(&file, b"{\"a\":1}\n").await.unwrap();
        let pending = sink.start_commit(&Unit::LogFile(&file)).await.unwrap();
        assert!(!pending.is_done(), "the sync runs in the background");
        assert_eq!(Sink::committed_position(&sink), Some(8));
        // The next file is written and fails before the commit was waited for: its rollback
        // keeps the committed file.
        sink.begin(&Unit::LogFile(&file)).await.unwrap();
        sink.write_encoded(&file, b"{\"b\":2}\n").await.unwrap();
        sink.rollback(&Unit::LogFile(&file)).await.unwrap();
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
        let mut pending = sink.start_commit(&Unit::LogFile(&file)).await.unwrap();
        let error = (&mut pending).await.unwrap_err().to_string();
        assert!(error.contains("EIO"), "{error}");
        assert_eq!(
            pending.await.unwrap_err().to_string(),
            error,
            "the same outcome when polled again"
        );
        let next = sink
            .begin(&Unit::LogFile(&file))
            .await
            .unwrap_err()
            .to_string();
        assert!(next.contains("EIO"), "{next}");
        assert!(
            sink.write_encoded(&file, b"{}\n").await.is_err(),
            "poisoned"
        );
    }
}
