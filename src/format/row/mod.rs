//! Log-file rows as the encoders read them: [`LogRecord`] (one decoded CSV row, typed and
//! reached by header name), its columns ([`Schema`]), typed values ([`FieldValue`],
//! [`FieldType`]) and [`LogFileInfo`], what the encoders need of the file a row comes from.
//!
//! The rows are built by the CSV decoder
//! ([`LogFileDecoder`](crate::event_log_file::LogFileDecoder)); this module holds what they are, so
//! that the formats depend on the row type only, not on where rows come from. Typed values
//! and datetime parsing are in `value`, serde support in `serde`.
//!
//! ```
//! use salesforce_jwt::format::row::{FieldValue, LogFileInfo};
//! use time::OffsetDateTime;
//!
//! /// A file described by hand, not an `EventLogFile`: the encoders take either.
//! struct Export;
//!
//! impl LogFileInfo for Export {
//!     fn id(&self) -> &str { "0AT000000000042AAA" }
//!     fn event_type(&self) -> &str { "Login" }
//!     fn log_date(&self) -> OffsetDateTime { OffsetDateTime::UNIX_EPOCH }
//!     fn interval(&self) -> &str { "Daily" }
//!     fn sequence(&self) -> i64 { 0 }
//! }
//!
//! let mut decoder = salesforce_jwt::event_log_file::LogFileDecoder::new(
//!     "0AT000000000042AAA", Some("USER_NAME,RUN_TIME"), Some("String,Number"));
//! let mut rows = Vec::new();
//! decoder.feed(b"\"USER_NAME\",\"RUN_TIME\"\n\"zoe@example.com\",\"42\"\n", &mut rows)?;
//! decoder.finish(&mut rows)?;
//! assert_eq!(rows[0].value("RUN_TIME"), Some(FieldValue::Integer(42)));
//! let doc = salesforce_jwt::format::ecs::log_file_document(&Export, &rows[0]);
//! assert_eq!(doc["salesforce"]["event_log_file"]["id"], "0AT000000000042AAA");
//! assert_eq!(doc["salesforce"]["login"]["run_time"], 42);
//! # Ok::<(), salesforce_jwt::Error>(())
//! ```

mod serde;
mod value;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

use value::typed;
pub use value::{FieldType, FieldValue, parse_log_datetime};

/// What the encoders read of the log file a row comes from: the `EventLogFile` fields the
/// NDJSON rows and ECS documents carry (`salesforce.event_log_file`) and `event.id` hashes.
///
/// [`EventLogFile`](crate::event_log_file::EventLogFile) implements it; the encoders are generic
/// over it, so each use compiles for the concrete type (no call through a vtable per row).
pub trait LogFileInfo {
    /// The EventLogFile `Id`.
    fn id(&self) -> &str;
    /// The `EventType` (`Login`, `URI`...).
    fn event_type(&self) -> &str;
    /// The `LogDate`: start of the day or hour the file covers.
    fn log_date(&self) -> OffsetDateTime;
    /// The `Interval` as Salesforce names it, `Daily` or `Hourly`; `Daily` when the file has
    /// none (API < 37.0, when daily files were the only kind).
    fn interval(&self) -> &str;
    /// The `Sequence`: 0 for daily files, 1, 2, ... for hourly ones.
    fn sequence(&self) -> i64;
}

impl<T: LogFileInfo + ?Sized> LogFileInfo for &T {
    #[inline]
    fn id(&self) -> &str {
        (**self).id()
    }
    #[inline]
    fn event_type(&self) -> &str {
        (**self).event_type()
    }
    #[inline]
    fn log_date(&self) -> OffsetDateTime {
        (**self).log_date()
    }
    #[inline]
    fn interval(&self) -> &str {
        (**self).interval()
    }
    #[inline]
    fn sequence(&self) -> i64 {
        (**self).sequence()
    }
}

/// The columns of one log file: names from its header row, types from `LogFileFieldTypes`.
#[derive(Debug)]
pub struct Schema {
    file_id: Box<str>,
    names: Vec<Box<str>>,
    types: Vec<FieldType>,
    index: HashMap<Box<str>, usize>,
    /// The `EscapedString` columns, whose extra pair of quotes the decoder removes.
    escaped: Vec<usize>,
}

