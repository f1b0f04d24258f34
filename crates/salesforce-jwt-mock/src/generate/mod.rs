//! Realistic, deterministic EventLogFile CSV bodies.
//!
//! The columns follow the event types' documented layouts (most start with
//! `EVENT_TYPE,TIMESTAMP,REQUEST_ID,...,LOGIN_KEY` and end with
//! `TIMESTAMP_DERIVED,USER_ID_DERIVED,CLIENT_IP,URI_ID_DERIVED`; Logout differs). Rows cycle through
//! the awkward values real logs contain, so that any file of 8 rows or more exercises a parser:
//! commas and `""` quotes inside fields, fields spanning lines, non-ASCII text, empty values, and
//! `CLIENT_IP` holding the literal `Salesforce.com IP`.

mod builder;
mod columns;

use bytes::Bytes;
use time::{Duration, OffsetDateTime, UtcOffset};

pub use builder::MockLogFileBuilder;
pub(crate) use columns::column_type;
use columns::{RowContext, USERS, column_value, columns_for, push_quoted};

/// How many rows it takes for every edge case to appear at least once in a generated file.
pub const EDGE_CASE_CYCLE: usize = 8;

/// The `Interval` of an EventLogFile: one file per day, or one (or more) per hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Interval {
    /// `Daily`: the file covers the UTC day starting at its `LogDate`; `Sequence` is 0.
    Daily,
    /// `Hourly`: the file covers the hour starting at its `LogDate`; `Sequence` counts from 1, and
    /// late events for an hour already published arrive as a file with a higher `Sequence`.
    Hourly,
}

impl Interval {
    /// The picklist value Salesforce uses: `"Daily"` or `"Hourly"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Daily => "Daily",
            Interval::Hourly => "Hourly",
        }
    }

    /// The length of the covered period, in hours (24 or 1).
    pub fn hours(self) -> u32 {
        match self {
            Interval::Daily => 24,
            Interval::Hourly => 1,
        }
    }
}

/// One EventLogFile as the mock org stores it: metadata plus the CSV body.
///
/// Build one with [`MockLogFile::builder`], adjust the public fields if a test needs something
/// odd, and hand it to [`MockOrg::add_file`](super::MockOrg::add_file).
#[derive(Debug, Clone, PartialEq)]
pub struct MockLogFile {
    /// `EventType`, e.g. `Login`. Any string is accepted: Salesforce adds types every release.
    pub event_type: String,
    /// `Interval`.
    pub interval: Interval,
    /// `LogDate`: start of the covered day or hour.
    pub log_date: OffsetDateTime,
    /// `CreatedDate`: when Salesforce published the file (the incremental-collection cursor).
    pub created_date: OffsetDateTime,
    /// `Sequence`: 0 for daily files, 1.. for hourly files.
    pub sequence: i32,
    /// The CSV body served by the `LogFile` download; `LogFileLength` is its length in bytes.
    pub csv: Bytes,
    /// `LogFileFieldNames`: the header's column names, comma-separated, in order.
    pub field_names: String,
    /// `LogFileFieldTypes`: one Salesforce type name per column (`String`, `Id`, `Number`, ...).
    pub field_types: String,
    /// `ApiVersion`: the schema version of the file, e.g. `64.0`.
    pub api_version: f64,
}

/// The `ApiVersion` given to files built by this module.
pub const DEFAULT_FILE_API_VERSION: f64 = 64.0;

impl MockLogFile {
    /// A builder for a file of `event_type` (e.g. `Login`; any string is accepted), every other
    /// field named by a method; see [`MockLogFileBuilder`] for the defaults.
    pub fn builder(event_type: impl AsRef<str>) -> MockLogFileBuilder {
        MockLogFileBuilder::new(event_type)
    }

