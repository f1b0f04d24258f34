//! Event Monitoring: the EventLogFile model, typed queries, streaming downloads and
//! exactly-once collection.

mod download;
mod model;
mod query;
mod record;

pub use download::{FileRecords, LogFileBody, LogRecords};
pub use model::{EventLogFile, EventType, Interval, sf_datetime};
pub use query::{Cursor, EVENT_LOG_FILE_FIELDS, EventLogFileQuery, IntervalFilter};
pub use record::{FieldType, FieldValue, LogFileDecoder, LogRecord, Schema, parse_log_datetime};
