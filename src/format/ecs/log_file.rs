//! ECS documents of log-file rows, written straight from the row: the sinks write one per row,
//! so no `Value` tree is built on the way (a document borrows every text from the row).
//!
//! The mapping of the event types Elastic's Salesforce integration covers (Login, Logout, the
//! Apex types, AuraRequest) follows its ingest pipelines field for field; tests/ecs.rs checks
//! it against the integration's pipeline test cases. Every other type keeps the generic
//! mapping.

use std::borrow::Cow;
use std::net::IpAddr;
use std::ops::Range;

use serde::{Serialize, Serializer};
use serde_json::Value;
use time::OffsetDateTime;

use crate::format::ecs::out::{Bytes, Key, Out, OwnedKey, Part, Reuse, Tree, TreeOut, key};
use crate::format::ecs::{ECS_VERSION, EcsOptions, salesforce_key};
use crate::format::event_id::{LOG_ROW_DOMAIN, hex_digest, log_row_event_id, push_prefixed};
use crate::format::json::{FileKey, SchemaKeys};
use crate::format::names::{log_file_dataset, snake_case};
use crate::format::row::{LogFileInfo, LogRecord, parse_log_datetime};
use crate::format::values::{
    API_TYPES, APP_TYPES, PLATFORM_TYPES, REQUEST_STATUSES, SESSION_LEVELS, SESSION_TYPES,
    USER_AGENT_CODES, USER_TYPES, action_name, aura_actions, decode, http_method, ip, is_email,
    log_file_category, tls_version, unquote, uri_parts, user_agent as values_user_agent,
};

/// A log-file row as the ECS format writes it. It serializes to the document
/// [`log_file_document`] returns, without building that `Value` first; the NDJSON sinks write
/// it with [`OutputFormat::Ecs`](crate::format::OutputFormat::Ecs).
///
/// `F` is the file's type, [`EventLogFile`](crate::event_log_file::EventLogFile) for rows the
/// crate collects; the default, a trait object, only serves to name the type as `EcsRow<'a>`.
#[derive(Debug)]
pub struct EcsRow<'a, F: ?Sized = dyn LogFileInfo + 'a> {
    /// The file the row came from.
    pub file: &'a F,
    /// The row.
    pub row: &'a LogRecord,
    /// `data_stream.namespace` and `salesforce.instance_url`.
    pub options: &'a EcsOptions,
}

// By hand: derived, they would ask `F: Clone` / `F: Copy` of the file, not only of the reference.
impl<F: ?Sized> Clone for EcsRow<'_, F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F: ?Sized> Copy for EcsRow<'_, F> {}

impl<F: LogFileInfo + ?Sized> Serialize for EcsRow<'_, F> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        reference_tree(self.file, self.row, self.options).serialize(s)
    }
}

/// The document as the reference tree: the mapping written through [`TreeOut`], every lookup
/// by column name rather than through the direct encoder's per-schema caches.
fn reference_tree<F: LogFileInfo + ?Sized>(
    file: &F,
    row: &LogRecord,
    options: &EcsOptions,
) -> Tree {
    let names = FileNames::new(file.event_type());
    let id = log_row_event_id(file, row);
    let schema = EcsSchema::new(row, names.profile);
    let mut out = TreeOut::new();
    let plan = Plan::new(file, &names, |c| row.get(c.name()));
    write_document(
        &mut out,
        &plan,
        &names,
        options,
        file,
        row,
        &schema.rest,
        &id,
    );
    out.finish()
}

/// The ECS document of one log-file row, with the default [`EcsOptions`]. `event.id` is
/// [`log_row_event_id`](crate::format::event_id::log_row_event_id).
///
/// `@timestamp` comes from `TIMESTAMP_DERIVED`, else `TIMESTAMP` (`yyyyMMddHHmmss.SSS`, GMT),
/// else the file's `LogDate`. The file is described under `salesforce.event_log_file` (`id`,
/// `event_type`, `log_date`, `interval`, `sequence`).
pub fn log_file_document<F: LogFileInfo + ?Sized>(file: &F, row: &LogRecord) -> Value {
    log_file_document_with(file, row, &EcsOptions::default())
}

/// [`log_file_document`] with `options`.
pub fn log_file_document_with<F: LogFileInfo + ?Sized>(
    file: &F,
    row: &LogRecord,
    options: &EcsOptions,
) -> Value {
    // Every key is a string and no value's serialization fails, so `Null` is never returned.
    serde_json::to_value(EcsRow { file, row, options }).unwrap_or(Value::Null)
}

/// Which of Elastic's pipelines a file's rows follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    Login,
    Logout,
    Apex,
    AuraRequest,
    /// Every type Elastic's integration does not cover.
    Other,
}

impl Profile {
    fn of(event_type: &str) -> Self {
        match event_type {
            "Login" => Profile::Login,
            "Logout" => Profile::Logout,
            "AuraRequest" => Profile::AuraRequest,
            t if log_file_dataset(t) == "apex" => Profile::Apex,
            _ => Profile::Other,
        }
    }

    /// The columns Elastic names under `salesforce.<dataset>`, how it converts each, and the
    /// columns it places in ECS fields only (`Conv::Never`).
    fn columns(self) -> &'static [(&'static str, &'static [&'static str], Conv)] {
        match self {
            Profile::Login => LOGIN,
            Profile::Logout => LOGOUT,
            Profile::Apex => APEX,
            Profile::AuraRequest => AURA_REQUEST,
            Profile::Other => &[],
        }
    }
}

