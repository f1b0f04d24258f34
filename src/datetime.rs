//! Salesforce's datetimes, read and written in one place.
//!
//! - [`parse`] / [`format`](format()): the REST API's form, `2024-03-11T15:00:00.000+0000` (the offset
//!   has no colon, so it is not RFC 3339); [`parse`] also reads RFC 3339 and 0 to 9 digits of
//!   fraction. Both give UTC.
//! - [`serialize`] / [`deserialize`]: the same as serde functions, for
//!   `#[serde(with = "salesforce_jwt::datetime")]`, and [`option`] for an
//!   `Option<OffsetDateTime>` that may be missing or null.
//! - [`rfc3339_millis`]: RFC 3339 in UTC with milliseconds, `2024-03-11T15:00:00.000Z`, the one
//!   datetime form the NDJSON and ECS outputs write, and a SOQL datetime literal with
//!   millisecond precision.
//!
//! ```
//! use salesforce_jwt::datetime;
//! use time::macros::datetime;
//!
//! let t = datetime::parse("2024-03-11T16:00:00.000+0100")?;
//! assert_eq!(t, datetime!(2024-03-11 15:00 UTC));
//! assert_eq!(datetime::format(t), "2024-03-11T15:00:00.000+0000");
//! assert_eq!(datetime::rfc3339_millis(t), "2024-03-11T15:00:00.000Z");
//!
//! #[derive(serde::Deserialize)]
//! #[serde(rename_all = "PascalCase")]
//! struct Row {
//!     #[serde(with = "salesforce_jwt::datetime")]
//!     event_date: time::OffsetDateTime,
//!     #[serde(default, with = "salesforce_jwt::datetime::option")]
//!     created_date: Option<time::OffsetDateTime>,
//! }
//! let row: Row = serde_json::from_str(r#"{"EventDate":"2024-03-11T15:00:00Z","CreatedDate":null}"#)?;
//! assert_eq!((row.event_date, row.created_date), (t, None));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use serde::{Deserialize, Deserializer, Serializer};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3][offset_hour sign:mandatory][offset_minute]"
);
/// Salesforce writes milliseconds, but other tools (and some proxies) write 1 to 9 digits.
const ANY_FRACTION: &[time::format_description::BorrowedFormatItem<'static>] = format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:1+][offset_hour sign:mandatory][offset_minute]"
);
const NO_FRACTION: &[time::format_description::BorrowedFormatItem<'static>] = format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory][offset_minute]"
);

/// Parses `2024-03-11T15:00:00.000+0000` (or RFC 3339) into UTC.
pub fn parse(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(s, FORMAT)
        .or_else(|_| OffsetDateTime::parse(s, ANY_FRACTION))
        .or_else(|_| OffsetDateTime::parse(s, NO_FRACTION))
        .or_else(|_| OffsetDateTime::parse(s, &Rfc3339))
        .map(|t| t.to_offset(UtcOffset::UTC))
}

/// Formats in Salesforce's form, in UTC.
pub fn format(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC)
        .format(FORMAT)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// serde: deserialize.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
    let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    parse(&s).map_err(|e| serde::de::Error::custom(format!("datetime {s:?}: {e}")))
}

/// serde: serialize.
pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*t))
}

/// RFC 3339 in UTC with milliseconds, `2024-07-08T07:26:18.239Z`: what the NDJSON and ECS
/// outputs write for every datetime, and an unquoted SOQL datetime literal.
///
/// Big-object `EventDate`s have millisecond precision, so query windows are cut at the
/// millisecond: [`soql::datetime`](crate::soql::datetime) drops the fraction, which would make
/// two adjacent windows overlap or leave a gap. Salesforce returns datetimes as `…+0000`, which
/// is not a safe literal: always re-rendered here.
pub fn rfc3339_millis(value: OffsetDateTime) -> String {
    let utc = value.to_offset(UtcOffset::UTC);
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    // Formatting only fails for years beyond 9999, which Salesforce does not store either.
    utc.format(&format)
        .unwrap_or_else(|_| "9999-12-31T23:59:59.999Z".to_string())
}

/// An optional Salesforce datetime, for `#[serde(default, with = "salesforce_jwt::datetime::option")]`:
/// null (or, with `default`, missing) is `None`, and `None` is written as null.
pub mod option {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    /// serde: deserialize.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        let Some(s) = Option::<std::borrow::Cow<'de, str>>::deserialize(d)? else {
            return Ok(None);
        };
        super::parse(&s)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("datetime {s:?}: {e}")))
    }

    /// serde: serialize.
    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format(*t)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn offsets_fractions_and_rfc3339_read_as_utc() {
        let t = datetime!(2024-03-11 15:00 UTC);
        for text in [
            "2024-03-11T16:00:00.000+0100",
            "2024-03-11T15:00:00+0000",
            "2024-03-11T15:00:00.000000000+0000",
            "2024-03-11T15:00:00Z",
            "2024-03-11T10:00:00-05:00",
        ] {
            assert_eq!(parse(text).unwrap(), t, "{text}");
            assert_eq!(parse(text).unwrap().offset(), UtcOffset::UTC, "{text}");
        }
        assert!(parse("2024-03-11").is_err());
        assert_eq!(format(t), "2024-03-11T15:00:00.000+0000");
    }

    #[test]
    fn rfc3339_millis_keeps_milliseconds_in_utc() {
        assert_eq!(
            rfc3339_millis(datetime!(2024-07-08 09:26:18.239_999 +02:00)),
            "2024-07-08T07:26:18.239Z"
        );
    }

    #[test]
    fn option_reads_null_and_missing_as_none() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Row {
            #[serde(default, with = "option")]
            at: Option<OffsetDateTime>,
        }
        let none: Row = serde_json::from_str(r#"{"at":null}"#).unwrap();
        assert_eq!(none, Row { at: None });
        assert_eq!(serde_json::from_str::<Row>("{}").unwrap(), Row { at: None });
        let some = Row {
            at: Some(datetime!(2024-03-11 15:00 UTC)),
        };
        let text = serde_json::to_string(&some).unwrap();
        assert_eq!(text, r#"{"at":"2024-03-11T15:00:00.000+0000"}"#);
        assert_eq!(serde_json::from_str::<Row>(&text).unwrap(), some);
        assert!(serde_json::from_str::<Row>(r#"{"at":"soon"}"#).is_err());
    }
}