impl Schema {
    /// The columns `names` (from the header row) of the file `file_id`, typed `types` (one per
    /// name).
    pub(crate) fn new(file_id: &str, names: Vec<Box<str>>, types: Vec<FieldType>) -> Schema {
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let escaped = types
            .iter()
            .enumerate()
            .filter(|(_, t)| **t == FieldType::EscapedString)
            .map(|(i, _)| i)
            .collect();
        Schema {
            file_id: Box::from(file_id),
            names,
            types,
            index,
            escaped,
        }
    }

    /// The EventLogFile Id these columns belong to.
    pub fn file_id(&self) -> &str {
        &self.file_id
    }

    /// The column names, in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(AsRef::as_ref)
    }

    /// A column's type.
    pub fn field_type(&self, name: &str) -> Option<FieldType> {
        self.index.get(name).map(|&i| self.types[i])
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no columns.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The `EscapedString` columns, in file order.
    pub(crate) fn escaped(&self) -> &[usize] {
        &self.escaped
    }
}

/// One row of a log file.
///
/// Fields are reached by header name. An empty field (`""`) is absent: [`get`](Self::get) and
/// [`value`](Self::value) return `None`, and serialization leaves it out.
///
/// Serializes to a JSON object of typed values, and [`deserialize`](Self::deserialize)s into a
/// struct whose field names (or `#[serde(rename)]`s) are the header names.
#[derive(Clone)]
pub struct LogRecord {
    // Filled by the decoder (`event_log::record`), which reuses one row's buffers.
    pub(crate) schema: Arc<Schema>,
    /// Every field's text, one after the other.
    pub(crate) text: String,
    /// Where each field ends in `text` (it starts where the previous one ends).
    pub(crate) ends: Vec<usize>,
    pub(crate) line: u64,
}

impl LogRecord {
    /// The file's columns.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// The 1-based line of the CSV where this row starts.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The memory this row holds, for bounding buffers of rows by bytes.
    pub(crate) fn buffered_size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.text.capacity()
            + self.ends.capacity() * std::mem::size_of::<usize>()
    }

    #[inline]
    fn field(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start..self.ends[i]).unwrap_or("")
    }

    /// The raw text of a column, `None` when the column is missing or the value empty.
    #[inline]
    pub fn get(&self, name: &str) -> Option<&str> {
        let &i = self.schema.index.get(name)?;
        Some(self.field(i)).filter(|v| !v.is_empty())
    }

    /// The typed value of a column, `None` when the column is missing or the value empty.
    #[inline]
    pub fn value(&self, name: &str) -> Option<FieldValue<'_>> {
        let &i = self.schema.index.get(name)?;
        let raw = self.field(i);
        (!raw.is_empty()).then(|| typed(raw, self.schema.types[i]))
    }

    /// Every non-empty field: (name, raw text), in file order.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.schema
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_ref(), self.field(i)))
            .filter(|(_, v)| !v.is_empty())
    }

    /// Every non-empty field: (name, typed value), in file order.
    #[inline]
    pub fn values(&self) -> impl Iterator<Item = (&str, FieldValue<'_>)> {
        Values {
            record: self,
            next: 0,
            start: 0,
        }
    }
}

/// The iterator of [`LogRecord::values`]: a plain struct with an `#[inline]` `next`, so that a
/// caller's loop over the values compiles into one loop (see `value::typed` for why that matters).
struct Values<'a> {
    record: &'a LogRecord,
    /// The next column.
    next: usize,
    /// Where the next column's text starts.
    start: usize,
}

impl<'a> Iterator for Values<'a> {
    type Item = (&'a str, FieldValue<'a>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let record = self.record;
        let schema = &*record.schema;
        // `ends` has one entry per column (the decoder checks the count against the header).
        while let Some(&end) = record.ends.get(self.next) {
            let i = self.next;
            let start = self.start;
            self.next += 1;
            self.start = end;
            let raw = record.text.get(start..end).unwrap_or("");
            if raw.is_empty() {
                continue;
            }
            if let (Some(name), Some(&field_type)) = (schema.names.get(i), schema.types.get(i)) {
                return Some((name.as_ref(), typed(raw, field_type)));
            }
        }
        None
    }
}

impl fmt::Debug for LogRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}
