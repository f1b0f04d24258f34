//! Log rows: an incremental CSV decoder and typed, named access to each row.
//!
//! Salesforce's CSV: a header row, every field double-quoted, `""` for a quote, fields that hold
//! commas and newlines, empty values as `""`. Columns differ by event type and change between
//! releases, so every access is by header name, never by position.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use csv_core::ReadRecordResult;
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use crate::error::Error;
use crate::event_log::model::EventLogFile;

/// A column's type, from `LogFileFieldTypes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FieldType {
    /// `String`.
    String,
    /// `EscapedString`: text Salesforce may wrap in an extra pair of quotes (`"""home"""` in
    /// the CSV); the decoder removes that pair, so the value is `home`.
    EscapedString,
    /// `Id`: a Salesforce record Id.
    Id,
    /// `Number`.
    Number,
    /// `Boolean`.
    Boolean,
    /// `DateTime`: ISO 8601 (`2015-07-27T11:32:59.555Z`) or `yyyyMMddHHmmss.SSS`.
    DateTime,
    /// `IP`: an address, or the literal `Salesforce.com IP`.
    Ip,
    /// A type this crate does not know: the value stays a string.
    Other,
}

impl FieldType {
    /// Maps Salesforce's type name.
    pub fn from_salesforce(name: &str) -> FieldType {
        match name.trim() {
            "String" => FieldType::String,
            "EscapedString" => FieldType::EscapedString,
            "Id" => FieldType::Id,
            "Number" | "Double" | "Integer" | "Long" => FieldType::Number,
            "Boolean" => FieldType::Boolean,
            "DateTime" | "Date" => FieldType::DateTime,
            "IP" => FieldType::Ip,
            _ => FieldType::Other,
        }
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

/// A typed field value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    /// Text (String, EscapedString, unknown types, and values that do not parse as their type).
    String(&'a str),
    /// A Salesforce Id.
    Id(&'a str),
    /// A whole number.
    Integer(i64),
    /// A number with a fraction.
    Float(f64),
    /// A boolean.
    Boolean(bool),
    /// A point in time, in UTC.
    DateTime(OffsetDateTime),
    /// An IP address.
    Ip(IpAddr),
}

impl Serialize for FieldValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FieldValue::String(v) | FieldValue::Id(v) => s.serialize_str(v),
            FieldValue::Integer(v) => s.serialize_i64(*v),
            FieldValue::Float(v) => s.serialize_f64(*v),
            FieldValue::Boolean(v) => s.serialize_bool(*v),
            FieldValue::DateTime(t) => {
                let format = format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
                );
                match t.format(format) {
                    Ok(text) => s.serialize_str(&text),
                    Err(e) => Err(serde::ser::Error::custom(e)),
                }
            }
            FieldValue::Ip(ip) => s.collect_str(ip),
        }
    }
}

// Typed access runs once per field, so its shape matters. `typed` is inlined into the
// caller's loop with the common cases (Id, strings, integers, booleans) in line and the rarer,
// larger parsers (floats, datetimes, addresses) out of line, returning plain values; and
// `LogRecord::values` is an iterator struct with an `#[inline]` `next` rather than a
// `filter_map` closure. With the closure, each `(name, FieldValue)` came back through memory
// written piece by piece and was then copied as a block, which stalls on store forwarding (the
// `IpAddr` variant, alignment 1, puts the payload at an odd offset); that cost more than the
// parsing. Records bench (benches/records.rs, 2-core VM): typed records went from 0.33-0.44 to
// 0.59-0.67 of `csv::ByteRecord` throughput.
#[inline(always)]
fn typed(raw: &str, field_type: FieldType) -> FieldValue<'_> {
    match field_type {
        FieldType::String | FieldType::EscapedString | FieldType::Other => FieldValue::String(raw),
        FieldType::Id => FieldValue::Id(raw),
        FieldType::Number => match raw.parse::<i64>() {
            Ok(v) => FieldValue::Integer(v),
            Err(_) => match parse_float(raw) {
                Some(f) => FieldValue::Float(f),
                None => FieldValue::String(raw),
            },
        },
        FieldType::Boolean => match parse_bool(raw) {
            Some(v) => FieldValue::Boolean(v),
            None => FieldValue::String(raw),
        },
        FieldType::DateTime => match parse_log_datetime(raw) {
            Some(t) => FieldValue::DateTime(t),
            None => FieldValue::String(raw),
        },
        // `Salesforce.com IP` and anything else that is not an address stays text.
        FieldType::Ip => match parse_ip(raw) {
            Some(ip) => FieldValue::Ip(ip),
            None => FieldValue::String(raw),
        },
    }
}

