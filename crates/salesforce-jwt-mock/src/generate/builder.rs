//! [`MockLogFileBuilder`]: one EventLogFile, field by field.

use bytes::Bytes;
use time::{OffsetDateTime, Time, UtcOffset};

use super::{
    CsvRowGenerator, DEFAULT_FILE_API_VERSION, EDGE_CASE_CYCLE, GeneratedCsv, Interval,
    MockLogFile, generate_csv,
};

/// Builds a [`MockLogFile`]; start with [`MockLogFile::builder`].
///
/// Defaults: `Interval` Daily; `LogDate` the start of the previous UTC day (Daily) or hour
/// (Hourly), judged by the system time at [`build`](Self::build); `CreatedDate` the end of the
/// covered period; `Sequence` 0 for Daily and 1 for Hourly; a generated body of
/// [`EDGE_CASE_CYCLE`] rows with seed 0; `ApiVersion` [`DEFAULT_FILE_API_VERSION`]. Tests that
/// run on a `ManualClock` should set `log_date` and `created_date`.
///
/// ```
/// use salesforce_jwt_mock::{Interval, MockLogFile};
/// use time::macros::datetime;
///
/// let file = MockLogFile::builder("Login")
///     .interval(Interval::Hourly)
///     .log_date(datetime!(2025-06-01 10:00 UTC))
///     .sequence(1)
///     .created_date(datetime!(2025-06-01 13:17 UTC))
///     .rows(5)
///     .seed(7)
///     .build();
/// assert_eq!(file.row_count(), 5);
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until build() is called"]
pub struct MockLogFileBuilder {
    event_type: String,
    interval: Interval,
    log_date: Option<OffsetDateTime>,
    sequence: Option<i32>,
    created_date: Option<OffsetDateTime>,
    rows: usize,
    seed: u64,
    csv: Option<Bytes>,
    api_version: f64,
}

impl MockLogFileBuilder {
    pub(super) fn new(event_type: impl AsRef<str>) -> Self {
        Self {
            event_type: event_type.as_ref().to_owned(),
            interval: Interval::Daily,
            log_date: None,
            sequence: None,
            created_date: None,
            rows: EDGE_CASE_CYCLE,
            seed: 0,
            csv: None,
            api_version: DEFAULT_FILE_API_VERSION,
        }
    }

    /// `Interval`. Default Daily.
    pub fn interval(mut self, interval: Interval) -> Self {
        self.interval = interval;
        self
    }

    /// `LogDate`: the start of the covered day or hour.
    pub fn log_date(mut self, log_date: OffsetDateTime) -> Self {
        self.log_date = Some(log_date);
        self
    }

    /// `Sequence`. Default 0 for Daily, 1 for Hourly; a late hourly file has a higher one.
    pub fn sequence(mut self, sequence: i32) -> Self {
        self.sequence = Some(sequence);
        self
    }

    /// `CreatedDate`: when Salesforce published the file. Default the end of the covered period.
    pub fn created_date(mut self, created_date: OffsetDateTime) -> Self {
        self.created_date = Some(created_date);
        self
    }

    /// Data rows of the generated body. Default [`EDGE_CASE_CYCLE`], enough for every edge case.
    pub fn rows(mut self, rows: usize) -> Self {
        self.rows = rows;
        self
    }

    /// Seed of the generated body: the same seed and settings give the same bytes. Default 0.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// A body of your own instead of a generated one (for instance with `\r\n` line endings, or
    /// columns the generator does not produce); `rows` and `seed` are then ignored.
    /// `LogFileFieldNames` comes from its header row, `LogFileFieldTypes` from the types known
    /// for those column names (`String` for the others).
    pub fn csv(mut self, csv: impl Into<Bytes>) -> Self {
        self.csv = Some(csv.into());
        self
    }

    /// `ApiVersion` of the file. Default [`DEFAULT_FILE_API_VERSION`].
    pub fn api_version(mut self, api_version: f64) -> Self {
        self.api_version = api_version;
        self
    }

    /// A streaming generator of the body [`build`](Self::build) would generate (header first,
    /// then one row per item), for bodies too large to hold. A body given with
    /// [`csv`](Self::csv) is not involved.
    pub fn csv_generator(&self) -> CsvRowGenerator {
        CsvRowGenerator::over(
            &self.event_type,
            self.log_date_or_default(),
            self.interval.hours(),
            self.rows,
            self.seed,
        )
    }

    /// The body [`build`](Self::build) would generate, with its `LogFileFieldNames` and
    /// `LogFileFieldTypes`. A body given with [`csv`](Self::csv) is not involved.
    pub fn generate_csv(&self) -> GeneratedCsv {
        generate_csv(self.csv_generator())
    }

    fn log_date_or_default(&self) -> OffsetDateTime {
        self.log_date
            .unwrap_or_else(|| previous_period(OffsetDateTime::now_utc(), self.interval))
    }

    /// The file.
    pub fn build(self) -> MockLogFile {
        let interval = self.interval;
        let period = time::Duration::hours(i64::from(interval.hours()));
        let log_date = self.log_date_or_default();
        let created_date = self.created_date.unwrap_or(log_date + period);
        let sequence = self.sequence.unwrap_or(match interval {
            Interval::Daily => 0,
            Interval::Hourly => 1,
        });
        let mut file = match self.csv {
            Some(csv) => MockLogFile::with_csv(&self.event_type, csv),
            None => {
                let generated = generate_csv(CsvRowGenerator::over(
                    &self.event_type,
                    log_date,
                    interval.hours(),
                    self.rows,
                    self.seed,
                ));
                MockLogFile {
                    event_type: self.event_type,
                    interval,
                    log_date,
                    created_date,
                    sequence,
                    csv: Bytes::from(generated.body),
                    field_names: generated.field_names,
                    field_types: generated.field_types,
                    api_version: DEFAULT_FILE_API_VERSION,
                }
            }
        };
        file.interval = interval;
        file.log_date = log_date;
        file.created_date = created_date;
        file.sequence = sequence;
        file.api_version = self.api_version;
        file
    }
}

/// The start of the last whole UTC day or hour before `now`.
fn previous_period(now: OffsetDateTime, interval: Interval) -> OffsetDateTime {
    let now = now.to_offset(UtcOffset::UTC);
    match interval {
        Interval::Daily => now.replace_time(Time::MIDNIGHT) - time::Duration::days(1),
        Interval::Hourly => {
            now.replace_time(Time::MIDNIGHT) + time::Duration::hours(i64::from(now.hour()) - 1)
        }
    }
}
