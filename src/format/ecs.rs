//! Elastic Common Schema (ECS 8.11) documents for log-file rows and queried records.
//!
//! One document per row or record. Columns with an ECS meaning go to ECS fields (`@timestamp`,
//! `event.*`, `user.*`, `source.ip`, `user_agent.*`, `http.*`, `url.*`, `tls.*`,
//! `organization.id`); every other non-empty column goes under `salesforce.<dataset>.*` with its
//! name in snake_case (`USER_NAME` -> `user_name`, `LoginType` -> `login_type`), with typed
//! values. A column copied into an ECS field unchanged is not repeated there; one that was only
//! interpreted (`LOGIN_STATUS` for `event.outcome`, `Status`, `REQUEST_STATUS`) is kept. The
//! mapping follows Elastic's Salesforce integration (data streams login, logout, apex,
//! setupaudittrail); the README's "ECS output" section has the table.
//!
//! ```
//! use salesforce_jwt::format::ecs::object_document;
//!
//! let record: serde_json::Map<String, serde_json::Value> = serde_json::from_str(r#"{
//!     "EventDate": "2021-10-19T11:38:54.000+0000", "EventIdentifier": "06ce4a9d-8d6b",
//!     "SourceIp": "89.160.20.112", "Username": "user.name@email.com", "SessionLevel": "STANDARD"
//! }"#)?;
//! let doc = object_document("LogoutEvent", &record);
//! assert_eq!(doc["@timestamp"], "2021-10-19T11:38:54.000Z");
//! assert_eq!(doc["event"]["dataset"], "salesforce.logout");
//! assert_eq!(doc["event"]["id"], "06ce4a9d-8d6b");
//! assert_eq!(doc["user"]["email"], "user.name@email.com");
//! assert_eq!(doc["salesforce"]["logout"]["session_level"], "STANDARD");
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::event_log::sf_datetime;
use crate::format::event_id::object_event_id;
use crate::format::names::{is_threat_detection, log_file_dataset, object_dataset, snake_case};
use crate::format::rfc3339_millis;
use crate::format::values::{action_name, http_method, ip, is_email, object_category, tls_version};

mod log_file;

pub(crate) use log_file::EcsEncoder;
pub use log_file::{EcsRow, log_file_document};

/// The ECS version the documents follow, written as `ecs.version`.
pub const ECS_VERSION: &str = "8.11.0";

/// The data set of an EventLogFile `EventType`, as in `event.dataset: salesforce.<dataset>`:
/// `Login` -> `login`, `Logout` -> `logout`, every `Apex*` type -> `apex`, otherwise the type
/// in snake_case (`API` -> `api`, `RestApi` -> `rest_api`, `URI` -> `uri`).
pub fn log_file_dataset_name(event_type: &str) -> String {
    log_file_dataset(event_type)
}

/// The data set of a queried object: `LoginEvent` -> `login`, `LogoutEvent` -> `logout`,
/// `SetupAuditTrail` -> `setupaudittrail`, `SessionHijackingEventStore` ->
/// `session_hijacking`; otherwise the name without `Event`/`EventStore`, in snake_case.
pub fn object_dataset_name(sobject_type: &str) -> String {
    object_dataset(sobject_type)
}

/// A document under construction: nested objects, and the source columns already placed in
/// ECS fields (left out of `salesforce.<dataset>`).
struct Doc {
    root: Map<String, Value>,
    consumed: Vec<&'static str>,
    related_ip: Vec<String>,
}

impl Doc {
    fn new() -> Self {
        Doc {
            root: Map::new(),
            consumed: Vec::with_capacity(16),
            related_ip: Vec::new(),
        }
    }

