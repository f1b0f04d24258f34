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
//!   standard objects by `(CreatedDate, Id)` keysets ([`ObjectCollectorOptions`]);
//! - Event Log Objects by `Timestamp` windows of at most 15 days with an overlap as long as
//!   their publication delay, deduplicated by `Id` ([`EventLogObjectOptions`]).
//!
//! Against a mock org (the `salesforce-jwt-mock` crate), EventLogFile and two objects into one
//! output, with the progress every source reports the same way:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), salesforce_jwt::Error> {
//! use std::sync::atomic::AtomicBool;
//! use salesforce_jwt::collect::{
//!     Collector, CollectorOptions, MemoryCheckpointStore, ObjectCollectorOptions,
//! };
//! use salesforce_jwt::event_log_file::EventLogFileQuery;
//! use salesforce_jwt::objects::EventObject;
//! use salesforce_jwt::sink::NdjsonSink;
//! use salesforce_jwt::{JwtBearerClient, OffsetDateTime};
//! use salesforce_jwt_mock::{MockLogFile, MockOrg, generate_records};
//!
//! let org = MockOrg::start().await;
//! let now = OffsetDateTime::now_utc();
//! let yesterday = (now - time::Duration::DAY).replace_time(time::Time::MIDNIGHT);
//! org.add_file(MockLogFile::builder("Logout").log_date(yesterday).rows(4).build());
//! let hour_ago = now - time::Duration::HOUR;
//! let two_hours_ago = now - 2 * time::Duration::HOUR;
//! org.add_records("LoginEvent", generate_records("LoginEvent", two_hours_ago, hour_ago, 5, 1))
//!     .unwrap();
//! org.add_records("SetupAuditTrail", generate_records("SetupAuditTrail", two_hours_ago, hour_ago, 2, 2))
//!     .unwrap();
//!
//! let client = JwtBearerClient::new(org.config_builder().build()?)?;
//! let objects = ["LoginEvent", "SetupAuditTrail"].map(|o| EventObject::named(o).unwrap());
//! let mut collector = Collector::with_sources(
//!     client,
//!     Some(EventLogFileQuery::new()),
//!     objects.to_vec(),
//!     MemoryCheckpointStore::new(),
//!     CollectorOptions::default(),
//!     ObjectCollectorOptions::default(),
//! )?;
//! let mut sources_seen = Vec::new();
//! let mut sink = NdjsonSink::new(Vec::new());
//! let summary = collector
//!     .run_pass(
//!         &mut sink,
//!         &mut |p| sources_seen.extend(p.source.clone().filter(|s| !sources_seen.contains(s))),
//!         &AtomicBool::new(false),
//!     )
//!     .await?;
//! assert_eq!(sources_seen, ["EventLogFile", "LoginEvent", "SetupAuditTrail"]);
//! assert_eq!((summary.event_log_file_rows(), summary.object_rows()), (4, 7));
//! assert_eq!(String::from_utf8_lossy(&sink.into_inner()).lines().count(), 11);
//! # Ok(()) }
//! ```
//!
//! Against a real org, with the checkpoint in a file and the rows appended to another:
//!
//! ```no_run
//! # async fn run() -> Result<(), salesforce_jwt::Error> {
//! use std::sync::atomic::AtomicBool;
//! use salesforce_jwt::collect::{Collector, CollectorOptions, FileCheckpointStore};
//! use salesforce_jwt::event_log_file::{EventLogFileQuery, EventType};
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
mod event_log_objects;
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
pub use event_log_objects::EventLogObjectState;
pub use figures::{DeliveryFigures, SourceFigures};
pub use object_options::EventLogObjectOptions;
pub use object_options::{ObjectCollectorOptions, ObjectSummary};
pub use object_state::{BigObjectState, KeysetPosition, KeysetState, QuietWatch, SkippedWindow};
pub use options::{CollectorOptions, PassSummary, Progress};
pub use sink::{Batch, PendingCommit, Row, SaveListener, Sink, Unit};
