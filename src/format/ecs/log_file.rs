//! ECS documents of log-file rows, serialized straight from the row: the sinks write one per
//! row, so no `Value` tree is built on the way (a document borrows every text from the row).

use std::borrow::Cow;
use std::net::IpAddr;
use std::ops::Range;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;
use time::OffsetDateTime;

use crate::event_log::{EventLogFile, FieldValue, LogRecord, Schema, parse_log_datetime};
use crate::format::ecs::ECS_VERSION;
use crate::format::event_id::{LOG_ROW_DOMAIN, hex_digest, log_row_event_id, push_prefixed};
use crate::format::json::{
    FileKey, SchemaKeys, write_bool, write_f64, write_i64, write_ip, write_key,
    write_rfc3339_millis, write_str, write_u64,
};
use crate::format::names::{SnakeCase, log_file_dataset};
use crate::format::rfc3339_millis;
use crate::format::values::{
    action_name, http_method, ip, is_email, log_file_category, tls_version, unquote, user_agent,
};

/// A log-file row as the ECS format writes it. It serializes to the document
/// [`log_file_document`] returns, without building that `Value` first; the NDJSON sinks write
/// it with [`OutputFormat::Ecs`](crate::format::OutputFormat::Ecs).
#[derive(Debug, Clone, Copy)]
pub struct EcsRow<'a> {
    /// The file the row came from.
    pub file: &'a EventLogFile,
    /// The row.
    pub row: &'a LogRecord,
}

impl Serialize for EcsRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let names = FileNames::new(self.file.event_type.as_str());
        let id = log_row_event_id(self.file, self.row);
        let row = self.row;
        Plan::new(self.file, row, &names, &id, |c| row.get(c.name())).serialize(s)
    }
}

/// The columns the mapping reads. A row's plan reads them through a lookup by `Col`: the
/// direct encoder resolves each to a column index once per schema, where a lookup by name
/// would hash the name for every row.
#[derive(Clone, Copy)]
enum Col {
    TimestampDerived,
    Timestamp,
    LoginStatus,
    RequestStatus,
    Success,
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
}

/// The header names of the `Col`s, in their order.
const COLUMN_NAMES: [&str; 29] = [
    "TIMESTAMP_DERIVED",
    "TIMESTAMP",
    "LOGIN_STATUS",
    "REQUEST_STATUS",
    "SUCCESS",
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
];

impl Col {
    fn name(self) -> &'static str {
        COLUMN_NAMES[self as usize]
    }

    /// Its bit in a [`Consumed`] set.
    fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// The columns placed in ECS fields, left out of `salesforce.<dataset>`: a set of `Col` bits
/// (every column of a schema with a placed column's name is left out).
type Consumed = u32;

/// Whether a column named `name` is left out of `salesforce.<dataset>`.
fn is_consumed(consumed: Consumed, name: &str) -> bool {
    COLUMN_NAMES
        .iter()
        .enumerate()
        .any(|(bit, &column)| consumed & (1 << bit) != 0 && column == name)
}

/// Where a schema has each `Col`: the index `LogRecord::get` reads for the name (the last
/// column of that name).
#[derive(Debug)]
struct Columns([Option<usize>; COLUMN_NAMES.len()]);