/// A number that is not an integer: a finite float.
#[inline(never)]
fn parse_float(raw: &str) -> Option<f64> {
    raw.parse::<f64>().ok().filter(|f| f.is_finite())
}

#[inline(never)]
fn parse_ip(raw: &str) -> Option<IpAddr> {
    raw.parse::<IpAddr>().ok()
}

#[inline]
fn parse_bool(raw: &str) -> Option<bool> {
    match raw {
        "true" | "TRUE" | "True" | "1" => Some(true),
        "false" | "FALSE" | "False" | "0" => Some(false),
        _ => None,
    }
}

/// `2015-07-27T11:32:59.555Z`, or the `TIMESTAMP` form `20150727113259.555` (GMT), with or
/// without milliseconds.
#[inline(never)]
pub fn parse_log_datetime(raw: &str) -> Option<OffsetDateTime> {
    // The two exact shapes Salesforce writes, without `time`'s general parsers (a DateTime
    // column is in nearly every row); anything else, or a fast path that fails, takes the
    // general route below, so results never differ.
    if let Some(t) = parse_fixed_datetime(raw.as_bytes()) {
        return Some(t);
    }
    if raw.len() >= 14 && raw.as_bytes()[..14].iter().all(u8::is_ascii_digit) {
        let with_ms = format_description!("[year][month][day][hour][minute][second].[subsecond]");
        let without = format_description!("[year][month][day][hour][minute][second]");
        let parse = |f| time::PrimitiveDateTime::parse(raw, f).ok();
        return parse(with_ms)
            .or_else(|| parse(without))
            .map(time::PrimitiveDateTime::assume_utc);
    }
    OffsetDateTime::parse(raw, &Rfc3339)
        .ok()
        .map(|t| t.to_offset(time::UtcOffset::UTC))
}

/// Where a fixed-shape datetime keeps its digits (year, month, day, hour, minute, second,
/// millisecond: start and end indexes) and which bytes must sit between them.
type DateTimeShape = ([(usize, usize); 7], &'static [(usize, u8)]);

/// `2015-07-27T11:32:59.555Z`.
const ISO_MILLIS: DateTimeShape = (
    [
        (0, 4),
        (5, 7),
        (8, 10),
        (11, 13),
        (14, 16),
        (17, 19),
        (20, 23),
    ],
    &[
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (23, b'Z'),
    ],
);

/// `20150727113259.555`.
const COMPACT_MILLIS: DateTimeShape = (
    [
        (0, 4),
        (4, 6),
        (6, 8),
        (8, 10),
        (10, 12),
        (12, 14),
        (15, 18),
    ],
    &[(14, b'.')],
);

/// `2015-07-27T11:32:59.555Z` (24 bytes) or `20150727113259.555` (18 bytes), exactly.
fn parse_fixed_datetime(b: &[u8]) -> Option<OffsetDateTime> {
    let (fields, separators) = match b.len() {
        24 => ISO_MILLIS,
        18 => COMPACT_MILLIS,
        _ => return None,
    };
    if separators.iter().any(|&(i, c)| b.get(i) != Some(&c)) {
        return None;
    }
    let mut values = [0u16; 7];
    for (value, &(start, end)) in values.iter_mut().zip(&fields) {
        for &digit in b.get(start..end)? {
            if !digit.is_ascii_digit() {
                return None;
            }
            *value = *value * 10 + u16::from(digit - b'0');
        }
    }
    let [year, month, day, hour, minute, second, milli] = values;
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::from(year), month, u8::try_from(day).ok()?);
    let time = time::Time::from_hms_milli(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
        milli,
    );
    Some(time::PrimitiveDateTime::new(date.ok()?, time.ok()?).assume_utc())
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

    /// Deserializes the row into `T` by header name. Numbers and booleans are parsed from the
    /// text when `T` asks for them; empty fields are missing (so `Option` fields are `None`).
    ///
    /// ```
    /// # use salesforce_jwt::event_log::LogFileDecoder;
    /// #[derive(serde::Deserialize)]
    /// struct Login {
    ///     #[serde(rename = "USER_NAME")]
    ///     user: String,
    ///     #[serde(rename = "RUN_TIME")]
    ///     run_time_ms: u64,
    ///     #[serde(rename = "SOURCE_IP")]
    ///     source_ip: Option<String>,
    /// }
    /// let mut decoder = LogFileDecoder::new("0AT000000000001AAA", None, None);
    /// let mut rows = Vec::new();
    /// decoder.feed(b"\"USER_NAME\",\"RUN_TIME\",\"SOURCE_IP\"\n\"zoe@example.com\",\"42\",\"\"\n", &mut rows)?;
    /// decoder.finish(&mut rows)?;
    /// let login: Login = rows[0].deserialize()?;
    /// assert_eq!((login.user.as_str(), login.run_time_ms, login.source_ip), ("zoe@example.com", 42, None));
    /// # Ok::<(), salesforce_jwt::Error>(())
    /// ```
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, Error> {
        T::deserialize(RecordDeserializer(self)).map_err(|e| Error::Csv {
            id: self.schema.file_id.to_string(),
            line: self.line,
            message: format!("cannot deserialize the row: {}", e.0),
        })
    }
}

