//! The one interface every source writes through: [`Sink`], with the [`Unit`] of delivery
//! (an EventLogFile, an object's window or batch) and the [`Row`] it holds.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use time::OffsetDateTime;

use crate::error::Error;
use crate::event_log_file::{EventLogFile, LogRecord};
use crate::format::OutputFormat;
use crate::format::ecs::EcsOptions;
use crate::objects::{EventObject, ObjectRecord};

/// A unit of delivery: what a [`Sink`] makes durable in one commit, and what the checkpoint
/// moves past only after that commit.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Unit<'a> {
    /// Every row of one EventLogFile.
    LogFile(&'a EventLogFile),
    /// The rows of one `EventDate` window of a big object, or of one keyset batch of a
    /// standard object.
    Batch(Batch<'a>),
}

impl<'a> Unit<'a> {
    /// The EventLogFile, for a unit of log-file rows.
    pub fn log_file(&self) -> Option<&'a EventLogFile> {
        match self {
            Unit::LogFile(file) => Some(file),
            Unit::Batch(_) => None,
        }
    }

    /// The window or batch, for a unit of object rows.
    pub fn batch(&self) -> Option<&Batch<'a>> {
        match self {
            Unit::Batch(batch) => Some(batch),
            Unit::LogFile(_) => None,
        }
    }

    /// The source's key in the checkpoint's terms, for messages: the EventLogFile's
    /// `EventType`, or the object's API name.
    pub fn source(&self) -> &'a str {
        match self {
            Unit::LogFile(file) => file.event_type.as_str(),
            Unit::Batch(batch) => batch.object.name(),
        }
    }
}

impl fmt::Display for Unit<'_> {
    /// `EventLogFile 0AT... (Login)`, or `LoginEvent (2024-07-08T07:00:00.000Z, 2024-...]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unit::LogFile(file) => write!(f, "EventLogFile {} ({})", file.id, file.event_type),
            Unit::Batch(batch) => write!(
                f,
                "{} ({}, {}]",
                batch.object,
                crate::datetime::rfc3339_millis(batch.after),
                crate::datetime::rfc3339_millis(batch.up_to)
            ),
        }
    }
}

/// The rows of one `EventDate` window of a big object, or of one keyset batch of a standard
/// object.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// The object the rows come from.
    pub object: &'a EventObject,
    /// The exclusive lower bound (`EventDate` or `CreatedDate`).
    pub after: OffsetDateTime,
    /// The inclusive upper bound.
    pub up_to: OffsetDateTime,
}

/// One row on its way to a [`Sink`], with where it comes from.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Row<'a> {
    /// A row of an EventLogFile's CSV.
    LogFile {
        /// The file.
        file: &'a EventLogFile,
        /// The row.
        record: &'a LogRecord,
    },
    /// A row of a real-time storage object or SetupAuditTrail.
    Object {
        /// The object.
        object: &'a EventObject,
        /// The row.
        record: &'a ObjectRecord,
    },
}