impl Columns {
    fn new(schema: &Schema) -> Self {
        let mut at = [None; COLUMN_NAMES.len()];
        for (i, name) in schema.names().enumerate() {
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
    dataset: String,
    event_dataset: String,
    action: String,
    category: Option<(&'static str, &'static str)>,
}

impl FileNames {
    pub(crate) fn new(event_type: &str) -> Self {
        let dataset = log_file_dataset(event_type);
        FileNames {
            event_dataset: format!("salesforce.{dataset}"),
            dataset,
            action: action_name(event_type),
            category: log_file_category(event_type),
        }
    }
}

/// The ECS document of one log-file row. `event.id` is
/// [`log_row_event_id`](crate::format::event_id::log_row_event_id).
///
/// `@timestamp` comes from `TIMESTAMP_DERIVED`, else `TIMESTAMP` (`yyyyMMddHHmmss.SSS`, GMT),
/// else the file's `LogDate`. The file is described under `salesforce.event_log_file` (`id`,
/// `event_type`, `log_date`, `interval`, `sequence`).
pub fn log_file_document(file: &EventLogFile, row: &LogRecord) -> Value {
    // Every key is a string and no value's serialization fails, so `Null` is never returned.
    serde_json::to_value(EcsRow { file, row }).unwrap_or(Value::Null)
}

/// A value of the document. Objects are slices of (key, value) on the stack; an absent value or
/// an object with nothing present is left out.
#[derive(Clone, Copy)]
enum V<'a> {
    Str(&'a str),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    Ip(IpAddr),
    Time(OffsetDateTime),
    /// A one-element array (`event.category`, `user.roles`).
    One(&'a str),
    /// `related.ip`: the distinct addresses among two.
    Ips([Option<IpAddr>; 2]),
    Obj(&'a [(&'static str, Option<V<'a>>)]),
    /// `salesforce.<dataset>`: the row's columns not placed in ECS fields.
    Rest(&'a LogRecord, Consumed),
}

impl V<'_> {
    fn present(&self) -> bool {
        match self {
            V::Obj(entries) => entries
                .iter()
                .any(|(_, v)| v.as_ref().is_some_and(V::present)),
            V::Ips(ips) => ips.iter().any(Option::is_some),
            V::Rest(row, consumed) => row.iter().any(|(name, _)| !is_consumed(*consumed, name)),
            _ => true,
        }
    }
}

fn field<'a>(value: &FieldValue<'a>) -> V<'a> {
    match *value {
        FieldValue::String(s) | FieldValue::Id(s) => V::Str(s),
        FieldValue::Integer(i) => V::I64(i),
        FieldValue::Float(f) => V::F64(f),
        FieldValue::Boolean(b) => V::Bool(b),
        FieldValue::DateTime(t) => V::Time(t),
        FieldValue::Ip(ip) => V::Ip(ip),
    }
}

impl Serialize for V<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            V::Str(v) => s.serialize_str(v),
            V::U64(v) => s.serialize_u64(v),
            V::I64(v) => s.serialize_i64(v),
            V::F64(v) => s.serialize_f64(v),
            V::Bool(v) => s.serialize_bool(v),
            V::Ip(ip) => s.collect_str(&ip),
            V::Time(t) => s.serialize_str(&rfc3339_millis(t)),
            V::One(v) => {
                let mut seq = s.serialize_seq(Some(1))?;
                seq.serialize_element(v)?;
                seq.end()
            }
            V::Ips([a, b]) => {
                let b = b.filter(|b| Some(*b) != a);
                let mut seq = s.serialize_seq(None)?;
                for ip in [a, b].into_iter().flatten() {
                    seq.serialize_element(&V::Ip(ip))?;
                }
                seq.end()
            }
            V::Obj(entries) => {
                let mut map = s.serialize_map(None)?;
                for (key, value) in entries {
                    if let Some(value) = value.filter(V::present) {
                        map.serialize_entry(key, &value)?;
                    }
                }
                map.end()
            }
            V::Rest(row, consumed) => {
                let mut map = s.serialize_map(None)?;
                for (name, value) in row.values() {
                    if !is_consumed(consumed, name) {
                        map.serialize_entry(&SnakeCase(name), &field(&value))?;
                    }
                }
                map.end()
            }
        }
    }
}

fn str(v: Option<&str>) -> Option<V<'_>> {
    v.map(V::Str)
}