/// The iterator of [`LogRecord::values`]: a plain struct with an `#[inline]` `next`, so that a
/// caller's loop over the values compiles into one loop (see `typed` for why that matters).
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

impl Serialize for LogRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (name, value) in self.values() {
            map.serialize_entry(name, &value)?;
        }
        map.end()
    }
}

/// Turns a log file's bytes, fed in chunks of any size, into [`LogRecord`]s.
///
/// Memory holds one row at a time (plus the rows handed out), whatever the file's size.
pub struct LogFileDecoder {
    id: String,
    reader: csv_core::Reader,
    declared: Declared,
    schema: Option<Arc<Schema>>,
    fields: Vec<u8>,
    ends: Vec<usize>,
    out_len: usize,
    ends_len: usize,
    record_line: u64,
    started: bool,
    head: Vec<u8>,
}

const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// Column types as `LogFileFieldNames`/`LogFileFieldTypes` declare them.
enum Declared {
    /// Names and types: matched to the header by name.
    ByName(HashMap<String, FieldType>),
    /// Types only (some query responses leave out `LogFileFieldNames`): in header order.
    ByPosition(Vec<FieldType>),
}

/// The most fields a row may have. Salesforce's widest event types have about 130 columns; the
/// bound keeps a hostile or broken file (a row of millions of empty fields, each one byte) from
/// making the field index grow to many times the row's size.
const MAX_FIELDS: usize = 4096;

/// The longest row accepted. Real rows stay far below (a long SOQL query or Apex stack trace is
/// kilobytes); without a bound, an unbalanced quote would make the rest of a file of hundreds
/// of MB one row held in memory.
const MAX_ROW_BYTES: usize = 16 << 20;

