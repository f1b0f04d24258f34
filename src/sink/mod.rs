//! Where collected rows go: NDJSON to a file, exactly once ([`NdjsonFileSink`]), or to any
//! stream, at least once ([`NdjsonSink`]); both implement the one [`Sink`] trait.
//!
//! A file output only grows: a unit's rows are staged beside it and appended once the
//! checkpoint records the unit's end (the collector tells the sink through
//! [`Sink::save_listener`]); a restart finishes an append a crash interrupted.
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
//! let saved = sink.save_listener().unwrap(); // what a Collector asks for
//! sink.begin(&unit).await?;
//! sink.write(Row::Object { object: &trail, record: &row }).await?;
//! let committed = sink.commit(&unit).await?; // the length the checkpoint saves
//! assert_eq!(std::fs::metadata(&path).unwrap().len(), 0); // staged, not yet in the output
//! saved.saved(committed.unwrap())?; // the checkpoint recorded it: to be appended
//! saved.settle()?; // what the collector calls when a pass ends: appended
//! sink.begin(&unit).await?;
//! sink.write(Row::Object { object: &trail, record: &row }).await?;
//! drop(sink); // a crash before this second commit: its row never reaches the output
//!
//! let sink = NdjsonFileSink::open(&path, committed)?; // goes on from the checkpoint
//! assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
//! # drop(sink); std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(()) }
//! ```

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::ser::SerializeMap;

use crate::collect::checkpoint::sync_dir;
use crate::collect::{PendingCommit, Row, SaveListener, Sink, Unit};
use crate::error::Error;
use crate::event_log_file::{EventLogFile, LogRecord};
use crate::format::ecs::EcsOptions;
use crate::format::encoders::{Encoders, append_row};
use crate::format::{OutputFormat, ecs, rfc3339_millis};
use crate::objects::{EventObject, ObjectRecord};

mod output_file;
mod staging;

use staging::{Committed, Stager};

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

/// Writes NDJSON to a file with exactly-once rows across crashes, and a file that only grows.
///
/// A unit's rows are staged beside the output (in memory, then in a hidden staging file) and
/// appended only once the collector's checkpoint records the unit's end, which the collector
/// tells through [`Sink::save_listener`]: the output never holds rows that could be taken
/// back, so a download that fails mid-file or a crash leaves it as it was, and a shipper
/// tailing it never sees it shrink. The commit makes the staged rows durable and reports the
/// unit's end, which the checkpoint saves; through [`Sink::start_commit`] that sync runs on the
/// append thread while the collector writes the next file. Opening the output again after a
/// crash between the save and the append finishes the append from the staging file
/// ([`open`](Self::open)).
///
/// Used without a collector (nobody asked for its save listener), each commit counts as
/// recorded at once: [`Sink::commit`] returns once its rows are in the output, and a commit
/// started with [`Sink::start_commit`] is appended in the background (dropping the sink waits
/// for it).
///
/// On Linux, whole 4 KiB blocks of the output go straight to the disk (`O_DIRECT`) where the
/// filesystem allows it, and only each append's last partial block through the page cache: the
/// kernel's copy of every byte into the cache, and its writeback, were a quarter to a half of
/// the collector's CPU. A reader of the output (a shipper tailing it) then reads it from the
/// disk. Where `O_DIRECT` is refused, everything goes through the page cache.
#[derive(Debug)]
pub struct NdjsonFileSink {
    path: PathBuf,
    /// The absolute path, for [`Sink::output`].
    output: String,
    ndjson: NdjsonSink<Stager>,
    committed: u64,
    /// Whether the collector tells its saves (its save listener was asked for): until then a
    /// commit counts as recorded at once.
    listened: bool,
}

impl NdjsonFileSink {
    /// Opens (or creates) `path` to go on from `checkpoint`, as with [`open`](Self::open), but
    /// only after checking that the checkpoint belongs to this file
    /// ([`Checkpoint::output`](crate::collect::Checkpoint::output)). A checkpoint of another
    /// output is refused before the file is touched. (A checkpoint migrated from version 1
    /// names no output and cannot be checked; the first pass records this one.)
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
    /// [`sink_position`](crate::collect::Checkpoint::sink_position). With `None` (no checkpoint
    /// yet) new rows are appended after what the file holds.
    ///
    /// A file shorter than `committed` lost the append a crash interrupted: it is finished from
    /// the staging file that holds the unit ending at `committed`. Without one, the file is
    /// refused: rows that were delivered are missing from it, so it was truncated or replaced.
    /// A file longer than `committed` holds rows no checkpoint recorded, which this sink never
    /// writes (an older version, which wrote rows before their commit, or another program did):
    /// it is cut back to `committed`, with a warning.
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
            // Two collectors appending to one output would interleave their rows and their
            // staging files. The lock is released when the sink is dropped or the process dies.
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
                let recovered = staging::recover(&path, &file, len, c)
                    .map_err(|e| Error::io(context("finishing an interrupted append to"), e))?;
                if !recovered {
                    return Err(Error::Checkpoint {
                        path: path.clone(),
                        message: format!(
                            "the output holds {len} bytes but the checkpoint says {c} bytes \
                             were delivered, and no staging file beside it holds the missing \
                             rows: the output was truncated or replaced. Restore it, or start \
                             over with a new checkpoint"
                        ),
                    });
                }
                c
            }
            Some(c) => c,
        };
        if len > committed {
            tracing::warn!(path = %path.display(), discarded = len - committed, "the output holds bytes past what the checkpoint records (written by an older version before their commit, or by another program); cutting them off");
            file.set_len(committed)
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::io(context("cutting back"), e))?;
        }
        let name = path.display().to_string();
        let output = output_name(&path)?;
        let stager = Stager::start(&path, file, committed)?;
        Ok(NdjsonFileSink {
            path,
            output,
            ndjson: NdjsonSink::named(stager, name),
            committed,
            listened: false,
        })
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

    /// The staging state, for tests.
    #[cfg(test)]
    fn stager_shared(&self) -> std::sync::Arc<staging::Shared> {
        self.ndjson.out.shared()
    }

    /// Checks the sink and the append thread before a unit's work.
    fn guard(&mut self) -> Result<(), Error> {
        self.ndjson.guard()?;
        let checked = self.ndjson.out.check();
        self.ndjson.poison_on_error(checked)
    }
}