/// What a row's document holds, every text borrowed from the row.
struct Plan<'r> {
    file: &'r EventLogFile,
    row: &'r LogRecord,
    names: &'r FileNames,
    id: &'r str,
    outcome: Option<&'static str>,
    timestamp: OffsetDateTime,
    consumed: Consumed,
    organization_id: Option<&'r str>,
    user_id: Option<&'r str>,
    user_name: Option<&'r str>,
    user_role: Option<&'r str>,
    source_ip: Option<IpAddr>,
    related_ip: [Option<IpAddr>; 2],
    user_agent: [Option<&'r str>; 5],
    method: Option<&'r str>,
    referrer: Option<&'r str>,
    status_code: Option<u64>,
    request_bytes: Option<u64>,
    response_bytes: Option<u64>,
    url: Option<&'r str>,
    tls_version: Option<Cow<'r, str>>,
    tls_cipher: Option<&'r str>,
}

impl<'r> Plan<'r> {
    /// `get` reads a column as `row.get(name)` does.
    #[inline]
    fn new(
        file: &'r EventLogFile,
        row: &'r LogRecord,
        names: &'r FileNames,
        id: &'r str,
        get: impl Fn(Col) -> Option<&'r str>,
    ) -> Self {
        let mut consumed: Consumed = 0;
        let mut take = |c: Col| {
            let value = get(c);
            if value.is_some() {
                consumed |= c.bit();
            }
            value
        };

        let derived = get(Col::TimestampDerived).and_then(parse_log_datetime);
        let compact = get(Col::Timestamp).and_then(parse_log_datetime);
        let timestamp = derived.or(compact).unwrap_or(file.log_date);
        let outcome = if let Some(status) = get(Col::LoginStatus) {
            Some(if status == "LOGIN_NO_ERROR" {
                "success"
            } else {
                "failure"
            })
        } else if let Some(status) = get(Col::RequestStatus) {
            // S success, F failure, A authorization error, N not found; U undefined, R redirect.
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
        };

        let organization_id = take(Col::OrganizationId);
        let user_id = take(Col::UserIdDerived).or_else(|| take(Col::UserId));
        let user_name = take(Col::UserName);
        let user_role = take(Col::UserType);
        let mut unquoted = |c: Col| take(c).map(unquote);
        let browser_name = unquoted(Col::BrowserName);
        let browser_version = unquoted(Col::BrowserVersion);
        let os_name = unquoted(Col::OsName);
        let os_version = unquoted(Col::OsVersion);
        let referrer = unquoted(Col::ReferrerUri);
        let tls_cipher = unquoted(Col::CipherSuite);

        let mut place = |c: Col| consumed |= c.bit();
        let source = get(Col::SourceIp).and_then(ip);
        let client = get(Col::ClientIp).and_then(ip);
        if derived.is_some() {
            place(Col::TimestampDerived);
        }
        if compact.is_some() {
            place(Col::Timestamp);
        }
        if source.is_some() {
            place(Col::SourceIp);
        } else if client.is_some() {
            place(Col::ClientIp);
        }
        let user_agent_original = match get(Col::UserAgent).and_then(user_agent) {
            Some(ua) => {
                place(Col::UserAgent);
                Some(ua)
            }
            None => {
                let ua = get(Col::BrowserType).and_then(user_agent);
                if ua.is_some() {
                    place(Col::BrowserType);
                }
                ua
            }
        };
        let method = [Col::HttpMethod, Col::Method, Col::RequestMethod]
            .into_iter()
            .find_map(|c| Some((c, get(c).and_then(http_method)?)));
        let number = |c: Col| Some((c, get(c)?.parse::<u64>().ok()?));
        let status_code = number(Col::StatusCode).filter(|(_, code)| *code <= u64::from(u16::MAX));
        let request_bytes = number(Col::RequestSize);
        let response_bytes = number(Col::ResponseSize);
        // An ApexCallout's URL is where the callout went; its URI only names the log line.
        let url = [Col::Url, Col::Uri]
            .into_iter()
            .find_map(|c| Some((c, unquote(get(c)?))));
        let tls = get(Col::TlsProtocol).and_then(tls_version);
        if tls.is_some() {
            place(Col::TlsProtocol);
        }
        for c in [method, url].into_iter().flatten().map(|(c, _)| c).chain(
            [status_code, request_bytes, response_bytes]
                .into_iter()
                .flatten()
                .map(|(c, _)| c),
        ) {
            place(c);
        }

        Plan {
            file,
            row,
            names,
            id,
            outcome,
            timestamp,
            consumed,
            organization_id,
            user_id,
            user_name,
            user_role,
            source_ip: source.or(client),
            related_ip: [source, client],
            user_agent: [
                user_agent_original,
                browser_name,
                browser_version,
                os_name,
                os_version,
            ],
            method: method.map(|(_, m)| m),
            referrer,
            status_code: status_code.map(|(_, c)| c),
            request_bytes: request_bytes.map(|(_, b)| b),
            response_bytes: response_bytes.map(|(_, b)| b),
            url: url.map(|(_, u)| u),
            tls_version: tls,
            tls_cipher,
        }
    }
}

