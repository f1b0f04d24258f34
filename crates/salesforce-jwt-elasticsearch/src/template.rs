//! The index template for `logs-salesforce.*`: the types of the fields the documents hold, so
//! that the first document does not fix them by dynamic mapping (a `source.ip` as text, a
//! numeric-looking string as a number).

use serde_json::{Value, json};

/// The name [`index_template`] is installed under.
pub const INDEX_TEMPLATE_NAME: &str = "logs-salesforce";

/// The body of `PUT /_index_template/logs-salesforce`: data streams `logs-salesforce.*-*`,
/// priority 200 (over the built-in `logs` template's 100), with the ECS fields the documents
/// hold typed. Fields under `salesforce.*` are mapped dynamically, strings as `keyword`.
pub fn index_template() -> Value {
    let keyword = || json!({"type": "keyword"});
    let date = || json!({"type": "date"});
    let long = || json!({"type": "long"});
    json!({
        "index_patterns": ["logs-salesforce.*-*"],
        "data_stream": {},
        "priority": 200,
        "_meta": {"description": "Salesforce Event Monitoring documents (ECS) from salesforce-jwt"},
        "template": {
            // This template replaces the built-in `logs` one for these names, so it repeats
            // its `logs@settings` choice: a value that does not fit its field's type (an
            // "N/A" where numbers came first) is left unindexed rather than refusing the
            // whole document.
            "settings": {"index": {"mapping": {"ignore_malformed": true}}},
            "mappings": {
                "dynamic_templates": [
                    {"strings_as_keyword": {
                        "match_mapping_type": "string",
                        "mapping": {"type": "keyword", "ignore_above": 1024}
                    }}
                ],
                "properties": {
                    "@timestamp": date(),
                    "message": {"type": "match_only_text"},
                    "data_stream": {"properties": {
                        "type": {"type": "constant_keyword"},
                        "dataset": {"type": "constant_keyword"},
                        "namespace": {"type": "constant_keyword"}
                    }},
                    "ecs": {"properties": {"version": keyword()}},
                    "event": {"properties": {
                        "kind": keyword(), "module": keyword(), "dataset": keyword(),
                        "action": keyword(), "id": keyword(), "category": keyword(),
                        "type": keyword(), "outcome": keyword(), "created": date(),
                        "duration": long(), "reason": keyword(), "url": keyword()
                    }},
                    "user": {"properties": {
                        "id": keyword(), "name": keyword(), "email": keyword(),
                        "domain": keyword(), "roles": keyword()
                    }},
                    "source": {"properties": {
                        "ip": {"type": "ip"},
                        "geo": {"properties": {
                            "city_name": keyword(), "country_iso_code": keyword(),
                            "location": {"type": "geo_point"}
                        }}
                    }},
                    "related": {"properties": {"ip": {"type": "ip"}, "user": keyword()}},
                    "user_agent": {"properties": {
                        "original": keyword(),
                        "name": keyword(),
                        "os": {"properties": {"name": keyword(), "platform": keyword()}}
                    }},
                    "http": {"properties": {
                        "request": {"properties": {"method": keyword(), "bytes": long()}},
                        "response": {"properties": {"status_code": long(), "bytes": long()}}
                    }},
                    "url": {"properties": {"original": keyword(), "path": keyword(), "domain": keyword()}},
                    "tls": {"properties": {"version": keyword(), "cipher": keyword(), "version_protocol": keyword()}},
                    "organization": {"properties": {"id": keyword()}},
                    "salesforce": {"properties": {
                        "event_log_file": {"properties": {
                            "id": keyword(), "event_type": keyword(), "log_date": date(),
                            "interval": keyword(), "sequence": long()
                        }}
                    }}
                }
            }
        }
    })
}
