//! The EventLogFile sObject.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

use crate::format::row::LogFileInfo;

/// One Event Monitoring log file: the metadata of a CSV of events of one type, for one day
/// (`Daily`) or one hour (`Hourly`).
///
/// Reading a record checks it: a missing `Id`, `EventType`, `LogDate`, `CreatedDate` or
/// `LogFile` (a query that did not select it) is an error naming the field; a missing
/// `LogFileLength` is 0 (unknown: the download is then not checked for truncation), a missing
/// `Sequence` 0 and a missing `Interval` `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", try_from = "RawEventLogFile")]
pub struct EventLogFile {
    /// The record Id (18 characters, prefix `0AT`).
    pub id: String,
    /// The event type.
    pub event_type: EventType,
    /// Start of the day or hour the file covers.
    #[serde(with = "crate::datetime")]
    pub log_date: OffsetDateTime,
    /// When Salesforce generated the file: the cursor for incremental collection.
    #[serde(with = "crate::datetime")]
    pub created_date: OffsetDateTime,
    /// `Daily` or `Hourly`; absent before API 37.0.
    pub interval: Option<Interval>,
    /// 0 for daily files; 1, 2, ... for hourly files, a higher one for late events of an hour
    /// already published.
    pub sequence: i64,
    /// The CSV's size in bytes (Salesforce sends it as a float, `2692.0`); 0 when the record
    /// did not carry it.
    #[serde(serialize_with = "length_out")]
    pub log_file_length: u64,
    /// The download path, `/services/data/vNN.N/sobjects/EventLogFile/{Id}/LogFile`.
    pub log_file: String,
    /// The schema version of the file.
    pub api_version: Option<f64>,
    /// `CSV`.
    pub log_file_content_type: Option<String>,
    /// The CSV's column names, comma-separated.
    pub log_file_field_names: Option<String>,
    /// The columns' types (`String`, `Id`, `Number`, `Boolean`, `DateTime`, `IP`...), in the
    /// order of [`log_file_field_names`](Self::log_file_field_names).
    pub log_file_field_types: Option<String>,
}

impl EventLogFile {
    /// The `Interval`, treating a missing one (API < 37.0) as `Daily`, the only kind then.
    pub fn interval_or_daily(&self) -> Interval {
        self.interval.clone().unwrap_or(Interval::Daily)
    }
}

/// What the output formats write of the file a row comes from.
impl LogFileInfo for EventLogFile {
    #[inline]
    fn id(&self) -> &str {
        &self.id
    }
    #[inline]
    fn event_type(&self) -> &str {
        self.event_type.as_str()
    }
    #[inline]
    fn log_date(&self) -> OffsetDateTime {
        self.log_date
    }
    /// [`interval_or_daily`](Self::interval_or_daily)'s name, without cloning it.
    #[inline]
    fn interval(&self) -> &str {
        self.interval.as_ref().map_or("Daily", Interval::as_str)
    }
    #[inline]
    fn sequence(&self) -> i64 {
        self.sequence
    }
}

/// The largest `LogFileLength` accepted: 1 TiB. Real files are at most a few GB; the bound keeps
/// sums of sizes (bytes per pass) far from overflowing, whatever a server sends.
const MAX_LOG_FILE_LENGTH: f64 = (1u64 << 40) as f64;

/// A record as the JSON has it, every field optional, so that a missing one is reported by
/// name rather than as serde's "missing field" somewhere in a page.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawEventLogFile {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    event_type: Option<EventType>,
    #[serde(default)]
    log_date: Option<String>,
    #[serde(default)]
    created_date: Option<String>,
    #[serde(default)]
    interval: Option<Interval>,
    #[serde(default)]
    sequence: Option<f64>,
    #[serde(default)]
    log_file_length: Option<f64>,
    #[serde(default)]
    log_file: Option<String>,
    #[serde(default)]
    api_version: Option<f64>,
    #[serde(default)]
    log_file_content_type: Option<String>,
    #[serde(default)]
    log_file_field_names: Option<String>,
    #[serde(default)]
    log_file_field_types: Option<String>,
}

impl TryFrom<RawEventLogFile> for EventLogFile {
    type Error = String;