/// How a column's text becomes a value under `salesforce.<dataset>`. Empty text is left out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Conv {
    /// The text, as Elastic's `rename` keeps it.
    Raw,
    /// The value typed as the file declares the column (the columns Elastic does not name).
    Typed,
    /// A whole number (Elastic's `convert` to `long`); left out when the text is not one.
    Long,
    /// A floating-point number (Elastic's `Float.parseFloat` / `convert` to `float`).
    Float,
    /// A code decoded by the table; unknown codes stay as they are.
    Decode(&'static [(&'static str, &'static str)]),
    /// As `Decode`, in a one-element array.
    DecodeList(&'static [(&'static str, &'static str)]),
    /// Decoded by the table from its first three characters.
    Prefix3(&'static [(&'static str, &'static str)]),
    /// `true` for `1`, else `false`.
    Bool1,
    /// Only when all digits (a numeric code), as text.
    Digits,
    /// AuraRequest's `ACTION_MESSAGE` split into actions.
    Actions,
    /// Placed in ECS fields only: never under `salesforce.<dataset>`.
    Never,
}

const LOGIN: &[(&str, &[&str], Conv)] = &[
    ("API_TYPE", &["api", "type"], Conv::Decode(API_TYPES)),
    ("API_VERSION", &["api", "version"], Conv::Raw),
    (
        "AUTHENTICATION_METHOD_REFERENCE",
        &["auth", "service_id"],
        Conv::Raw,
    ),
    (
        "REQUEST_STATUS",
        &["request", "status"],
        Conv::Decode(REQUEST_STATUSES),
    ),
    ("REQUEST_ID", &["request", "id"], Conv::Raw),
    ("USER_ID", &["user_id"], Conv::Raw),
    ("LOGIN_KEY", &["key"], Conv::Raw),
    ("EVENT_TYPE", &["event_type"], Conv::Raw),
    ("ORGANIZATION_ID", &["organization_id"], Conv::Raw),
    ("RUN_TIME", &["run_time"], Conv::Long),
    ("CPU_TIME", &["cpu_time"], Conv::Long),
    ("DB_TOTAL_TIME", &["db_total_time"], Conv::Long),
    ("CLIENT_IP", &["client", "ip"], Conv::Raw),
    ("URI_ID_DERIVED", &["uri", "id"], Conv::Raw),
    ("URI", &[], Conv::Never),
];

const LOGOUT: &[(&str, &[&str], Conv)] = &[
    (
        "SESSION_TYPE",
        &["session", "type"],
        Conv::Decode(SESSION_TYPES),
    ),
    (
        "SESSION_LEVEL",
        &["session", "level"],
        Conv::Decode(SESSION_LEVELS),
    ),
    // LogoutEvent's SessionKey goes to `session.key`: the log file's column goes with it.
    ("SESSION_KEY", &["session", "key"], Conv::Raw),
    ("EVENT_TYPE", &["event_type"], Conv::Raw),
    ("BROWSER_TYPE", &["browser_type"], Conv::Raw),
    (
        "PLATFORM_TYPE",
        &["platform_type"],
        Conv::Decode(PLATFORM_TYPES),
    ),
    ("RESOLUTION_TYPE", &["resolution_type"], Conv::Raw),
    ("APP_TYPE", &["app_type"], Conv::Decode(APP_TYPES)),
    ("CLIENT_VERSION", &["client_version"], Conv::Raw),
    ("API_TYPE", &["api", "type"], Conv::Decode(API_TYPES)),
    ("API_VERSION", &["api", "version"], Conv::Raw),
    (
        "USER_INITIATED_LOGOUT",
        &["user_initiated_logout"],
        Conv::Bool1,
    ),
    ("LOGIN_KEY", &["login_key"], Conv::Raw),
    ("USER_ID", &["user_id"], Conv::Raw),
    ("ORGANIZATION_ID", &["organization_id"], Conv::Raw),
    (
        "USER_TYPE",
        &["user", "roles"],
        Conv::DecodeList(USER_TYPES),
    ),
    ("REQUEST_ID", &[], Conv::Never),
];

const APEX: &[(&str, &[&str], Conv)] = &[
    ("CALLOUT_TIME", &["callout_time"], Conv::Float),
    ("CPU_TIME", &["cpu_time"], Conv::Float),
    ("DB_CPU_TIME", &["db_cpu_time"], Conv::Float),
    ("DB_TOTAL_TIME", &["db_total_time"], Conv::Float),
    ("EXECUTE_MS", &["execute_ms"], Conv::Float),
    ("FETCH_MS", &["fetch_ms"], Conv::Float),
    ("LIMIT_USAGE_PERCENT", &["limit_usage_pct"], Conv::Float),
    ("THROUGHPUT", &["throughput"], Conv::Float),
    ("RUN_TIME", &["run_time"], Conv::Float),
    ("DB_BLOCKS", &["db_blocks"], Conv::Long),
    ("LIMIT", &["limit"], Conv::Long),
    ("NUMBER_FIELDS", &["fields_count"], Conv::Long),
    ("NUMBER_SOQL_QUERIES", &["soql_queries_count"], Conv::Long),
    ("OFFSET", &["offset"], Conv::Long),
    ("ROWS", &["rows_total"], Conv::Long),
    ("ROWS_FETCHED", &["rows_fetched"], Conv::Long),
    ("ROWS_PROCESSED", &["rows_processed"], Conv::Long),
    ("ACTION", &["action"], Conv::Raw),
    ("CLASS_NAME", &["class_name"], Conv::Raw),
    ("CLIENT_NAME", &["client_name"], Conv::Raw),
    ("ENTITY", &["entity"], Conv::Raw),
    ("ENTITY_NAME", &["entity_name"], Conv::Raw),
    ("ENTRY_POINT", &["entry_point"], Conv::Raw),
    ("EVENT_TYPE", &["event_type"], Conv::Raw),
    ("FILTER", &["filter"], Conv::Raw),
    (
        "IS_LONG_RUNNING_REQUEST",
        &["is_long_running_request"],
        Conv::Raw,
    ),
    ("LOGIN_KEY", &["login_key"], Conv::Raw),
    ("MEDIA_TYPE", &["media_type"], Conv::Raw),
    ("MESSAGE", &["message"], Conv::Raw),
    ("METHOD_NAME", &["method_name"], Conv::Raw),
    ("ORDERBY", &["orderby"], Conv::Raw),
    ("ORGANIZATION_ID", &["organization_id"], Conv::Raw),
    ("QUERY", &["query"], Conv::Raw),
    ("QUIDDITY", &["quiddity"], Conv::Raw),
    ("REQUEST_ID", &["request_id"], Conv::Raw),
    ("REQUEST_STATUS", &["request_status"], Conv::Raw),
    ("SELECT", &["select"], Conv::Raw),
    ("SUBQUERIES", &["subqueries"], Conv::Raw),
    ("TRIGGER_ID", &["trigger_id"], Conv::Raw),
    ("TRIGGER_NAME", &["trigger_name"], Conv::Raw),
    ("TRIGGER_TYPE", &["trigger_type"], Conv::Raw),
    ("TYPE", &["type"], Conv::Raw),
    ("URI", &["uri"], Conv::Raw),
    ("URI_ID_DERIVED", &["uri_derived_id"], Conv::Raw),
    (
        "USER_AGENT",
        &["user_agent"],
        Conv::Prefix3(USER_AGENT_CODES),
    ),
    ("USER_ID_DERIVED", &["user_id_derived"], Conv::Raw),
];

const AURA_REQUEST: &[(&str, &[&str], Conv)] = &[
    ("ACTION_MESSAGE", &["action_message"], Conv::Raw),
    ("ACTION_MESSAGE", &["actions"], Conv::Actions),
    (
        "ACTION_MESSAGE_LENGTH",
        &["action_message_length"],
        Conv::Long,
    ),
    ("RUN_TIME", &["run_time"], Conv::Long),
    ("CPU_TIME", &["cpu_time"], Conv::Long),
    ("DB_TOTAL_TIME", &["db_total_time"], Conv::Long),
    ("REQUEST_STATUS", &["request_status"], Conv::Raw),
    ("URI_ID_DERIVED", &["uri_id"], Conv::Raw),
    ("USER_ID", &["user_id"], Conv::Raw),
    ("USER_TYPE", &["user_type"], Conv::Raw),
    ("LOGIN_KEY", &["login_key"], Conv::Raw),
    ("SESSION_KEY", &["session_key"], Conv::Raw),
    ("EASY_SUITE_VALUE", &["easy_suite_value"], Conv::Raw),
    ("USER_AGENT", &["user_agent_code"], Conv::Digits),
];

/// The columns the ECS fields read. A row's plan reads them through a lookup by `Col`: the
/// direct encoder resolves each to a column index once per schema, where a lookup by name
/// would hash the name for every row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    TimestampDerived,
    Timestamp,
    LoginStatus,
    RequestStatus,
    Success,
    Status,
    OrganizationId,
    UserIdDerived,
    UserId,
    UserName,
    UserType,
    SourceIp,
    ClientIp,
    UserAgent,
    BrowserType,
    BrowserName,
    BrowserVersion,
    OsName,
    OsVersion,
    ReferrerUri,
    CipherSuite,
    HttpMethod,
    Method,
    RequestMethod,
    StatusCode,
    RequestSize,
    ResponseSize,
    Url,
    Uri,
    TlsProtocol,
    RequestId,
    Time,
    ExecTime,
    RunTime,
    TotalMs,
}

/// The header names of the `Col`s, in their order.
const COLUMN_NAMES: [&str; 35] = [
    "TIMESTAMP_DERIVED",
    "TIMESTAMP",
    "LOGIN_STATUS",
    "REQUEST_STATUS",
    "SUCCESS",
    "STATUS",
    "ORGANIZATION_ID",
    "USER_ID_DERIVED",
    "USER_ID",
    "USER_NAME",
    "USER_TYPE",
    "SOURCE_IP",
    "CLIENT_IP",
    "USER_AGENT",
    "BROWSER_TYPE",
    "BROWSER_NAME",
    "BROWSER_VERSION",
    "OS_NAME",
    "OS_VERSION",
    "REFERRER_URI",
    "CIPHER_SUITE",
    "HTTP_METHOD",
    "METHOD",
    "REQUEST_METHOD",
    "STATUS_CODE",
    "REQUEST_SIZE",
    "RESPONSE_SIZE",
    "URL",
    "URI",
    "TLS_PROTOCOL",
    "REQUEST_ID",
    "TIME",
    "EXEC_TIME",
    "RUN_TIME",
    "TOTAL_MS",
];

impl Col {
    fn name(self) -> &'static str {
        COLUMN_NAMES[self as usize]
    }

    /// Its bit in a [`Placed`] set.
    fn bit(self) -> Placed {
        1 << self as u32
    }
}

