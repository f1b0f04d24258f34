//! Query requests: SOQL on EventLogFile or a real-time object, and `nextRecordsUrl` pages.

use std::sync::Arc;

use http::HeaderMap;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::json;
use time::{OffsetDateTime, UtcOffset};
use wiremock::{Request, ResponseTemplate};

use super::{JSON, OrgResponder, api_version, json_response, server_error, sf_error};
use crate::file_meta::FileMeta;
use crate::objects::Row;
use crate::objects::catalogue::{Kind, ObjectDef, lookup};
use crate::soql::objects::plan_objects;
use crate::soql::{self, Field, SoqlError};
use crate::state::{CursorRows, Shared};
use crate::{EventLogObjectAccess, Fault};

impl OrgResponder {
    pub(super) fn query(
        &self,
        version: &str,
        request: &Request,
        now: OffsetDateTime,
    ) -> ResponseTemplate {
        let Some(q) = request
            .url
            .query_pairs()
            .find(|(key, _)| key == "q")
            .map(|(_, value)| value.into_owned())
        else {
            return sf_error(400, "MALFORMED_QUERY", "A query string has to be specified");
        };
        let settings = &self.shared.settings;
        let number = api_version(version).unwrap_or(0.0);
        let query = match soql::parse(&q) {
            Ok(query) => query,
            Err(SoqlError { code, message }) => return sf_error(400, code, &message),
        };
        if let Some(def) = lookup(&query.from.text) {
            return self.object_query(version, request, now, &query, def);
        }
        let plan = match soql::plan_query(&query, number, settings.event_log_access) {
            Ok(plan) => plan,
            Err(SoqlError { code, message }) => return sf_error(400, code, &message),
        };
        let files = self.shared.with(|state| state.snapshot());
        let rows: Arc<[Arc<FileMeta>]> = plan.run(&files).into();
        if plan.count {
            return json_response(
                200,
                &json!({"totalSize": rows.len(), "done": true, "records": []}),
            );
        }
        let page_size =
            batch_size(&request.headers).map_or(settings.page_size, |n| n.min(settings.page_size));
        let fields: Arc<[Field]> = plan.fields.into();
        let cursor_rows = CursorRows::Files {
            fields: Arc::clone(&fields),
            rows: Arc::clone(&rows),
        };
        let cursor = if rows.len() > page_size {
            Some(
                self.shared
                    .with(|state| state.open_cursor(cursor_rows.clone(), page_size, now)),
            )
        } else {
            None
        };
        page(&self.shared, version, &cursor_rows, 0, page_size, cursor)
    }

    /// A query on a real-time object: big-object rules, the queryable lag, `QUERY_TIMEOUT` for a
    /// big-object query over more rows than the org can scan in time.
    fn object_query(
        &self,
        version: &str,
        request: &Request,
        now: OffsetDateTime,
        query: &soql::parser::Query,
        def: &'static ObjectDef,
    ) -> ResponseTemplate {
        let settings = &self.shared.settings;
        if def.kind == Kind::EventLog {
            // Below API 61.0 the objects do not exist for the API; outside Hyperforce they do
            // not exist in the org. Either way the type is unknown.
            let exists = api_version(version).is_some_and(|v| v >= 61.0)
                && settings.event_log_object_access != EventLogObjectAccess::NotHyperforce;
            if !exists {
                return invalid_type(&query.from.text);
            }
            if settings.event_log_object_access == EventLogObjectAccess::MissingPermission {
                return sf_error(
                    403,
                    "INSUFFICIENT_ACCESS",
                    &format!(
                        "You don't have access to {}: it needs the View Event Log Object Data \
                         permission",
                        def.name
                    ),
                );
            }
        } else if !settings.realtime_access {
            return sf_error(
                400,
                "INVALID_TYPE",
                &format!(
                    "sObject type '{}' is not supported. If you are attempting to use a custom \
                     object, be sure to append the '__c' after the entity name. Please reference \
                     your WSDL or the describe call for the appropriate names.",
                    query.from.text
                ),
            );
        }
        let plan = match plan_objects(query, def) {
            Ok(plan) => plan,
            Err(SoqlError { code, message }) => return sf_error(400, code, &message),
        };
        let matching = self.shared.with(|state| {
            state
                .objects
                .visible_where(def, now, |row| plan.matches(row, now))
        });
        if def.kind == Kind::Big
            && settings
                .big_object_timeout_rows
                .is_some_and(|max| matching.len() > max && plan.limit.is_none_or(|n| n > max))
        {
            return sf_error(
                400,
                "QUERY_TIMEOUT",
                "Your query request was running for too long.",
            );
        }
        if plan.count {
            return json_response(
                200,
                &json!({"totalSize": matching.len(), "done": true, "records": []}),
            );
        }
        let rows: Arc<[Arc<Row>]> = plan.window(plan.sort(matching)).into();
        let page_size =
            batch_size(&request.headers).map_or(settings.page_size, |n| n.min(settings.page_size));
        let cursor_rows = CursorRows::Records {
            plan: Arc::new(plan),
            rows,
        };
        let cursor = if cursor_rows.len() > page_size {
            Some(
                self.shared
                    .with(|state| state.open_cursor(cursor_rows.clone(), page_size, now)),
            )
        } else {
            None
        };
        page(&self.shared, version, &cursor_rows, 0, page_size, cursor)
    }

