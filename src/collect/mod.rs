//! The collection engine: every source delivers through it, into one [`Sink`], with one
//! [`Checkpoint`].
//!
//! A pass walks each selected source in turn (EventLogFile first, then each object). Every
//! source cuts its rows into [`Unit`]s (an EventLogFile, an `EventDate` window, a keyset
//! batch) and every unit goes through the same steps: the sink takes its rows and commits
//! them, the checkpoint saves the source's new position together with the sink's committed
//! position, the [`DeliveryFigures`] and the [`Progress`] move, and a stop request is honoured
//! before the next unit. Only the sources' own walking differs:
//!
//! - EventLogFile: files by `(CreatedDate, Id)` with a lookback, downloaded ahead and
//!   committed while the next one is written ([`CollectorOptions`]);
//! - big objects by `EventDate` windows with an overlap deduplicated by `EventIdentifier`, and
//!   standard objects by `(CreatedDate, Id)` keysets ([`ObjectCollectorOptions`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), salesforce_jwt::Error> {
//! use std::sync::atomic::AtomicBool;
//! use salesforce_jwt::collect::{Collector, CollectorOptions, FileCheckpointStore};
//! use salesforce_jwt::event_log::{EventLogFileQuery, EventType};
//! use salesforce_jwt::sink::NdjsonFileSink;
//! use salesforce_jwt::{JwtBearerClient, JwtBearerConfig};
//!
//! let client = JwtBearerClient::new(JwtBearerConfig::from_env()?)?;
//! let query = EventLogFileQuery::new().event_types([EventType::Login, EventType::Logout]);
//! let store = FileCheckpointStore::new("collector.checkpoint.json");
//! let mut collector = Collector::new(client, query, store, CollectorOptions::default())?;
//! let mut sink = NdjsonFileSink::resume("events.ndjson", collector.checkpoint())?;
//! let summary = collector
//!     .run_pass(&mut sink, &mut |_progress| {}, &AtomicBool::new(false))
//!     .await?;
//! println!("{} rows from {} files", summary.rows, summary.files);
//! # Ok(()) }
//! ```

pub(crate) mod checkpoint;
mod collector;
mod event_log_files;
mod figures;
mod object_options;
mod object_state;
mod objects;
mod options;
mod pass;
mod positions;
mod sink;
mod source;

pub use checkpoint::{
    CHECKPOINT_VERSION, Checkpoint, CheckpointStore, CompletedFile, EVENT_LOG_FILE_ALL_TYPES,
    EventLogFileState, FileCheckpointStore, MAX_SKIPPED, MIGRATED_V1_SOURCE, MemoryCheckpointStore,
    SkippedFile, SourceState,
};
pub use collector::Collector;
pub use figures::{DeliveryFigures, SourceFigures};
pub use object_options::{ObjectCollectorOptions, ObjectSummary};
pub use object_state::{BigObjectState, KeysetPosition, KeysetState, QuietWatch, SkippedWindow};
pub use options::{CollectorOptions, PassSummary, Progress};
pub use sink::{Batch, PendingCommit, Row, Sink, Unit};
