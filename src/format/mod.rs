//! Output formats: plain NDJSON rows, or Elastic Common Schema (ECS) documents.
//!
//! The NDJSON sinks ([`NdjsonSink`](crate::sink::NdjsonSink),
//! [`NdjsonFileSink`](crate::sink::NdjsonFileSink)) write either, chosen with their
//! `with_format`; the exactly-once protocol is the same for both. [`ecs`] builds the documents
//! and [`event_id`] their deterministic `event.id`, from the rows of [`row`].
//!
//! ```
//! use salesforce_jwt::format::OutputFormat;
//!
//! let format: OutputFormat = "ecs".parse()?;
//! assert_eq!(format, OutputFormat::Ecs);
//! assert_eq!(OutputFormat::default().to_string(), "ndjson");
//! assert!("json".parse::<OutputFormat>().unwrap_err().to_string().contains("ndjson, ecs"));
//! # Ok::<(), salesforce_jwt::format::UnknownFormat>(())
//! ```

use std::fmt;
use std::str::FromStr;

pub mod ecs;
pub(crate) mod encoders;
pub mod event_id;
pub(crate) mod json;
mod names;
pub mod row;
mod values;

/// What the NDJSON sinks write for each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum OutputFormat {
    /// Every column under its header name with typed values, plus the file's `EventLogFileId`,
    /// `EventType`, `LogDate`, `Interval` and `Sequence` ([`NdjsonRow`](crate::sink::NdjsonRow)).
    #[default]
    Ndjson,
    /// One ECS document per row ([`ecs::log_file_document`]).
    Ecs,
}

impl OutputFormat {
    /// Every format, in the order the error message lists them.
    pub const ALL: &'static [OutputFormat] = &[OutputFormat::Ndjson, OutputFormat::Ecs];

    /// The name [`FromStr`] accepts: `ndjson` or `ecs`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Ndjson => "ndjson",
            OutputFormat::Ecs => "ecs",
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OutputFormat {
    type Err = UnknownFormat;

    /// `ndjson` or `ecs`, ignoring ASCII case and surrounding spaces.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim();
        OutputFormat::ALL
            .iter()
            .copied()
            .find(|f| f.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownFormat {
                given: s.to_string(),
            })
    }
}

/// A format name [`OutputFormat::from_str`] does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFormat {
    given: String,
}

impl UnknownFormat {
    /// The name that was given.
    pub fn given(&self) -> &str {
        &self.given
    }
}

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown output format {:?}: use one of ", self.given)?;
        for (i, format) in OutputFormat::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(format.as_str())?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownFormat {}

/// As its name (`"ndjson"`, `"ecs"`), for configuration files.
impl serde::Serialize for OutputFormat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// From its name, as [`FromStr`] reads it; an unknown name is an error naming the allowed ones.
impl<'de> serde::Deserialize<'de> for OutputFormat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// RFC 3339 in UTC with milliseconds, `2024-03-11T00:00:00.000Z`: the one datetime form both
/// formats write (the same as a typed CSV DateTime value serializes to, and as a SOQL literal).
pub(crate) use crate::datetime::rfc3339_millis;