/// The columns a row placed in ECS fields (left out of `salesforce.<dataset>`): a set of `Col`
/// bits.
type Placed = u64;

/// The `Placed` bit of a column named `name` (0 for a column the ECS fields do not read).
fn placed_bit(name: &str) -> Placed {
    COLUMN_NAMES
        .iter()
        .position(|&column| column == name)
        .map_or(0, |bit| 1 << bit)
}

/// Where a schema has each `Col`: the index `LogRecord::get` reads for the name (the last
/// column of that name).
#[derive(Debug)]
struct Columns([Option<usize>; COLUMN_NAMES.len()]);

impl Columns {
    fn new(row: &LogRecord) -> Self {
        let mut at = [None; COLUMN_NAMES.len()];
        for (i, name) in row.schema().names().enumerate() {
            if let Some(k) = COLUMN_NAMES.iter().position(|&column| column == name) {
                at[k] = Some(i);
            }
        }
        Columns(at)
    }

    /// As `row.get(c.name())`.
    #[inline]
    fn get<'r>(&self, row: &'r LogRecord, c: Col) -> Option<&'r str> {
        let i = self.0[c as usize]?;
        Some(row.raw_at(i)).filter(|v| !v.is_empty())
    }
}

/// What a file's `EventType` gives every document of the file.
#[derive(Debug)]
pub(crate) struct FileNames {
    profile: Profile,
    /// Apex: the column of `event.duration` (Elastic's choice per type) and of `event.url`.
    apex_duration: Option<Col>,
    apex_url: Option<Col>,
    /// The key under `salesforce`.
    key: OwnedKey,
    event_dataset: String,
    action: String,
    category: Option<&'static str>,
    kind: Option<&'static str>,
}

