//! An Elasticsearch double for tests: an HTTP/1 server on 127.0.0.1 that follows the
//! documented `_bulk` behaviour, stores documents per data stream in memory, and injects faults.
//!
//! What it follows (Elasticsearch 8 reference, "Bulk API"):
//!
//! - `POST /_bulk` (and `POST /{index}/_bulk`), NDJSON action and document lines, the body
//!   terminated by a newline; `Content-Encoding: gzip` bodies; `Content-Type`
//!   `application/x-ndjson` or `application/json`.
//! - The answer `{"took", "errors", "items": [{"create": {"_index", "_id", "_version",
//!   "result", "_shards", "_seq_no", "_primary_term", "status"}}]}`, items in request order;
//!   a failed item has `status` and `error: {"type", "reason", ...}` instead of `result`.
//! - `create` of an existing `_id`: 409 `version_conflict_engine_exception`. `index` into a
//!   data stream: 400 `illegal_argument_exception` (only `create` is allowed there).
//! - Data streams are created on the first `create` into a name matching `logs-*-*`; items
//!   name the backing index `.ds-<stream>-<yyyy.MM.dd>-000001`.
//! - Dynamic mapping (strings as `keyword`, or `date` when they look like one; integers as
//!   `long`, fractions as `float`, booleans, objects) unless an index template installed with
//!   `PUT /_index_template/{name}` types the field (the highest `priority` of the templates
//!   matching the name applies); a value that does not fit the field's type is refused with
//!   400 `mapper_parsing_exception`, the document stored not at all, unless the template sets
//!   `index.mapping.ignore_malformed` (as the built-in `logs` template for `logs-*-*` does,
//!   [`BUILT_IN_LOGS_TEMPLATE`]): then only a value where an object is mapped (or the reverse)
//!   is refused.
//! - Security: with credentials set ([`EsDouble::require_api_key`], [`EsDouble::require_basic`]),
//!   a request without them is answered 401 `security_exception` "missing authentication
//!   credentials", with wrong ones 401 "unable to authenticate".
//! - `413` for a body over [`EsDouble::set_max_content_length`] (uncompressed), as
//!   `http.max_content_length` does.
//!
//! Faults: [`EsDouble::fail_requests`] (whole-request 503s), [`EsDouble::cut_connections`] (the
//! request is applied, then the connection closed before the answer, as when a proxy or the
//! network drops it), [`EsDouble::reject_items`] (per-item 429
//! `es_rejected_execution_exception`).
//!
//! `GET /`, `POST /{index}/_refresh` and `GET /{index}/_count` are there so that tests can
//! count documents the same way against a real cluster.

mod bulk;
mod mapping;
mod server;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;

pub use server::EsDouble;

/// A stored data stream (or plain index).
#[derive(Debug, Clone, Default)]
pub struct StoredStream {
    /// The backing index items name (`.ds-logs-…-yyyy.MM.dd-000001`), or the index itself.
    pub backing_index: String,
    /// Whether it is a data stream (`create` only).
    pub data_stream: bool,
    /// The documents by `_id`, in arrival order of their first write.
    pub documents: Vec<(String, Value)>,
    ids: HashMap<String, usize>,
    /// Field path -> mapped type.
    pub mappings: BTreeMap<String, String>,
    /// `index.mapping.ignore_malformed`, from the template that created it.
    pub ignore_malformed: bool,
}

/// A `_bulk` request as the double received it.
#[derive(Debug, Clone)]
pub struct BulkRecord {
    /// Its `Content-Encoding` was gzip.
    pub gzip: bool,
    /// The body's size as received.
    pub wire_bytes: usize,
    /// The body's size uncompressed.
    pub body_bytes: usize,
    /// How many actions it held.
    pub actions: usize,
    /// The `Authorization` scheme it carried (`ApiKey`, `Basic`), if any.
    pub auth_scheme: Option<String>,
    /// The HTTP status answered (0 when the connection was cut instead).
    pub status: u16,
}

#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub fail_503: u32,
    pub cut: u32,
    pub reject_items: u32,
    pub max_content_length: Option<usize>,
}

#[derive(Debug, Clone)]
pub(crate) enum Auth {
    ApiKey(String),
    Basic(String, String),
}

#[derive(Debug)]
pub(crate) struct State {
    pub streams: BTreeMap<String, StoredStream>,
    pub templates: BTreeMap<String, Value>,
    pub faults: Faults,
    pub auth: Option<Auth>,
    pub requests: Vec<BulkRecord>,
    pub seq_no: u64,
}

/// The name of the built-in template the double starts with, as Elasticsearch 8 does.
pub const BUILT_IN_LOGS_TEMPLATE: &str = "logs";

impl Default for State {
    /// Elasticsearch 8's built-in `logs` template (`logs-*-*`, priority 100, data streams,
    /// `logs@settings`' `index.mapping.ignore_malformed: true`): a template installed with a
    /// higher priority replaces it for the names it matches.
    fn default() -> Self {
        let mut templates = BTreeMap::new();
        templates.insert(
            BUILT_IN_LOGS_TEMPLATE.to_string(),
            serde_json::json!({
                "index_patterns": ["logs-*-*"],
                "data_stream": {},
                "priority": 100,
                "template": {
                    "settings": {"index": {"mapping": {"ignore_malformed": true}}},
                    "mappings": {"properties": {
                        "@timestamp": {"type": "date"},
                        "data_stream": {"properties": {
                            "type": {"type": "constant_keyword"},
                            "dataset": {"type": "constant_keyword"},
                            "namespace": {"type": "constant_keyword"}
                        }}
                    }}
                }
            }),
        );
        State {
            streams: BTreeMap::new(),
            templates,
            faults: Faults::default(),
            auth: None,
            requests: Vec::new(),
            seq_no: 0,
        }
    }
}

pub(crate) type Shared = Arc<Mutex<State>>;

pub(crate) fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, State> {
    // Plain data, consistent across a panic.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl StoredStream {
    pub(crate) fn insert(&mut self, id: String, doc: Value) {
        self.ids.insert(id.clone(), self.documents.len());
        self.documents.push((id, doc));
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.ids.contains_key(id)
    }
}