    fn try_from(raw: RawEventLogFile) -> Result<Self, String> {
        let id = raw.id.unwrap_or_default();
        let named = if id.is_empty() {
            "an EventLogFile record".to_string()
        } else {
            format!("EventLogFile {id}")
        };
        let missing = |field: &str| {
            format!(
                "{named} has no {field}: the query must select it (EVENT_LOG_FILE_FIELDS lists \
                 every field this crate needs)"
            )
        };
        if id.is_empty() {
            return Err(missing("Id"));
        }
        let event_type = raw.event_type.ok_or_else(|| missing("EventType"))?;
        let datetime = |field: &str, value: Option<String>| {
            let value = value.ok_or_else(|| missing(field))?;
            crate::datetime::parse(&value)
                .map_err(|e| format!("{named}: {field} {value:?} is not a datetime ({e})"))
        };
        let log_date = datetime("LogDate", raw.log_date)?;
        let created_date = datetime("CreatedDate", raw.created_date)?;
        let log_file = raw.log_file.ok_or_else(|| missing("LogFile"))?;
        let log_file_length = match raw.log_file_length {
            None => 0,
            Some(v) if (0.0..=MAX_LOG_FILE_LENGTH).contains(&v) => v as u64,
            Some(v) => {
                return Err(format!(
                    "{named}: LogFileLength {v} is not a size (0 to 1 TiB)"
                ));
            }
        };
        let sequence = match raw.sequence {
            None => 0,
            // Exactly representable whole numbers only: a bigger one is not a sequence number.
            Some(v) if v.is_finite() && v.fract() == 0.0 && v.abs() <= 9_007_199_254_740_992.0 => {
                v as i64
            }
            Some(v) => return Err(format!("{named}: Sequence {v} is not a whole number")),
        };
        Ok(EventLogFile {
            id,
            event_type,
            log_date,
            created_date,
            interval: raw.interval,
            sequence,
            log_file_length,
            log_file,
            api_version: raw.api_version,
            log_file_content_type: raw.log_file_content_type,
            log_file_field_names: raw.log_file_field_names,
            log_file_field_types: raw.log_file_field_types,
        })
    }
}

fn length_out<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    // Written back as Salesforce writes it, so a round trip is lossless for the mock and logs.
    s.serialize_f64(*v as f64)
}

/// `Daily` or `Hourly`. Open for picklist values Salesforce may add.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Interval {
    /// One file a day per event type.
    Daily,
    /// Files per hour (Event Monitoring licence).
    Hourly,
    /// A value this crate does not know.
    Other(String),
}

impl Interval {
    /// Salesforce's name.
    pub fn as_str(&self) -> &str {
        match self {
            Interval::Daily => "Daily",
            Interval::Hourly => "Hourly",
            Interval::Other(s) => s,
        }
    }
}

impl FromStr for Interval {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "Daily" => Interval::Daily,
            "Hourly" => Interval::Hourly,
            other => Interval::Other(other.to_string()),
        })
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(s.parse()
            .unwrap_or_else(|never: std::convert::Infallible| match never {}))
    }
}

macro_rules! event_types {
    ($($variant:ident => $name:literal,)*) => {
        /// An EventLogFile `EventType`. Salesforce adds types every release, so any name this
        /// crate does not know is kept in [`EventType::Other`].
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum EventType {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
            /// A type this crate does not name.
            Other(String),
        }

        impl EventType {
            /// Every type this crate names.
            pub const KNOWN: &'static [EventType] = &[$(EventType::$variant,)*];

            /// Salesforce's name.
            pub fn as_str(&self) -> &str {
                match self {
                    $(EventType::$variant => $name,)*
                    EventType::Other(s) => s,
                }
            }
        }

        impl FromStr for EventType {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(match s {
                    $($name => EventType::$variant,)*
                    other => EventType::Other(other.to_string()),
                })
            }
        }
    };
}

