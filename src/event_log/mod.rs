//! Event Monitoring's log files: the EventLogFile model, typed queries, streaming downloads
//! and CSV decoding. This module only reads Salesforce; collecting the files exactly once is
//! the engine's ([`collect`](crate::collect)).

mod download;
pub(crate) mod encode;
mod model;
mod query;
mod record;

pub use download::{FileRecords, LogFileBody, LogRecords};
#[cfg(test)]
pub(crate) use model::test_file;
pub use model::{EventLogFile, EventType, Interval};
/// Salesforce's REST datetimes: moved to [`crate::datetime`].
#[deprecated(since = "0.1.0", note = "moved to salesforce_jwt::datetime")]
pub use crate::datetime as sf_datetime;
pub use query::{Cursor, EVENT_LOG_FILE_FIELDS, EventLogFileQuery, IntervalFilter};
pub use record::{FieldType, FieldValue, LogFileDecoder, LogRecord, Schema, parse_log_datetime};

// Moved to the engine (`collect`) and the sinks (`sink`) in 0.x; the old paths stay one release.
#[deprecated(note = "moved to salesforce_jwt::collect")]
pub use crate::collect::{
    CHECKPOINT_VERSION, Checkpoint, CheckpointStore, Collector, CollectorOptions, CompletedFile,
    DeliveryFigures, EVENT_LOG_FILE_ALL_TYPES, EventLogFileState, FileCheckpointStore, MAX_SKIPPED,
    MIGRATED_V1_SOURCE, MemoryCheckpointStore, PassSummary, PendingCommit, Progress, SkippedFile,
    SourceFigures, SourceState,
};
#[deprecated(note = "moved to salesforce_jwt::sink")]
pub use crate::sink::{NdjsonFileSink, NdjsonRow, NdjsonSink};
