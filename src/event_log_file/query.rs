//! [`EventLogFileQuery`]: a typed filter over EventLogFile, rendered to SOQL.

use futures_util::Stream;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::client::JwtBearerClient;
use crate::error::Error;
use crate::event_log_file::model::{EventLogFile, EventType};
use crate::query::QueryOptions;
use crate::soql;

/// The fields every query selects, in Salesforce's names.
pub const EVENT_LOG_FILE_FIELDS: &str = "Id, EventType, LogDate, CreatedDate, Interval, Sequence, \
     LogFileLength, LogFile, ApiVersion, LogFileContentType, LogFileFieldNames, LogFileFieldTypes";

/// Which files by `Interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum IntervalFilter {
    /// Daily and hourly files.
    #[default]
    All,
    /// Only `Daily` files.
    Daily,
    /// Only `Hourly` files (Event Monitoring licence).
    Hourly,
    /// Each event once: for each EventType and day, the `Hourly` files where the org publishes
    /// them, else the `Daily` file, never both (they hold the same events).
    Auto,
}

/// A position in `(CreatedDate, Id)` order: everything after it is still to be collected.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cursor {
    /// `CreatedDate` of the last file reached.
    #[serde(with = "time::serde::rfc3339")]
    pub created_date: OffsetDateTime,
    /// Its `Id`, which breaks ties between files created in the same second.
    pub id: String,
}

impl Cursor {
    /// The cursor of a file.
    pub fn of(file: &EventLogFile) -> Cursor {
        Cursor {
            created_date: file.created_date,
            id: file.id.clone(),
        }
    }
}

/// A filter over EventLogFile, always ordered by `CreatedDate, Id`.
///
/// ```
/// use salesforce_jwt::event_log_file::{Cursor, EventLogFileQuery, EventType, IntervalFilter};
/// use time::macros::datetime;
///
/// let query = EventLogFileQuery::new()
///     .event_types([EventType::Login, EventType::Api])
///     .interval(IntervalFilter::Hourly)
///     .after(Cursor { created_date: datetime!(2024-03-11 15:00 UTC), id: "0AT000000000001AAA".into() });
/// assert_eq!(
///     query.to_soql(),
///     "SELECT Id, EventType, LogDate, CreatedDate, Interval, Sequence, LogFileLength, LogFile, \
///      ApiVersion, LogFileContentType, LogFileFieldNames, LogFileFieldTypes FROM EventLogFile \
///      WHERE EventType IN ('Login', 'API') AND Interval = 'Hourly' AND (CreatedDate > \
///      2024-03-11T15:00:00Z OR (CreatedDate = 2024-03-11T15:00:00Z AND Id > '0AT000000000001AAA')) \
///      ORDER BY CreatedDate, Id"
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventLogFileQuery {
    event_types: Vec<EventType>,
    interval: IntervalFilter,
    #[serde(default, with = "time::serde::rfc3339::option")]
    log_date_from: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    log_date_before: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    created_date_from: Option<OffsetDateTime>,
    after: Option<Cursor>,
    limit: Option<u32>,
}

impl EventLogFileQuery {
    /// Every file, oldest `CreatedDate` first.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only files of this type (may be called repeatedly).
    pub fn event_type(mut self, event_type: impl Into<EventType>) -> Self {
        self.event_types.push(event_type.into());
        self
    }

    /// Only files of these types.
    pub fn event_types<I, T>(mut self, event_types: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<EventType>,
    {
        self.event_types
            .extend(event_types.into_iter().map(Into::into));
        self
    }

    /// Only daily, only hourly, or all files.
    pub fn interval(mut self, interval: IntervalFilter) -> Self {
        self.interval = interval;
        self
    }

    /// `LogDate >= from`.
    pub fn log_date_from(mut self, from: OffsetDateTime) -> Self {
        self.log_date_from = Some(from);
        self
    }

    /// `LogDate < before`.
    pub fn log_date_before(mut self, before: OffsetDateTime) -> Self {
        self.log_date_before = Some(before);
        self
    }

    /// `CreatedDate >= from`.
    pub fn created_date_from(mut self, from: OffsetDateTime) -> Self {
        self.created_date_from = Some(from);
        self
    }

    /// Only files after `cursor` in `(CreatedDate, Id)` order.
    pub fn after(mut self, cursor: Cursor) -> Self {
        self.after = Some(cursor);
        self
    }

    /// At most `n` files.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }

    /// The selected event types.
    pub fn selected_event_types(&self) -> &[EventType] {
        &self.event_types
    }

    /// The interval filter.
    pub fn selected_interval(&self) -> IntervalFilter {
        self.interval
    }

    /// The SOQL this query sends.
    pub fn to_soql(&self) -> String {
        let mut soql = format!("SELECT {EVENT_LOG_FILE_FIELDS} FROM EventLogFile");
        soql.push_str(&self.where_clause());
        soql.push_str(" ORDER BY CreatedDate, Id");
        if let Some(n) = self.limit {
            soql.push_str(&format!(" LIMIT {n}"));
        }
        soql
    }

    /// `SELECT COUNT() FROM EventLogFile` with this query's filters.
    pub fn to_count_soql(&self) -> String {
        format!("SELECT COUNT() FROM EventLogFile{}", self.where_clause())
    }

    fn where_clause(&self) -> String {
        let mut conditions = Vec::new();
        if !self.event_types.is_empty() {
            conditions.push(format!(
                "EventType IN {}",
                soql::string_list(self.event_types.iter().map(EventType::as_str))
            ));
        }
        match self.interval {
            IntervalFilter::All | IntervalFilter::Auto => {}
            IntervalFilter::Daily => conditions.push("Interval = 'Daily'".to_string()),
            IntervalFilter::Hourly => conditions.push("Interval = 'Hourly'".to_string()),
        }
        if let Some(t) = self.log_date_from {
            conditions.push(format!("LogDate >= {}", soql::datetime(t)));
        }
        if let Some(t) = self.log_date_before {
            conditions.push(format!("LogDate < {}", soql::datetime(t)));
        }
        if let Some(t) = self.created_date_from {
            conditions.push(format!("CreatedDate >= {}", soql::datetime(t)));
        }
        if let Some(c) = &self.after {
            // SOQL datetime literals have whole seconds while CreatedDate is stored in whole
            // seconds too, so the equality below is exact.
            let t = soql::datetime(c.created_date);
            conditions.push(format!(
                "(CreatedDate > {t} OR (CreatedDate = {t} AND Id > {}))",
                soql::string(&c.id)
            ));
        }
        if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        }
    }
}

impl JwtBearerClient {
    /// Streams the EventLogFile records `query` selects, page by page as they are consumed.
    pub fn event_log_files(
        &self,
        query: &EventLogFileQuery,
    ) -> impl Stream<Item = Result<EventLogFile, Error>> + Send + Unpin + 'static + use<> {
        self.query(&query.to_soql(), QueryOptions::default())
    }
}