impl fmt::Debug for LogFileDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogFileDecoder")
            .field("id", &self.id)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl LogFileDecoder {
    /// A decoder for the file `id`, typing columns by `LogFileFieldNames` / `LogFileFieldTypes`
    /// when given (columns they do not list are strings). Types given without names apply to the
    /// header's columns in order, when their counts agree.
    pub fn new(id: &str, field_names: Option<&str>, field_types: Option<&str>) -> Self {
        let declared = match (field_names, field_types) {
            (Some(names), Some(types)) => Declared::ByName(
                names
                    .split(',')
                    .zip(types.split(','))
                    .map(|(n, t)| (n.trim().to_string(), FieldType::from_salesforce(t)))
                    .collect(),
            ),
            (None, Some(types)) => {
                Declared::ByPosition(types.split(',').map(FieldType::from_salesforce).collect())
            }
            _ => Declared::ByName(HashMap::new()),
        };
        LogFileDecoder {
            id: id.to_string(),
            reader: csv_core::Reader::new(),
            declared,
            schema: None,
            fields: vec![0; 4096],
            ends: vec![0; 64],
            out_len: 0,
            ends_len: 0,
            record_line: 1,
            started: false,
            head: Vec::new(),
        }
    }

    /// A decoder for `file`.
    pub fn for_file(file: &EventLogFile) -> Self {
        Self::new(
            &file.id,
            file.log_file_field_names.as_deref(),
            file.log_file_field_types.as_deref(),
        )
    }

    /// The columns, once the header row was read.
    pub fn schema(&self) -> Option<&Arc<Schema>> {
        self.schema.as_ref()
    }

    /// Decodes `chunk`, appending every row it completes to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<LogRecord>) -> Result<(), Error> {
        // csv-core reads empty input as the end of the file; only `finish` may say that.
        if chunk.is_empty() {
            return Ok(());
        }
        if self.started {
            return self.decode(chunk, out);
        }
        // csv-core strips a UTF-8 BOM only when all three bytes come in its first input; a
        // network read can split them, so the first bytes are held back until that is decided.
        self.head.extend_from_slice(chunk);
        if self.head.len() < UTF8_BOM.len() {
            return Ok(());
        }
        self.start(out)
    }

    fn start(&mut self, out: &mut Vec<LogRecord>) -> Result<(), Error> {
        self.started = true;
        let head = std::mem::take(&mut self.head);
        self.decode(head.strip_prefix(UTF8_BOM).unwrap_or(&head), out)
    }

    fn decode(&mut self, chunk: &[u8], out: &mut Vec<LogRecord>) -> Result<(), Error> {
        let mut input = chunk;
        loop {
            let (result, nin, nout, nend) = self.reader.read_record(
                input,
                &mut self.fields[self.out_len..],
                &mut self.ends[self.ends_len..],
            );
            let last_consumed = input[..nin].last().copied();
            input = &input[nin..];
            self.out_len += nout;
            self.ends_len += nend;
            match result {
                ReadRecordResult::InputEmpty => return Ok(()),
                ReadRecordResult::OutputFull => {
                    let len = self.fields.len();
                    if len >= MAX_ROW_BYTES {
                        return Err(self.error(
                            self.record_line,
                            format!(
                                "a row is longer than {} MiB; an unbalanced quote probably runs \
                                 it into the rest of the file",
                                MAX_ROW_BYTES >> 20
                            ),
                        ));
                    }
                    self.fields.resize((len * 2).min(MAX_ROW_BYTES), 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let len = self.ends.len();
                    if len >= MAX_FIELDS {
                        return Err(self.error(
                            self.record_line,
                            format!(
                                "a row has more than {MAX_FIELDS} fields; no event type has \
                                 that many columns, so the file is damaged"
                            ),
                        ));
                    }
                    self.ends.resize((len * 2).min(MAX_FIELDS), 0);
                }
                ReadRecordResult::Record => {
                    let line = self.record_line;
                    // csv-core's line() has counted every `\n` consumed, those inside quoted
                    // fields included. A row ending in `\r` (CRLF) leaves its `\n` unread, so
                    // the next row starts one line further than line() says.
                    self.record_line = self.reader.line() + u64::from(last_consumed == Some(b'\r'));
                    self.complete_record(line, out)?;
                    // An empty chunk is the end of input: csv-core reports the last record
                    // then; asking again would report End.
                    if chunk.is_empty() {
                        return Ok(());
                    }
                }
                ReadRecordResult::End => return Ok(()),
            }
        }
    }

    /// Ends the input: decodes a last row that had no line end.
    pub fn finish(&mut self, out: &mut Vec<LogRecord>) -> Result<(), Error> {
        if !self.started {
            self.start(out)?;
        }
        self.decode(&[], out)?;
        if self.out_len > 0 || self.ends_len > 0 {
            return Err(self.error(self.record_line, "the file ends inside a row"));
        }
        Ok(())
    }

    fn error(&self, line: u64, message: impl Into<String>) -> Error {
        Error::Csv {
            id: self.id.clone(),
            line,
            message: message.into(),
        }
    }

    fn complete_record(&mut self, line: u64, out: &mut Vec<LogRecord>) -> Result<(), Error> {
        let nfields = self.ends_len;
        let len = self.out_len;
        self.out_len = 0;
        self.ends_len = 0;
        let bytes = &self.fields[..len];
        let ends = &self.ends[..nfields];
        match &self.schema {
            None => {
                let mut names: Vec<Box<str>> = Vec::with_capacity(nfields);
                let mut start = 0;
                for &end in ends {
                    let raw = std::str::from_utf8(&bytes[start..end])
                        .map_err(|_| self.error(line, "the header row is not UTF-8"))?;
                    let name = raw.trim();
                    names.push(Box::from(name));
                    start = end;
                }
                if names.iter().all(|n| n.is_empty()) {
                    return Err(self.error(line, "the header row is empty"));
                }
                self.schema = Some(Arc::new(Schema::new(&self.id, names, &self.declared)));
                Ok(())
            }
            Some(schema) => {
                if nfields == 1 && len == 0 && schema.len() > 1 {
                    // A blank line (seen at the end of some files): no row.
                    return Ok(());
                }
                if nfields != schema.len() {
                    return Err(self.error(
                        line,
                        format!(
                            "the row has {nfields} fields but the header has {}",
                            schema.len()
                        ),
                    ));
                }
                // Salesforce writes UTF-8; a stray invalid byte is replaced rather than losing
                // the whole row.
                let text = match std::str::from_utf8(bytes) {
                    Ok(s) => s.to_owned(),
                    Err(_) => {
                        tracing::warn!(id = %self.id, line, "row is not valid UTF-8; replacing invalid bytes");
                        lossy_keeping_ends(bytes, ends).0
                    }
                };
                let ends = if text.len() == len {
                    ends.to_vec()
                } else {
                    lossy_keeping_ends(bytes, ends).1
                };
                let (text, ends) = unwrap_escaped(text, ends, &schema.escaped);
                out.push(LogRecord {
                    schema: Arc::clone(schema),
                    text,
                    ends,
                    line,
                });
                Ok(())
            }
        }
    }
}