/// Log-file and object rows share one committed position, so one checkpoint covers the file
/// whatever source wrote last.
impl Sink for NdjsonFileSink {
    async fn begin(&mut self, _unit: &Unit<'_>) -> Result<(), Error> {
        self.guard()?;
        let ready = self.ndjson.out.slot_ready().await;
        self.ndjson.poison_on_error(ready)?;
        let begun = self.ndjson.out.begin();
        self.ndjson.poison_on_error(begun)
    }

    async fn write(&mut self, row: Row<'_>) -> Result<(), Error> {
        self.ndjson.write(row).await
    }

    fn encoded_format(&self) -> Option<OutputFormat> {
        self.ndjson.encoded_format()
    }

    fn ecs_options(&self) -> EcsOptions {
        self.ndjson.ecs_options()
    }

    async fn write_encoded(&mut self, file: &EventLogFile, lines: &[u8]) -> Result<(), Error> {
        self.ndjson.write_encoded(file, lines).await
    }

    /// Without a save listener (no collector), returns once the rows are in the output, as a
    /// commit counts as recorded at once.
    async fn commit(&mut self, unit: &Unit<'_>) -> Result<Option<u64>, Error> {
        let position = self.start_commit(unit).await?.await?;
        if !self.listened {
            let appended = self.ndjson.out.listener();
            let done = tokio::task::spawn_blocking(move || appended.settle()).await;
            match done {
                Ok(done) => self.ndjson.poison_on_error(done)?,
                Err(e) => {
                    return Err(Error::Internal(format!(
                        "waiting for the output's append failed: {e}"
                    )));
                }
            }
        }
        Ok(position)
    }

    async fn start_commit(&mut self, _unit: &Unit<'_>) -> Result<PendingCommit, Error> {
        self.guard()?;
        Ok(match self.ndjson.out.commit(!self.listened) {
            Committed::Empty(position) => PendingCommit::done(Some(position)),
            Committed::Staging(position, durable) => {
                // Final at once: a rollback of the next unit must keep this one.
                self.committed = position;
                PendingCommit::running(async move {
                    match durable.await {
                        Ok(staged) => staged.map(|()| Some(position)),
                        Err(_) => Err(Error::Internal(
                            "the output's append thread ended before staging a unit".into(),
                        )),
                    }
                })
            }
        })
    }

    fn committed_position(&self) -> Option<u64> {
        Some(self.committed)
    }

    fn output(&self) -> Option<String> {
        Some(self.output.clone())
    }

    fn save_listener(&mut self) -> Option<SaveListener> {
        self.listened = true;
        Some(self.ndjson.out.listener())
    }

    async fn rollback(&mut self, _unit: &Unit<'_>) -> Result<(), Error> {
        self.ndjson.guard()?;
        let rolled_back = self.ndjson.out.rollback();
        self.ndjson.poison_on_error(rolled_back)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn file() -> EventLogFile {
        crate::event_log_file::test_file()
    }

    fn len(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    /// A unit written and committed through a collector's protocol: nothing reaches the output
    /// before the save listener hears the unit's end, everything once it did.
    #[tokio::test]
    async fn rows_reach_the_output_only_once_the_checkpoint_records_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let mut sink = NdjsonFileSink::open(&path, None).unwrap();
        let listener = sink.save_listener().unwrap();
        let file = file();
        let unit = Unit::LogFile(&file);
        sink.begin(&unit).await.unwrap();
        sink.write_encoded(&file, b"{\"a\":1}\n").await.unwrap();
        assert_eq!(sink.commit(&unit).await.unwrap(), Some(8));
        assert_eq!(len(&path), 0, "committed but not recorded");
        assert_eq!(Sink::committed_position(&sink), Some(8));
        listener.saved(8).unwrap();
        listener.settle().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\":1}\n");
    }

