//! The former home of EventLogFile, its collection and the NDJSON sinks, kept one release so
//! that code written for it still compiles: the source is now
//! [`event_log_file`](crate::event_log_file), the engine [`collect`](crate::collect) and the
//! sinks [`sink`](crate::sink). Nothing in the crate imports this module.

pub use crate::event_log_file::*;

#[deprecated(since = "0.1.0", note = "moved to salesforce_jwt::collect")]
pub use crate::collect::{
    CHECKPOINT_VERSION, Checkpoint, CheckpointStore, Collector, CollectorOptions, CompletedFile,
    DeliveryFigures, EVENT_LOG_FILE_ALL_TYPES, EventLogFileState, FileCheckpointStore, MAX_SKIPPED,
    MIGRATED_V1_SOURCE, MemoryCheckpointStore, PassSummary, PendingCommit, Progress, SkippedFile,
    SourceFigures, SourceState,
};
/// Salesforce's REST datetimes: moved to [`crate::datetime`].
#[deprecated(since = "0.1.0", note = "moved to salesforce_jwt::datetime")]
pub use crate::datetime as sf_datetime;
#[deprecated(since = "0.1.0", note = "moved to salesforce_jwt::sink")]
pub use crate::sink::{NdjsonFileSink, NdjsonRow, NdjsonSink};
