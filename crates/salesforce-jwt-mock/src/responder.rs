//! Request routing and Salesforce's answers.
//!
//! One wiremock responder takes every request and routes it itself, so that faults aimed at
//! "any request" and the 404 for unknown paths see the same classification as the real routes.

use std::io::Write as _;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::HeaderMap;
use jsonwebtoken::{Algorithm, Validation};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};
use time::{OffsetDateTime, UtcOffset};
use wiremock::{Request, Respond, ResponseTemplate};

use super::file_meta::FileMeta;
use super::generate::with_checksum;
use super::objects::Row;
use super::objects::catalogue::{Kind, ObjectDef, lookup};
use super::soql::objects::plan_objects;
use super::soql::{self, Field, SoqlError};
use super::state::{API_DAILY_LIMIT, CursorRows, ORG_ID_15, Shared, USER_ID_15};
use super::{Fault, FaultTarget};

const JSON: &str = "application/json;charset=UTF-8";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

pub(crate) struct OrgResponder {
    shared: Arc<Shared>,
}

impl OrgResponder {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

/// What a request is, decided from its method and path alone.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Token,
    Versions,
    Identity,
    Query {
        version: String,
    },
    QueryMore {
        version: String,
        locator: String,
    },
    Download {
        version: String,
        id: String,
    },
    Record {
        version: String,
        id: String,
    },
    /// Under `/services/data/` but nothing the org serves (or a method it doesn't allow).
    DataOther {
        method_allowed: bool,
    },
    NotFound,
}

impl Route {
    fn classify(request: &Request) -> Route {
        let path = request.url.path();
        let get = request.method == http::Method::GET;
        if path == "/services/oauth2/token" && request.method == http::Method::POST {
            return Route::Token;
        }
        if path.starts_with("/id/") && get {
            return Route::Identity;
        }
        let Some(rest) = path
            .strip_prefix("/services/data")
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        else {
            return Route::NotFound;
        };
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        if segments.is_empty() && get {
            return Route::Versions;
        }
        let version_ok = segments.first().is_some_and(|v| api_version(v).is_some());
        if !get || !version_ok {
            return Route::DataOther {
                method_allowed: get,
            };
        }
        let version = segments[0].to_owned();
        match segments[1..] {
            ["query"] => Route::Query { version },
            ["query", locator] => Route::QueryMore {
                version,
                locator: locator.to_owned(),
            },
            ["sobjects", object, id] if object.eq_ignore_ascii_case("EventLogFile") => {
                Route::Record {
                    version,
                    id: id.to_owned(),
                }
            }
            ["sobjects", object, id, "LogFile"] if object.eq_ignore_ascii_case("EventLogFile") => {
                Route::Download {
                    version,
                    id: id.to_owned(),
                }
            }
            _ => Route::DataOther {
                method_allowed: true,
            },
        }
    }

    fn needs_session(&self) -> bool {
        !matches!(self, Route::Token | Route::Versions | Route::NotFound)
    }

    fn hit_by(&self, target: FaultTarget) -> bool {
        match target {
            FaultTarget::Token => *self == Route::Token,
            FaultTarget::Query => matches!(self, Route::Query { .. } | Route::QueryMore { .. }),
            FaultTarget::Download => matches!(self, Route::Download { .. }),
            FaultTarget::Any => true,
        }
    }
}

/// `v64.0` -> 64.0.
fn api_version(segment: &str) -> Option<f64> {
    let number = segment.strip_prefix('v')?;
    let (major, minor) = number.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return None;
    }
    number.parse().ok()
}

impl Respond for OrgResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let route = Route::classify(request);
        let response = match self.prelude(&route) {
            Some(faulted) => faulted,
            None => self.dispatch(&route, request),
        };
        tracing::debug!(method = %request.method, path = request.url.path(), ?route, "mock org request");
        response
    }
}

