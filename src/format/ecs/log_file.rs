//! ECS documents of log-file rows, serialized straight from the row: the sinks write one per
//! row, so no `Value` tree is built on the way (a document borrows every text from the row).

use std::net::IpAddr;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;
use time::OffsetDateTime;

use crate::event_log::{EventLogFile, FieldValue, LogRecord, parse_log_datetime};
use crate::format::ecs::ECS_VERSION;
use crate::format::event_id::{LOG_ROW_DOMAIN, hex_digest, log_row_event_id, push_prefixed};
use crate::format::json::{
    SchemaKeys, write_bool, write_f64, write_i64, write_ip, write_key, write_rfc3339_millis,
    write_str, write_u64,
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
        Plan::new(self.file, self.row, &names, id).serialize(s)
    }
}

/// What a file's `EventType` gives every document of the file.
#[derive(Debug)]
pub(crate) struct FileNames {
    event_type: String,
    dataset: String,
    event_dataset: String,
    action: String,
    category: Option<(&'static str, &'static str)>,
}

impl FileNames {
    pub(crate) fn new(event_type: &str) -> Self {
        let dataset = log_file_dataset(event_type);
        FileNames {
            event_type: event_type.to_string(),
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

/// The source columns placed in ECS fields, left out of `salesforce.<dataset>`. At most one
/// entry per mapped column, so a fixed array holds them.
struct Consumed {
    names: [&'static str; 32],
    len: usize,
}

impl Consumed {
    fn push(&mut self, name: &'static str) {
        if let Some(slot) = self.names.get_mut(self.len) {
            *slot = name;
            self.len += 1;
        }
    }

    fn contains(&self, name: &str) -> bool {
        self.names[..self.len].contains(&name)
    }
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
    Rest(&'a LogRecord, &'a Consumed),
}

impl V<'_> {
    fn present(&self) -> bool {
        match self {
            V::Obj(entries) => entries
                .iter()
                .any(|(_, v)| v.as_ref().is_some_and(V::present)),
            V::Ips(ips) => ips.iter().any(Option::is_some),
            V::Rest(row, consumed) => row.iter().any(|(name, _)| !consumed.contains(name)),
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
                    if !consumed.contains(name) {
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
    id: String,
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
    tls_version: Option<String>,
    tls_cipher: Option<&'r str>,
}

impl<'r> Plan<'r> {
    fn new(file: &'r EventLogFile, row: &'r LogRecord, names: &'r FileNames, id: String) -> Self {
        let mut consumed = Consumed {
            names: [""; 32],
            len: 0,
        };
        let mut take = |name: &'static str| {
            let value = row.get(name);
            if value.is_some() {
                consumed.push(name);
            }
            value
        };

        let derived = row.get("TIMESTAMP_DERIVED").and_then(parse_log_datetime);
        let compact = row.get("TIMESTAMP").and_then(parse_log_datetime);
        let timestamp = derived.or(compact).unwrap_or(file.log_date);
        let outcome = if let Some(status) = row.get("LOGIN_STATUS") {
            Some(if status == "LOGIN_NO_ERROR" {
                "success"
            } else {
                "failure"
            })
        } else if let Some(status) = row.get("REQUEST_STATUS") {
            // S success, F failure, A authorization error, N not found; U undefined, R redirect.
            match status {
                "S" => Some("success"),
                "F" | "A" | "N" => Some("failure"),
                _ => None,
            }
        } else {
            match row.get("SUCCESS") {
                Some("1" | "true" | "TRUE" | "True") => Some("success"),
                Some("0" | "false" | "FALSE" | "False") => Some("failure"),
                _ => None,
            }
        };

        let organization_id = take("ORGANIZATION_ID");
        let user_id = take("USER_ID_DERIVED").or_else(|| take("USER_ID"));
        let user_name = take("USER_NAME");
        let user_role = take("USER_TYPE");
        let source = row.get("SOURCE_IP").and_then(ip);
        let client = row.get("CLIENT_IP").and_then(ip);
        let user_agent_original = row
            .get("USER_AGENT")
            .and_then(user_agent)
            .map(|ua| ("USER_AGENT", ua))
            .or_else(|| {
                let ua = row.get("BROWSER_TYPE").and_then(user_agent)?;
                Some(("BROWSER_TYPE", ua))
            });
        let mut unquoted = |name: &'static str| take(name).map(unquote);
        let user_agent = [
            user_agent_original.map(|(_, ua)| ua),
            unquoted("BROWSER_NAME"),
            unquoted("BROWSER_VERSION"),
            unquoted("OS_NAME"),
            unquoted("OS_VERSION"),
        ];
        let referrer = unquoted("REFERRER_URI");
        let tls_cipher = unquoted("CIPHER_SUITE");
        let method = ["HTTP_METHOD", "METHOD", "REQUEST_METHOD"]
            .into_iter()
            .find_map(|name| Some((name, row.get(name).and_then(http_method)?)));
        let number = |name: &'static str| Some((name, row.get(name)?.parse::<u64>().ok()?));
        let status_code = number("STATUS_CODE").filter(|(_, code)| *code <= u64::from(u16::MAX));
        let request_bytes = number("REQUEST_SIZE");
        let response_bytes = number("RESPONSE_SIZE");
        // An ApexCallout's URL is where the callout went; its URI only names the log line.
        let url = ["URL", "URI"]
            .into_iter()
            .find_map(|name| Some((name, unquote(row.get(name)?))));
        let tls = row.get("TLS_PROTOCOL").and_then(tls_version);

        let mut plan = Plan {
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
            user_agent,
            method: method.map(|(_, m)| m),
            referrer,
            status_code: status_code.map(|(_, c)| c),
            request_bytes: request_bytes.map(|(_, b)| b),
            response_bytes: response_bytes.map(|(_, b)| b),
            url: url.map(|(_, u)| u),
            tls_version: tls,
            tls_cipher,
        };
        let placed = [
            (derived.is_some(), "TIMESTAMP_DERIVED"),
            (compact.is_some(), "TIMESTAMP"),
            (source.is_some(), "SOURCE_IP"),
            (source.is_none() && client.is_some(), "CLIENT_IP"),
            (plan.tls_version.is_some(), "TLS_PROTOCOL"),
        ];
        for (was_placed, name) in placed {
            if was_placed {
                plan.consumed.push(name);
            }
        }
        for name in [
            user_agent_original.map(|(name, _)| name),
            method.map(|(name, _)| name),
            status_code.map(|(name, _)| name),
            request_bytes.map(|(name, _)| name),
            response_bytes.map(|(name, _)| name),
            url.map(|(name, _)| name),
        ]
        .into_iter()
        .flatten()
        {
            plan.consumed.push(name);
        }
        plan
    }
}

/// The document's top-level entries and `salesforce.event_log_file`, as `V`s borrowing from the
/// plan; both writers (serde's and the direct one) walk them.
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
            ("id", Some(V::Str(&self.id))),
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
        let rest = V::Rest(plan.row, &plan.consumed);
        if rest.present() {
            map.serialize_entry(&plan.names.dataset, &rest)?;
        }
        map.end()
    }
}

/// Writes the bytes `serde_json` writes for [`EcsRow`] (tests/encode.rs compares the two), from
/// the same [`Plan`], caching what is the same for every row of a file: the columns' snake_case
/// keys, escaped; their order by name for `event.id`; the names the `EventType` gives.
#[derive(Debug, Default)]
pub(crate) struct EcsEncoder {
    schema: Option<EcsSchema>,
    names: Option<FileNames>,
    /// The columns placed in ECS fields in the last row, and so left out of
    /// `salesforce.<dataset>`: most rows of a file place the same ones.
    consumed: Vec<&'static str>,
    /// Per column, whether its name is in `consumed`.
    excluded: Vec<bool>,
    /// The `event.id` fingerprint's message, reused.
    message: Vec<u8>,
}

#[derive(Debug)]
struct EcsSchema {
    keys: SchemaKeys,
    /// Column indexes by name, as `log_row_event_id` sorts them; `None` when two columns share
    /// a name (then their values decide the order, and the general function does it).
    by_name: Option<Vec<usize>>,
}

impl EcsSchema {
    fn new(row: &LogRecord) -> Self {
        let schema = row.schema();
        let names: Vec<&str> = schema.names().collect();
        let mut order: Vec<usize> = (0..names.len()).collect();
        order.sort_unstable_by(|&a, &b| names[a].cmp(names[b]));
        let unique = order.windows(2).all(|w| names[w[0]] != names[w[1]]);
        EcsSchema {
            keys: SchemaKeys::new(schema, |name, out| {
                write_str(out, &SnakeCase(name).to_string());
            }),
            by_name: unique.then_some(order),
        }
    }
}

/// What the direct writer needs for `salesforce.<dataset>`.
struct RestKeys<'e> {
    keys: &'e SchemaKeys,
    excluded: &'e [bool],
}

impl EcsEncoder {
    /// Appends the row's ECS document (no newline) to `out`.
    pub(crate) fn encode(&mut self, out: &mut Vec<u8>, file: &EventLogFile, row: &LogRecord) {
        let schema = match &mut self.schema {
            Some(cached) if cached.keys.is_for(row.schema()) => cached,
            slot => {
                // A new schema: the exclusion mask no longer matches its columns.
                self.consumed.clear();
                self.excluded.clear();
                slot.insert(EcsSchema::new(row))
            }
        };
        let event_type = file.event_type.as_str();
        let names = match &mut self.names {
            Some(names) if names.event_type == event_type => names,
            slot => slot.insert(FileNames::new(event_type)),
        };
        let id = match &schema.by_name {
            Some(order) => {
                let message = &mut self.message;
                message.clear();
                message.extend_from_slice(LOG_ROW_DOMAIN.as_bytes());
                push_prefixed(message, event_type);
                for &i in order {
                    let value = row.raw_at(i);
                    if !value.is_empty() {
                        push_prefixed(message, schema.keys.name(i));
                        push_prefixed(message, value);
                    }
                }
                hex_digest(message)
            }
            None => log_row_event_id(file, row),
        };
        let plan = Plan::new(file, row, names, id);
        let consumed = &plan.consumed.names[..plan.consumed.len];
        let same = consumed.len() == self.consumed.len()
            && self.excluded.len() == row.schema().len()
            && consumed
                .iter()
                .zip(&self.consumed)
                .all(|(a, b)| std::ptr::eq(*a, *b) || a == b);
        if !same {
            self.consumed.clear();
            self.consumed.extend_from_slice(consumed);
            self.excluded.clear();
            self.excluded
                .extend(row.schema().names().map(|name| consumed.contains(&name)));
        }
        let rest = RestKeys {
            keys: &schema.keys,
            excluded: &self.excluded,
        };
        plan.with_document(|document, event_log_file| {
            out.push(b'{');
            let mut first = true;
            for (key, value) in document {
                if let Some(value) = value.filter(V::present) {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    write_key(out, key);
                    write_v(out, &value, &rest);
                }
            }
            if !first {
                out.push(b',');
            }
            write_key(out, "salesforce");
            out.push(b'{');
            write_key(out, "event_log_file");
            write_v(out, &V::Obj(event_log_file), &rest);
            if rest_present(row, &rest) {
                out.push(b',');
                write_key(out, &plan.names.dataset);
                write_rest(out, row, &rest);
            }
            out.extend_from_slice(b"}}");
        });
    }
}

fn rest_present(row: &LogRecord, rest: &RestKeys<'_>) -> bool {
    rest.excluded
        .iter()
        .enumerate()
        .any(|(i, &excluded)| !excluded && !row.raw_at(i).is_empty())
}

fn write_rest(out: &mut Vec<u8>, row: &LogRecord, rest: &RestKeys<'_>) {
    out.push(b'{');
    let mut first = true;
    row.for_each_value(|i, value| {
        if rest.excluded.get(i).copied().unwrap_or(false) {
            return;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(rest.keys.key(i));
        write_v(out, &field(&value), rest);
    });
    out.push(b'}');
}

/// `v` as its `Serialize` impl writes it with `serde_json`.
fn write_v(out: &mut Vec<u8>, v: &V<'_>, rest: &RestKeys<'_>) {
    match *v {
        V::Str(s) => write_str(out, s),
        V::U64(n) => write_u64(out, n),
        V::I64(n) => write_i64(out, n),
        V::F64(f) => write_f64(out, f),
        V::Bool(b) => write_bool(out, b),
        V::Ip(ip) => write_ip(out, ip),
        V::Time(t) => write_rfc3339_millis(out, t),
        V::One(s) => {
            out.push(b'[');
            write_str(out, s);
            out.push(b']');
        }
        V::Ips([a, b]) => {
            let b = b.filter(|b| Some(*b) != a);
            out.push(b'[');
            for (i, ip) in [a, b].into_iter().flatten().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_ip(out, ip);
            }
            out.push(b']');
        }
        V::Obj(entries) => {
            out.push(b'{');
            let mut first = true;
            for (key, value) in entries {
                if let Some(value) = value.filter(V::present) {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    write_key(out, key);
                    write_v(out, &value, rest);
                }
            }
            out.push(b'}');
        }
        V::Rest(row, _) => write_rest(out, row, rest),
    }
}