/// Receives the rows of every source and makes them durable, one [`Unit`] at a time.
///
/// The [`Collector`](crate::collect::Collector) calls `begin`, `write` for every row (or
/// [`write_encoded`](Self::write_encoded) for pre-encoded log-file lines), then
/// [`start_commit`](Self::start_commit) (by default, `commit`); only once that commit completed
/// does the checkpoint move past the unit. If the unit fails mid-way it calls `rollback`
/// instead, and the unit is delivered again from its first row. An object window with no new
/// row costs the sink nothing: `begin` comes with the first row.
///
/// # The restart protocol
///
/// A process can die between a commit and the checkpoint save that records it (with a commit
/// running in the background, while the next unit is written), so the output can hold rows the
/// checkpoint does not count. Exactly-once delivery needs the sink to take part through
/// *positions*, numbers that say how far the committed output reaches (a file length, a row
/// count, a transaction sequence):
///
/// - `commit` makes the unit's rows durable and returns the position where the committed
///   output now ends; the collector stores it as
///   [`Checkpoint::sink_position`](crate::collect::Checkpoint::sink_position) in the same save
///   that records the unit. Every source shares that one position.
/// - `committed_position` returns where the committed output ends now: the last commit's
///   position, or, before any, where the sink started. The collector records it before the
///   first row of a new checkpoint, and at the start of every pass compares it with the
///   checkpoint's: a difference means a commit, checkpoint save or rollback failed earlier,
///   and the pass is refused with an [`Error::Sink`] rather than going on from a position
///   nobody can prove.
/// - On restart, open the sink at the checkpoint's `sink_position` and drop everything past
///   it before taking rows: that is the unit whose commit the checkpoint never recorded, and
///   it is delivered again. A sink whose readers must never see rows taken back keeps them
///   from the output until the checkpoint records them instead ([`Sink::save_listener`]):
///   [`NdjsonFileSink::resume`](crate::sink::NdjsonFileSink::resume) does this, and finishes
///   on restart an append the checkpoint recorded but a crash interrupted.
/// - `output` names the output, so a checkpoint is never applied to another one.
///
/// A sink without positions (`None` everywhere, like
/// [`NdjsonSink`](crate::sink::NdjsonSink)) is at-least-once: after a crash, the unit being
/// delivered may appear twice.
///
/// # Errors
///
/// Return the sink's own failures with [`Error::sink`], saying whether a retry may help: a
/// retryable error from `write` makes the collector roll a log file back and download it
/// again, any other ends the pass. After an error whose effect on the output is unknown, refuse
/// every later call until the sink is reopened (the provided sinks do).
///
/// tests/collector.rs holds a complete example over an in-memory transactional store
/// (`TransactionalSink`), tested for exactly-once across a failure mid-file and a restart.
pub trait Sink: Send {
    /// A unit starts.
    fn begin(&mut self, unit: &Unit<'_>) -> impl Future<Output = Result<(), Error>> + Send;

    /// One row of the current unit.
    fn write(&mut self, row: Row<'_>) -> impl Future<Output = Result<(), Error>> + Send;

    /// Makes the unit's rows durable. Returns a position to store in the checkpoint (such as
    /// the output's length), handed back on restart so the sink can discard anything written
    /// past it; `None` when the sink has no such notion.
    fn commit(
        &mut self,
        unit: &Unit<'_>,
    ) -> impl Future<Output = Result<Option<u64>, Error>> + Send;

    /// Starts making the unit's rows durable, as [`commit`](Self::commit) does, and returns a
    /// [`PendingCommit`] that resolves once they are, with the position.
    ///
    /// The collector commits log files through this. While a commit is
    /// [running](PendingCommit::running), it begins the next file and writes its rows, so the
    /// disk works while rows arrive; it records the file in the checkpoint only once the commit
    /// resolved, waits for it before the next commit, and stops at its error. The sink must
    /// treat a started commit as final at once: a `rollback` of the next unit discards only
    /// what was written after it. If it fails, the output holds the unit but the checkpoint
    /// does not, as when a process dies before the save: the next pass's position check
    /// refuses to go on, and a restart cuts the unit back.
    ///
    /// The default commits with `commit` and returns a commit that is
    /// [done](PendingCommit::done): the collector then records the unit before it begins the
    /// next one, the order of every sink that does not override this (a sink that makes rows
    /// durable in the checkpoint's own save relies on it).
    fn start_commit(
        &mut self,
        unit: &Unit<'_>,
    ) -> impl Future<Output = Result<PendingCommit, Error>> + Send {
        async move { self.commit(unit).await.map(PendingCommit::done) }
    }

    /// Discards what was written since the last commit.
    fn rollback(&mut self, unit: &Unit<'_>) -> impl Future<Output = Result<(), Error>> + Send;

    /// Where everything committed so far ends (what `commit` last reported, or where the sink
    /// started). The collector records it before the first row of a run, so that a crash in
    /// the very first unit can be cut back too. `None` when the sink has no such notion.
    fn committed_position(&self) -> Option<u64> {
        None
    }

    /// A listener the collector tells, after every checkpoint save, the sink position the
    /// checkpoint now records: for a sink that holds committed rows back until the checkpoint
    /// names them ([`NdjsonFileSink`](crate::sink::NdjsonFileSink) appends a unit's rows to its
    /// file only then, so that the file never holds rows to take back). The collector asks for
    /// it at the start of every pass; a sink that was never asked may take each commit as
    /// recorded at once. `None` (the default) for sinks that do not care.
    fn save_listener(&mut self) -> Option<SaveListener> {
        None
    }

    /// Which output the positions refer to (for a file, its absolute path), recorded in
    /// [`Checkpoint::output`](crate::collect::Checkpoint::output) by the first pass; a later
    /// pass with a sink naming another output is refused. `None` (the default) when positions
    /// mean nothing or the sink cannot tell.
    fn output(&self) -> Option<String> {
        None
    }

    /// The format this sink writes log-file rows in, when it takes them already encoded
    /// through [`write_encoded`](Self::write_encoded); `None` (the default) when it takes rows.
    ///
    /// With `Some`, the collector encodes each EventLogFile's rows in that file's download
    /// task, where they are decoded, so that decoding and encoding run on the runtime's worker
    /// threads beside the collector's own task, which only writes and commits (bounded by the
    /// same byte budget as the rows; a retried file takes [`write`](Self::write)). The protocol
    /// is unchanged: `begin`, the file's lines, `commit` or `rollback`.
    fn encoded_format(&self) -> Option<OutputFormat> {
        None
    }

    /// The options of the ECS documents the sink writes, for the encoding done in the
    /// download tasks ([`encoded_format`](Self::encoded_format)); the defaults unless the sink
    /// was given others.
    fn ecs_options(&self) -> EcsOptions {
        EcsOptions::default()
    }

    /// Whole lines of the current log file's rows, in file order, encoded in
    /// [`encoded_format`](Self::encoded_format) exactly as [`write`](Self::write) would have
    /// written them. Called only when `encoded_format` returns `Some`; the default refuses.
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

/// Told each sink position a checkpoint save recorded ([`Sink::save_listener`]). Cheap to
/// clone.
#[derive(Clone)]
pub struct SaveListener {
    saved: Callback<u64>,
    settle: Option<Callback<()>>,
}

/// A listener's callback.
type Callback<T> = Arc<dyn Fn(T) -> Result<(), Error> + Send + Sync>;

impl SaveListener {
    /// A listener calling `saved` with each recorded position. The collector calls it on its
    /// own task after each save, so it should hand work over rather than do it (a sink that
    /// appends recorded rows wakes its writer); it fails when the sink already failed.
    pub fn new(saved: impl Fn(u64) -> Result<(), Error> + Send + Sync + 'static) -> Self {
        SaveListener {
            saved: Arc::new(saved),
            settle: None,
        }
    }

    /// What the collector calls when a pass ends, whatever its outcome: returns once the work
    /// the recorded positions allowed is done (the rows are in the output), or with why not.
    pub fn with_settle(
        mut self,
        settle: impl Fn() -> Result<(), Error> + Send + Sync + 'static,
    ) -> Self {
        self.settle = Some(Arc::new(move |()| settle()));
        self
    }

    /// The checkpoint now records `position` (positions only grow; an older one is harmless).
    pub fn saved(&self, position: u64) -> Result<(), Error> {
        (self.saved)(position)
    }

    /// The pass ended: waits for the work the saves allowed.
    pub fn settle(&self) -> Result<(), Error> {
        self.settle.as_ref().map_or(Ok(()), |settle| settle(()))
    }
}

impl fmt::Debug for SaveListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SaveListener")
    }
}

/// A commit started by [`Sink::start_commit`]: a future that resolves once the file's
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
    /// [`Sink::commit`] would return.
    pub fn done(position: Option<u64>) -> Self {
        PendingCommit(Pending::Done(position))
    }

    /// A commit that completes when `durable` resolves, with the position it gives. It must
    /// make progress without being polled (a task, a blocking thread): the collector polls it
    /// only while it waits for the next unit's rows.
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