    fn set(&mut self, path: &[&str], value: impl Into<Value>) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut map = &mut self.root;
        for &key in parents {
            let entry = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            map = match entry {
                Value::Object(m) => m,
                _ => return,
            };
        }
        map.insert((*last).to_string(), value.into());
    }

    /// Sets `path` from a source column and marks the column as placed.
    fn take(&mut self, column: &'static str, path: &[&str], value: impl Into<Value>) {
        self.set(path, value);
        self.consumed.push(column);
    }

    fn is_consumed(&self, column: &str) -> bool {
        self.consumed.contains(&column)
    }

    fn related(&mut self, ip: IpAddr) {
        let ip = ip.to_string();
        if !self.related_ip.contains(&ip) {
            self.related_ip.push(ip);
        }
    }

    fn event_basics(&mut self, dataset: &str, kind: &str, action: String, id: String) {
        self.set(&["ecs", "version"], ECS_VERSION);
        self.set(&["event", "kind"], kind);
        self.set(&["event", "module"], "salesforce");
        self.set(&["event", "dataset"], format!("salesforce.{dataset}"));
        self.set(&["event", "action"], action);
        self.set(&["event", "id"], id);
    }

    fn categorize(&mut self, category_and_type: Option<(&str, &str)>) {
        if let Some((category, kind)) = category_and_type {
            self.set(&["event", "category"], vec![Value::from(category)]);
            self.set(&["event", "type"], vec![Value::from(kind)]);
        }
    }

    fn user_name(&mut self, column: &'static str, name: &str) {
        self.take(column, &["user", "name"], name);
        if is_email(name) {
            self.set(&["user", "email"], name);
        }
    }

    fn finish(mut self, dataset: &str, fields: Map<String, Value>) -> Value {
        if !self.related_ip.is_empty() {
            let ips = std::mem::take(&mut self.related_ip);
            self.set(&["related", "ip"], ips);
        }
        if !fields.is_empty() {
            self.set(&["salesforce", dataset], fields);
        }
        Value::Object(self.root)
    }
}

/// The datetime of a record's field, parsed from Salesforce's `+0000` form or RFC 3339.
fn record_datetime(record: &Map<String, Value>, name: &str) -> Option<time::OffsetDateTime> {
    record
        .get(name)
        .and_then(Value::as_str)
        .and_then(|s| sf_datetime::parse(s).ok())
}

/// A value kept under `salesforce.<dataset>`: `None` for nulls and empty strings (Salesforce
/// sends both for "no value"); nested records lose their `attributes`; datetimes of `...Date`
/// fields are rewritten as RFC 3339 UTC with milliseconds.
fn record_value(name: &str, value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) if name.ends_with("Date") => Some(match sf_datetime::parse(s) {
            Ok(t) => Value::from(rfc3339_millis(t)),
            Err(_) => value.clone(),
        }),
        Value::Object(map) => {
            let nested: Map<String, Value> = map
                .iter()
                .filter(|(k, _)| k.as_str() != "attributes")
                .filter_map(|(k, v)| Some((snake_case(k), record_value(k, v)?)))
                .collect();
            (!nested.is_empty()).then_some(Value::Object(nested))
        }
        other => Some(other.clone()),
    }
}

