//! Log rows: an incremental CSV decoder building [`LogRecord`]s.
//!
//! Salesforce's CSV: a header row, every field double-quoted, `""` for a quote, fields that hold
//! commas and newlines, empty values as `""`. Columns differ by event type and change between
//! releases, so every access is by header name, never by position.
//!
//! The rows themselves ([`LogRecord`], [`Schema`], typed values) are the format's row type,
//! in [`crate::format::row`]; here: the CSV decoder (`decoder`) and the row splitter for
//! decoding one file on several threads (`split`).

mod decoder;
pub(crate) mod split;
#[cfg(test)]
pub(crate) mod testing;

use std::collections::HashMap;

pub use crate::format::row::{FieldType, FieldValue, LogRecord, Schema, parse_log_datetime};
pub use decoder::LogFileDecoder;

/// Column types as `LogFileFieldNames`/`LogFileFieldTypes` declare them.
enum Declared {
    /// Names and types: matched to the header by name.
    ByName(HashMap<String, FieldType>),
    /// Types only (some query responses leave out `LogFileFieldNames`): in header order.
    ByPosition(Vec<FieldType>),
}

impl Declared {
    /// The type of each of the header's columns `names`, in the file `file_id`.
    fn types_of(&self, file_id: &str, names: &[Box<str>]) -> Vec<FieldType> {
        match self {
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
        }
    }
}
