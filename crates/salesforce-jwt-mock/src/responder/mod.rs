//! Request routing and Salesforce's answers.
//!
//! One wiremock responder takes every request and routes it itself, so that faults aimed at
//! "any request" and the 404 for unknown paths see the same classification as the real routes.

use std::io::Write as _;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::HeaderMap;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Value, json};
use time::OffsetDateTime;
use wiremock::{Request, Respond, ResponseTemplate};

mod query;

use super::front;
use super::generate::with_checksum;
use super::requests::{ReceivedRequest, RequestKind};
use super::soql::Field;
use super::state::{API_DAILY_LIMIT, Shared, USER_ID_15};
use super::{Fault, FaultTarget};
use query::RecordJson;

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
    /// `GET /services/data/vXX.X/limits`: the org's limits, the daily API requests among them.
    Limits,
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
            ["limits"] => Route::Limits,
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

    fn kind(&self) -> RequestKind {
        match self {
            Route::Token => RequestKind::Token,
            Route::Versions => RequestKind::Versions,
            Route::Identity => RequestKind::Identity,
            Route::Query { .. } => RequestKind::Query,
            Route::QueryMore { .. } => RequestKind::QueryMore,
            Route::Download { .. } => RequestKind::Download,
            Route::Record { .. } => RequestKind::Record,
            Route::Limits | Route::DataOther { .. } | Route::NotFound => RequestKind::Other,
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
        self.log_request(&route, request);
        let (faulted, delay) = self.prelude(&route);
        let response = match faulted {
            Some(faulted) => faulted,
            None => self.dispatch(&route, request),
        };
        tracing::debug!(method = %request.method, path = request.url.path(), ?route, "mock org request");
        // Salesforce stamps every answer with its own clock: a collector can tell its clock's
        // skew from it (set here, it also keeps hyper from adding the machine's time).
        let response = response.insert_header("Date", http_date(self.shared.clock.now()));
        let mut delay = delay.unwrap_or_default();
        if route == Route::Token {
            delay += self.shared.settings.token_latency;
        }
        if delay.is_zero() {
            response
        } else {
            response.set_delay(delay)
        }
    }
}

impl OrgResponder {
    /// Adds the request to the org's log.
    fn log_request(&self, route: &Route, request: &Request) {
        let soql = matches!(route, Route::Query { .. })
            .then(|| {
                request
                    .url
                    .query_pairs()
                    .find(|(key, _)| key == "q")
                    .map(|(_, q)| q.into_owned())
            })
            .flatten();
        let received = ReceivedRequest::new(
            request.method.to_string(),
            request.url.path().to_owned(),
            route.kind(),
            soql,
            self.shared.clock.now(),
            bearer(&request.headers).map(str::to_owned),
        );
        let capacity = self.shared.settings.request_log_capacity;
        self.shared
            .with(|state| state.record_request(received, capacity));
    }

