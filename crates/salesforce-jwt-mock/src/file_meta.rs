//! What the org knows of each EventLogFile, apart from its CSV body. Its own module so that the
//! state (which stores it) and the SOQL evaluator (which filters it) both depend on it rather
//! than on each other.

use time::OffsetDateTime;

use super::generate::Interval;

/// A file's metadata: everything a query can return.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FileMeta {
    pub(crate) id: String,
    pub(crate) event_type: String,
    pub(crate) interval: Interval,
    pub(crate) log_date: OffsetDateTime,
    pub(crate) created_date: OffsetDateTime,
    pub(crate) sequence: i32,
    pub(crate) length: u64,
    pub(crate) row_count: usize,
    pub(crate) field_names: String,
    pub(crate) field_types: String,
    pub(crate) api_version: f64,
}