    /// A file whose body is [`generate_log_csv`] output for `event_type` over the period starting at
    /// `log_date` (`rows` rows, deterministic for `seed`).
    #[deprecated(
        note = "use MockLogFile::builder(event_type).interval(..).log_date(..).sequence(..).created_date(..).rows(..).seed(..).build()"
    )]
    pub fn generated(
        event_type: &str,
        interval: Interval,
        log_date: OffsetDateTime,
        sequence: i32,
        created_date: OffsetDateTime,
        rows: usize,
        seed: u64,
    ) -> Self {
        Self::builder(event_type)
            .interval(interval)
            .log_date(log_date)
            .sequence(sequence)
            .created_date(created_date)
            .rows(rows)
            .seed(seed)
            .build()
    }

    /// A file with a body of your own (for instance with `\r\n` line endings, or columns this module
    /// does not generate).
    ///
    /// `field_names` is taken from the header row. `field_types` uses the type this module knows
    /// for each column name and `String` for the others; overwrite the field if a test needs more.
    #[deprecated(
        note = "use MockLogFile::builder(event_type).interval(..).log_date(..).sequence(..).created_date(..).csv(body).build()"
    )]
    pub fn from_csv(
        event_type: &str,
        interval: Interval,
        log_date: OffsetDateTime,
        sequence: i32,
        created_date: OffsetDateTime,
        csv: impl Into<Bytes>,
    ) -> Self {
        Self::builder(event_type)
            .interval(interval)
            .log_date(log_date)
            .sequence(sequence)
            .created_date(created_date)
            .csv(csv)
            .build()
    }

    /// A file of `event_type` with `csv` as its body and placeholder metadata, which the builder
    /// then sets.
    fn with_csv(event_type: &str, csv: Bytes) -> Self {
        let names = header_names(&csv);
        let field_types = names
            .iter()
            .map(|name| column_type(name))
            .collect::<Vec<_>>()
            .join(",");
        Self {
            event_type: event_type.to_owned(),
            interval: Interval::Daily,
            log_date: OffsetDateTime::UNIX_EPOCH,
            created_date: OffsetDateTime::UNIX_EPOCH,
            sequence: 0,
            csv,
            field_names: names.join(","),
            field_types,
            api_version: DEFAULT_FILE_API_VERSION,
        }
    }

    /// The number of data rows in the body (records after the header; quoted newlines do not count).
    pub fn row_count(&self) -> usize {
        count_records(&self.csv).saturating_sub(1)
    }
}

/// A whole generated CSV body with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedCsv {
    /// The CSV bytes: header row, then `rows` rows, every field quoted, `\n` line endings.
    pub body: Vec<u8>,
    /// The value for `LogFileFieldNames`.
    pub field_names: String,
    /// The value for `LogFileFieldTypes`.
    pub field_types: String,
    /// The number of data rows.
    pub rows: usize,
}

/// Generates a CSV body for `event_type` covering `interval_hours` hours from `log_date`.
///
/// Known types (Login, Logout, API, URI, ApexExecution, ApexUnexpectedException, Report) get
/// their own columns; any other type gets the common columns. The output is the same for the
/// same arguments. For bodies too large to hold, iterate a [`CsvRowGenerator`] instead.
#[deprecated(
    note = "use MockLogFile::builder(event_type).interval(..).log_date(..).rows(..).seed(..).generate_csv()"
)]
pub fn generate_log_csv(
    event_type: &str,
    log_date: OffsetDateTime,
    interval_hours: u32,
    rows: usize,
    seed: u64,
) -> GeneratedCsv {
    generate_csv(CsvRowGenerator::over(
        event_type,
        log_date,
        interval_hours,
        rows,
        seed,
    ))
}

/// Drains `generator` into one body.
pub(crate) fn generate_csv(generator: CsvRowGenerator) -> GeneratedCsv {
    let field_names = generator.field_names();
    let field_types = generator.field_types();
    let rows = generator.rows();
    let mut body = Vec::with_capacity(rows.saturating_mul(300).min(64 << 20));
    for chunk in generator {
        body.extend_from_slice(&chunk);
    }
    GeneratedCsv {
        body,
        field_names,
        field_types,
        rows,
    }
}

/// A streaming CSV generator: the header row first, then one data row per item.
///
/// Yields exactly what [`MockLogFileBuilder::generate_csv`] returns for the same settings,
/// without holding it, so a benchmark can produce a gigabyte with a few hundred bytes of state.
/// Rows' `TIMESTAMP`s ascend through the covered period. Get one from
/// [`MockLogFileBuilder::csv_generator`].
#[derive(Debug, Clone)]
pub struct CsvRowGenerator {
    event_type: String,
    columns: Vec<&'static str>,
    log_date: OffsetDateTime,
    period_ms: i128,
    rows: usize,
    next_row: usize,
    header_sent: bool,
    rng: fastrand::Rng,
    value: String,
}

