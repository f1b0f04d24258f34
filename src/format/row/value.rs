//! Typed field values: the column types Salesforce declares and the parsing of raw text into
//! them, datetimes included.

use std::net::IpAddr;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

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
pub(super) fn typed(raw: &str, field_type: FieldType) -> FieldValue<'_> {
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
pub(super) fn parse_bool(raw: &str) -> Option<bool> {
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
    // checked: an offset can carry a datetime past year 9999 in UTC, which to_offset panics on.
    OffsetDateTime::parse(raw, &Rfc3339)
        .ok()
        .and_then(|t| t.checked_to_offset(time::UtcOffset::UTC))
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

/// `2015-07-27T11:32:59Z`: no milliseconds (an empty range reads as 0).
const ISO_SECONDS: DateTimeShape = (
    [
        (0, 4),
        (5, 7),
        (8, 10),
        (11, 13),
        (14, 16),
        (17, 19),
        (19, 19),
    ],
    &[
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'Z'),
    ],
);

/// `20150727113259`: no milliseconds.
const COMPACT_SECONDS: DateTimeShape = (
    [
        (0, 4),
        (4, 6),
        (6, 8),
        (8, 10),
        (10, 12),
        (12, 14),
        (14, 14),
    ],
    &[],
);

/// `2015-07-27T11:32:59.555Z` (24 bytes), `20150727113259.555` (18 bytes), or either without
/// the milliseconds (20 and 14 bytes), exactly.
fn parse_fixed_datetime(b: &[u8]) -> Option<OffsetDateTime> {
    let (fields, separators) = match b.len() {
        24 => ISO_MILLIS,
        18 => COMPACT_MILLIS,
        20 => ISO_SECONDS,
        14 => COMPACT_SECONDS,
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
            .and_then(|t| t.checked_to_offset(time::UtcOffset::UTC))
    }

    #[test]
    fn a_datetime_past_year_9999_in_utc_is_not_a_datetime() {
        // 9999-12-31T23:30-01:00 is 10000-01-01T00:30Z: beyond what `time` holds.
        assert_eq!(parse_log_datetime("9999-12-31T23:30:00-01:00"), None);
        assert!(parse_log_datetime("9999-12-31T22:30:00-01:00").is_some());
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
            "20161231235960",
            "2016-12-31T23:59:60Z",
            "2024-02-30T10:00:00Z",
            "2024-03-11T15:00:00z",
            "2015072711325x",
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