/// The document's top-level entries and `salesforce.event_log_file`, as `V`s borrowing from the
/// plan, which the serde reference walks; the direct writer (`write_document`) writes the same
/// entries in the same order by hand.
type Entries<'a> = [(&'static str, Option<V<'a>>)];

impl Plan<'_> {
    fn with_document<R>(&self, f: impl FnOnce(&Entries<'_>, &Entries<'_>) -> R) -> R {
        let (category, kind) = match self.names.category {
            Some((category, kind)) => (Some(V::One(category)), Some(V::One(kind))),
            None => (None, None),
        };
        let event = [
            ("kind", Some(V::Str("event"))),
            ("module", Some(V::Str("salesforce"))),
            ("dataset", Some(V::Str(&self.names.event_dataset))),
            ("action", Some(V::Str(&self.names.action))),
            ("id", Some(V::Str(self.id))),
            ("category", category),
            ("type", kind),
            ("outcome", self.outcome.map(V::Str)),
        ];
        let email = self.user_name.filter(|name| is_email(name));
        let user = [
            ("id", str(self.user_id)),
            ("name", str(self.user_name)),
            ("email", str(email)),
            ("roles", self.user_role.map(V::One)),
        ];
        let [original, name, version, os_name, os_version] = self.user_agent;
        let os = [("name", str(os_name)), ("version", str(os_version))];
        let user_agent = [
            ("original", str(original)),
            ("name", str(name)),
            ("version", str(version)),
            ("os", Some(V::Obj(&os))),
        ];
        let request = [
            ("method", str(self.method)),
            ("bytes", self.request_bytes.map(V::U64)),
            ("referrer", str(self.referrer)),
        ];
        let response = [
            ("status_code", self.status_code.map(V::U64)),
            ("bytes", self.response_bytes.map(V::U64)),
        ];
        let http = [
            ("request", Some(V::Obj(&request))),
            ("response", Some(V::Obj(&response))),
        ];
        let tls = [
            ("version", self.tls_version.as_deref().map(V::Str)),
            (
                "version_protocol",
                self.tls_version.as_ref().map(|_| V::Str("tls")),
            ),
            ("cipher", str(self.tls_cipher)),
        ];
        let file = self.file;
        let interval = file.interval_or_daily();
        let event_log_file = [
            ("id", Some(V::Str(&file.id))),
            ("event_type", Some(V::Str(file.event_type.as_str()))),
            ("log_date", Some(V::Time(file.log_date))),
            ("interval", Some(V::Str(interval.as_str()))),
            ("sequence", Some(V::I64(file.sequence))),
        ];
        let ecs = [("version", Some(V::Str(ECS_VERSION)))];
        let document = [
            ("@timestamp", Some(V::Time(self.timestamp))),
            ("ecs", Some(V::Obj(&ecs))),
            ("event", Some(V::Obj(&event))),
            (
                "organization",
                Some(V::Obj(&[("id", str(self.organization_id))])),
            ),
            ("user", Some(V::Obj(&user))),
            ("source", Some(V::Obj(&[("ip", self.source_ip.map(V::Ip))]))),
            (
                "related",
                Some(V::Obj(&[("ip", Some(V::Ips(self.related_ip)))])),
            ),
            ("user_agent", Some(V::Obj(&user_agent))),
            ("http", Some(V::Obj(&http))),
            ("url", Some(V::Obj(&[("original", str(self.url))]))),
            ("tls", Some(V::Obj(&tls))),
        ];
        f(&document, &event_log_file)
    }
}