impl FileNames {
    pub(crate) fn new(event_type: &str) -> Self {
        let dataset = log_file_dataset(event_type);
        let profile = Profile::of(event_type);
        let (action, category) = match profile {
            Profile::Login => (
                "login-attempt".to_string(),
                Some(("authentication", "info")),
            ),
            Profile::Logout => ("logout".to_string(), Some(("authentication", "info"))),
            Profile::AuraRequest => ("aura-request".to_string(), Some(("web", "access"))),
            Profile::Apex => {
                let action = match event_type {
                    "ApexRestApi" => "apex-rest".to_string(),
                    "ExternalCustomApexCallout" => "apex-external-custom-callout".to_string(),
                    t => action_name(t),
                };
                // Elastic: `event.type: connection` but for ApexExecution, `event.category:
                // network` but for ApexExecution and ApexTrigger.
                let category = match event_type {
                    "ApexExecution" => None,
                    "ApexTrigger" => Some(("", "connection")),
                    _ => Some(("network", "connection")),
                };
                (action, category)
            }
            Profile::Other => (action_name(event_type), log_file_category(event_type)),
        };
        let (category, kind) = match category {
            Some((category, kind)) => (
                Some(category).filter(|c| !c.is_empty()),
                Some(kind).filter(|k| !k.is_empty()),
            ),
            None => (None, None),
        };
        let (apex_duration, apex_url) = match event_type {
            _ if profile != Profile::Apex => (None, None),
            "ApexCallout" => (Some(Col::Time), Some(Col::Url)),
            "ApexTrigger" | "ApexExecution" => (Some(Col::ExecTime), Some(Col::Uri)),
            "ApexRestApi" | "ApexSoap" => (Some(Col::RunTime), Some(Col::Uri)),
            "ExternalCustomApexCallout" => (Some(Col::TotalMs), None),
            _ => (None, Some(Col::Uri)),
        };
        FileNames {
            profile,
            apex_duration,
            apex_url,
            key: OwnedKey::new(salesforce_key(&dataset)),
            event_dataset: format!("salesforce.{dataset}"),
            action,
            category,
            kind,
        }
    }
}

/// `event.duration` as Elastic writes it: the Apex pipeline's milliseconds as a float, the
/// AuraRequest pipeline's nanoseconds as a whole number.
#[derive(Clone, Copy)]
enum Duration {
    Millis(f64),
    Nanos(i64),
}