    /// A unit that fails mid-way after rows were written leaves the output as it was, even
    /// when it is larger than a slot's memory (so part of it reached its staging file).
    #[tokio::test]
    async fn a_rollback_never_touches_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let mut sink = NdjsonFileSink::open(&path, None).unwrap();
        let listener = sink.save_listener().unwrap();
        let file = file();
        let unit = Unit::LogFile(&file);
        sink.begin(&unit).await.unwrap();
        sink.write_encoded(&file, b"{}\n").await.unwrap();
        let first = sink.commit(&unit).await.unwrap().unwrap();
        listener.saved(first).unwrap();
        listener.settle().unwrap();
        sink.begin(&unit).await.unwrap();
        let line = vec![b'x'; 1 << 20];
        for _ in 0..20 {
            sink.write_encoded(&file, &line).await.unwrap();
        }
        sink.rollback(&unit).await.unwrap();
        assert_eq!(len(&path), 3);
        sink.begin(&unit).await.unwrap();
        sink.write_encoded(&file, b"{\"b\":2}\n").await.unwrap();
        let second = sink.commit(&unit).await.unwrap().unwrap();
        listener.saved(second).unwrap();
        listener.settle().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}\n{\"b\":2}\n");
    }

    /// A unit larger than a slot's memory is read back from its staging file for the append.
    #[tokio::test]
    async fn a_unit_larger_than_memory_is_appended_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let mut sink = NdjsonFileSink::open(&path, None).unwrap();
        let listener = sink.save_listener().unwrap();
        let file = file();
        let unit = Unit::LogFile(&file);
        sink.begin(&unit).await.unwrap();
        let mut expected = Vec::new();
        for i in 0..40u8 {
            let piece = vec![b'a' + i % 26; (1 << 20) + 7 * usize::from(i)];
            sink.write_encoded(&file, &piece).await.unwrap();
            expected.extend_from_slice(&piece);
        }
        let end = sink.commit(&unit).await.unwrap().unwrap();
        assert_eq!(end, expected.len() as u64);
        listener.saved(end).unwrap();
        listener.settle().unwrap();
        assert!(std::fs::read(&path).unwrap() == expected);
    }

    /// The pipeline the collector runs: the next unit is written while the one before commits.
    #[tokio::test]
    async fn a_started_commit_is_final_at_once_and_appended_once_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let mut sink = NdjsonFileSink::open(&path, None).unwrap();
        let listener = sink.save_listener().unwrap();
        let file = file();
        let unit = Unit::LogFile(&file);
        sink.begin(&unit).await.unwrap();
        sink.write_encoded(&file, b"{\"a\":1}\n").await.unwrap();
        let pending = sink.start_commit(&unit).await.unwrap();
        assert_eq!(Sink::committed_position(&sink), Some(8));
        // The next file is written and fails before the commit was waited for: its rollback
        // keeps the committed file.
        sink.begin(&unit).await.unwrap();
        sink.write_encoded(&file, b"{\"b\":2}\n").await.unwrap();
        sink.rollback(&unit).await.unwrap();
        assert_eq!(pending.await.unwrap(), Some(8));
        listener.saved(8).unwrap();
        listener.settle().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\":1}\n");
    }

    /// Committing unit after unit without telling the saves would fill every slot with rows
    /// the sink may not append: refused, rather than waiting for ever.
    #[tokio::test]
    async fn units_no_checkpoint_records_do_not_pile_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let mut sink = NdjsonFileSink::open(&path, None).unwrap();
        let _listener = sink.save_listener().unwrap();
        let file = file();
        let unit = Unit::LogFile(&file);
        let mut refused = None;
        for _ in 0..staging::SLOTS + 1 {
            if let Err(e) = sink.begin(&unit).await {
                refused = Some(e.to_string());
                break;
            }
            sink.write_encoded(&file, b"{}\n").await.unwrap();
            sink.commit(&unit).await.unwrap();
        }
        let refused = refused.expect("refused before the slots ran out");
        assert!(refused.contains("save listener"), "{refused}");
        drop(sink);
        assert_eq!(len(&path), 0, "nothing recorded, nothing appended");
    }

    /// Without a collector (no save listener asked for), a commit counts as recorded: its
    /// rows are appended in the background, and dropping the sink waits for them.
    #[tokio::test]
    async fn without_a_listener_commits_are_appended_and_drop_waits_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let mut sink = NdjsonFileSink::open(&path, None).unwrap();
        let file = file();
        let unit = Unit::LogFile(&file);
        for _ in 0..10 {
            sink.begin(&unit).await.unwrap();
            sink.write_encoded(&file, b"{}\n").await.unwrap();
            sink.commit(&unit).await.unwrap();
        }
        drop(sink);
        assert_eq!(len(&path), 30);
        for index in 0..staging::SLOTS {
            assert!(
                !staging::staging_path(&path, index).exists(),
                "staging files are removed once nothing needs them"
            );
        }
    }
}
