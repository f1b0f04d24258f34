//! The HTTP side: one `_bulk` request, the index template, and how answers are read.

use std::io::Write as _;
use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use url::Url;

use crate::config::{Credentials, EsConfig};
use crate::error::EsError;

/// A client of one cluster: its URL, credentials and TLS roots.
#[derive(Debug, Clone)]
pub struct EsClient {
    http: reqwest::Client,
    base: Url,
    authorization: Option<HeaderValue>,
    gzip: bool,
}

/// How one `_bulk` request ended, short of an answer to read.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Worth sending again whole: a 502/503/504/429, or the connection cut before the answer.
    Retry(String),
    /// 413: the body is over the cluster's limit.
    TooLarge,
    /// Anything else: a refusal that sending again cannot change.
    Fatal(EsError),
}

/// One item of a `_bulk` answer, whichever its action.
#[derive(Debug, Deserialize)]
pub(crate) struct ItemResult {
    #[serde(default)]
    pub _index: Option<String>,
    pub status: u16,
    #[serde(default)]
    pub error: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct BulkAnswer {
    pub items: Vec<std::collections::HashMap<String, ItemResult>>,
}

impl EsClient {
    /// A client for `config`'s cluster (reads the CA file).
    pub fn new(config: &EsConfig) -> Result<EsClient, EsError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(config.request_timeout)
            .user_agent(concat!(
                "salesforce-jwt-elasticsearch/",
                env!("CARGO_PKG_VERSION")
            ));
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|e| EsError::Config {
                field: "ca_file".into(),
                problem: format!("cannot read {}: {e}", path.display()),
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| EsError::Config {
                    field: "ca_file".into(),
                    problem: format!("{} holds no usable PEM certificate: {e}", path.display()),
                })?;
            if certs.is_empty() {
                return Err(EsError::Config {
                    field: "ca_file".into(),
                    problem: format!("{} holds no PEM certificate", path.display()),
                });
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| EsError::Config {
            field: "url".into(),
            problem: format!("cannot build the HTTP client: {e}"),
        })?;
        let authorization = match &config.credentials {
            Credentials::None => None,
            Credentials::ApiKey(key) => Some(format!("ApiKey {key}")),
            Credentials::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
        }
        .map(|value| {
            HeaderValue::from_str(&value)
                .map(|mut v| {
                    v.set_sensitive(true);
                    v
                })
                .map_err(|_| EsError::Config {
                    field: "credentials".into(),
                    problem: "hold characters an HTTP header cannot carry".into(),
                })
        })
        .transpose()?;
        Ok(EsClient {
            http,
            base: config.url.clone(),
            authorization,
            gzip: config.gzip,
        })
    }

    fn endpoint(&self, path: &str) -> Result<Url, EsError> {
        let mut base = self.base.as_str().trim_end_matches('/').to_string();
        base.push_str(path);
        Url::parse(&base).map_err(|e| EsError::Config {
            field: "url".into(),
            problem: format!("cannot make the URL of {path}: {e}"),
        })
    }

    fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, url);
        if let Some(auth) = &self.authorization {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        request
    }

    /// Sends one `_bulk` body (NDJSON, newline-terminated), gzip-compressed when configured.
    pub(crate) async fn bulk(&self, body: &[u8]) -> Result<BulkAnswer, SendError> {
        let url = self.endpoint("/_bulk").map_err(SendError::Fatal)?;
        let mut request = self
            .request(reqwest::Method::POST, url)
            .header(CONTENT_TYPE, "application/x-ndjson");
        let body = if self.gzip {
            request = request.header(CONTENT_ENCODING, "gzip");
            gzip(body).await.map_err(SendError::Fatal)?
        } else {
            body.to_vec()
        };
        let response = request.body(body).send().await.map_err(|e| {
            if is_tls_failure(&e) {
                SendError::Fatal(EsError::Request {
                    what: "_bulk".into(),
                    problem: format!(
                        "the TLS handshake failed ({}): if the cluster's certificate is signed \
                         by a CA of its own, give that CA's PEM file (es_ca_file, \
                         sf-ingest --es-ca-file)",
                        chain(&e)
                    ),
                })
            } else {
                SendError::Retry(format!("the request failed: {}", chain(&e)))
            }
        })?;
        let status = response.status();
        let text = response.bytes().await.map_err(|e| {
            SendError::Retry(format!("the answer was cut off ({status}): {}", chain(&e)))
        })?;
        match status {
            StatusCode::OK => serde_json::from_slice(&text).map_err(|e| {
                SendError::Fatal(EsError::Request {
                    what: "_bulk".into(),
                    problem: format!("the answer is not a _bulk response: {e}"),
                })
            }),
            StatusCode::PAYLOAD_TOO_LARGE => Err(SendError::TooLarge),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(SendError::Fatal(EsError::Auth {
                    status: status.as_u16(),
                    what: "_bulk".into(),
                    reason: reason(&text, status),
                }))
            }
            StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => Err(SendError::Retry(format!(
                "{status}: {}",
                reason(&text, status)
            ))),
            _ => Err(SendError::Fatal(EsError::Request {
                what: "_bulk".into(),
                problem: format!("{status}: {}", reason(&text, status)),
            })),
        }
    }

    /// `PUT /_index_template/{name}` with `body`.
    pub async fn put_index_template(
        &self,
        name: &str,
        body: &serde_json::Value,
    ) -> Result<(), EsError> {
        let what = format!("PUT /_index_template/{name}");
        let url = self.endpoint(&format!("/_index_template/{name}"))?;
        let response = self
            .request(reqwest::Method::PUT, url)
            .json(body)
            .send()
            .await
            .map_err(|e| EsError::Request {
                what: what.clone(),
                problem: chain(&e),
            })?;
        let status = response.status();
        let text = response.bytes().await.unwrap_or_default();
        match status {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(EsError::Auth {
                status: status.as_u16(),
                what,
                reason: reason(&text, status),
            }),
            _ => Err(EsError::Request {
                what,
                problem: format!("{status}: {}", reason(&text, status)),
            }),
        }
    }
}

/// Gzip, level 1, in slices with a yield between them: compressing a few MiB takes
/// milliseconds, and the batch is compressed where it lies rather than copied to a blocking
/// thread (a copy the memory bound has no room for).
async fn gzip(body: &[u8]) -> Result<Vec<u8>, EsError> {
    const SLICE: usize = 256 * 1024;
    let fail = |e: std::io::Error| EsError::Request {
        what: "_bulk".into(),
        problem: format!("cannot gzip the body: {e}"),
    };
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 5),
        flate2::Compression::fast(),
    );
    for slice in body.chunks(SLICE) {
        encoder.write_all(slice).map_err(fail)?;
        tokio::task::yield_now().await;
    }
    encoder.finish().map_err(fail)
}

/// Elasticsearch's `error.reason` (or `error.root_cause[0].reason`, or the body, or the status).
pub(crate) fn reason(body: &[u8], status: StatusCode) -> String {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let from_json = json.as_ref().and_then(|v| {
        let error = v.get("error")?;
        error
            .get("reason")
            .and_then(|r| r.as_str())
            .map(str::to_string)
            .or_else(|| error.as_str().map(str::to_string))
    });
    from_json.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("no reason given")
                .to_string()
        } else {
            text.chars().take(300).collect()
        }
    })
}

/// Whether `e` is a TLS failure (an untrusted certificate, a server that does not speak TLS),
/// which no retry can fix. rustls reports handshake failures as `InvalidData` I/O errors.
fn is_tls_failure(e: &reqwest::Error) -> bool {
    if !e.is_connect() {
        return false;
    }
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(cause) = source {
        let invalid_data = cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData);
        let text = cause.to_string().to_ascii_lowercase();
        if invalid_data
            || ["certificate", "tls", "handshake", "fatal alert"]
                .iter()
                .any(|w| text.contains(w))
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// An error and its sources on one line (reqwest's own message alone hides the cause).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
