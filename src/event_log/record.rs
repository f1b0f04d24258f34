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
    /// `EscapedString`: text Salesforce escaped; kept as is.
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
}

impl Schema {
    fn new(file_id: &str, names: Vec<Box<str>>, declared: &HashMap<String, FieldType>) -> Schema {
        let types = names
            .iter()
            .map(|n| {
                declared
                    .get(n.as_ref())
                    .copied()
                    .unwrap_or(FieldType::String)
            })
            .collect();
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        Schema {
            file_id: Box::from(file_id),
            names,
            types,
            index,
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

fn typed(raw: &str, field_type: FieldType) -> FieldValue<'_> {
    let parsed = match field_type {
        FieldType::Number => raw
            .parse::<i64>()
            .map(FieldValue::Integer)
            .or_else(|_| raw.parse::<f64>().map(FieldValue::Float))
            .ok()
            .filter(|v| !matches!(v, FieldValue::Float(f) if !f.is_finite())),
        FieldType::Boolean => parse_bool(raw).map(FieldValue::Boolean),
        FieldType::DateTime => parse_log_datetime(raw).map(FieldValue::DateTime),
        FieldType::Ip => raw.parse::<IpAddr>().ok().map(FieldValue::Ip),
        FieldType::Id => Some(FieldValue::Id(raw)),
        FieldType::String | FieldType::EscapedString | FieldType::Other => None,
    };
    parsed.unwrap_or(FieldValue::String(raw))
}

fn parse_bool(raw: &str) -> Option<bool> {
    match raw {
        "true" | "TRUE" | "True" | "1" => Some(true),
        "false" | "FALSE" | "False" | "0" => Some(false),
        _ => None,
    }
}

/// `2015-07-27T11:32:59.555Z`, or the `TIMESTAMP` form `20150727113259.555` (GMT), with or
/// without milliseconds.
pub fn parse_log_datetime(raw: &str) -> Option<OffsetDateTime> {
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

    fn field(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start..self.ends[i]).unwrap_or("")
    }

    /// The raw text of a column, `None` when the column is missing or the value empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        let &i = self.schema.index.get(name)?;
        Some(self.field(i)).filter(|v| !v.is_empty())
    }

    /// The typed value of a column, `None` when the column is missing or the value empty.
    pub fn value(&self, name: &str) -> Option<FieldValue<'_>> {
        let &i = self.schema.index.get(name)?;
        let raw = self.field(i);
        (!raw.is_empty()).then(|| typed(raw, self.schema.types[i]))
    }

    /// Every non-empty field: (name, raw text), in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.schema
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_ref(), self.field(i)))
            .filter(|(_, v)| !v.is_empty())
    }

    /// Every non-empty field: (name, typed value), in file order.
    pub fn values(&self) -> impl Iterator<Item = (&str, FieldValue<'_>)> {
        self.schema.names.iter().enumerate().filter_map(|(i, n)| {
            let raw = self.field(i);
            (!raw.is_empty()).then(|| (n.as_ref(), typed(raw, self.schema.types[i])))
        })
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
    declared: HashMap<String, FieldType>,
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
    /// when given (columns they do not list are strings).
    pub fn new(id: &str, field_names: Option<&str>, field_types: Option<&str>) -> Self {
        let declared = match (field_names, field_types) {
            (Some(names), Some(types)) => names
                .split(',')
                .zip(types.split(','))
                .map(|(n, t)| (n.trim().to_string(), FieldType::from_salesforce(t)))
                .collect(),
            _ => HashMap::new(),
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
                    self.fields.resize(len * 2, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let len = self.ends.len();
                    self.ends.resize(len * 2, 0);
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