    pub(super) fn query_more(
        &self,
        version: &str,
        locator: &str,
        now: OffsetDateTime,
    ) -> ResponseTemplate {
        let invalid = || sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator");
        let Some((n, offset)) = parse_locator(locator) else {
            return invalid();
        };
        let Some((rows, page_size)) = self.shared.with(|state| {
            state
                .cursor(n, now)
                .map(|cursor| (cursor.rows.clone(), cursor.page_size))
        }) else {
            return invalid();
        };
        if offset > rows.len() {
            return invalid();
        }
        page(&self.shared, version, &rows, offset, page_size, Some(n))
    }
}

/// `Sforce-Query-Options: batchSize=N`, clamped to Salesforce's 200..=2000.
fn batch_size(headers: &HeaderMap) -> Option<usize> {
    let value = headers.get("Sforce-Query-Options")?.to_str().ok()?;
    value.split(',').find_map(|option| {
        let (key, n) = option.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("batchSize") {
            return None;
        }
        n.trim().parse::<usize>().ok().map(|n| n.clamp(200, 2000))
    })
}

/// `01gMOCK<n>-<offset>` -> (n, offset).
fn parse_locator(locator: &str) -> Option<(u64, usize)> {
    let rest = locator.strip_prefix("01gMOCK")?;
    let (n, offset) = rest.split_once('-')?;
    Some((n.parse().ok()?, offset.parse().ok()?))
}

fn page(
    shared: &Shared,
    version: &str,
    rows: &CursorRows,
    offset: usize,
    page_size: usize,
    cursor: Option<u64>,
) -> ResponseTemplate {
    let end = (offset + page_size).min(rows.len());
    let done = end >= rows.len();
    let next = match (done, cursor) {
        (false, Some(n)) => Some(format!("/services/data/{version}/query/01gMOCK{n}-{end}")),
        _ => None,
    };
    let body = match rows {
        CursorRows::Files { fields, rows } => serde_json::to_vec(&PageJson {
            total_size: rows.len(),
            done,
            next_records_url: next,
            records: rows[offset..end]
                .iter()
                .map(|meta| RecordJson {
                    version,
                    fields,
                    meta,
                })
                .collect::<Vec<_>>(),
        }),
        CursorRows::Records { plan, rows } => serde_json::to_vec(&PageJson {
            total_size: rows.len(),
            done,
            next_records_url: next,
            records: rows[offset..end]
                .iter()
                .map(|row| plan.render(row, version))
                .collect::<Vec<_>>(),
        }),
    };
    let Ok(mut body) = body else {
        return server_error();
    };
    let corrupt = shared.with(|state| {
        state
            .fire_first(|fault| match fault {
                Fault::CorruptPage { containing } => containing.as_ref().is_none_or(|text| {
                    !text.is_empty() && body.windows(text.len()).any(|w| w == text.as_bytes())
                }),
                _ => false,
            })
            .is_some()
    });
    if corrupt {
        body.truncate(body.len() / 2);
    }
    ResponseTemplate::new(200).set_body_raw(body, JSON)
}

#[derive(serde::Serialize)]
struct PageJson<R> {
    #[serde(rename = "totalSize")]
    total_size: usize,
    done: bool,
    #[serde(rename = "nextRecordsUrl", skip_serializing_if = "Option::is_none")]
    next_records_url: Option<String>,
    records: R,
}

/// One record with `attributes` first and the selected fields in query order, as Salesforce
/// writes them (a `serde_json::Map` would sort the keys).
pub(super) struct RecordJson<'a> {
    pub(super) version: &'a str,
    pub(super) fields: &'a [Field],
    pub(super) meta: &'a FileMeta,
}

impl Serialize for RecordJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let meta = self.meta;
        let url = format!(
            "/services/data/{}/sobjects/EventLogFile/{}",
            self.version, meta.id
        );
        let mut map = serializer.serialize_map(Some(self.fields.len() + 1))?;
        map.serialize_entry("attributes", &json!({"type": "EventLogFile", "url": url}))?;
        for field in self.fields {
            let name = field.name();
            match field {
                Field::Id => map.serialize_entry(name, &meta.id)?,
                Field::EventType => map.serialize_entry(name, &meta.event_type)?,
                Field::LogDate => map.serialize_entry(name, &sf_datetime(meta.log_date))?,
                Field::CreatedDate => {
                    map.serialize_entry(name, &sf_datetime(meta.created_date))?;
                }
                Field::Interval => map.serialize_entry(name, meta.interval.as_str())?,
                Field::Sequence => map.serialize_entry(name, &meta.sequence)?,
                // A double in Salesforce's schema: serde_json writes 2692.0, not 2692.
                Field::LogFileLength => map.serialize_entry(name, &(meta.length as f64))?,
                Field::LogFile => map.serialize_entry(name, &format!("{url}/LogFile"))?,
                Field::ApiVersion => map.serialize_entry(name, &meta.api_version)?,
                Field::LogFileContentType => map.serialize_entry(name, "CSV")?,
                Field::LogFileFieldNames => map.serialize_entry(name, &meta.field_names)?,
                Field::LogFileFieldTypes => map.serialize_entry(name, &meta.field_types)?,
            }
        }
        map.end()
    }
}

/// `2024-03-11T15:00:00.000+0000`: Salesforce's REST datetime, with no colon in the offset.
fn sf_datetime(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+0000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// `INVALID_TYPE`: the object does not exist for this user, org or API version.
fn invalid_type(name: &str) -> ResponseTemplate {
    sf_error(
        400,
        "INVALID_TYPE",
        &format!(
            "sObject type '{name}' is not supported. If you are attempting to use a custom \
             object, be sure to append the '__c' after the entity name. Please reference your \
             WSDL or the describe call for the appropriate names."
        ),
    )
}
