//! The double's HTTP server and its handle.

use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::bulk::{apply, error_body};
use super::{Auth, BulkRecord, Shared, State, StoredStream, lock};

/// The running double. Dropping it stops its thread and closes its connections.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let double = salesforce_jwt_elasticsearch::testing::EsDouble::start()?;
/// assert!(double.url().starts_with("http://127.0.0.1:"));
/// double.fail_requests(3);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct EsDouble {
    url: String,
    shared: Shared,
    _stop: oneshot::Sender<()>,
}

impl EsDouble {
    /// Binds a free port on 127.0.0.1 and serves it on a thread of its own (a current-thread
    /// runtime), so it works under any runtime the test runs, or none.
    pub fn start() -> std::io::Result<EsDouble> {
        Self::serve(None)
    }

    /// [`start`](Self::start) over https, with a certificate chain and its PKCS#8 key (PEM).
    pub fn start_tls(cert_chain_pem: &[u8], key_pem: &[u8]) -> std::io::Result<EsDouble> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let invalid = |e: &dyn std::fmt::Display| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
        };
        let certs = CertificateDer::pem_slice_iter(cert_chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(&e))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| invalid(&e))?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(&e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid(&e))?;
        Self::serve(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }

    fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> std::io::Result<EsDouble> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr: SocketAddr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let shared: Shared = Arc::default();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let (stop, stopped) = oneshot::channel::<()>();
        let state = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("es-double".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = stopped => {}
                        () = accept_loop(listener, state, tls) => {}
                    }
                });
            })?;
        Ok(EsDouble {
            url: format!("{scheme}://{addr}"),
            shared,
            _stop: stop,
        })
    }

    /// `http://127.0.0.1:PORT` (`https://` with [`start_tls`](Self::start_tls)).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// From now on, every request needs `Authorization: ApiKey <key>`.
    pub fn require_api_key(&self, key: &str) {
        lock(&self.shared).auth = Some(Auth::ApiKey(key.to_string()));
    }

    /// From now on, every request needs `Authorization: Basic` with these.
    pub fn require_basic(&self, username: &str, password: &str) {
        lock(&self.shared).auth = Some(Auth::Basic(username.into(), password.into()));
    }

    /// The next `n` `_bulk` requests are answered 503 (`cluster_block_exception`), unapplied.
    pub fn fail_requests(&self, n: u32) {
        lock(&self.shared).faults.fail_503 = n;
    }

    /// The next `n` `_bulk` requests are applied, then their connection is closed before the
    /// answer.
    pub fn cut_connections(&self, n: u32) {
        lock(&self.shared).faults.cut = n;
    }

    /// The next `n` items (in any requests) are answered 429 `es_rejected_execution_exception`.
    pub fn reject_items(&self, n: u32) {
        lock(&self.shared).faults.reject_items = n;
    }

    /// Bodies over `bytes` (uncompressed) are answered 413; `None` lifts the limit.
    pub fn set_max_content_length(&self, bytes: Option<usize>) {
        lock(&self.shared).faults.max_content_length = bytes;
    }

    /// Installs an index template, as `PUT /_index_template/{name}` does.
    pub fn put_template(&self, name: &str, template: Value) {
        lock(&self.shared).templates.insert(name.into(), template);
    }

    /// The templates installed, by name.
    pub fn templates(&self) -> Vec<(String, Value)> {
        lock(&self.shared)
            .templates
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// A data stream (or index) as stored.
    pub fn stream(&self, name: &str) -> Option<StoredStream> {
        lock(&self.shared).streams.get(name).cloned()
    }

    /// The names of the data streams and indices.
    pub fn streams(&self) -> Vec<String> {
        lock(&self.shared).streams.keys().cloned().collect()
    }

    /// The documents of `name`, in arrival order, with their `_id`s.
    pub fn documents(&self, name: &str) -> Vec<(String, Value)> {
        lock(&self.shared)
            .streams
            .get(name)
            .map(|s| s.documents.clone())
            .unwrap_or_default()
    }

    /// How many documents all streams hold.
    pub fn document_count(&self) -> usize {
        lock(&self.shared)
            .streams
            .values()
            .map(|s| s.documents.len())
            .sum()
    }

    /// The `_bulk` requests received so far.
    pub fn requests(&self) -> Vec<BulkRecord> {
        lock(&self.shared).requests.clone()
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Shared,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = Arc::clone(&shared);
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { handle(request, &shared).await }
            });
            let http = hyper::server::conn::http1::Builder::new();
            match tls {
                None => {
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                }
                Some(acceptor) => {
                    // A client that refuses the certificate ends the handshake: nothing to serve.
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            }
        });
    }
}