    /// Counts the request and fires the first queued fault that applies to it, if any, and the
    /// first delay that applies to it, if any.
    fn prelude(&self, route: &Route) -> (Option<ResponseTemplate>, Option<std::time::Duration>) {
        self.shared.with(|state| {
            let received = &mut state.received;
            match route {
                Route::Token => received.token_requests += 1,
                Route::Query { .. } => received.queries += 1,
                Route::QueryMore { .. } => received.query_more += 1,
                Route::Download { .. } => received.downloads += 1,
                _ => {}
            }
            let delay = state
                .fire_first(|fault| match fault {
                    Fault::Delay { target, .. } => route.hit_by(*target),
                    Fault::OnFile { id, fault } => {
                        matches!(route, Route::Download { id: r, .. } if r == id)
                            && matches!(**fault, Fault::Delay { .. })
                    }
                    _ => false,
                })
                .and_then(|fault| match fault {
                    Fault::Delay { delay, .. } => Some(delay),
                    Fault::OnFile { fault, .. } => match *fault {
                        Fault::Delay { delay, .. } => Some(delay),
                        _ => None,
                    },
                    _ => None,
                });
            let fault = state.fire_first(|fault| match fault {
                Fault::ServiceUnavailable { target, .. }
                | Fault::TooManyRequests { target, .. }
                | Fault::RequestLimitExceeded { target } => route.hit_by(*target),
                Fault::RevokeSessions => route.needs_session(),
                Fault::OAuth { .. } => *route == Route::Token,
                Fault::TruncatedBody | Fault::Delay { .. } | Fault::CorruptPage { .. } => false,
                Fault::OnFile { id, fault } => {
                    matches!(route, Route::Download { id: r, .. } if r == id)
                        && !matches!(**fault, Fault::TruncatedBody | Fault::Delay { .. })
                }
            });
            let Some(fault) = fault else {
                return (None, delay);
            };
            tracing::debug!(?fault, ?route, "mock org fires a fault");
            let fault = match fault {
                Fault::OnFile { fault, .. } => *fault,
                other => other,
            };
            let response = match fault {
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
                Fault::OAuth {
                    error,
                    description,
                    status,
                } => Some(oauth_error_status(status, &error, &description)),
                Fault::RevokeSessions => {
                    state.revoke_all_tokens();
                    None
                }
                Fault::TruncatedBody
                | Fault::OnFile { .. }
                | Fault::Delay { .. }
                | Fault::CorruptPage { .. } => None,
            };
            (response, delay)
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
            let token = state.issue_token(now, settings);
            let mut signature = [0u8; 32];
            state.rng.fill(&mut signature);
            (token, BASE64.encode(signature))
        });
        let base = &self.shared.base_uri;
        let body = json!({
            "access_token": token,
            "scope": "api",
            "instance_url": base,
            "id": format!("{base}/id/{}/{}", with_checksum(&settings.org_id), with_checksum(USER_ID_15)),
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
        let org = with_checksum(&settings.org_id);
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
                Route::Limits => ResponseTemplate::new(200).set_body_json(json!({
                    "DailyApiRequests": {
                        "Max": API_DAILY_LIMIT,
                        "Remaining": API_DAILY_LIMIT.saturating_sub(usage),
                    },
                })),
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

    fn download(&self, id: &str, request: &Request) -> ResponseTemplate {
        let visible = self.shared.settings.event_log_access;
        let found = self.shared.with(|state| {
            let file = state.file(id).filter(|_| visible)?;
            let (csv, gzip) = (file.csv.clone(), Arc::clone(&file.gzip));
            let truncate = state
                .fire_first(|f| match f {
                    Fault::TruncatedBody => true,
                    Fault::OnFile { id: target, fault } => {
                        target == id && **fault == Fault::TruncatedBody
                    }
                    _ => false,
                })
                .is_some();
            Some((csv, gzip, truncate))
        });
        let Some((csv, cached_gzip, truncate)) = found else {
            return not_found();
        };
        let wants_gzip = request
            .headers
            .get_all(http::header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("gzip"));
        if truncate {
            // A cut body is compressed on its own: a gzip stream cut in half would fail as a
            // corrupt stream, not as the short body this fault stands for.
            let body = csv.slice(..csv.len() / 2);
            if wants_gzip && let Some(gz) = gzip(&body) {
                return ResponseTemplate::new(200)
                    .set_body_raw(gz, "text/csv")
                    .insert_header("Content-Encoding", "gzip");
            }
            return ResponseTemplate::new(200).set_body_raw(body.to_vec(), "text/csv");
        }
        let (body, encoding) = match wants_gzip.then(|| gzipped(&csv, &cached_gzip)).flatten() {
            Some(gz) => (gz, "gzip"),
            None => (csv, "csv"),
        };
        let mut response = ResponseTemplate::new(200);
        if encoding == "gzip" {
            response = response.insert_header("Content-Encoding", "gzip");
        }
        if request.headers.contains_key(front::VIA_FRONT) {
            // The front door sends the stored bytes (the gzip is cached by now) itself.
            response
                .insert_header("Content-Type", "text/csv")
                .insert_header(front::BODY_TICKET, format!("{id};{encoding}"))
        } else {
            response.set_body_raw(body.to_vec(), "text/csv")
        }
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

/// An HTTP `Date` (IMF-fixdate, whole seconds, cut down as servers do): `Tue, 10 Jun 2025
/// 12:00:00 GMT`. Every answer of the org carries one from its clock; a test double of its own
/// can stamp its answers the same way.
pub fn http_date(t: OffsetDateTime) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[usize::from(t.weekday().number_days_from_monday())],
        t.day(),
        MONTHS[usize::from(u8::from(t.month()) - 1)],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    // Salesforce takes the legacy `OAuth` scheme as well as `Bearer`.
    (scheme.eq_ignore_ascii_case("Bearer") || scheme.eq_ignore_ascii_case("OAuth"))
        .then(|| token.trim())
}

/// The body of a whole download of file `id` as the org stores it (the gzip cached by the
/// responder's answer, or the CSV): what the [front door](crate::front) sends for a ticket.
pub(crate) fn stored_body(shared: &Shared, id: &str, gzip: bool) -> Option<Bytes> {
    let (csv, cache) = shared.with(|state| {
        let file = state.file(id)?;
        Some((file.csv.clone(), Arc::clone(&file.gzip)))
    })?;
    if gzip {
        gzipped(&csv, &cache)
    } else {
        Some(csv)
    }
}

/// The file's gzipped CSV, compressed once and kept. Called outside the state's lock: a
/// second request for the same file waits for the first compression instead of the whole org.
pub(crate) fn gzipped(csv: &[u8], cache: &OnceLock<Option<Bytes>>) -> Option<Bytes> {
    cache.get_or_init(|| gzip(csv).map(Bytes::from)).clone()
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
    oauth_error_status(400, error, description)
}

fn oauth_error_status(status: u16, error: &str, description: &str) -> ResponseTemplate {
    json_response(
        status,
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
