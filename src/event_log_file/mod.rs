//! Event Monitoring's log files: the EventLogFile model, typed queries, streaming downloads
//! and CSV decoding. This module only reads Salesforce; collecting the files exactly once is
//! the engine's ([`collect`](crate::collect)).
//!
//! ```
//! use salesforce_jwt::event_log_file::{EventLogFileQuery, EventType, IntervalFilter};
//!
//! let query = EventLogFileQuery::new()
//!     .event_types([EventType::Login, EventType::Logout])
//!     .interval(IntervalFilter::Hourly);
//! let soql = query.to_soql();
//! assert!(soql.starts_with("SELECT Id, EventType, LogDate"), "{soql}");
//! assert!(soql.contains("EventType IN ('Login', 'Logout')"), "{soql}");
//! assert!(soql.contains("Interval = 'Hourly'"), "{soql}");
//! ```

mod download;
mod model;
mod query;
mod record;

pub use download::{FileRecords, LogFileBody, LogRecords};
#[cfg(test)]
pub(crate) use model::test_file;
pub use model::{EventLogFile, EventType, Interval};
pub use query::{Cursor, EVENT_LOG_FILE_FIELDS, EventLogFileQuery, IntervalFilter};
pub use record::{FieldType, FieldValue, LogFileDecoder, LogRecord, Schema, parse_log_datetime};
