//! Elastic Common Schema (ECS 8.11) documents for log-file rows and queried records.
//!
//! One document per row or record, shaped as Elastic's Salesforce integration (its data
//! streams login, logout, apex, setupaudittrail, aura_request) writes the same events: the same
//! field names, values and JSON types, so that its dashboards, saved searches and detection
//! rules work on them. Columns Elastic's pipelines drop are kept, under
//! `salesforce.<dataset>.<snake_case name>` (`USER_NAME` -> `user_name`, `LoginType` ->
//! `login_type`) with typed values, never under a name Elastic uses for something else. Event
//! types and objects Elastic does not cover get the same generic mapping. Every document has
//! `data_stream.{type,dataset,namespace}` ([`EcsOptions`]). The README's "ECS output" section
//! has the table.
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
//! assert_eq!(doc["data_stream"]["dataset"], "salesforce.logout");
//! assert_eq!(doc["event"]["id"], "06ce4a9d-8d6b");
//! assert_eq!(doc["user"]["email"], "user.name@email.com");
//! assert_eq!(doc["salesforce"]["logout"]["session"]["level"], "STANDARD");
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::fmt;
use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::datetime;
use crate::format::event_id::object_event_id;
use crate::format::names::{is_threat_detection, log_file_dataset, object_dataset, snake_case};
use crate::format::rfc3339_millis;
use crate::format::values::{action_name, http_method, ip, is_email, object_category, tls_version};

mod log_file;
pub(crate) mod out;

pub(crate) use log_file::EcsEncoder;
pub use log_file::{EcsRow, log_file_document, log_file_document_with};

/// The ECS version the documents follow, written as `ecs.version`.
pub const ECS_VERSION: &str = "8.11.0";

/// The `data_stream.namespace` documents get unless told otherwise (Fleet's default).
pub const DEFAULT_NAMESPACE: &str = "default";

/// What the ECS documents take from outside the row: `data_stream.namespace` (default
/// [`DEFAULT_NAMESPACE`]) and the org's `salesforce.instance_url` (absent unless set).
///
/// ```
/// use salesforce_jwt::format::ecs::EcsOptions;
///
/// let options = EcsOptions::default()
///     .with_namespace("prod")?
///     .with_instance_url("https://acme.my.salesforce.com");
/// assert_eq!(options.namespace(), "prod");
/// assert!(EcsOptions::default().with_namespace("Prod-1").is_err());
/// # Ok::<(), salesforce_jwt::format::ecs::InvalidNamespace>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsOptions {
    namespace: String,
    instance_url: Option<String>,
    organization_id: Option<String>,
}

impl Default for EcsOptions {
    fn default() -> Self {
        EcsOptions {
            namespace: DEFAULT_NAMESPACE.to_string(),
            instance_url: None,
            organization_id: None,
        }
    }
}

impl EcsOptions {
    /// `data_stream.namespace`: what Elasticsearch accepts in a data stream name, lower case,
    /// without `-` (it separates the name's parts), none of `\ / * ? " < > | , # :` or a space,
    /// at most 100 bytes.
    pub fn with_namespace(mut self, namespace: &str) -> Result<Self, InvalidNamespace> {
        let problem = if namespace.is_empty() {
            Some("is empty")
        } else if namespace.len() > 100 {
            Some("is longer than 100 bytes")
        } else if namespace.chars().any(|c| c.is_uppercase()) {
            Some("has upper-case letters")
        } else if namespace
            .chars()
            .any(|c| "-\\/*?\"<>|,#: ".contains(c) || c.is_control())
        {
            Some("has one of - \\ / * ? \" < > | , # : or a space")
        } else {
            None
        };
        match problem {
            Some(problem) => Err(InvalidNamespace {
                given: namespace.to_string(),
                problem,
            }),
            None => {
                self.namespace = namespace.to_string();
                Ok(self)
            }
        }
    }

    /// `salesforce.instance_url`, the org's My Domain URL (as Elastic's integration writes it).
    pub fn with_instance_url(mut self, instance_url: impl Into<String>) -> Self {
        let url: String = instance_url.into();
        self.instance_url = Some(url.trim_end_matches('/').to_string()).filter(|u| !u.is_empty());
        self
    }

    /// `organization.id` of object documents, whose records do not name their org (log-file
    /// rows have `ORGANIZATION_ID`): the org's Id, as the token response's identity URL gives it
    /// (`AccessToken::org_id`).
    pub fn with_organization_id(mut self, organization_id: impl Into<String>) -> Self {
        self.organization_id = Some(organization_id.into()).filter(|id| !id.is_empty());
        self
    }