impl Serialize for Plan<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.with_document(|document, event_log_file| {
            let mut map = s.serialize_map(None)?;
            for (key, value) in document {
                if let Some(value) = value.filter(V::present) {
                    map.serialize_entry(key, &value)?;
                }
            }
            // `salesforce` on its own: its data-set key is not `'static`.
            map.serialize_entry("salesforce", &Salesforce(self, event_log_file))?;
            map.end()
        })
    }
}

/// `salesforce`: `event_log_file` and `<dataset>`.
struct Salesforce<'p, 'r>(&'p Plan<'r>, &'p [(&'static str, Option<V<'p>>)]);

impl Serialize for Salesforce<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Salesforce(plan, event_log_file) = self;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("event_log_file", &V::Obj(event_log_file))?;
        let rest = V::Rest(plan.row, plan.consumed);
        if rest.present() {
            map.serialize_entry(&plan.names.dataset, &rest)?;
        }
        map.end()
    }
}

/// Writes the bytes `serde_json` writes for [`EcsRow`] (tests/encode.rs compares the two), from
/// the same [`Plan`], caching what is the same for every row of a file: the columns' snake_case
/// keys, escaped; where the mapped columns are; their order by name for `event.id`; and the
/// parts of the document that only the file decides ([`FileTemplate`]). Nothing is allocated
/// per row once the buffers have grown.
///
/// The document itself is written by hand ([`write_document`]), in the order
/// [`Plan::with_document`] gives the serde reference. Walking those `V` entries here too cost
/// more than any one field: an entry written and taken back for every absent value and every
/// constant re-escaped per row.
#[derive(Debug, Default)]
pub(crate) struct EcsEncoder {
    schema: Option<EcsSchema>,
    file: Option<FileTemplate>,
    /// The `event.id` fingerprint's message, reused: its first `message_head` bytes (domain
    /// and `EventType`) are those of `file`'s event type, written when `file` is.
    message: Vec<u8>,
    message_head: usize,
}

/// What every document of one file has in common, written once per file.
#[derive(Debug)]
struct FileTemplate {
    /// The file fields the template was written from: it is reused while they are equal.
    key: FileKey,
    names: FileNames,
    /// `,"ecs":{...},"event":{"kind":...,"id":"`: what follows `@timestamp` up to the id.
    before_id: Vec<u8>,
    /// The id's closing quote, then `event.category` and `event.type`.
    after_id: Vec<u8>,
    /// `,"salesforce":{"event_log_file":{...}`.
    salesforce: Vec<u8>,
    /// `,"<dataset>":`, the key of `salesforce.<dataset>`.
    dataset_key: Vec<u8>,
}

