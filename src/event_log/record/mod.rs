//! Log rows: an incremental CSV decoder and typed, named access to each row.
//!
//! Salesforce's CSV: a header row, every field double-quoted, `""` for a quote, fields that hold
//! commas and newlines, empty values as `""`. Columns differ by event type and change between
//! releases, so every access is by header name, never by position.
//!
//! Here: the rows ([`LogRecord`]) and their columns ([`Schema`]). The CSV decoder is in
//! `decoder`, typed values and datetime parsing in `value`, serde support in `serde`.

mod decoder;
mod serde;
pub(crate) mod split;
#[cfg(test)]
pub(crate) mod testing;
mod value;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

pub use decoder::LogFileDecoder;
use value::typed;
pub use value::{FieldType, FieldValue, parse_log_datetime};

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
    fn new(file_id: &str, names: Vec<Box<str>>, declared: &Declared) -> Schema {
        let types: Vec<FieldType> = match declared {
            Declared::ByName(by_name) => names
                .iter()
                .map(|n| {
                    by_name
                        .get(n.as_ref())
                        .copied()
                        .unwrap_or(FieldType::String)
                })
                .collect(),
            // Types without names follow the header's order; if the counts differ they
            // describe another layout, and guessing would mistype columns.
            Declared::ByPosition(types) if types.len() == names.len() => types.clone(),
            Declared::ByPosition(types) => {
                tracing::warn!(
                    id = file_id,
                    types = types.len(),
                    columns = names.len(),
                    "LogFileFieldTypes does not match the header; every column is read as text"
                );
                vec![FieldType::String; names.len()]
            }
        };
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
}

/// Column types as `LogFileFieldNames`/`LogFileFieldTypes` declare them.
enum Declared {
    /// Names and types: matched to the header by name.
    ByName(HashMap<String, FieldType>),
    /// Types only (some query responses leave out `LogFileFieldNames`): in header order.
    ByPosition(Vec<FieldType>),
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
    schema: Arc<Schema>,
    text: String,
    ends: Vec<usize>,
    line: u64,
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
