//! A direct JSON writer for the sinks' hot path: log-file rows encoded straight into the line
//! buffer, byte for byte what `serde_json` writes for [`NdjsonRow`](crate::sink::NdjsonRow)
//! (tests/encode.rs and the tests below compare the two on generated and real rows).
//!
//! Why not `serde_json`: every row escapes the same header names again, goes through serde's
//! map machinery per field, and formats its datetimes with `time`'s format descriptions; in the
//! end-to-end profile that was most of the collector thread's own CPU. Here a file's keys are
//! escaped once (`"NAME":`, cached by the row's `Arc<Schema>`), the file's own trailing fields
//! once per file, and values are written by hand: integers with `itoa` and floats with `zmij`
//! (what `serde_json` itself uses), datetimes digit by digit, strings copied in runs between the
//! bytes that need an escape.

use std::io::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::format::row::{FieldValue, LogFileInfo, LogRecord, Schema};

/// `serde_json`'s escape for each byte: 0 none, `u` a `\u00XX` escape, else the letter after
/// the backslash. Only control bytes, `"` and `\` are escaped; DEL and non-ASCII are not.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Whether any of the 8 bytes in `word` needs an escape: a control byte, `"` or `\`.
#[inline(always)]
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A zero byte of `x` shows as a high bit in `(x - ONES) & !x & HIGHS` (bytes >= 0x80 are
    // masked by `!x`); "less than 0x20" the same way with 0x20 subtracted.
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    let quote = word ^ (ONES * u64::from(b'"'));
    let quote = quote.wrapping_sub(ONES) & !quote & HIGHS;
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let backslash = backslash.wrapping_sub(ONES) & !backslash & HIGHS;
    (below_space | quote | backslash) != 0
}