impl OrgResponder {
    /// Counts the request and fires the first queued fault that applies to it, if any.
    fn prelude(&self, route: &Route) -> Option<ResponseTemplate> {
        self.shared.with(|state| {
            let received = &mut state.received;
            match route {
                Route::Token => received.token_requests += 1,
                Route::Query { .. } => received.queries += 1,
                Route::QueryMore { .. } => received.query_more += 1,
                Route::Download { .. } => received.downloads += 1,
                _ => {}
            }
            let index = state.faults.iter().position(|fault| match fault {
                Fault::ServiceUnavailable { target, .. }
                | Fault::TooManyRequests { target, .. }
                | Fault::RequestLimitExceeded { target } => route.hit_by(*target),
                Fault::RevokeSessions => route.needs_session(),
                Fault::TruncatedBody => false,
            })?;
            let fault = state.faults.remove(index)?;
            state.received.faults_fired += 1;
            tracing::debug!(?fault, ?route, "mock org fires a fault");
            match fault {
                Fault::ServiceUnavailable {
                    retry_after_secs, ..
                } => Some(html_error(
                    503,
                    "Service Unavailable",
                    "The server is temporarily unable to service your request. Please try again later.",
                    retry_after_secs,
                )),
                Fault::TooManyRequests {
                    retry_after_secs, ..
                } => Some(html_error(
                    429,
                    "Too Many Requests",
                    "You have sent too many requests in a given amount of time.",
                    retry_after_secs,
                )),
                Fault::RequestLimitExceeded { .. } => Some(
                    sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
                        .insert_header(
                            "Sforce-Limit-Info",
                            format!("api-usage={API_DAILY_LIMIT}/{API_DAILY_LIMIT}"),
                        ),
                ),
                Fault::RevokeSessions => {
                    state.revoke_all_tokens();
                    None
                }
                Fault::TruncatedBody => None,
            }
        })
    }

    fn dispatch(&self, route: &Route, request: &Request) -> ResponseTemplate {
        match route {
            Route::Token => self.token(request),
            Route::Versions => versions(),
            Route::Identity => self.identity(request),
            Route::NotFound => not_found(),
            _ => self.data(route, request),
        }
    }

    // -----------------------------------------------------------------------------------------
    // OAuth

    fn token(&self, request: &Request) -> ResponseTemplate {
        let mut grant_type = None;
        let mut assertion = None;
        for (key, value) in url::form_urlencoded::parse(&request.body) {
            match &*key {
                "grant_type" => grant_type = Some(value.into_owned()),
                "assertion" => assertion = Some(value.into_owned()),
                _ => {}
            }
        }
        if grant_type.as_deref() != Some(JWT_BEARER) {
            return oauth_error("unsupported_grant_type", "grant type not supported");
        }
        let now = self.shared.clock.now();
        if let Err((error, description)) = self.verify(assertion.as_deref().unwrap_or(""), now) {
            return oauth_error(error, description);
        }
        let settings = &self.shared.settings;
        let (token, signature) = self.shared.with(|state| {
            state.received.token_successes += 1;
            let token = state.issue_token(now, settings.token_lifetime);
            let mut signature = [0u8; 32];
            state.rng.fill(&mut signature);
            (token, BASE64.encode(signature))
        });
        let base = &self.shared.base_uri;
        let body = json!({
            "access_token": token,
            "scope": "api",
            "instance_url": base,
            "id": format!("{base}/id/{}/{}", with_checksum(ORG_ID_15), with_checksum(USER_ID_15)),
            "token_type": "Bearer",
            "issued_at": (now.unix_timestamp_nanos() / 1_000_000).to_string(),
            "signature": signature,
        });
        json_response(200, &body).insert_header(
            "Cache-Control",
            "no-cache,must-revalidate,max-age=0,no-store,private",
        )
    }