/// What a row's document holds at the top level, every text borrowed from the row.
struct Plan<'r> {
    timestamp: OffsetDateTime,
    placed: Placed,
    outcome: Option<&'static str>,
    duration: Option<Duration>,
    event_code: Option<&'r str>,
    event_url: Option<&'r str>,
    organization_id: Option<&'r str>,
    user_id: Option<&'r str>,
    user_name: Option<&'r str>,
    user_email: Option<&'r str>,
    user_role: Option<&'r str>,
    source_ip: Option<IpAddr>,
    related_ip: [Option<IpAddr>; 2],
    related_user: [Option<&'r str>; 2],
    user_agent: [Option<&'r str>; 5],
    request_id: Option<&'r str>,
    method: Option<&'r str>,
    referrer: Option<&'r str>,
    status_code: Option<u64>,
    request_bytes: Option<u64>,
    response_bytes: Option<u64>,
    url: Option<&'r str>,
    tls_version: Option<Cow<'r, str>>,
    tls_protocol: Option<&'r str>,
    tls_cipher: Option<&'r str>,
}

impl<'r> Plan<'r> {
    /// `get` reads a column as `row.get(name)` does.
    #[inline]
    fn new<F: LogFileInfo + ?Sized>(
        file: &F,
        names: &FileNames,
        get: impl Fn(Col) -> Option<&'r str>,
    ) -> Self {
        let mut placed: Placed = 0;
        let derived = get(Col::TimestampDerived).and_then(parse_log_datetime);
        let compact = get(Col::Timestamp).and_then(parse_log_datetime);
        let timestamp = derived.or(compact).unwrap_or_else(|| file.log_date());
        if derived.is_some() {
            placed |= Col::TimestampDerived.bit();
        }
        if compact.is_some() {
            placed |= Col::Timestamp.bit();
        }
        let mut take = |c: Col| {
            let value = get(c);
            if value.is_some() {
                placed |= c.bit();
            }
            value
        };

        let profile = names.profile;
        let outcome = match profile {
            Profile::Login => get(Col::LoginStatus).map(login_outcome),
            Profile::Logout => None,
            Profile::Apex => match (get(Col::Success), get(Col::Status)) {
                (Some("1"), _) | (_, Some("1")) => Some("success"),
                (Some(_), _) | (_, Some(_)) => Some("failure"),
                _ => None,
            },
            Profile::AuraRequest => match get(Col::RequestStatus) {
                Some("S" | "R") => Some("success"),
                Some("F" | "A" | "N") => Some("failure"),
                _ => None,
            },
            Profile::Other => {
                if let Some(status) = get(Col::LoginStatus) {
                    Some(login_outcome(status))
                } else if let Some(status) = get(Col::RequestStatus) {
                    // S success, F failure, A authorization error, N not found; U undefined,
                    // R redirect.
                    match status {
                        "S" => Some("success"),
                        "F" | "A" | "N" => Some("failure"),
                        _ => None,
                    }
                } else {
                    match get(Col::Success) {
                        Some("1" | "true" | "TRUE" | "True") => Some("success"),
                        Some("0" | "false" | "FALSE" | "False") => Some("failure"),
                        _ => None,
                    }
                }
            }
        };

        let duration = match profile {
            Profile::Apex => names
                .apex_duration
                .and_then(&get)
                .and_then(float)
                .map(Duration::Millis),
            Profile::AuraRequest => get(Col::RunTime)
                .and_then(|t| t.parse::<i64>().ok())
                .and_then(|ms| ms.checked_mul(1_000_000))
                .map(Duration::Nanos),
            Profile::Login | Profile::Logout | Profile::Other => None,
        };

        let organization_id = take(Col::OrganizationId);
        let mut user_name = None;
        let mut user_email = None;
        let mut user_role = None;
        let mut event_code = None;
        let mut event_url = None;
        let mut request_id = None;
        let mut related_user = [None, None];
        let user_id = match profile {
            Profile::Login => {
                // Elastic: USER_NAME is `user.email` (Salesforce user names are addresses).
                user_email = take(Col::UserName);
                user_role = take(Col::UserType);
                event_url = take(Col::Uri);
                // Elastic reads only the 18-character USER_ID_DERIVED; without it (older
                // files) the 15-character USER_ID still names the user.
                take(Col::UserIdDerived).or_else(|| get(Col::UserId))
            }
            Profile::Logout => {
                event_code = take(Col::RequestId);
                take(Col::UserIdDerived).or_else(|| get(Col::UserId))
            }
            Profile::Apex => {
                user_role = take(Col::UserType);
                event_url = match names.apex_url {
                    Some(Col::Url) => take(Col::Url).map(unquote),
                    Some(c) => get(c),
                    None => None,
                };
                take(Col::UserId)
            }
            Profile::AuraRequest => {
                request_id = take(Col::RequestId);
                let user_id = take(Col::UserIdDerived).or_else(|| get(Col::UserId));
                related_user = [user_id, get(Col::UserId).filter(|&u| Some(u) != user_id)];
                user_id
            }
            Profile::Other => {
                user_name = take(Col::UserName);
                user_email = user_name.filter(|name| is_email(name));
                user_role = take(Col::UserType);
                take(Col::UserIdDerived).or_else(|| take(Col::UserId))
            }
        };

        let mut place = |c: Col| placed |= c.bit();
        let source = get(Col::SourceIp).and_then(ip);
        let client = get(Col::ClientIp).and_then(ip);
        let (source_ip, related_ip) = match profile {
            Profile::Apex | Profile::AuraRequest => {
                if client.is_some() {
                    place(Col::ClientIp);
                }
                (client, [client, None])
            }
            Profile::Logout => {
                if client.is_some() {
                    place(Col::ClientIp);
                } else if source.is_some() {
                    place(Col::SourceIp);
                }
                (client.or(source), [client, source])
            }
            Profile::Login | Profile::Other => {
                if source.is_some() {
                    place(Col::SourceIp);
                } else if client.is_some() && profile == Profile::Other {
                    place(Col::ClientIp);
                }
                (source.or(client), [source, client])
            }
        };

        let mut user_agent = [None; 5];
        match profile {
            Profile::Apex => {}
            Profile::AuraRequest => {
                user_agent[0] = get(Col::UserAgent).and_then(values_user_agent);
                if user_agent[0].is_some() {
                    place(Col::UserAgent);
                }
            }
            Profile::Login | Profile::Logout | Profile::Other => {
                let browser = get(Col::BrowserType).and_then(values_user_agent);
                user_agent[0] = match get(Col::UserAgent).and_then(values_user_agent) {
                    Some(ua) => {
                        place(Col::UserAgent);
                        Some(ua)
                    }
                    None => {
                        // Logout keeps BROWSER_TYPE as `salesforce.logout.browser_type` too.
                        if browser.is_some() && profile != Profile::Logout {
                            place(Col::BrowserType);
                        }
                        browser
                    }
                };
            }
        }
        if profile == Profile::Other {
            for (slot, c) in [
                (1, Col::BrowserName),
                (2, Col::BrowserVersion),
                (3, Col::OsName),
                (4, Col::OsVersion),
            ] {
                user_agent[slot] = get(c).map(unquote);
                if user_agent[slot].is_some() {
                    place(c);
                }
            }
        }

        let method_columns: &[Col] = match profile {
            Profile::Login | Profile::Logout => &[],
            Profile::Apex => &[Col::Method],
            Profile::AuraRequest => &[Col::RequestMethod],
            Profile::Other => &[Col::HttpMethod, Col::Method, Col::RequestMethod],
        };
        let method = method_columns
            .iter()
            .find_map(|&c| Some((c, get(c).and_then(http_method)?)));
        let http_numbers = matches!(profile, Profile::Apex | Profile::Other);
        let number = |c: Col| Some((c, get(c)?.parse::<u64>().ok()?)).filter(|_| http_numbers);
        let status_code = number(Col::StatusCode).filter(|(_, code)| *code <= u64::from(u16::MAX));
        let request_bytes = number(Col::RequestSize);
        let response_bytes = number(Col::ResponseSize);
        let referrer = if profile == Profile::Other {
            let referrer = get(Col::ReferrerUri).map(unquote);
            if referrer.is_some() {
                place(Col::ReferrerUri);
            }
            referrer
        } else {
            None
        };
        let url = match profile {
            Profile::Login | Profile::Logout | Profile::Apex => None,
            Profile::AuraRequest => get(Col::Uri).map(|u| (Col::Uri, u)),
            // An ApexCallout's URL is where the callout went; its URI only names the log line.
            Profile::Other => [Col::Url, Col::Uri]
                .into_iter()
                .find_map(|c| Some((c, unquote(get(c)?)))),
        };
        for c in [method.map(|(c, _)| c), url.map(|(c, _)| c)]
            .into_iter()
            .chain([status_code, request_bytes, response_bytes].map(|n| n.map(|(c, _)| c)))
            .flatten()
        {
            place(c);
        }

        let (tls_version, tls_protocol) = match get(Col::TlsProtocol) {
            // Elastic's Login pipeline: `%{tls.version_protocol}v%{tls.version}` (`TLS`, `1.2`).
            Some(text) if profile == Profile::Login => match text.split_once('v') {
                Some((protocol, version)) if !protocol.is_empty() && !version.is_empty() => {
                    (Some(Cow::Borrowed(version)), Some(protocol))
                }
                _ => (tls_version(text), tls_version(text).map(|_| "tls")),
            },
            Some(text) if matches!(profile, Profile::Logout | Profile::Other) => {
                let version = tls_version(text);
                let protocol = version.as_ref().map(|_| "tls");
                (version, protocol)
            }
            _ => (None, None),
        };
        if tls_version.is_some() {
            place(Col::TlsProtocol);
        }
        let tls_cipher = match profile {
            Profile::Login | Profile::Logout | Profile::Other => get(Col::CipherSuite).map(unquote),
            Profile::Apex | Profile::AuraRequest => None,
        };
        if tls_cipher.is_some() {
            place(Col::CipherSuite);
        }

        Plan {
            timestamp,
            placed,
            outcome,
            duration,
            event_code,
            event_url,
            organization_id,
            user_id,
            user_name,
            user_email,
            user_role,
            source_ip,
            related_ip,
            related_user,
            user_agent,
            request_id,
            method: method.map(|(_, m)| m),
            referrer,
            status_code: status_code.map(|(_, c)| c),
            request_bytes: request_bytes.map(|(_, b)| b),
            response_bytes: response_bytes.map(|(_, b)| b),
            url: url.map(|(_, u)| u),
            tls_version,
            tls_protocol,
            tls_cipher,
        }
    }
}

fn login_outcome(status: &str) -> &'static str {
    if status == "LOGIN_NO_ERROR" {
        "success"
    } else {
        "failure"
    }
}

