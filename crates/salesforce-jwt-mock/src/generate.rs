//! Realistic, deterministic EventLogFile CSV bodies.
//!
//! The columns follow the event types' documented layouts (most start with
//! `EVENT_TYPE,TIMESTAMP,REQUEST_ID,...,LOGIN_KEY` and end with
//! `TIMESTAMP_DERIVED,USER_ID_DERIVED,CLIENT_IP,URI_ID_DERIVED`; Logout differs). Rows cycle through
//! the awkward values real logs contain, so that any file of 8 rows or more exercises a parser:
//! commas and `""` quotes inside fields, fields spanning lines, non-ASCII text, empty values, and
//! `CLIENT_IP` holding the literal `Salesforce.com IP`.

use std::fmt::Write as _;

use bytes::Bytes;
use time::{Duration, OffsetDateTime, UtcOffset};

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
/// Build one with [`MockLogFile::generated`] or [`MockLogFile::from_csv`], adjust the public fields
/// if a test needs something odd, and hand it to [`MockOrg::add_file`](super::MockOrg::add_file).
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
    /// A file whose body is [`generate_log_csv`] output for `event_type` over the period starting at
    /// `log_date` (`rows` rows, deterministic for `seed`).
    pub fn generated(
        event_type: &str,
        interval: Interval,
        log_date: OffsetDateTime,
        sequence: i32,
        created_date: OffsetDateTime,
        rows: usize,
        seed: u64,
    ) -> Self {
        let generated = generate_log_csv(event_type, log_date, interval.hours(), rows, seed);
        Self {
            event_type: event_type.to_owned(),
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

    /// A file with a body of your own (for instance with `\r\n` line endings, or columns this module
    /// does not generate).
    ///
    /// `field_names` is taken from the header row. `field_types` uses the type this module knows
    /// for each column name and `String` for the others; overwrite the field if a test needs more.
    pub fn from_csv(
        event_type: &str,
        interval: Interval,
        log_date: OffsetDateTime,
        sequence: i32,
        created_date: OffsetDateTime,
        csv: impl Into<Bytes>,
    ) -> Self {
        let csv = csv.into();
        let names = header_names(&csv);
        let field_types = names
            .iter()
            .map(|name| column_type(name))
            .collect::<Vec<_>>()
            .join(",");
        Self {
            event_type: event_type.to_owned(),
            interval,
            log_date,
            created_date,
            sequence,
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
pub fn generate_log_csv(
    event_type: &str,
    log_date: OffsetDateTime,
    interval_hours: u32,
    rows: usize,
    seed: u64,
) -> GeneratedCsv {
    let generator = CsvRowGenerator::new(event_type, log_date, interval_hours, rows, seed);
    let field_names = generator.field_names();
    let field_types = generator.field_types();
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
/// Yields exactly what [`generate_log_csv`] returns for the same arguments, without holding it,
/// so a benchmark can produce a gigabyte with a few hundred bytes of state. Rows' `TIMESTAMP`s
/// ascend through the covered period.
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
    pub fn new(
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

const PREFIX: &[&str] = &[
    "EVENT_TYPE",
    "TIMESTAMP",
    "REQUEST_ID",
    "ORGANIZATION_ID",
    "USER_ID",
    "RUN_TIME",
    "CPU_TIME",
    "URI",
    "SESSION_KEY",
    "LOGIN_KEY",
];
const SUFFIX: &[&str] = &[
    "TIMESTAMP_DERIVED",
    "USER_ID_DERIVED",
    "CLIENT_IP",
    "URI_ID_DERIVED",
];

fn columns_for(event_type: &str) -> Vec<&'static str> {
    let middle: &[&str] = match event_type {
        // The Login header observed in late 2023, verbatim: it does not end with the common suffix.
        "Login" => {
            return vec![
                "EVENT_TYPE",
                "TIMESTAMP",
                "REQUEST_ID",
                "ORGANIZATION_ID",
                "USER_ID",
                "RUN_TIME",
                "CPU_TIME",
                "URI",
                "SESSION_KEY",
                "LOGIN_KEY",
                "USER_TYPE",
                "REQUEST_STATUS",
                "DB_TOTAL_TIME",
                "LOGIN_TYPE",
                "BROWSER_TYPE",
                "API_TYPE",
                "API_VERSION",
                "USER_NAME",
                "TLS_PROTOCOL",
                "CIPHER_SUITE",
                "AUTHENTICATION_METHOD_REFERENCE",
                "LOGIN_SUB_TYPE",
                "TIMESTAMP_DERIVED",
                "USER_ID_DERIVED",
                "CLIENT_IP",
                "URI_ID_DERIVED",
                "LOGIN_STATUS",
                "SOURCE_IP",
            ];
        }
        // Logout shares neither the common prefix nor the suffix.
        "Logout" => {
            return vec![
                "EVENT_TYPE",
                "TIMESTAMP",
                "REQUEST_ID",
                "ORGANIZATION_ID",
                "USER_ID",
                "USER_TYPE",
                "SESSION_TYPE",
                "SESSION_LEVEL",
                "BROWSER_TYPE",
                "PLATFORM_TYPE",
                "RESOLUTION_TYPE",
                "APP_TYPE",
                "CLIENT_VERSION",
                "API_TYPE",
                "API_VERSION",
                "USER_INITIATED_LOGOUT",
                "TIMESTAMP_DERIVED",
                "USER_ID_DERIVED",
                "CLIENT_IP",
                "SESSION_KEY",
                "LOGIN_KEY",
            ];
        }
        "ApexUnexpectedException" => {
            return vec![
                "EVENT_TYPE",
                "TIMESTAMP",
                "REQUEST_ID",
                "ORGANIZATION_ID",
                "USER_ID",
                "EXCEPTION_TYPE",
                "EXCEPTION_MESSAGE",
                "STACK_TRACE",
                "EXCEPTION_CATEGORY",
                "TIMESTAMP_DERIVED",
                "USER_ID_DERIVED",
            ];
        }
        "API" => &[
            "CLIENT_NAME",
            "API_TYPE",
            "API_VERSION",
            "METHOD_NAME",
            "ENTITY_NAME",
            "ROWS_PROCESSED",
            "REQUEST_SIZE",
            "RESPONSE_SIZE",
            "REQUEST_STATUS",
            "DB_TOTAL_TIME",
            "DB_BLOCKS",
            "DB_CPU_TIME",
            "USER_AGENT",
            "QUERY",
        ],
        "URI" => &[
            "USER_TYPE",
            "REQUEST_STATUS",
            "DB_TOTAL_TIME",
            "DB_BLOCKS",
            "DB_CPU_TIME",
            "REFERRER_URI",
        ],
        "ApexExecution" => &[
            "ENTRY_POINT",
            "QUIDDITY",
            "EXEC_TIME",
            "DB_TOTAL_TIME",
            "CALLOUT_TIME",
            "NUMBER_SOQL_QUERIES",
            "IS_LONG_RUNNING_REQUEST",
        ],
        "Report" => &[
            "ORIGIN",
            "DASHBOARD_ID",
            "DASHBOARD_COMPONENT_ID",
            "REPORT_ID",
            "ENTITY_NAME",
            "DISPLAY_TYPE",
            "RENDERING_TYPE",
            "REPORT_DESCRIPTION",
            "SORT",
            "ROW_COUNT",
            "NUMBER_EXCEPTION_FILTERS",
            "NUMBER_COLUMNS",
            "AVERAGE_ROW_SIZE",
            "DB_TOTAL_TIME",
            "DB_BLOCKS",
            "DB_CPU_TIME",
            "IS_SCHEDULED",
        ],
        _ => &[],
    };
    PREFIX.iter().chain(middle).chain(SUFFIX).copied().collect()
}

/// The `LogFileFieldTypes` name for a column: Salesforce's own choices where known, else `String`.
pub(crate) fn column_type(name: &str) -> &'static str {
    match name {
        "ORGANIZATION_ID"
        | "USER_ID"
        | "USER_ID_DERIVED"
        | "URI_ID_DERIVED"
        | "DASHBOARD_ID"
        | "DASHBOARD_COMPONENT_ID"
        | "REPORT_ID" => "Id",
        "RUN_TIME"
        | "CPU_TIME"
        | "DB_TOTAL_TIME"
        | "DB_BLOCKS"
        | "DB_CPU_TIME"
        | "ROWS_PROCESSED"
        | "REQUEST_SIZE"
        | "RESPONSE_SIZE"
        | "EXEC_TIME"
        | "CALLOUT_TIME"
        | "NUMBER_SOQL_QUERIES"
        | "ROW_COUNT"
        | "NUMBER_EXCEPTION_FILTERS"
        | "NUMBER_COLUMNS"
        | "AVERAGE_ROW_SIZE"
        | "API_VERSION" => "Number",
        "IS_SCHEDULED" | "USER_INITIATED_LOGOUT" | "IS_LONG_RUNNING_REQUEST" => "Boolean",
        "TIMESTAMP_DERIVED" => "DateTime",
        "CLIENT_IP" | "SOURCE_IP" => "IP",
        "QUERY" | "STACK_TRACE" | "EXCEPTION_MESSAGE" | "REPORT_DESCRIPTION" => "EscapedString",
        _ => "String",
    }
}

const ORG_ID_15: &str = "00D000000000001";

/// (15-character user Id, username). The last one stands for Salesforce's Automated Process user.
const USERS: &[(&str, &str)] = &[
    ("0055g00000AbCdE", "integration@example.com"),
    ("0055g00000FgHiJ", "zoe.angstrom@example.com"),
    ("0055g00000KlMnO", "j.smith@example.com"),
    ("0055g00000PqRsT", "tokyo.ops@example.co.jp"),
    ("0055g00000UvWxY", "autoproc@00d000000000001.example"),
];

struct RowContext<'a> {
    event_type: &'a str,
    /// Which edge case this row carries: 1 commas and quotes, 2 line breaks, 3 non-ASCII,
    /// 4 empty optional values, 5 `Salesforce.com IP`; the others are plain.
    flavour: usize,
    ts: OffsetDateTime,
    user: usize,
    run_time: u32,
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const BASE64_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn push_random(out: &mut String, rng: &mut fastrand::Rng, alphabet: &[u8], len: usize) {
    for _ in 0..len {
        out.push(char::from(alphabet[rng.usize(0..alphabet.len())]));
    }
}

/// A random 15-character Id with the given 3-character key prefix.
fn push_random_id15(out: &mut String, rng: &mut fastrand::Rng, prefix: &str) {
    out.push_str(prefix);
    out.push_str("5g0000");
    push_random(out, rng, ALNUM, 6);
}

fn pick<'a>(rng: &mut fastrand::Rng, options: &[&'a str]) -> &'a str {
    options[rng.usize(0..options.len())]
}

/// Columns real logs often leave empty.
const OPTIONAL_COLUMNS: &[&str] = &[
    "URI_ID_DERIVED",
    "DB_CPU_TIME",
    "CALLOUT_TIME",
    "DB_BLOCKS",
    "ROWS_PROCESSED",
    "ROW_COUNT",
    "REQUEST_SIZE",
    "RESPONSE_SIZE",
    "AVERAGE_ROW_SIZE",
    "SESSION_KEY",
    "LOGIN_KEY",
    "REQUEST_STATUS",
    "API_TYPE",
    "API_VERSION",
    "AUTHENTICATION_METHOD_REFERENCE",
    "LOGIN_SUB_TYPE",
    "RESOLUTION_TYPE",
    "ENTITY_NAME",
    "DASHBOARD_ID",
    "DASHBOARD_COMPONENT_ID",
    "SOURCE_IP",
];

fn column_value(column: &str, ctx: &RowContext<'_>, rng: &mut fastrand::Rng, out: &mut String) {
    let f = ctx.flavour;
    let empty = f == 4;
    let (user_id, username) = USERS[ctx.user];
    // Optional columns are left empty in the rows that carry the "empty values" edge case.
    if empty && OPTIONAL_COLUMNS.contains(&column) {
        return;
    }
    match column {
        "EVENT_TYPE" => out.push_str(ctx.event_type),
        "TIMESTAMP" => {
            // Some types drop the milliseconds; Logout is one of them here.
            push_log_timestamp(out, ctx.ts, ctx.event_type != "Logout");
        }
        "TIMESTAMP_DERIVED" => push_iso_millis(out, ctx.ts),
        "REQUEST_ID" => push_random(out, rng, ALNUM, 22),
        "ORGANIZATION_ID" => out.push_str(ORG_ID_15),
        "USER_ID" => out.push_str(user_id),
        "USER_ID_DERIVED" => out.push_str(&with_checksum(user_id)),
        "URI_ID_DERIVED" if ctx.event_type != "Login" => {
            let mut id = String::with_capacity(15);
            push_random_id15(&mut id, rng, "001");
            out.push_str(&with_checksum(&id));
        }
        "RUN_TIME" | "EXEC_TIME" => {
            let _ = write!(out, "{}", ctx.run_time);
        }
        "CPU_TIME" => {
            let _ = write!(out, "{}", rng.u32(0..=ctx.run_time));
        }
        "DB_TOTAL_TIME" => {
            // Nanoseconds, as Salesforce reports it.
            let _ = write!(out, "{}", u64::from(ctx.run_time) * rng.u64(1_000..400_000));
        }
        "DB_CPU_TIME" | "CALLOUT_TIME" => {
            let _ = write!(out, "{}", rng.u32(0..=ctx.run_time / 2));
        }
        "DB_BLOCKS" | "ROWS_PROCESSED" | "ROW_COUNT" | "REQUEST_SIZE" | "RESPONSE_SIZE"
        | "AVERAGE_ROW_SIZE" => {
            let _ = write!(out, "{}", rng.u32(0..50_000));
        }
        "NUMBER_SOQL_QUERIES" | "NUMBER_EXCEPTION_FILTERS" | "NUMBER_COLUMNS" => {
            let _ = write!(out, "{}", rng.u32(0..40));
        }
        "URI" => out.push_str(match ctx.event_type {
            "Login" => "/services/oauth2/token",
            "API" => "/services/data/v64.0/query",
            "URI" => pick(
                rng,
                &[
                    "/lightning/o/Account/list",
                    "/lightning/r/Opportunity/0065g00000XyZaB/view",
                    "/lightning/page/home",
                ],
            ),
            "Report" => "/lightning/r/Report/00O5g00000AbCdE/view",
            "ApexExecution" => "/apex/InvoicePage",
            _ => "/services/data/v64.0/sobjects",
        }),
        "SESSION_KEY" | "LOGIN_KEY" => {
            push_random(out, rng, BASE64_ALPHABET, 16);
        }
        "USER_TYPE" => out.push_str(if ctx.user == 4 { "Automated" } else { "Standard" }),
        "REQUEST_STATUS" => {
            out.push_str(pick(rng, &["S", "S", "S", "S", "F", "U"]));
        }
        "LOGIN_TYPE" => out.push_str(pick(
            rng,
            &["Remote Access 2.0", "Application", "SAML Sfdc Initiated SSO"],
        )),
        "BROWSER_TYPE" | "USER_AGENT" => out.push_str(if f == 1 {
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
        } else if empty {
            ""
        } else {
            pick(
                rng,
                &[
                    "Java (Salesforce.com)",
                    "python-requests/2.32.3",
                    "salesforce-jwt/0.1",
                    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
                ],
            )
        }),
        "API_TYPE" => {
            out.push_str(pick(rng, &["R", "P", "E", "REST", "SOAP Partner"]));
        }
        "API_VERSION" => {
            out.push_str(pick(rng, &["64.0", "62.0", "58.0"]));
        }
        "USER_NAME" => out.push_str(username),
        "TLS_PROTOCOL" => out.push_str(pick(rng, &["TLSv1.3", "TLSv1.2"])),
        "CIPHER_SUITE" => out.push_str(pick(
            rng,
            &["TLS_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"],
        )),
        "AUTHENTICATION_METHOD_REFERENCE" | "LOGIN_SUB_TYPE" if rng.bool() => {
            out.push_str(if column == "LOGIN_SUB_TYPE" {
                "oauthjwtbearer"
            } else {
                "pwd"
            });
        }
        "LOGIN_STATUS" => out.push_str(pick(
            rng,
            &[
                "LOGIN_NO_ERROR",
                "LOGIN_NO_ERROR",
                "LOGIN_NO_ERROR",
                "LOGIN_ERROR_INVALID_PASSWORD",
            ],
        )),
        "CLIENT_IP" | "SOURCE_IP" => {
            if f == 5 && column == "CLIENT_IP" {
                // Requests Salesforce makes to itself carry this literal instead of an address.
                out.push_str("Salesforce.com IP");
            } else if rng.u8(0..5) == 0 {
                let _ = write!(out, "2001:db8::{:x}", rng.u16(1..0xffff));
            } else {
                let _ = write!(
                    out,
                    "{}.{}",
                    pick(rng, &["203.0.113", "198.51.100", "192.0.2"]),
                    rng.u8(1..255)
                );
            }
        }
        "SESSION_TYPE" => out.push_str(pick(rng, &["Oauth2", "UI", "API"])),
        "SESSION_LEVEL" => out.push_str("STANDARD"),
        "PLATFORM_TYPE" => out.push_str(pick(rng, &["1015", "2003", "4000"])),
        "RESOLUTION_TYPE" => {
            out.push_str(pick(rng, &["1920x1080", "2560x1440", "9999"]));
        }
        "APP_TYPE" => out.push_str("1000"),
        "CLIENT_VERSION" => out.push_str("9998"),
        // Salesforce writes some booleans as 1/0 and others as true/false: a parser meets both.
        "USER_INITIATED_LOGOUT" | "IS_LONG_RUNNING_REQUEST" => {
            out.push_str(if rng.u8(0..4) == 0 { "1" } else { "0" });
        }
        "IS_SCHEDULED" => out.push_str(if rng.u8(0..3) == 0 { "true" } else { "false" }),
        "CLIENT_NAME" => match f {
            1 => out.push_str("SIEM Connector, \"prod\" instance"),
            3 => out.push_str("Zoë's Ångström Sync"),
            4 => {}
            _ => out.push_str(pick(rng, &["salesforce-jwt", "DataLoader", "Workbench"])),
        },
        "METHOD_NAME" => out.push_str(pick(
            rng,
            &["query", "queryMore", "describeSObjects", "create", "update"],
        )),
        "ENTITY_NAME" => {
            out.push_str(pick(
                rng,
                &["Account", "Contact", "Opportunity", "Case", "EventLogFile"],
            ));
        }
        "QUERY" => out.push_str(match f {
            1 => "SELECT Id, Name FROM Contact WHERE Title = 'VP, \"Sales\"' AND LastName = 'O\\'Brien'",
            2 => "SELECT Id,\n       Name,\n       (SELECT Id FROM Contacts)\nFROM Account\nWHERE CreatedDate = LAST_N_DAYS:7",
            3 => "SELECT Id FROM Account WHERE BillingCity = '東京' OR Owner.Name = 'Zoë Ångström'",
            4 => "",
            _ => pick(
                rng,
                &[
                    "SELECT Id, Name FROM Account LIMIT 200",
                    "SELECT Id FROM Case WHERE Status = 'New'",
                    "SELECT COUNT() FROM Opportunity",
                ],
            ),
        }),
        "REFERRER_URI" => out.push_str(match f {
            1 => "https://acme.lightning.force.com/lightning/o/Account/list?q=\"Smith, John\"&filterName=Recent",
            3 => "https://acme.my.site.com/東京/s/article/Zoë",
            4 => "",
            _ => "https://acme.lightning.force.com/lightning/page/home",
        }),
        "ENTRY_POINT" => out.push_str(match f {
            1 => "AccountTrigger on Account trigger event BeforeInsert, BeforeUpdate",
            3 => "VF- /apex/Übersicht",
            _ => pick(
                rng,
                &[
                    "VF- /apex/InvoicePage",
                    "InvoiceBatch",
                    "RestResource /services/apexrest/orders",
                ],
            ),
        }),
        "QUIDDITY" => out.push_str(pick(rng, &["A", "R", "V", "B", "Q", "W"])),
        "ORIGIN" => out.push_str(pick(
            rng,
            &[
                "ReportRunFromLightning",
                "ReportRunAndNotificationSent",
                "DashboardComponentUpdated",
            ],
        )),
        "DASHBOARD_ID" | "DASHBOARD_COMPONENT_ID" if rng.bool() => {
            push_random_id15(out, rng, "01Z");
        }
        "REPORT_ID" => {
            push_random_id15(out, rng, "00O");
        }
        "DISPLAY_TYPE" => out.push_str(pick(rng, &["D", "S", "T", "M"])),
        "RENDERING_TYPE" => out.push_str(pick(rng, &["W", "H", "J", "E"])),
        "REPORT_DESCRIPTION" => out.push_str(match f {
            1 => "Pipeline by stage, \"committed\" only",
            2 => "Quarterly pipeline\nExcludes closed-lost\r\nOwner: sales ops",
            3 => "Umsätze nach Region – 東京 / Zoë Ångström",
            4 => "",
            _ => "Open cases by owner",
        }),
        "SORT" => out.push_str(pick(rng, &["Amount DESC,Name ASC", "CreatedDate ASC", ""])),
        "EXCEPTION_TYPE" => out.push_str(pick(
            rng,
            &[
                "System.NullPointerException",
                "System.LimitException",
                "System.DmlException",
            ],
        )),
        "EXCEPTION_MESSAGE" => out.push_str(match f {
            1 => "Insert failed. First exception on row 0; first error: REQUIRED_FIELD_MISSING, \"Name\" is required",
            3 => "Attempt to de-reference a null object (Zoë Ångström, 東京)",
            _ => "Attempt to de-reference a null object",
        }),
        "STACK_TRACE" => out.push_str(match f {
            4 => "",
            _ => "Class.InvoiceService.process: line 42, column 1\nClass.InvoiceBatch.execute: line 17, column 1\nAnonymousBlock: line 1, column 1",
        }),
        "EXCEPTION_CATEGORY" => out.push_str(pick(rng, &["APEX_CODE", "VISUALFORCE", "TRIGGER"])),
        // Columns without a generator of their own stay empty, as many real ones often are.
        _ => {}
    }
}

fn push_quoted(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    if value.contains('"') {
        out.extend_from_slice(value.replace('"', "\"\"").as_bytes());
    } else {
        out.extend_from_slice(value.as_bytes());
    }
    out.push(b'"');
}

/// `yyyyMMddHHmmss.SSS` in GMT (the `TIMESTAMP` column), optionally without the milliseconds.
fn push_log_timestamp(out: &mut String, ts: OffsetDateTime, millis: bool) {
    let ts = ts.to_offset(UtcOffset::UTC);
    let _ = write!(
        out,
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        ts.year(),
        u8::from(ts.month()),
        ts.day(),
        ts.hour(),
        ts.minute(),
        ts.second()
    );
    if millis {
        let _ = write!(out, ".{:03}", ts.millisecond());
    }
}

/// ISO 8601 with milliseconds and `Z` (the `TIMESTAMP_DERIVED` column).
fn push_iso_millis(out: &mut String, ts: OffsetDateTime) {
    let ts = ts.to_offset(UtcOffset::UTC);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        ts.year(),
        u8::from(ts.month()),
        ts.day(),
        ts.hour(),
        ts.minute(),
        ts.second(),
        ts.millisecond()
    );
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