    /// Checks an assertion the way Salesforce does, in its order: the app is found by `iss`
    /// before its certificate can verify the signature; then audience, user and expiry.
    fn verify(
        &self,
        assertion: &str,
        now: OffsetDateTime,
    ) -> Result<(), (&'static str, &'static str)> {
        const INVALID_ASSERTION: (&str, &str) = ("invalid_grant", "invalid assertion");
        let settings = &self.shared.settings;
        let header = jsonwebtoken::decode_header(assertion).map_err(|_| INVALID_ASSERTION)?;
        if header.alg != Algorithm::RS256 {
            return Err(INVALID_ASSERTION);
        }
        let claims: serde_json::Map<String, Value> =
            jsonwebtoken::dangerous::insecure_decode_claims(assertion)
                .map_err(|_| INVALID_ASSERTION)?;
        if claims.get("iss").and_then(Value::as_str) != Some(settings.client_id.as_str()) {
            return Err(("invalid_client_id", "client identifier invalid"));
        }
        // jsonwebtoken would judge exp by the system time; the org's own clock does it below.
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(assertion, &self.shared.key, &validation)
            .map_err(|_| INVALID_ASSERTION)?;
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => *aud == settings.audience,
            Some(Value::Array(auds)) => auds
                .iter()
                .any(|aud| aud.as_str() == Some(settings.audience.as_str())),
            _ => false,
        };
        if !audience_ok {
            return Err(("invalid_grant", "audience is invalid"));
        }
        if claims.get("sub").and_then(Value::as_str) != Some(settings.username.as_str()) {
            return Err(("invalid_grant", "user hasn't approved this consumer"));
        }
        // exp must be a whole number of seconds; a string or fraction is a malformed assertion.
        let exp = claims
            .get("exp")
            .and_then(|exp| exp.as_i64().or_else(|| exp.as_u64().map(|_| i64::MAX)))
            .ok_or(INVALID_ASSERTION)?;
        if exp <= now.unix_timestamp() {
            return Err(("invalid_grant", "expired authorization code"));
        }
        Ok(())
    }

    fn identity(&self, request: &Request) -> ResponseTemplate {
        let now = self.shared.clock.now();
        let settings = &self.shared.settings;
        let live = bearer(&request.headers)
            .is_some_and(|token| self.shared.with(|s| s.token_is_live(token, now, settings)));
        if !live {
            // The identity service answers a bad token with 403 and plain text, not JSON.
            return ResponseTemplate::new(403).set_body_string("Bad_OAuth_Token");
        }
        let base = &self.shared.base_uri;
        let org = with_checksum(ORG_ID_15);
        let user = with_checksum(USER_ID_15);
        json_response(
            200,
            &json!({
                "id": format!("{base}/id/{org}/{user}"),
                "asserted_user": true,
                "user_id": user,
                "organization_id": org,
                "username": settings.username,
                "display_name": "Integration User",
                "active": true,
                "user_type": "STANDARD",
            }),
        )
    }

    // -----------------------------------------------------------------------------------------
    // REST API

    fn data(&self, route: &Route, request: &Request) -> ResponseTemplate {
        let now = self.shared.clock.now();
        let settings = &self.shared.settings;
        let usage = self.shared.with(|state| {
            let live =
                bearer(&request.headers).is_some_and(|token| state.use_token(token, now, settings));
            if live {
                state.api_usage += 1;
                Some(state.api_usage)
            } else {
                state.received.unauthorized += 1;
                None
            }
        });
        let Some(usage) = usage else {
            return sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
                .insert_header("WWW-Authenticate", "Token");
        };
        let response = if !settings.api_enabled {
            sf_error(
                403,
                "API_DISABLED_FOR_ORG",
                "The REST API is not enabled for this Organization.",
            )
        } else {
            match route {
                Route::Query { version } => self.query(version, request, now),
                Route::QueryMore { version, locator } => self.query_more(version, locator, now),
                Route::Download { id, .. } => self.download(id, request),
                Route::Record { version, id } => self.record(version, id),
                Route::DataOther {
                    method_allowed: false,
                } => sf_error(
                    405,
                    "METHOD_NOT_ALLOWED",
                    &format!(
                        "HTTP Method '{}' not allowed. Allowed are GET,HEAD",
                        request.method
                    ),
                ),
                _ => not_found(),
            }
        };
        response.insert_header(
            "Sforce-Limit-Info",
            format!("api-usage={usage}/{API_DAILY_LIMIT}"),
        )
    }

    fn query(&self, version: &str, request: &Request, now: OffsetDateTime) -> ResponseTemplate {
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
        page(version, &cursor_rows, 0, page_size, cursor)
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
        if !settings.realtime_access {
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
        let rows = self.shared.with(|state| state.objects.visible(def, now));
        let matching = plan.matching(&rows);
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
        page(version, &cursor_rows, 0, page_size, cursor)
    }

    fn query_more(&self, version: &str, locator: &str, now: OffsetDateTime) -> ResponseTemplate {
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
        page(version, &rows, offset, page_size, Some(n))
    }

    fn download(&self, id: &str, request: &Request) -> ResponseTemplate {
        let visible = self.shared.settings.event_log_access;
        let found = self.shared.with(|state| {
            let csv = state.file(id).filter(|_| visible)?.csv.clone();
            let truncate = state
                .faults
                .iter()
                .position(|f| *f == Fault::TruncatedBody)
                .and_then(|i| state.faults.remove(i))
                .is_some();
            if truncate {
                state.received.faults_fired += 1;
            }
            Some((csv, truncate))
        });
        let Some((csv, truncate)) = found else {
            return not_found();
        };
        let body = if truncate {
            csv.slice(..csv.len() / 2)
        } else {
            csv
        };
        let wants_gzip = request
            .headers
            .get_all(http::header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("gzip"));
        if wants_gzip && let Some(gz) = gzip(&body) {
            return ResponseTemplate::new(200)
                .set_body_raw(gz, "text/csv")
                .insert_header("Content-Encoding", "gzip");
        }
        ResponseTemplate::new(200).set_body_raw(body.to_vec(), "text/csv")
    }

    fn record(&self, version: &str, id: &str) -> ResponseTemplate {
        let visible = self.shared.settings.event_log_access;
        let meta = self.shared.with(|state| {
            state
                .file(id)
                .filter(|_| visible)
                .map(|f| Arc::clone(&f.meta))
        });
        match meta {
            Some(meta) => {
                let record = RecordJson {
                    version,
                    fields: &Field::ALL,
                    meta: &meta,
                };
                match serde_json::to_vec(&record) {
                    Ok(body) => ResponseTemplate::new(200).set_body_raw(body, JSON),
                    Err(_) => server_error(),
                }
            }
            None => not_found(),
        }
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
                .collect::<Vec<Value>>(),
        }),
    };
    match body {
        Ok(body) => ResponseTemplate::new(200).set_body_raw(body, JSON),
        Err(_) => server_error(),
    }
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
struct RecordJson<'a> {
    version: &'a str,
    fields: &'a [Field],
    meta: &'a FileMeta,
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

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    // Salesforce takes the legacy `OAuth` scheme as well as `Bearer`.
    (scheme.eq_ignore_ascii_case("Bearer") || scheme.eq_ignore_ascii_case("OAuth"))
        .then(|| token.trim())
}

fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    encoder.write_all(body).ok()?;
    encoder.finish().ok()
}

fn json_response(status: u16, body: &Value) -> ResponseTemplate {
    match serde_json::to_vec(body) {
        Ok(body) => ResponseTemplate::new(status).set_body_raw(body, JSON),
        Err(_) => server_error(),
    }
}

/// Salesforce's REST error shape: an array of `{"message","errorCode"}`.
fn sf_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    json_response(status, &json!([{"message": message, "errorCode": code}]))
}

fn oauth_error(error: &str, description: &str) -> ResponseTemplate {
    json_response(
        400,
        &json!({"error": error, "error_description": description}),
    )
}

fn not_found() -> ResponseTemplate {
    sf_error(404, "NOT_FOUND", "The requested resource does not exist")
}

fn server_error() -> ResponseTemplate {
    ResponseTemplate::new(500).set_body_raw(
        br#"[{"message":"An unexpected error occurred.","errorCode":"UNKNOWN_EXCEPTION"}]"#
            .to_vec(),
        JSON,
    )
}

fn html_error(
    status: u16,
    title: &str,
    text: &str,
    retry_after_secs: Option<u64>,
) -> ResponseTemplate {
    let body = format!(
        "<!DOCTYPE html>\n<html><head><title>{status} {title}</title></head>\
         <body><h1>{title}</h1><p>{text}</p></body></html>\n"
    );
    let response = ResponseTemplate::new(status).set_body_raw(body, "text/html; charset=utf-8");
    match retry_after_secs {
        Some(secs) => response.insert_header("Retry-After", secs.to_string()),
        None => response,
    }
}

fn versions() -> ResponseTemplate {
    let versions: Vec<Value> = [
        ("Winter '25", "62.0"),
        ("Spring '25", "63.0"),
        ("Summer '25", "64.0"),
        ("Winter '26", "65.0"),
        ("Spring '26", "66.0"),
    ]
    .iter()
    .map(|(label, version)| {
        json!({"label": label, "url": format!("/services/data/v{version}"), "version": version})
    })
    .collect();
    json_response(200, &Value::Array(versions))
}