/// A finite number, as Elastic's `Float.parseFloat` reads it (kept in double precision).
fn float(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|f| f.is_finite())
}

/// A node of `salesforce.<dataset>`, resolved once per schema: an object of nodes, or a column
/// written with its conversion unless the row placed it in an ECS field.
#[derive(Debug)]
enum Rest {
    Obj(OwnedKey, Vec<Rest>),
    Leaf {
        key: OwnedKey,
        column: usize,
        conv: Conv,
        /// Left out when the row's `Placed` set has this bit.
        placed: Placed,
    },
}

impl Rest {
    fn key(&self) -> &str {
        match self {
            Rest::Obj(key, _) | Rest::Leaf { key, .. } => key.name(),
        }
    }
}

/// Adds a leaf at `path` (the last segment its key), under the objects of the path's first
/// segments, created or shared with earlier leaves.
fn insert(nodes: &mut Vec<Rest>, path: &[&str], leaf: Rest) {
    match path {
        [] | [_] => nodes.push(leaf),
        [first, rest @ ..] => {
            let at = nodes
                .iter()
                .position(|n| matches!(n, Rest::Obj(k, _) if k.name() == *first));
            let at = match at {
                Some(at) => at,
                None => {
                    nodes.push(Rest::Obj(OwnedKey::new(first), Vec::new()));
                    nodes.len() - 1
                }
            };
            if let Some(Rest::Obj(_, children)) = nodes.get_mut(at) {
                insert(children, rest, leaf);
            }
        }
    }
}

/// What the encoders resolve once per schema (and profile).
#[derive(Debug)]
struct EcsSchema {
    profile: Profile,
    columns: Columns,
    rest: Vec<Rest>,
}

impl EcsSchema {
    fn new(row: &LogRecord, profile: Profile) -> Self {
        let names: Vec<&str> = row.schema().names().collect();
        let mapped = profile.columns();
        let mut rest = Vec::new();
        for &(column, path, conv) in mapped {
            if conv == Conv::Never {
                continue;
            }
            // The last column of the name, as `LogRecord::get` reads.
            if let Some(i) = names.iter().rposition(|&n| n == column) {
                let key = path.last().copied().unwrap_or(column);
                let leaf = Rest::Leaf {
                    key: OwnedKey::new(key),
                    column: i,
                    conv,
                    placed: 0,
                };
                insert(&mut rest, path, leaf);
            }
        }
        let mapped_keys: Vec<String> = rest.iter().map(|n| n.key().to_string()).collect();
        for (i, &name) in names.iter().enumerate() {
            if mapped.iter().any(|&(column, _, _)| column == name) {
                continue;
            }
            let mut key = snake_case(name);
            // Never under a name Elastic's mapping gives something else.
            if mapped_keys.contains(&key) {
                key.push_str("_column");
            }
            rest.push(Rest::Leaf {
                key: OwnedKey::new(&key),
                column: i,
                conv: Conv::Typed,
                placed: placed_bit(name),
            });
        }
        EcsSchema {
            profile,
            columns: Columns::new(row),
            rest,
        }
    }
}