/// `s` as a JSON string, quotes included.
#[inline]
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Most values need no escape at all: find the first byte that does 8 bytes at a time (the
    // test can report a false positive, never a false negative, and the byte loop decides).
    let mut clean = 0;
    while let Some(chunk) = bytes.get(clean..clean + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if needs_escape(u64::from_le_bytes(word)) {
            break;
        }
        clean += 8;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate().skip(clean) {
        let escape = ESCAPE[usize::from(b)];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if escape == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX_DIGITS[usize::from(b >> 4)]);
            out.push(HEX_DIGITS[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `"key":`.
pub(crate) fn write_key(out: &mut Vec<u8>, key: &str) {
    write_str(out, key);
    out.push(b':');
}

#[inline]
pub(crate) fn write_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

#[inline]
pub(crate) fn write_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// As `serde_json`: the shortest round-trip text (`zmij`, which `serde_json` uses), `null` for NaN and infinities.
#[inline]
pub(crate) fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

#[inline]
pub(crate) fn write_bool(out: &mut Vec<u8>, v: bool) {
    out.extend_from_slice(if v { b"true" } else { b"false" });
}

/// An address as its `Display` text, in quotes (the text never needs an escape).
#[inline]
pub(crate) fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
    out.push(b'"');
    match ip {
        IpAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(digits.format(octet).as_bytes());
            }
        }
        // IPv6's compressed form has rules of its own (`::`, embedded IPv4): `Display` knows
        // them, and writing to a `Vec` cannot fail.
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
    out.push(b'"');
}

/// `"2024-03-11T00:00:00.000Z"` from `t`'s own date and time (its offset is not applied: the
/// caller passes a UTC value), as `[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond
/// digits:3]Z` formats it. Returns `false`, writing nothing, for a year outside 0..=9999, whose
/// text the caller leaves to `time`.
#[inline]
fn write_datetime_fields(out: &mut Vec<u8>, t: OffsetDateTime) -> bool {
    let (year, month, day) = t.to_calendar_date();
    let Ok(year) = u16::try_from(year) else {
        return false;
    };
    if year > 9999 {
        return false;
    }
    let (hour, minute, second, milli) = t.to_hms_milli();
    let two = |v: u8| [b'0' + v / 10, b'0' + v % 10];
    let [y0, y1] = two((year / 100) as u8);
    let [y2, y3] = two((year % 100) as u8);
    let [mo0, mo1] = two(u8::from(month));
    let [d0, d1] = two(day);
    let [h0, h1] = two(hour);
    let [mi0, mi1] = two(minute);
    let [s0, s1] = two(second);
    let ms = [
        b'0' + (milli / 100) as u8,
        b'0' + (milli / 10 % 10) as u8,
        b'0' + (milli % 10) as u8,
    ];
    out.extend_from_slice(&[
        b'"', y0, y1, y2, y3, b'-', mo0, mo1, b'-', d0, d1, b'T', h0, h1, b':', mi0, mi1, b':', s0,
        s1, b'.', ms[0], ms[1], ms[2], b'Z', b'"',
    ]);
    true
}

/// A datetime as [`rfc3339_millis`](crate::format::rfc3339_millis) writes it (converted to UTC
/// first), in quotes.
#[inline]
pub(crate) fn write_rfc3339_millis(out: &mut Vec<u8>, t: OffsetDateTime) {
    let utc = t.to_offset(time::UtcOffset::UTC);
    if !write_datetime_fields(out, utc) {
        write_str(out, &crate::format::rfc3339_millis(utc));
    }
}

/// A typed value as its `Serialize` impl writes it with `serde_json`.
#[inline]
pub(crate) fn write_value(out: &mut Vec<u8>, value: &FieldValue<'_>) -> serde_json::Result<()> {
    match *value {
        FieldValue::String(s) | FieldValue::Id(s) => write_str(out, s),
        FieldValue::Integer(v) => write_i64(out, v),
        FieldValue::Float(v) => write_f64(out, v),
        FieldValue::Boolean(v) => write_bool(out, v),
        FieldValue::DateTime(t) => {
            if !write_datetime_fields(out, t) {
                // `time` decides (and may refuse) years it cannot write in four digits.
                serde_json::to_writer(&mut *out, value)?;
            }
        }
        FieldValue::Ip(ip) => write_ip(out, ip),
    }
    Ok(())
}

/// The escaped keys of one file's columns, `"NAME":` each, built once per schema.
#[derive(Debug)]
pub(crate) struct SchemaKeys {
    schema: Arc<Schema>,
    names: Vec<Box<str>>,
    bytes: Vec<u8>,
    /// Where column `i`'s key ends in `bytes` (it starts where `i - 1`'s ends).
    ends: Vec<usize>,
}

impl SchemaKeys {
    /// Keys for `schema`'s columns, each name passed through `name` first.
    pub(crate) fn new(schema: &Arc<Schema>, mut name: impl FnMut(&str, &mut Vec<u8>)) -> Self {
        let mut bytes = Vec::new();
        let mut ends = Vec::with_capacity(schema.len());
        for column in schema.names() {
            name(column, &mut bytes);
            bytes.push(b':');
            ends.push(bytes.len());
        }
        SchemaKeys {
            schema: Arc::clone(schema),
            names: schema.names().map(Box::from).collect(),
            bytes,
            ends,
        }
    }

    /// Column `i`'s name as the schema has it.
    #[inline]
    pub(crate) fn name(&self, i: usize) -> &str {
        self.names.get(i).map_or("", AsRef::as_ref)
    }

    /// Whether these are `schema`'s keys. The `Arc` held here keeps the schema alive, so its
    /// address cannot be reused by another one while cached.
    #[inline]
    pub(crate) fn is_for(&self, schema: &Arc<Schema>) -> bool {
        Arc::ptr_eq(&self.schema, schema)
    }

    /// Column `i`'s key.
    #[inline]
    pub(crate) fn key(&self, i: usize) -> &[u8] {
        let start = if i == 0 {
            0
        } else {
            self.ends.get(i - 1).copied().unwrap_or(0)
        };
        let end = self.ends.get(i).copied().unwrap_or(start);
        self.bytes.get(start..end).unwrap_or(&[])
    }
}

/// The file fields a cached trailer (or the ECS encoder's per-file template) was built from:
/// it is reused while they are equal.
#[derive(Debug, PartialEq)]
pub(crate) struct FileKey {
    id: String,
    event_type: String,
    log_date: OffsetDateTime,
    interval: String,
    sequence: i64,
}

impl FileKey {
    pub(crate) fn of<F: LogFileInfo + ?Sized>(file: &F) -> Self {
        FileKey {
            id: file.id().to_string(),
            event_type: file.event_type().to_string(),
            log_date: file.log_date(),
            interval: file.interval().to_string(),
            sequence: file.sequence(),
        }
    }

    #[inline]
    pub(crate) fn matches<F: LogFileInfo + ?Sized>(&self, file: &F) -> bool {
        self.id == file.id()
            && self.sequence == file.sequence()
            && self.log_date == file.log_date()
            && self.event_type == file.event_type()
            && self.interval == file.interval()
    }
}

/// Encodes log-file rows as [`NdjsonRow`](crate::sink::NdjsonRow) JSON, caching what is
/// the same for every row of a file.
#[derive(Debug, Default)]
pub(crate) struct NdjsonEncoder {
    keys: Option<SchemaKeys>,
    /// `"EventLogFileId":...,"Sequence":0` of the last file, and that file.
    trailer: Option<(FileKey, Vec<u8>)>,
}

impl NdjsonEncoder {
    /// Appends the row's JSON object (no newline) to `out`.
    pub(crate) fn encode<F: LogFileInfo + ?Sized>(
        &mut self,
        out: &mut Vec<u8>,
        file: &F,
        row: &LogRecord,
    ) -> serde_json::Result<()> {
        let schema = row.schema();
        let keys = match &mut self.keys {
            Some(keys) if keys.is_for(schema) => keys,
            slot => slot.insert(SchemaKeys::new(schema, |name, out| write_str(out, name))),
        };
        out.push(b'{');
        let mut first = true;
        let mut failed = None;
        row.for_each_value(|i, value| {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(keys.key(i));
            if let Err(e) = write_value(out, &value) {
                failed = Some(e);
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        if !first {
            out.push(b',');
        }
        let trailer = match &mut self.trailer {
            Some((key, trailer)) if key.matches(file) => trailer,
            slot => &mut slot.insert(file_trailer(file)).1,
        };
        out.extend_from_slice(trailer);
        out.push(b'}');
        Ok(())
    }
}

fn file_trailer<F: LogFileInfo + ?Sized>(file: &F) -> (FileKey, Vec<u8>) {
    let mut out = Vec::with_capacity(128);
    write_key(&mut out, "EventLogFileId");
    write_str(&mut out, file.id());
    out.push(b',');
    write_key(&mut out, "EventType");
    write_str(&mut out, file.event_type());
    out.push(b',');
    write_key(&mut out, "LogDate");
    write_rfc3339_millis(&mut out, file.log_date());
    out.push(b',');
    write_key(&mut out, "Interval");
    write_str(&mut out, file.interval());
    out.push(b',');
    write_key(&mut out, "Sequence");
    write_i64(&mut out, file.sequence());
    (FileKey::of(file), out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(s: &str) -> Vec<u8> {
        serde_json::to_vec(s).unwrap_or_default()
    }

    #[test]
    fn strings_are_escaped_as_serde_json_does() {
        let mut all_bytes = String::new();
        for c in (0u8..0x80).map(char::from) {
            all_bytes.push(c);
        }
        for s in [
            "",
            "plain",
            "\"",
            "\\",
            "a\"b\\c\u{0}\u{1f}\u{7f}\u{8}\u{c}\n\r\t",
            "0123456789abcdef\"0123456789abcdef",
            "é中文🎉 and \u{2028}",
            &all_bytes,
        ] {
            let mut out = Vec::new();
            write_str(&mut out, s);
            assert_eq!(out, reference(s), "{s:?}");
        }
    }

    #[test]
    fn datetimes_are_written_as_time_formats_them() {
        use time::macros::datetime;
        for t in [
            datetime!(2024-03-11 00:00:00 UTC),
            datetime!(0000-01-01 00:00:00.000999 UTC),
            datetime!(9999-12-31 23:59:59.999999999 UTC),
            datetime!(2024-02-29 12:34:56.789 +05:30),
            datetime!(-0001-06-01 00:00 UTC),
        ] {
            let mut out = Vec::new();
            write_rfc3339_millis(&mut out, t);
            assert_eq!(out, reference(&crate::format::rfc3339_millis(t)), "{t}");
            let mut out = Vec::new();
            let value = FieldValue::DateTime(t);
            write_value(&mut out, &value).unwrap_or_default();
            let expected = serde_json::to_vec(&value).unwrap_or_default();
            assert_eq!(out, expected, "{t}");
        }
    }

    proptest! {
        #[test]
        fn any_string_is_escaped_as_serde_json_does(s in any::<String>()) {
            let mut out = Vec::new();
            write_str(&mut out, &s);
            prop_assert_eq!(out, reference(&s));
        }

        #[test]
        fn any_number_is_written_as_serde_json_does(i in any::<i64>(), f in any::<f64>()) {
            let mut out = Vec::new();
            write_i64(&mut out, i);
            prop_assert_eq!(&out, &serde_json::to_vec(&i).unwrap_or_default());
            out.clear();
            write_f64(&mut out, f);
            prop_assert_eq!(&out, &serde_json::to_vec(&f).unwrap_or_default());
        }
    }
}