impl CsvRowGenerator {
    /// A generator for `rows` rows of `event_type` over `interval_hours` hours from `log_date`.
    #[deprecated(
        note = "use MockLogFile::builder(event_type).interval(..).log_date(..).rows(..).seed(..).csv_generator()"
    )]
    pub fn new(
        event_type: &str,
        log_date: OffsetDateTime,
        interval_hours: u32,
        rows: usize,
        seed: u64,
    ) -> Self {
        Self::over(event_type, log_date, interval_hours, rows, seed)
    }

    pub(crate) fn over(
        event_type: &str,
        log_date: OffsetDateTime,
        interval_hours: u32,
        rows: usize,
        seed: u64,
    ) -> Self {
        Self {
            event_type: event_type.to_owned(),
            columns: columns_for(event_type),
            log_date: log_date.to_offset(UtcOffset::UTC),
            period_ms: i128::from(interval_hours.max(1)) * 3_600_000,
            rows,
            next_row: 0,
            header_sent: false,
            rng: fastrand::Rng::with_seed(seed ^ fnv1a(event_type.as_bytes())),
            value: String::with_capacity(256),
        }
    }

    /// The header's column names, comma-separated (`LogFileFieldNames`).
    pub fn field_names(&self) -> String {
        self.columns.join(",")
    }

    /// One Salesforce type name per column, comma-separated (`LogFileFieldTypes`).
    pub fn field_types(&self) -> String {
        self.columns
            .iter()
            .map(|name| column_type(name))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The number of data rows the generator yields in total.
    pub fn rows(&self) -> usize {
        self.rows
    }

    fn row(&mut self, index: usize) -> Vec<u8> {
        let slot = (self.period_ms / self.rows.max(1) as i128).max(1);
        let base = self.period_ms * index as i128 / self.rows.max(1) as i128;
        let jitter = i128::from(self.rng.u64(0..slot.min(i128::from(u32::MAX)) as u64));
        let offset_ms = (base + jitter).min(self.period_ms - 1);
        let ts = self.log_date + Duration::milliseconds(offset_ms as i64);
        let ctx = RowContext {
            event_type: &self.event_type,
            flavour: index % EDGE_CASE_CYCLE,
            ts,
            user: self.rng.usize(0..USERS.len()),
            run_time: self.rng.u32(3..2_500),
        };
        let mut out = Vec::with_capacity(384);
        for (i, column) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            self.value.clear();
            column_value(column, &ctx, &mut self.rng, &mut self.value);
            push_quoted(&mut out, &self.value);
        }
        out.push(b'\n');
        out
    }
}

impl Iterator for CsvRowGenerator {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if !self.header_sent {
            self.header_sent = true;
            let mut out = Vec::with_capacity(512);
            for (i, column) in self.columns.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_quoted(&mut out, column);
            }
            out.push(b'\n');
            return Some(out);
        }
        if self.next_row >= self.rows {
            return None;
        }
        let index = self.next_row;
        self.next_row += 1;
        Some(self.row(index))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.rows - self.next_row).saturating_add(usize::from(!self.header_sent));
        (left, Some(left))
    }
}

/// Extends a 15-character Salesforce Id to 18 with its case-safe checksum suffix.
///
/// Each 5-character chunk contributes one character: bit `i` is set when character `i` is an
/// uppercase letter, and the 5-bit number indexes `A-Z0-5`.
pub(crate) fn with_checksum(id15: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let mut out = String::with_capacity(18);
    out.push_str(id15);
    for chunk in id15.as_bytes().chunks(5) {
        let mut n = 0usize;
        for (i, b) in chunk.iter().enumerate() {
            if b.is_ascii_uppercase() {
                n |= 1 << i;
            }
        }
        out.push(char::from(ALPHABET[n]));
    }
    out
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The column names of the first CSV record (the header), unquoted.
fn header_names(csv: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut field = Vec::new();
    let mut in_quotes = false;
    let mut i = 0;
    while i < csv.len() {
        let b = csv[i];
        if in_quotes {
            if b == b'"' {
                if csv.get(i + 1) == Some(&b'"') {
                    field.push(b'"');
                    i += 1;
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(b);
            }
        } else {
            match b {
                b'"' => in_quotes = true,
                b',' => {
                    names.push(String::from_utf8_lossy(&std::mem::take(&mut field)).into_owned())
                }
                b'\r' | b'\n' => break,
                _ => field.push(b),
            }
        }
        i += 1;
    }
    if !field.is_empty() || !names.is_empty() {
        names.push(String::from_utf8_lossy(&field).into_owned());
    }
    names
}

/// The number of CSV records (header included): line breaks outside quotes, plus a last line
/// without a line break.
fn count_records(csv: &[u8]) -> usize {
    let mut records = 0;
    let mut in_quotes = false;
    let mut line_has_content = false;
    for &b in csv {
        match b {
            b'"' => {
                in_quotes = !in_quotes;
                line_has_content = true;
            }
            b'\n' if !in_quotes => {
                records += 1;
                line_has_content = false;
            }
            b'\r' if !in_quotes => {}
            _ => line_has_content = true,
        }
    }
    records + usize::from(line_has_content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_salesforce() {
        // Known pair: Salesforce's documentation example.
        assert_eq!(with_checksum("001A0000006Vm9r"), "001A0000006Vm9rIAC");
        assert_eq!(with_checksum("005000000000001"), "005000000000001AAA");
    }

    #[test]
    fn header_and_records() {
        let csv = b"\"A\",\"B \"\"x\"\"\"\r\n\"1\",\"two\nlines\"\r\n\"3\",\"\"";
        assert_eq!(header_names(csv), vec!["A", "B \"x\""]);
        assert_eq!(count_records(csv), 3);
    }
}