/// The row's document, written to `o`: the one description of the mapping both encoders use.
#[allow(clippy::too_many_arguments)]
fn write_document<O: Out, F: LogFileInfo + ?Sized>(
    o: &mut O,
    plan: &Plan<'_>,
    names: &FileNames,
    options: &EcsOptions,
    file: &F,
    row: &LogRecord,
    rest: &[Rest],
    id: &str,
) {
    o.time(key!("@timestamp"), plan.timestamp);
    // The parts under `o.constant` read nothing but `names`, `options` and `file`.
    o.constant(Part::Head, |o| {
        o.open(key!("ecs"));
        o.str(key!("version"), ECS_VERSION);
        o.close();
        o.open(key!("data_stream"));
        o.str(key!("type"), "logs");
        o.str(key!("dataset"), &names.event_dataset);
        o.str(key!("namespace"), options.namespace());
        o.close();

        o.open(key!("event"));
        o.str(key!("kind"), "event");
        o.str(key!("module"), "salesforce");
        o.str(key!("dataset"), &names.event_dataset);
        o.str(key!("provider"), "EventLogFile");
        o.str(key!("action"), &names.action);
    });
    o.str(key!("id"), id);
    o.constant(Part::Category, |o| {
        if let Some(category) = names.category {
            o.one(key!("category"), category);
        }
        if let Some(kind) = names.kind {
            o.one(key!("type"), kind);
        }
    });
    if let Some(outcome) = plan.outcome {
        o.str(key!("outcome"), outcome);
    }
    match plan.duration {
        Some(Duration::Millis(ms)) => o.f64(key!("duration"), ms),
        Some(Duration::Nanos(ns)) => o.i64(key!("duration"), ns),
        None => {}
    }
    opt_str(o, key!("code"), plan.event_code);
    opt_str(o, key!("url"), plan.event_url);
    o.close();

    o.open(key!("organization"));
    opt_str(o, key!("id"), plan.organization_id);
    o.close();

    o.open(key!("user"));
    opt_str(o, key!("id"), plan.user_id);
    opt_str(o, key!("name"), plan.user_name);
    opt_str(o, key!("email"), plan.user_email);
    if let Some(role) = plan.user_role {
        o.one(key!("roles"), role);
    }
    o.close();

    if let Some(ip) = plan.source_ip {
        o.open(key!("source"));
        o.ip(key!("ip"), ip);
        o.close();
    }

    o.open(key!("related"));
    // The second address or user only when it differs from the first.
    let [a, b] = plan.related_ip;
    let b = b.filter(|b| Some(*b) != a);
    o.open_array(key!("ip"));
    for ip in [a, b].into_iter().flatten() {
        o.ip(key!(""), ip);
    }
    o.close();
    o.open_array(key!("user"));
    for user in plan.related_user.into_iter().flatten() {
        o.str(key!(""), user);
    }
    o.close();
    o.close();

    let [original, name, version, os_name, os_version] = plan.user_agent;
    o.open(key!("user_agent"));
    opt_str(o, key!("original"), original);
    opt_str(o, key!("name"), name);
    opt_str(o, key!("version"), version);
    o.open(key!("os"));
    opt_str(o, key!("name"), os_name);
    opt_str(o, key!("version"), os_version);
    o.close();
    o.close();

    o.open(key!("http"));
    o.open(key!("request"));
    opt_str(o, key!("id"), plan.request_id);
    opt_str(o, key!("method"), plan.method);
    if let Some(bytes) = plan.request_bytes {
        o.u64(key!("bytes"), bytes);
    }
    opt_str(o, key!("referrer"), plan.referrer);
    o.close();
    o.open(key!("response"));
    if let Some(code) = plan.status_code {
        o.u64(key!("status_code"), code);
    }
    if let Some(bytes) = plan.response_bytes {
        o.u64(key!("bytes"), bytes);
    }
    o.close();
    o.close();

    o.open(key!("url"));
    if let Some(url) = plan.url {
        o.str(key!("original"), url);
        if names.profile == Profile::AuraRequest
            && let Some(parts) = uri_parts(url)
        {
            if !parts.path.is_empty() {
                o.str(key!("path"), &parts.path);
            }
            opt_str(o, key!("extension"), parts.extension);
            opt_str(o, key!("query"), parts.query);
            opt_str(o, key!("fragment"), parts.fragment);
        }
    }
    o.close();

    o.open(key!("tls"));
    if let Some(version) = plan.tls_version.as_deref() {
        o.str(key!("version"), version);
    }
    opt_str(o, key!("version_protocol"), plan.tls_protocol);
    opt_str(o, key!("cipher"), plan.tls_cipher);
    o.close();

    o.constant(Part::File, |o| {
        o.open(key!("salesforce"));
        opt_str(o, key!("instance_url"), options.instance_url());
        o.open(key!("event_log_file"));
        o.str(key!("id"), file.id());
        o.str(key!("event_type"), file.event_type());
        o.time(key!("log_date"), file.log_date());
        o.str(key!("interval"), file.interval());
        o.i64(key!("sequence"), file.sequence());
        o.close();
        o.open(names.key.get());
    });
    write_rest(o, row, rest, plan.placed);
    o.close();
    o.close();
}

#[inline]
fn opt_str<O: Out>(o: &mut O, key: Key<'_>, value: Option<&str>) {
    if let Some(value) = value.filter(|v| !v.is_empty()) {
        o.str(key, value);
    }
}

fn write_rest<O: Out>(o: &mut O, row: &LogRecord, nodes: &[Rest], placed: Placed) {
    for node in nodes {
        match node {
            Rest::Obj(key, children) => {
                o.open(key.get());
                write_rest(o, row, children, placed);
                o.close();
            }
            Rest::Leaf {
                key,
                column,
                conv,
                placed: bit,
            } => {
                if bit & placed != 0 {
                    continue;
                }
                let raw = row.raw_at(*column);
                if raw.is_empty() {
                    continue;
                }
                write_value(o, key.get(), raw, *conv, row, *column);
            }
        }
    }
}