    /// `organization.id` of object documents, when set.
    pub fn organization_id(&self) -> Option<&str> {
        self.organization_id.as_deref()
    }

    /// `data_stream.namespace`.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `salesforce.instance_url`, when set.
    pub fn instance_url(&self) -> Option<&str> {
        self.instance_url.as_deref()
    }
}

/// A `data_stream.namespace` Elasticsearch would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidNamespace {
    given: String,
    problem: &'static str,
}

impl fmt::Display for InvalidNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "data stream namespace {:?} {}: use lower-case letters, digits and _ (like \
             `default` or `prod_eu`)",
            self.given, self.problem
        )
    }
}

impl std::error::Error for InvalidNamespace {}

/// The data set of an EventLogFile `EventType`, as in `event.dataset: salesforce.<dataset>`:
/// `Login` -> `login`, `Logout` -> `logout`, every `Apex*` type and
/// `ExternalCustomApexCallout` -> `apex`, otherwise the type in snake_case (`API` -> `api`,
/// `RestApi` -> `rest_api`, `AuraRequest` -> `aura_request`).
pub fn log_file_dataset_name(event_type: &str) -> String {
    log_file_dataset(event_type)
}

/// The data set of a queried object: `LoginEvent` -> `login`, `LogoutEvent` -> `logout`,
/// `SetupAuditTrail` -> `setupaudittrail`, `SessionHijackingEventStore` ->
/// `session_hijacking`; otherwise the name without `Event`/`EventStore`, in snake_case.
pub fn object_dataset_name(sobject_type: &str) -> String {
    object_dataset(sobject_type)
}

/// The key of a data set's own fields under `salesforce`: the data set, except
/// `setup_audit_trail` for `setupaudittrail` (as Elastic names them).
pub(crate) fn salesforce_key(dataset: &str) -> &str {
    if dataset == "setupaudittrail" {
        "setup_audit_trail"
    } else {
        dataset
    }
}

/// A document under construction: nested objects, and the source fields already placed in
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
        set_path(&mut self.root, path, value.into());
    }

    /// Sets `path` from a source field and marks the field as placed.
    fn take(&mut self, field: &'static str, path: &[&str], value: impl Into<Value>) {
        self.set(path, value);
        self.consumed.push(field);
    }

    fn is_consumed(&self, field: &str) -> bool {
        self.consumed.contains(&field)
    }

    fn related(&mut self, ip: IpAddr) {
        let ip = ip.to_string();
        if !self.related_ip.contains(&ip) {
            self.related_ip.push(ip);
        }
    }

    fn finish(mut self, key: &str, fields: Map<String, Value>) -> Value {
        if !self.related_ip.is_empty() {
            let ips = std::mem::take(&mut self.related_ip);
            self.set(&["related", "ip"], ips);
        }
        if !fields.is_empty() {
            let mut merged = match self.root.get_mut("salesforce").and_then(|s| s.get_mut(key)) {
                Some(Value::Object(existing)) => std::mem::take(existing),
                _ => Map::new(),
            };
            merged.extend(fields);
            self.set(&["salesforce", key], merged);
        }
        Value::Object(self.root)
    }
}

fn set_path(root: &mut Map<String, Value>, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut map = root;
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
    map.insert((*last).to_string(), value);
}

/// The datetime of a record's field, parsed from Salesforce's `+0000` form or RFC 3339.
fn record_datetime(record: &Map<String, Value>, name: &str) -> Option<time::OffsetDateTime> {
    record
        .get(name)
        .and_then(Value::as_str)
        .and_then(|s| datetime::parse(s).ok())
}

