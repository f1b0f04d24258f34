//! serde support for records: a row serializes to a map of typed values and deserializes
//! into a user's struct by header name.

use std::fmt;

use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use time::macros::format_description;

use super::LogRecord;
use super::value::{FieldType, FieldValue, parse_bool, typed};
use crate::error::Error;

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

impl Serialize for LogRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (name, value) in self.values() {
            map.serialize_entry(name, &value)?;
        }
        map.end()
    }
}

impl LogRecord {
    /// Deserializes the row into `T` by header name. Numbers and booleans are parsed from the
    /// text when `T` asks for them; empty fields are missing (so `Option` fields are `None`).
    ///
    /// ```
    /// # use salesforce_jwt::event_log_file::LogFileDecoder;
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

impl LogRecord {
    /// Every non-empty field as (column index, typed value), in file order: what
    /// [`values`](Self::values) yields, with the column's index in place of its name, for
    /// encoders that keep per-column data (pre-escaped keys) of a [`Schema`](super::Schema).
    #[inline]
    pub(crate) fn for_each_value<'a>(&'a self, f: impl FnMut(usize, FieldValue<'a>)) {
        self.for_each_value_where(|_| true, f);
    }

    /// As [`for_each_value`](Self::for_each_value), for the columns `keep` accepts: the others
    /// are not typed at all (the ECS encoder leaves out the columns it placed in ECS fields,
    /// a datetime and an address among them, whose parsing would be wasted).
    #[inline]
    pub(crate) fn for_each_value_where<'a>(
        &'a self,
        keep: impl Fn(usize) -> bool,
        mut f: impl FnMut(usize, FieldValue<'a>),
    ) {
        let mut start = 0;
        for (i, &end) in self.ends.iter().enumerate() {
            let raw = self.text.get(start..end).unwrap_or("");
            start = end;
            if raw.is_empty() || !keep(i) {
                continue;
            }
            if let (Some(_), Some(&field_type)) =
                (self.schema.names.get(i), self.schema.types.get(i))
            {
                f(i, typed(raw, field_type));
            }
        }
    }
}

impl LogRecord {
    /// The typed value of column `i` (`None` when empty or there is no such column): what
    /// [`value`](Self::value) gives for its name, for encoders that resolved the index once.
    #[inline]
    pub(crate) fn value_at(&self, i: usize) -> Option<FieldValue<'_>> {
        let raw = self.raw_at(i);
        let &field_type = self.schema.types.get(i)?;
        (!raw.is_empty()).then(|| typed(raw, field_type))
    }

    /// The raw text of column `i` (empty when the value is empty or there is no such column).
    #[inline]
    pub(crate) fn raw_at(&self, i: usize) -> &str {
        let start = match i.checked_sub(1) {
            None => 0,
            Some(before) => self.ends.get(before).copied().unwrap_or(0),
        };
        let end = self.ends.get(i).copied().unwrap_or(start);
        self.text.get(start..end).unwrap_or("")
    }

    /// The raw bytes of column `i`, as [`raw_at`](Self::raw_at) without its UTF-8 boundary
    /// checks: those read the row's text, and a caller that only wants to skip empty columns
    /// (the `event.id` message) should not touch it for them.
    #[inline]
    pub(crate) fn raw_bytes_at(&self, i: usize) -> &[u8] {
        let start = match i.checked_sub(1) {
            None => 0,
            Some(before) => self.ends.get(before).copied().unwrap_or(0),
        };
        let end = self.ends.get(i).copied().unwrap_or(start);
        self.text.as_bytes().get(start..end).unwrap_or_default()
    }
}