#[inline]
fn write_value<O: Out>(
    o: &mut O,
    key: Key<'_>,
    raw: &str,
    conv: Conv,
    row: &LogRecord,
    column: usize,
) {
    match conv {
        Conv::Raw => o.str(key, raw),
        Conv::Typed => {
            if let Some(value) = row.value_at(column) {
                o.field(key, &value);
            }
        }
        Conv::Long => {
            if let Ok(v) = raw.trim().parse::<i64>() {
                o.i64(key, v);
            }
        }
        Conv::Float => {
            if let Some(v) = float(raw) {
                o.f64(key, v);
            }
        }
        Conv::Decode(table) => o.str(key, decode(table, raw)),
        Conv::DecodeList(table) => o.one(key, decode(table, raw)),
        Conv::Prefix3(table) => {
            let decoded = raw
                .get(..3)
                .and_then(|prefix| table.iter().find(|(c, _)| *c == prefix))
                .map_or(raw, |(_, meaning)| meaning);
            o.str(key, decoded);
        }
        Conv::Bool1 => o.bool(key, raw == "1"),
        Conv::Digits => {
            if raw.bytes().all(|b| b.is_ascii_digit()) {
                o.str(key, raw);
            }
        }
        Conv::Actions => {
            o.open_array(key);
            for action in aura_actions(raw) {
                o.open(key!(""));
                o.str(key!("controller"), action.controller);
                if let Some(duration) = action.duration {
                    o.i64(key!("duration"), duration);
                }
                opt_str(o, key!("id"), Some(action.id));
                opt_str(o, key!("method"), Some(action.method));
                opt_str(o, key!("scheme"), Some(action.scheme));
                o.close();
            }
            o.close();
        }
        Conv::Never => {}
    }
}

/// Writes the bytes `serde_json` writes for [`EcsRow`] (tests/encode.rs compares the two),
/// from the same description of the document ([`write_document`]), caching what is the same
/// for every row of a file: where the mapped columns are, the tree of `salesforce.<dataset>`,
/// the columns' order by name for `event.id`. Nothing is allocated per row once the buffers
/// have grown.
#[derive(Debug, Default)]
pub(crate) struct EcsEncoder {
    options: EcsOptions,
    schema: Option<CachedSchema>,
    file: Option<(FileKey, FileNames)>,
    /// The `event.id` fingerprint's message, reused: its first `message_head` bytes (domain
    /// and `EventType`) are those of `file`'s event type, written when `file` is.
    message: Vec<u8>,
    message_head: usize,
    /// The writer's stack and `file`'s constant parts.
    reuse: Reuse,
}

#[derive(Debug)]
struct CachedSchema {
    keys: SchemaKeys,
    ecs: EcsSchema,
    /// `event.id`'s columns in the order `log_row_event_id` sorts them, each with its name as
    /// the message holds it (length-prefixed) in `prefixed_names`; `None` when two columns
    /// share a name (then their values decide the order, and the general function does it).
    by_name: Option<Vec<(usize, Range<usize>)>>,
    prefixed_names: Vec<u8>,
}

impl CachedSchema {
    fn new(row: &LogRecord, profile: Profile) -> Self {
        let schema = row.schema();
        let names: Vec<&str> = schema.names().collect();
        let mut order: Vec<usize> = (0..names.len()).collect();
        order.sort_unstable_by(|&a, &b| names[a].cmp(names[b]));
        let unique = order.windows(2).all(|w| names[w[0]] != names[w[1]]);
        let keys = SchemaKeys::new(schema, |_, _| {});
        let mut prefixed_names = Vec::new();
        let by_name = order
            .into_iter()
            .map(|i| {
                let start = prefixed_names.len();
                push_prefixed(&mut prefixed_names, keys.name(i).as_bytes());
                (i, start..prefixed_names.len())
            })
            .collect();
        CachedSchema {
            keys,
            ecs: EcsSchema::new(row, profile),
            by_name: unique.then_some(by_name),
            prefixed_names,
        }
    }
}

impl EcsEncoder {
    /// An encoder writing with `options`.
    pub(crate) fn new(options: EcsOptions) -> Self {
        EcsEncoder {
            options,
            ..EcsEncoder::default()
        }
    }

    /// Appends the row's ECS document (no newline) to `out`.
    pub(crate) fn encode<F: LogFileInfo + ?Sized>(
        &mut self,
        out: &mut Vec<u8>,
        file: &F,
        row: &LogRecord,
    ) {
        let names = match &mut self.file {
            Some((key, names)) if key.matches(file) => &*names,
            slot => {
                // Every row's message starts with the domain and the file's `EventType`: kept
                // in the buffer, and each row's columns written after it.
                let message = &mut self.message;
                message.clear();
                message.extend_from_slice(LOG_ROW_DOMAIN.as_bytes());
                push_prefixed(message, file.event_type().as_bytes());
                self.message_head = message.len();
                let names = FileNames::new(file.event_type());
                self.reuse.clear_parts();
                &slot.insert((FileKey::of(file), names)).1
            }
        };
        let schema = match &mut self.schema {
            Some(cached)
                if cached.keys.is_for(row.schema()) && cached.ecs.profile == names.profile =>
            {
                cached
            }
            slot => slot.insert(CachedSchema::new(row, names.profile)),
        };
        let general;
        let hex;
        let id = match &schema.by_name {
            Some(order) => {
                let message = &mut self.message;
                message.truncate(self.message_head);
                for (i, name) in order {
                    // Bytes, not `&str`: an empty column is skipped from `ends` alone.
                    let value = row.raw_bytes_at(*i);
                    if !value.is_empty() {
                        message.extend_from_slice(
                            schema.prefixed_names.get(name.clone()).unwrap_or_default(),
                        );
                        push_prefixed(message, value);
                    }
                }
                hex = hex_digest(message);
                hex.as_str()
            }
            None => {
                general = log_row_event_id(file, row);
                general.as_str()
            }
        };
        let columns = &schema.ecs.columns;
        let plan = Plan::new(file, names, |c| columns.get(row, c));
        let mut bytes = Bytes::new(out, std::mem::take(&mut self.reuse));
        write_document(
            &mut bytes,
            &plan,
            names,
            &self.options,
            file,
            row,
            &schema.ecs.rest,
            id,
        );
        self.reuse = bytes.finish();
    }
}