/// A value kept under `salesforce.<dataset>`: `None` for nulls and empty strings (Salesforce
/// sends both for "no value"); nested records lose their `attributes`; datetimes of `...Date`
/// fields are rewritten as RFC 3339 UTC with milliseconds.
fn record_value(name: &str, value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) if name.ends_with("Date") => Some(match datetime::parse(s) {
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

/// How a field Elastic names under `salesforce.<dataset>` is converted.
#[derive(Clone, Copy, PartialEq)]
enum ObjConv {
    /// As it is.
    Raw,
    /// As text (a number becomes its decimal text): one JSON type with the log file's column.
    Text,
    /// A double, as Elastic's `convert` to `double` writes it (`0` -> `0.0`).
    Double,
}

/// The fields of each object Elastic names under `salesforce.<dataset>`.
fn object_fields(
    sobject_type: &str,
) -> &'static [(&'static str, &'static [&'static str], ObjConv)] {
    match sobject_type {
        "LoginEvent" => &[
            ("AuthServiceId", &["auth", "service_id"], ObjConv::Raw),
            ("EvaluationTime", &["evaluation_time"], ObjConv::Double),
            ("ClientVersion", &["client_version"], ObjConv::Text),
            ("LoginGeoId", &["geo_id"], ObjConv::Raw),
            ("LoginHistoryId", &["history_id"], ObjConv::Raw),
            ("ApiType", &["api", "type"], ObjConv::Text),
            (
                "AuthMethodReference",
                &["auth", "method_reference"],
                ObjConv::Raw,
            ),
            ("LoginType", &["type"], ObjConv::Raw),
            (
                "PolicyOutcome",
                &["transaction_security", "policy", "outcome"],
                ObjConv::Raw,
            ),
            ("ApiVersion", &["api", "version"], ObjConv::Text),
            (
                "RelatedEventIdentifier",
                &["related_event_identifier"],
                ObjConv::Raw,
            ),
            ("LoginKey", &["key"], ObjConv::Raw),
            ("Application", &["application"], ObjConv::Raw),
            (
                "PolicyId",
                &["transaction_security", "policy", "id"],
                ObjConv::Raw,
            ),
            ("AdditionalInfo", &["additional_info"], ObjConv::Raw),
        ],
        "LogoutEvent" => &[
            (
                "RelatedEventIdentifier",
                &["related_event_identifier"],
                ObjConv::Raw,
            ),
            ("LoginKey", &["login_key"], ObjConv::Raw),
            ("SessionLevel", &["session", "level"], ObjConv::Raw),
            ("SessionKey", &["session", "key"], ObjConv::Raw),
        ],
        "SetupAuditTrail" => &[
            ("CreatedByContext", &["created_by_context"], ObjConv::Raw),
            ("CreatedById", &["created_by_id"], ObjConv::Raw),
            ("CreatedByIssuer", &["created_by_issuer"], ObjConv::Raw),
            ("DelegateUser", &["delegate_user"], ObjConv::Raw),
            ("Display", &["display"], ObjConv::Raw),
            (
                "ResponsibleNamespacePrefix",
                &["responsible_namespace_prefix"],
                ObjConv::Raw,
            ),
            ("Section", &["section"], ObjConv::Raw),
        ],
        _ => &[],
    }
}

/// The ECS document of one queried record with the default [`EcsOptions`]: a Real-Time Event
/// Monitoring storage object (`LoginEvent`, `LogoutEvent`, `ApiEvent`, the Threat Detection
/// `...EventStore`s) or `SetupAuditTrail`, as field name -> JSON value. `event.id` is
/// [`object_event_id`].
///
/// `@timestamp` comes from `EventDate`, else `CreatedDate`; `event.created` from `CreatedDate`.
/// Threat Detection stores are `event.kind: alert`, everything else `event`.
pub fn object_document(sobject_type: &str, record: &Map<String, Value>) -> Value {
    object_document_with(sobject_type, record, &EcsOptions::default())
}