/// Whether an `EscapedString` value carries Salesforce's extra pair of quotes: the CSV field
/// `"""home"""` decodes to `"home"`, and `""""""` (an empty value) to `""`. Salesforce documents
/// the third quotation mark as an aid for parsers, not as part of the data.
fn has_escaping_artifact(value: &str) -> bool {
    value.len() >= 2 && value.starts_with('"') && value.ends_with('"')
}

/// Removes the extra pair of quotes from the `escaped` columns; rows without any keep their
/// text untouched (no copy).
fn unwrap_escaped(text: String, ends: Vec<usize>, escaped: &[usize]) -> (String, Vec<usize>) {
    let field = |i: usize| {
        let start = if i == 0 { 0 } else { ends[i - 1] };
        text.get(start..ends[i]).unwrap_or("")
    };
    if !escaped
        .iter()
        .any(|&i| i < ends.len() && has_escaping_artifact(field(i)))
    {
        return (text, ends);
    }
    let mut out = String::with_capacity(text.len());
    let mut new_ends = Vec::with_capacity(ends.len());
    let mut next_escaped = escaped.iter().peekable();
    for i in 0..ends.len() {
        let mut value = field(i);
        if next_escaped.next_if_eq(&&i).is_some() && has_escaping_artifact(value) {
            value = &value[1..value.len() - 1];
        }
        out.push_str(value);
        new_ends.push(out.len());
    }
    (out, new_ends)
}

/// Lossy UTF-8 conversion field by field, recomputing the field ends.
fn lossy_keeping_ends(bytes: &[u8], ends: &[usize]) -> (String, Vec<usize>) {
    let mut text = String::with_capacity(bytes.len());
    let mut new_ends = Vec::with_capacity(ends.len());
    let mut start = 0;
    for &end in ends {
        text.push_str(&String::from_utf8_lossy(&bytes[start..end]));
        new_ends.push(text.len());
        start = end;
    }
    (text, new_ends)
}

/// serde's error for [`LogRecord::deserialize`].
#[derive(Debug)]
struct DeError(String);

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError(msg.to_string())
    }
}