/// The ECS document of one queried record: a Real-Time Event Monitoring storage object
/// (`LoginEvent`, `LogoutEvent`, `ApiEvent`, the Threat Detection `...EventStore`s) or
/// `SetupAuditTrail`, as field name -> JSON value. `event.id` is [`object_event_id`].
///
/// `@timestamp` comes from `EventDate`, else `CreatedDate`; `event.created` from `CreatedDate`.
/// Threat Detection stores are `event.kind: alert`, everything else `event`.
pub fn object_document(sobject_type: &str, record: &Map<String, Value>) -> Value {
    let dataset = object_dataset(sobject_type);
    let text = |name: &str| {
        record
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let mut doc = Doc::new();
    let kind = if is_threat_detection(sobject_type) {
        "alert"
    } else {
        "event"
    };
    let id = object_event_id(sobject_type, record);
    let action = match text("Action") {
        Some(a) if sobject_type == "SetupAuditTrail" => {
            doc.consumed.push("Action");
            a.to_string()
        }
        _ => action_name(dataset.as_str()),
    };
    for column in ["EventIdentifier", "Id"] {
        if text(column) == Some(id.as_str()) {
            doc.consumed.push(column);
            break;
        }
    }
    doc.event_basics(&dataset, kind, action, id);
    doc.categorize(object_category(sobject_type));

    let event_date = record_datetime(record, "EventDate");
    let created = record_datetime(record, "CreatedDate");
    if let Some(t) = event_date.or(created) {
        doc.set(&["@timestamp"], rfc3339_millis(t));
    }
    if event_date.is_some() {
        doc.consumed.push("EventDate");
    }
    if let Some(t) = created {
        doc.take("CreatedDate", &["event", "created"], rfc3339_millis(t));
    }
    if let Some(status) = text("Status").filter(|_| sobject_type == "LoginEvent") {
        let outcome = if status == "Success" {
            "success"
        } else {
            "failure"
        };
        doc.set(&["event", "outcome"], outcome);
    }

    if let Some(user) = text("UserId") {
        doc.take("UserId", &["user", "id"], user);
    } else if let Some(user) = text("CreatedById") {
        doc.take("CreatedById", &["user", "id"], user);
    }
    if let Some(name) = text("Username") {
        doc.user_name("Username", name);
    } else if let Some(name) = record
        .get("CreatedBy")
        .and_then(|c| c.get("Username"))
        .and_then(Value::as_str)
    {
        doc.set(&["user", "name"], name);
    }
    if let Some(user_type) = text("UserType") {
        doc.take("UserType", &["user", "roles"], vec![Value::from(user_type)]);
    }
    if let Some(addr) = text("SourceIp").and_then(ip) {
        doc.take("SourceIp", &["source", "ip"], addr.to_string());
        doc.related(addr);
    }
    for (column, path) in [
        ("Browser", &["user_agent", "name"][..]),
        ("Platform", &["user_agent", "os", "name"]),
        ("CipherSuite", &["tls", "cipher"]),
        ("Display", &["message"]),
        ("CountryIso", &["source", "geo", "country_iso_code"]),
        ("Country", &["source", "geo", "country_name"]),
        ("City", &["source", "geo", "city_name"]),
        ("Subdivision", &["source", "geo", "region_name"]),
        ("PostalCode", &["source", "geo", "postal_code"]),
    ] {
        if let Some(value) = text(column) {
            doc.take(column, path, value);
        }
    }
    for (column, path) in [
        ("LoginLatitude", &["source", "geo", "location", "lat"]),
        ("LoginLongitude", &["source", "geo", "location", "lon"]),
    ] {
        if let Some(value) = record.get(column).filter(|v| v.is_number()) {
            doc.take(column, path, value.clone());
        }
    }
    // SetupAuditTrail's Display names the user a change was made to: "For user x@y.z, the ...".
    if let Some(target) = text("Display")
        .and_then(|d| d.strip_prefix("For user "))
        .and_then(|d| d.split_once(", "))
        .map(|(user, _)| user)
        .filter(|user| !user.is_empty() && !user.contains(' '))
    {
        doc.set(&["user", "target", "name"], target);
    }
    if let Some(method) = text("HttpMethod").and_then(http_method) {
        doc.take("HttpMethod", &["http", "request", "method"], method);
    }
    if let Some(login_url) = text("LoginUrl") {
        // LoginEvent's LoginUrl is a host name (`login.salesforce.com`), not a URL.
        let path: &[&str] = if login_url.contains('/') {
            &["url", "original"]
        } else {
            &["url", "domain"]
        };
        doc.take("LoginUrl", path, login_url);
    }
    if let Some(version) = text("TlsProtocol").and_then(tls_version) {
        doc.take("TlsProtocol", &["tls", "version"], version);
        doc.set(&["tls", "version_protocol"], "tls");
    }

    let mut fields = Map::new();
    for (name, value) in record {
        if name == "attributes" || doc.is_consumed(name) {
            continue;
        }
        if let Some(value) = record_value(name, value) {
            fields.insert(snake_case(name), value);
        }
    }
    doc.finish(&dataset, fields)
}