type Answer = Response<Full<Bytes>>;

fn answer(status: u16, body: &Value) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// The connection is closed without an answer when this is returned.
#[derive(Debug)]
struct Cut;

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection cut by the double")
    }
}

impl std::error::Error for Cut {}

async fn handle(request: Request<Incoming>, shared: &Shared) -> Result<Answer, Cut> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let headers = request.headers().clone();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let authorization = header("authorization");
    if let Some(refusal) = check_auth(&lock(shared), authorization.as_deref(), &method, &path) {
        let mut response = answer(401, &refusal);
        response.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Basic realm=\"security\", charset=\"UTF-8\""),
        );
        return Ok(response);
    }
    let Ok(collected) = request.into_body().collect().await else {
        return Err(Cut);
    };
    let wire = collected.to_bytes();
    let gzip = header("content-encoding").is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let body = if gzip {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(&wire[..])
            .read_to_end(&mut out)
            .is_err()
        {
            let (s, b) = error_body(400, "parse_exception", "the request body is not valid gzip");
            return Ok(answer(s, &b));
        }
        out
    } else {
        wire.to_vec()
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (status, body) = match (&method, segments.as_slice()) {
        (&Method::GET, [""]) => (
            200,
            json!({
                "name": "es-double", "cluster_name": "es-double",
                "version": {"number": "8.15.0", "build_flavor": "default"},
                "tagline": "You Know, for Search"
            }),
        ),
        (&Method::POST | &Method::PUT, ["_bulk"]) => {
            return bulk(
                shared,
                &headers,
                None,
                &wire,
                body,
                gzip,
                authorization,
                started,
            );
        }
        (&Method::POST | &Method::PUT, [index, "_bulk"]) => {
            let index = (*index).to_string();
            return bulk(
                shared,
                &headers,
                Some(&index),
                &wire,
                body,
                gzip,
                authorization,
                started,
            );
        }
        (&Method::PUT | &Method::POST, ["_index_template", name]) => {
            match serde_json::from_slice::<Value>(&body) {
                Ok(t) if t.get("index_patterns").is_some() => {
                    lock(shared).templates.insert((*name).to_string(), t);
                    (200, json!({"acknowledged": true}))
                }
                _ => error_body(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: index patterns are missing;",
                ),
            }
        }
        (&Method::GET, ["_index_template", name]) => match lock(shared).templates.get(*name) {
            Some(t) => (
                200,
                json!({"index_templates": [{"name": name, "index_template": t}]}),
            ),
            None => error_body(
                404,
                "resource_not_found_exception",
                &format!("index template matching [{name}] not found"),
            ),
        },
        (&Method::POST | &Method::GET, [index, "_refresh"]) => (
            200,
            json!({"_shards": {"total": 1, "successful": 1, "failed": 0}, "index": index}),
        ),
        (&Method::GET | &Method::POST, [index, "_count"]) => match lock(shared).streams.get(*index)
        {
            Some(s) => (
                200,
                json!({"count": s.documents.len(), "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}}),
            ),
            None => error_body(
                404,
                "index_not_found_exception",
                &format!("no such index [{index}]"),
            ),
        },
        (&Method::DELETE, ["_data_stream", name]) => match lock(shared).streams.remove(*name) {
            Some(_) => (200, json!({"acknowledged": true})),
            None => error_body(
                404,
                "index_not_found_exception",
                &format!("no such index [{name}]"),
            ),
        },
        _ => error_body(
            400,
            "illegal_argument_exception",
            &format!("no handler found for uri [{path}] and method [{method}]"),
        ),
    };
    Ok(answer(status, &body))
}

#[allow(clippy::too_many_arguments)]
fn bulk(
    shared: &Shared,
    headers: &hyper::HeaderMap,
    default_index: Option<&str>,
    wire: &[u8],
    body: Vec<u8>,
    gzip: bool,
    authorization: Option<String>,
    started: Instant,
) -> Result<Answer, Cut> {
    let mut state = lock(shared);
    let mut record = BulkRecord {
        gzip,
        wire_bytes: wire.len(),
        body_bytes: body.len(),
        actions: 0,
        auth_scheme: authorization.and_then(|a| a.split_whitespace().next().map(str::to_string)),
        status: 0,
    };
    let content_type = headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (status, answer_body) = if state.faults.fail_503 > 0 {
        state.faults.fail_503 -= 1;
        error_body(
            503,
            "cluster_block_exception",
            "blocked by: [SERVICE_UNAVAILABLE/2/no master];",
        )
    } else if !content_type.starts_with("application/x-ndjson")
        && !content_type.starts_with("application/json")
    {
        error_body(
            406,
            "illegal_argument_exception",
            &format!("Content-Type header [{content_type}] is not supported"),
        )
    } else if state
        .faults
        .max_content_length
        .is_some_and(|max| body.len() > max)
    {
        record.status = 413;
        state.requests.push(record);
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
        return Ok(response);
    } else {
        let today = today();
        match apply(&mut state, &body, default_index, &today) {
            Ok((mut answer, actions)) => {
                record.actions = actions;
                if let Some(took) = answer.get_mut("took") {
                    *took = json!(started.elapsed().as_millis() as u64);
                }
                if state.faults.cut > 0 {
                    state.faults.cut -= 1;
                    state.requests.push(record);
                    return Err(Cut);
                }
                (200, answer)
            }
            Err(e) => e,
        }
    };
    record.status = status;
    state.requests.push(record);
    Ok(answer(status, &answer_body))
}

fn today() -> String {
    let format = time::macros::format_description!("[year].[month].[day]");
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_else(|_| "1970.01.01".into())
}

/// The 401 answer's body when the request's credentials are missing or wrong.
fn check_auth(
    state: &State,
    authorization: Option<&str>,
    method: &Method,
    path: &str,
) -> Option<Value> {
    let required = state.auth.as_ref()?;
    let request = format!("REST request [{path}]");
    let refusal = |reason: String| {
        let header =
            json!({"WWW-Authenticate": ["Basic realm=\"security\", charset=\"UTF-8\"", "ApiKey"]});
        json!({
            "error": {
                "root_cause": [{"type": "security_exception", "reason": reason, "header": header}],
                "type": "security_exception",
                "reason": reason,
                "header": header,
            },
            "status": 401,
        })
    };
    let _ = method;
    let Some(given) = authorization else {
        return Some(refusal(format!(
            "missing authentication credentials for {request}"
        )));
    };
    let (scheme, value) = given.split_once(' ').unwrap_or((given, ""));
    match scheme {
        "ApiKey" => match required {
            Auth::ApiKey(key) if value == key => None,
            _ => Some(refusal(
                "unable to authenticate with provided credentials and anonymous access is not allowed for this request".into(),
            )),
        },
        "Basic" => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            let (u, p) = decoded.split_once(':').unwrap_or((&decoded, ""));
            match required {
                Auth::Basic(user, password) if u == user && p == password => None,
                _ => Some(refusal(format!("unable to authenticate user [{u}] for {request}"))),
            }
        }
        _ => Some(refusal(format!("missing authentication credentials for {request}"))),
    }
}