struct RecordDeserializer<'a>(&'a LogRecord);

impl<'de> de::Deserializer<'de> for RecordDeserializer<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let record = self.0;
        let entries = record
            .schema
            .names
            .iter()
            .enumerate()
            .filter_map(move |(i, name)| {
                let raw = record.field(i);
                (!raw.is_empty()).then(|| {
                    (
                        name.as_ref(),
                        FieldDeserializer {
                            raw,
                            field_type: record.schema.types[i],
                        },
                    )
                })
            });
        visitor.visit_map(de::value::MapDeserializer::new(entries))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct FieldDeserializer<'a> {
    raw: &'a str,
    field_type: FieldType,
}

impl<'de> IntoDeserializer<'de, DeError> for FieldDeserializer<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

macro_rules! parse_number {
    ($($method:ident => $visit:ident: $ty:ty,)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
                match self.raw.parse::<$ty>() {
                    Ok(v) => visitor.$visit(v),
                    // "42.0" into an integer field: Salesforce writes some counts as decimals.
                    Err(_) => match self.raw.parse::<f64>() {
                        Ok(f) if f.fract() == 0.0 && f >= <$ty>::MIN as f64 && f <= <$ty>::MAX as f64 => visitor.$visit(f as $ty),
                        _ => Err(de::Error::custom(format!("{:?} is not a {}", self.raw, stringify!($ty)))),
                    },
                }
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for FieldDeserializer<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match typed(self.raw, self.field_type) {
            FieldValue::Integer(v) => visitor.visit_i64(v),
            FieldValue::Float(v) => visitor.visit_f64(v),
            FieldValue::Boolean(v) => visitor.visit_bool(v),
            _ => visitor.visit_borrowed_str(self.raw),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match parse_bool(self.raw) {
            Some(v) => visitor.visit_bool(v),
            None => Err(de::Error::custom(format!(
                "{:?} is not a boolean",
                self.raw
            ))),
        }
    }

    parse_number! {
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64,
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.raw.parse::<f64>() {
            Ok(v) => visitor.visit_f64(v),
            Err(_) => Err(de::Error::custom(format!("{:?} is not a number", self.raw))),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_borrowed_str(self.raw)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_borrowed_str(self.raw)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_enum(self.raw.into_deserializer())
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The general parsers alone, as `parse_log_datetime` was before its fast path.
    fn general(raw: &str) -> Option<OffsetDateTime> {
        if raw.len() >= 14 && raw.as_bytes()[..14].iter().all(u8::is_ascii_digit) {
            let with_ms =
                format_description!("[year][month][day][hour][minute][second].[subsecond]");
            let without = format_description!("[year][month][day][hour][minute][second]");
            let parse = |f| time::PrimitiveDateTime::parse(raw, f).ok();
            return parse(with_ms)
                .or_else(|| parse(without))
                .map(time::PrimitiveDateTime::assume_utc);
        }
        OffsetDateTime::parse(raw, &Rfc3339)
            .ok()
            .map(|t| t.to_offset(time::UtcOffset::UTC))
    }

    #[test]
    fn fast_datetime_path_agrees_with_the_general_parsers() {
        for raw in [
            "2015-07-27T11:32:59.555Z",
            "2024-02-29T23:59:59.999Z",
            "2023-02-29T10:00:00.000Z",
            "2024-13-01T10:00:00.000Z",
            "2024-12-31T24:00:00.000Z",
            "2016-12-31T23:59:60.000Z",
            "2024-03-11T15:00:00.123z",
            "2024-03-11t15:00:00.123Z",
            "2024-03-11T15:00:00.123+01:00",
            "2024-03-11T15:00:00Z",
            "2024-03-11T15:00:0x.123Z",
            "2024-03-11 15:00:00.123Z",
            "20150727113259.555",
            "20150727113259",
            "20150727113259.5",
            "20240230113259.555",
            "20150727113260.555",
            "2015072711325a.555",
            "20150727113259,555",
            "",
            "Z",
        ] {
            assert_eq!(parse_log_datetime(raw), general(raw), "{raw:?}");
        }
    }
}
