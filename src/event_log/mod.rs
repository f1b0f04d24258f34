//! Event Monitoring: the EventLogFile model, typed queries, streaming downloads and
//! exactly-once collection.

mod checkpoint;
mod collector;
mod download;
mod figures;
mod model;
mod query;
mod record;
mod sink;

/// Salesforce's REST datetimes: moved to [`crate::datetime`].
#[deprecated(since = "0.1.0", note = "moved to salesforce_jwt::datetime")]
pub use crate::datetime as sf_datetime;
pub(crate) use checkpoint::begin_org;
pub use checkpoint::{
    CHECKPOINT_VERSION, Checkpoint, CheckpointStore, CompletedFile, EVENT_LOG_FILE_ALL_TYPES,
    EventLogFileState, FileCheckpointStore, MAX_SKIPPED, MIGRATED_V1_SOURCE, MemoryCheckpointStore,
    SkippedFile, SourceState,
};
pub(crate) use collector::begin_output;
pub use collector::{Collector, CollectorOptions, PassSummary, Progress, SourcesPassSummary};
pub use download::{FileRecords, LogFileBody, LogRecords};
pub use figures::{DeliveryFigures, SourceFigures};
pub use model::{EventLogFile, EventType, Interval};
pub use query::{Cursor, EVENT_LOG_FILE_FIELDS, EventLogFileQuery, IntervalFilter};
pub use record::{FieldType, FieldValue, LogFileDecoder, LogRecord, Schema, parse_log_datetime};
pub use sink::{NdjsonFileSink, NdjsonRow, NdjsonSink, PendingCommit, RecordSink};