event_types! {
    Api => "API",
    ApexCallout => "ApexCallout",
    ApexExecution => "ApexExecution",
    ApexRestApi => "ApexRestApi",
    ApexSoap => "ApexSoap",
    ApexTrigger => "ApexTrigger",
    ApexUnexpectedException => "ApexUnexpectedException",
    AuraRequest => "AuraRequest",
    BulkApi => "BulkApi",
    BulkApi2 => "BulkApi2",
    ContentDistribution => "ContentDistribution",
    ContentTransfer => "ContentTransfer",
    Dashboard => "Dashboard",
    DocumentAttachmentDownloads => "DocumentAttachmentDownloads",
    FlowExecution => "FlowExecution",
    HostnameRedirects => "HostnameRedirects",
    InsecureExternalAssets => "InsecureExternalAssets",
    KnowledgeArticleView => "KnowledgeArticleView",
    LightningError => "LightningError",
    LightningInteraction => "LightningInteraction",
    LightningPageView => "LightningPageView",
    LightningPerformance => "LightningPerformance",
    Login => "Login",
    LoginAs => "LoginAs",
    Logout => "Logout",
    MetadataApiOperation => "MetadataApiOperation",
    PackageInstall => "PackageInstall",
    QueuedExecution => "QueuedExecution",
    Report => "Report",
    ReportExport => "ReportExport",
    RestApi => "RestApi",
    Search => "Search",
    Sites => "Sites",
    TimeBasedWorkflow => "TimeBasedWorkflow",
    TransactionSecurity => "TransactionSecurity",
    Uri => "URI",
    VisualforceRequest => "VisualforceRequest",
    WaveInteraction => "WaveInteraction",
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for EventType {
    fn from(s: &str) -> Self {
        s.parse()
            .unwrap_or_else(|never: std::convert::Infallible| match never {})
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(EventType::from(s.as_ref()))
    }
}

/// A Login file with no columns declared and nothing else of note, for unit tests.
#[cfg(test)]
pub(crate) fn test_file() -> EventLogFile {
    EventLogFile {
        id: "0AT000000000001AAA".into(),
        event_type: "Login".into(),
        log_date: time::OffsetDateTime::UNIX_EPOCH,
        created_date: time::OffsetDateTime::UNIX_EPOCH,
        interval: None,
        sequence: 0,
        log_file_length: 0,
        log_file: String::new(),
        api_version: None,
        log_file_content_type: None,
        log_file_field_names: None,
        log_file_field_types: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn parses_a_salesforce_record() {
        let json = r#"{"attributes":{"type":"EventLogFile","url":"/x"},"Id":"0ATxx0000000001AAA",
            "EventType":"Login","LogDate":"2024-03-11T00:00:00.000+0000",
            "CreatedDate":"2024-03-12T03:14:15.000+0000","Interval":"Daily","Sequence":0,
            "LogFileLength":2692.0,"LogFile":"/services/data/v64.0/sobjects/EventLogFile/0ATxx0000000001AAA/LogFile",
            "ApiVersion":64.0,"LogFileContentType":"CSV","LogFileFieldNames":"A,B","LogFileFieldTypes":"String,Number"}"#;
        let f: EventLogFile = serde_json::from_str(json).unwrap();
        assert_eq!(f.event_type, EventType::Login);
        assert_eq!(f.log_date, datetime!(2024-03-11 00:00 UTC));
        assert_eq!(f.created_date, datetime!(2024-03-12 03:14:15 UTC));
        assert_eq!(f.log_file_length, 2692);
        assert_eq!(f.interval, Some(Interval::Daily));
        let again: EventLogFile =
            serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(again, f);
    }

    #[test]
    fn event_type_is_open() {
        assert_eq!(EventType::from("URI"), EventType::Uri);
        assert_eq!(
            EventType::from("NewIn2027"),
            EventType::Other("NewIn2027".into())
        );
        assert_eq!(EventType::Other("X".into()).as_str(), "X");
        for t in EventType::KNOWN {
            assert_eq!(&EventType::from(t.as_str()), t);
        }
    }

    #[test]
    fn datetime_offsets() {
        // The former path of `crate::datetime` still reaches it.
        use crate::datetime as sf_datetime;
        assert_eq!(
            sf_datetime::parse("2024-03-11T16:00:00.000+0100").unwrap(),
            datetime!(2024-03-11 15:00 UTC)
        );
        assert_eq!(
            sf_datetime::format(datetime!(2024-03-11 15:00 UTC)),
            "2024-03-11T15:00:00.000+0000"
        );
    }
}