impl FileTemplate {
    fn new(file: &EventLogFile) -> Self {
        let event_type = file.event_type.as_str();
        let names = FileNames::new(event_type);
        let interval = file.interval_or_daily();

        let mut before_id = br#","ecs":{"version":"#.to_vec();
        write_str(&mut before_id, ECS_VERSION);
        before_id
            .extend_from_slice(br#"},"event":{"kind":"event","module":"salesforce","dataset":"#);
        write_str(&mut before_id, &names.event_dataset);
        before_id.extend_from_slice(br#","action":"#);
        write_str(&mut before_id, &names.action);
        before_id.extend_from_slice(br#","id":""#);

        let mut after_id = b"\"".to_vec();
        if let Some((category, kind)) = names.category {
            after_id.extend_from_slice(br#","category":["#);
            write_str(&mut after_id, category);
            after_id.extend_from_slice(br#"],"type":["#);
            write_str(&mut after_id, kind);
            after_id.push(b']');
        }

        let mut salesforce = br#","salesforce":{"event_log_file":{"id":"#.to_vec();
        write_str(&mut salesforce, &file.id);
        salesforce.extend_from_slice(br#","event_type":"#);
        write_str(&mut salesforce, event_type);
        salesforce.extend_from_slice(br#","log_date":"#);
        write_rfc3339_millis(&mut salesforce, file.log_date);
        salesforce.extend_from_slice(br#","interval":"#);
        write_str(&mut salesforce, interval.as_str());
        salesforce.extend_from_slice(br#","sequence":"#);
        write_i64(&mut salesforce, file.sequence);
        salesforce.push(b'}');

        let mut dataset_key = vec![b','];
        write_key(&mut dataset_key, &names.dataset);

        FileTemplate {
            key: FileKey::of(file),
            names,
            before_id,
            after_id,
            salesforce,
            dataset_key,
        }
    }

    fn matches(&self, file: &EventLogFile) -> bool {
        self.key.matches(file)
    }
}

#[derive(Debug)]
struct EcsSchema {
    keys: SchemaKeys,
    columns: Columns,
    /// Per column, the `Consumed` bit of its name (0 for a column the mapping does not read).
    bits: Vec<Consumed>,
    /// `event.id`'s columns in the order `log_row_event_id` sorts them, each with its name as
    /// the message holds it (length-prefixed) in `prefixed_names`; `None` when two columns
    /// share a name (then their values decide the order, and the general function does it).
    by_name: Option<Vec<(usize, Range<usize>)>>,
    prefixed_names: Vec<u8>,
}

impl EcsSchema {
    fn new(row: &LogRecord) -> Self {
        let schema = row.schema();
        let names: Vec<&str> = schema.names().collect();
        let mut order: Vec<usize> = (0..names.len()).collect();
        order.sort_unstable_by(|&a, &b| names[a].cmp(names[b]));
        let unique = order.windows(2).all(|w| names[w[0]] != names[w[1]]);
        let keys = SchemaKeys::new(schema, |name, out| {
            write_str(out, &SnakeCase(name).to_string());
        });
        let mut prefixed_names = Vec::new();
        let by_name = order
            .into_iter()
            .map(|i| {
                let start = prefixed_names.len();
                push_prefixed(&mut prefixed_names, keys.name(i).as_bytes());
                (i, start..prefixed_names.len())
            })
            .collect();
        EcsSchema {
            keys,
            columns: Columns::new(schema),
            bits: names
                .iter()
                .map(|&name| {
                    COLUMN_NAMES
                        .iter()
                        .position(|&column| column == name)
                        .map_or(0, |bit| 1 << bit)
                })
                .collect(),
            by_name: unique.then_some(by_name),
            prefixed_names,
        }
    }
}

/// What the direct writer needs for `salesforce.<dataset>`.
struct RestKeys<'e> {
    keys: &'e SchemaKeys,
    bits: &'e [Consumed],
    consumed: Consumed,
}

impl EcsEncoder {
    /// Appends the row's ECS document (no newline) to `out`.
    pub(crate) fn encode(&mut self, out: &mut Vec<u8>, file: &EventLogFile, row: &LogRecord) {
        let schema = match &mut self.schema {
            Some(cached) if cached.keys.is_for(row.schema()) => cached,
            slot => slot.insert(EcsSchema::new(row)),
        };
        let template = match &mut self.file {
            Some(template) if template.matches(file) => template,
            slot => {
                // Every row's message starts with the domain and the file's `EventType`: kept
                // in the buffer, and each row's columns written after it.
                let message = &mut self.message;
                message.clear();
                message.extend_from_slice(LOG_ROW_DOMAIN.as_bytes());
                push_prefixed(message, file.event_type.as_str().as_bytes());
                self.message_head = message.len();
                slot.insert(FileTemplate::new(file))
            }
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
        let columns = &schema.columns;
        let plan = Plan::new(file, row, &template.names, id, |c| columns.get(row, c));
        let rest = RestKeys {
            keys: &schema.keys,
            bits: &schema.bits,
            consumed: plan.consumed,
        };
        write_document(out, &plan, template, &rest);
    }
}

/// An object being written that may end up empty: where its key starts (with the comma before
/// it, if any) and where its entries start.
#[derive(Clone, Copy)]
struct Obj {
    mark: usize,
    entries: usize,
}

/// Opens the object `key` (`"name":{`) as an entry of `parent`; [`close`] takes it back when
/// nothing was written in it, as the serde reference leaves out an object with nothing present.
#[inline]
fn open(out: &mut Vec<u8>, parent: Obj, key: &[u8]) -> Obj {
    let mark = out.len();
    entry(out, parent, key);
    Obj {
        mark,
        entries: out.len(),
    }
}

#[inline]
fn close(out: &mut Vec<u8>, obj: Obj) {
    if out.len() == obj.entries {
        out.truncate(obj.mark);
    } else {
        out.push(b'}');
    }
}

/// Starts an entry of `obj`: a comma unless it is the first, then `key` (`"name":`).
#[inline]
fn entry(out: &mut Vec<u8>, obj: Obj, key: &[u8]) {
    if out.len() != obj.entries {
        out.push(b',');
    }
    out.extend_from_slice(key);
}

/// A string entry, when present.
#[inline]
fn str_entry(out: &mut Vec<u8>, obj: Obj, key: &[u8], value: Option<&str>) {
    if let Some(value) = value {
        entry(out, obj, key);
        write_str(out, value);
    }
}

/// A number entry, when present.
#[inline]
fn u64_entry(out: &mut Vec<u8>, obj: Obj, key: &[u8], value: Option<u64>) {
    if let Some(value) = value {
        entry(out, obj, key);
        write_u64(out, value);
    }
}

/// The row's document, entry for entry as [`Plan::with_document`] and the `Serialize` impls
/// give it to `serde_json` (keep the two in step: tests/encode.rs compares them, on generated
/// rows with every mapped column among others).
fn write_document(
    out: &mut Vec<u8>,
    plan: &Plan<'_>,
    template: &FileTemplate,
    rest: &RestKeys<'_>,
) {
    // `@timestamp`, `ecs` and `event` are always there: no entry of the document is taken
    // back before them, so every later one starts with a comma.
    out.extend_from_slice(br#"{"@timestamp":"#);
    write_rfc3339_millis(out, plan.timestamp);
    out.extend_from_slice(&template.before_id);
    // Hex digits: nothing to escape.
    out.extend_from_slice(plan.id.as_bytes());
    out.extend_from_slice(&template.after_id);
    if let Some(outcome) = plan.outcome {
        out.extend_from_slice(br#","outcome":"#);
        write_str(out, outcome);
    }
    out.push(b'}');
    // The document's own object: it has entries already.
    let document = Obj {
        mark: 0,
        entries: 0,
    };

    let organization = open(out, document, br#""organization":{"#);
    str_entry(out, organization, br#""id":"#, plan.organization_id);
    close(out, organization);

    let user = open(out, document, br#""user":{"#);
    str_entry(out, user, br#""id":"#, plan.user_id);
    str_entry(out, user, br#""name":"#, plan.user_name);
    let email = plan.user_name.filter(|name| is_email(name));
    str_entry(out, user, br#""email":"#, email);
    if let Some(role) = plan.user_role {
        entry(out, user, br#""roles":["#);
        write_str(out, role);
        out.push(b']');
    }
    close(out, user);

    if let Some(ip) = plan.source_ip {
        out.extend_from_slice(br#","source":{"ip":"#);
        write_ip(out, ip);
        out.push(b'}');
    }

    // As `V::Ips`: the second address only when it differs from the first.
    let [a, b] = plan.related_ip;
    let b = b.filter(|b| Some(*b) != a);
    if a.is_some() || b.is_some() {
        out.extend_from_slice(br#","related":{"ip":["#);
        for (i, ip) in [a, b].into_iter().flatten().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_ip(out, ip);
        }
        out.extend_from_slice(b"]}");
    }

    let [original, name, version, os_name, os_version] = plan.user_agent;
    let user_agent = open(out, document, br#""user_agent":{"#);
    str_entry(out, user_agent, br#""original":"#, original);
    str_entry(out, user_agent, br#""name":"#, name);
    str_entry(out, user_agent, br#""version":"#, version);
    let os = open(out, user_agent, br#""os":{"#);
    str_entry(out, os, br#""name":"#, os_name);
    str_entry(out, os, br#""version":"#, os_version);
    close(out, os);
    close(out, user_agent);

    let http = open(out, document, br#""http":{"#);
    let request = open(out, http, br#""request":{"#);
    str_entry(out, request, br#""method":"#, plan.method);
    u64_entry(out, request, br#""bytes":"#, plan.request_bytes);
    str_entry(out, request, br#""referrer":"#, plan.referrer);
    close(out, request);
    let response = open(out, http, br#""response":{"#);
    u64_entry(out, response, br#""status_code":"#, plan.status_code);
    u64_entry(out, response, br#""bytes":"#, plan.response_bytes);
    close(out, response);
    close(out, http);

    let url = open(out, document, br#""url":{"#);
    str_entry(out, url, br#""original":"#, plan.url);
    close(out, url);

    let tls = open(out, document, br#""tls":{"#);
    if let Some(version) = plan.tls_version.as_deref() {
        entry(out, tls, br#""version":"#);
        write_str(out, version);
        entry(out, tls, br#""version_protocol":"tls""#);
    }
    str_entry(out, tls, br#""cipher":"#, plan.tls_cipher);
    close(out, tls);

    out.extend_from_slice(&template.salesforce);
    let mark = out.len();
    out.extend_from_slice(&template.dataset_key);
    if !write_rest(out, plan.row, rest) {
        out.truncate(mark);
    }
    out.extend_from_slice(b"}}");
}

/// `salesforce.<dataset>` as `V::Rest` serializes; `false` (with a `{` written, for the caller
/// to take back) when no column is left for it.
fn write_rest(out: &mut Vec<u8>, row: &LogRecord, rest: &RestKeys<'_>) -> bool {
    out.push(b'{');
    let open = out.len();
    let placed = |i: usize| rest.bits.get(i).is_some_and(|bit| bit & rest.consumed != 0);
    row.for_each_value_where(
        |i| !placed(i),
        |i, value| {
            if out.len() != open {
                out.push(b',');
            }
            out.extend_from_slice(rest.keys.key(i));
            write_field(out, &value);
        },
    );
    if out.len() == open {
        return false;
    }
    out.push(b'}');
    true
}

/// A column's value as `V::Rest` serializes it (`field(value)`): datetimes as `V::Time`, which
/// is not quite what `FieldValue`'s own `Serialize` writes for years past 9999.
#[inline]
fn write_field(out: &mut Vec<u8>, value: &FieldValue<'_>) {
    match *value {
        FieldValue::String(s) | FieldValue::Id(s) => write_str(out, s),
        FieldValue::Integer(i) => write_i64(out, i),
        FieldValue::Float(f) => write_f64(out, f),
        FieldValue::Boolean(b) => write_bool(out, b),
        FieldValue::DateTime(t) => write_rfc3339_millis(out, t),
        FieldValue::Ip(ip) => write_ip(out, ip),
    }
}