/// [`object_document`] with `options`.
pub fn object_document_with(
    sobject_type: &str,
    record: &Map<String, Value>,
    options: &EcsOptions,
) -> Value {
    let dataset = object_dataset(sobject_type);
    let key = salesforce_key(&dataset).to_string();
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
    let action = match sobject_type {
        "SetupAuditTrail" => match text("Action") {
            Some(a) => {
                doc.consumed.push("Action");
                a.to_string()
            }
            None => action_name(&dataset),
        },
        "LoginEvent" => "login-attempt".to_string(),
        "LogoutEvent" => "logout".to_string(),
        _ => action_name(dataset.as_str()),
    };
    for column in ["EventIdentifier", "Id"] {
        if text(column) == Some(id.as_str()) {
            doc.consumed.push(column);
            break;
        }
    }
    let event_dataset = format!("salesforce.{dataset}");
    doc.set(&["ecs", "version"], ECS_VERSION);
    doc.set(&["data_stream", "type"], "logs");
    doc.set(&["data_stream", "dataset"], event_dataset.as_str());
    doc.set(&["data_stream", "namespace"], options.namespace());
    doc.set(&["event", "kind"], kind);
    doc.set(&["event", "module"], "salesforce");
    doc.set(&["event", "dataset"], event_dataset);
    doc.set(&["event", "provider"], "Object");
    doc.set(&["event", "action"], action);
    doc.set(&["event", "id"], id);
    // Elastic's categories: `info` for logins and logouts, `admin` (no category) for the
    // audit trail.
    let category = match sobject_type {
        "LoginEvent" | "LogoutEvent" => Some(("authentication", "info")),
        "SetupAuditTrail" => Some(("", "admin")),
        other => object_category(other),
    };
    if let Some((category, event_type)) = category {
        if !category.is_empty() {
            doc.set(&["event", "category"], vec![Value::from(category)]);
        }
        doc.set(&["event", "type"], vec![Value::from(event_type)]);
    }
    if let Some(url) = options.instance_url() {
        doc.set(&["salesforce", "instance_url"], url);
    }
    if let Some(org) = text("OrganizationId") {
        doc.take("OrganizationId", &["organization", "id"], org);
    } else if let Some(org) = options.organization_id() {
        doc.set(&["organization", "id"], org);
    }

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

    let elastic = matches!(
        sobject_type,
        "LoginEvent" | "LogoutEvent" | "SetupAuditTrail"
    );
    if let Some(user) = text("UserId") {
        doc.take("UserId", &["user", "id"], user);
    } else if let Some(user) = text("CreatedById") {
        // SetupAuditTrail: also `created_by_id`, as Elastic keeps it.
        doc.set(&["user", "id"], user);
        if !elastic {
            doc.consumed.push("CreatedById");
        }
    }
    if let Some(name) = text("Username") {
        if elastic {
            // Elastic: a login's or logout's Username is `user.email`.
            doc.take("Username", &["user", "email"], name);
        } else {
            doc.take("Username", &["user", "name"], name);
            if is_email(name) {
                doc.set(&["user", "email"], name);
            }
        }
    } else if let Some(name) = record
        .get("CreatedBy")
        .and_then(|c| c.get("Username"))
        .and_then(Value::as_str)
        .filter(|_| !elastic)
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
    // SetupAuditTrail's Display names the user a change was made to, "For user x@y.z, the
    // ...": Elastic's `user.name`.
    if sobject_type == "SetupAuditTrail"
        && let Some(target) = text("Display")
            .and_then(|d| d.strip_prefix("For user "))
            .and_then(|d| d.split_once(", "))
            .map(|(user, _)| user)
            .filter(|user| !user.is_empty())
    {
        doc.set(&["user", "name"], target);
    }
    if let Some(method) = text("HttpMethod").and_then(http_method) {
        doc.take("HttpMethod", &["http", "request", "method"], method);
    }
    if let Some(login_url) = text("LoginUrl") {
        // Elastic: `event.url`. LoginEvent's LoginUrl is a host name (`login.salesforce.com`).
        doc.take("LoginUrl", &["event", "url"], login_url);
        if !login_url.contains('/') {
            doc.set(&["url", "domain"], login_url);
        }
    }
    if let Some(version) = text("TlsProtocol").and_then(tls_version) {
        doc.take("TlsProtocol", &["tls", "version"], version);
        doc.set(&["tls", "version_protocol"], "tls");
    }

    let mut fields = Map::new();
    for &(field, path, conv) in object_fields(sobject_type) {
        let Some(value) = record.get(field).and_then(|v| record_value(field, v)) else {
            continue;
        };
        let value = match (conv, value) {
            (ObjConv::Text, Value::Number(n)) => Value::from(n.to_string()),
            (ObjConv::Double, Value::Number(n)) => match n.as_f64() {
                Some(f) => Value::from(f),
                None => Value::Number(n),
            },
            (_, value) => value,
        };
        set_path(&mut fields, path, value);
    }
    let mapped_keys: Vec<String> = fields.keys().cloned().collect();
    for (name, value) in record {
        if name == "attributes"
            || doc.is_consumed(name)
            || object_fields(sobject_type)
                .iter()
                .any(|(f, _, _)| f == name)
        {
            continue;
        }
        if let Some(value) = record_value(name, value) {
            let mut key = snake_case(name);
            if mapped_keys.contains(&key) {
                key.push_str("_field");
            }
            fields.insert(key, value);
        }
    }
    doc.finish(&key, fields)
}
