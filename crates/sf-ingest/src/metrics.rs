//! `--metrics-addr`: Prometheus metrics at `/metrics`, liveness at `/healthz`.
//!
//! The figures are the library's ([`DeliveryFigures`] per collector, the client's last
//! `Sforce-Limit-Info`); this module turns them into metric families at each scrape, and adds
//! what only the program knows (passes that succeeded, errors, leases held).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use salesforce_jwt::collect::DeliveryFigures;
use salesforce_jwt::{Error, JwtBearerClient};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::plan::OrgPlan;

/// What `sf-ingest healthcheck` asks without an argument (9464 is Prometheus' customary port
/// for exporters of this kind).
pub const DEFAULT_HEALTH_URL: &str = "http://127.0.0.1:9464/healthz";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    org: String,
    source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    org: String,
    source: String,
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OrgLabels {
    org: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric of this process. Counters start at zero with the process.
pub struct Metrics {
    registry: Registry,
    rows: Family<SourceLabels, Counter>,
    bytes: Family<SourceLabels, Counter>,
    lag: Family<SourceLabels, FloatGauge>,
    last_success: Family<SourceLabels, FloatGauge>,
    errors: Family<ErrorLabels, Counter>,
    lease_held: Family<SourceLabels, Gauge>,
    api_usage: Family<OrgLabels, FloatGauge>,
    collectors_live: Gauge,
    /// Each org task's figures (several tasks per org in PostgreSQL mode, one per source).
    figures: Mutex<Vec<(String, DeliveryFigures)>>,
    /// Each org task's current client, by (org, task): a retry replaces its task's client.
    clients: Mutex<HashMap<(String, String), JwtBearerClient>>,
    /// Held while the counters catch up with the figures, so that two scrapes at once cannot
    /// both add the same difference.
    render: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let rows = Family::<SourceLabels, Counter>::default();
        let bytes = Family::<SourceLabels, Counter>::default();
        let lag = Family::<SourceLabels, FloatGauge>::default();
        let last_success = Family::<SourceLabels, FloatGauge>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let lease_held = Family::<SourceLabels, Gauge>::default();
        let api_usage = Family::<OrgLabels, FloatGauge>::default();
        let collectors_live = Gauge::default();
        // Counters are registered without `_total`: the encoder adds it.
        registry.register(
            "sf_ingest_rows",
            "Rows delivered (committed to the output) since this process started",
            rows.clone(),
        );
        registry.register(
            "sf_ingest_bytes",
            "Bytes read from Salesforce for the delivered rows (EventLogFile CSV, object query \
             responses) since this process started",
            bytes.clone(),
        );
        registry.register(
            "sf_ingest_lag_seconds",
            "Now minus the time of the newest event delivered (for EventLogFile, the end of the \
             newest delivered file's LogDate period)",
            lag.clone(),
        );
        registry.register(
            "sf_ingest_last_success_timestamp_seconds",
            "Unix time of the end of the last pass that succeeded",
            last_success.clone(),
        );
        registry.register(
            "sf_ingest_errors",
            "Passes that failed, by kind of error",
            errors.clone(),
        );
        registry.register(
            "sf_ingest_lease_held",
            "1 while this process holds the (org, source) lease in PostgreSQL, else 0",
            lease_held.clone(),
        );
        registry.register(
            "sf_ingest_api_usage_ratio",
            "API requests used over the org's daily limit, from the last Sforce-Limit-Info header",
            api_usage.clone(),
        );
        registry.register(
            "sf_ingest_collectors_live",
            "Live sf-ingest processes sharing the PostgreSQL leases (heartbeats within their \
             TTL), this one included; 0 unless this process shares them (--follow with \
             PostgreSQL state)",
            collectors_live.clone(),
        );
        Metrics {
            registry,
            rows,
            bytes,
            lag,
            last_success,
            errors,
            lease_held,
            api_usage,
            collectors_live,
            figures: Mutex::new(Vec::new()),
            clients: Mutex::new(HashMap::new()),
            render: Mutex::new(()),
        }
    }

    /// The metrics of one org task, collecting `org.collect.sources`.
    /// How many collectors share this process's PostgreSQL leases, itself included.
    pub fn collectors_live(&self, live: usize) {
        self.collectors_live
            .set(i64::try_from(live).unwrap_or(i64::MAX));
    }

    pub fn org(self: &Arc<Self>, org: &OrgPlan) -> OrgMetrics {
        let sources: Vec<String> = org.collect.sources.iter().map(|s| s.to_string()).collect();
        let figures = DeliveryFigures::new();
        for source in &sources {
            // Listed at zero from the start, so that a dashboard sees the source before its
            // first row.
            figures.touch(source);
        }
        lock(&self.figures).push((org.name.clone(), figures.clone()));
        OrgMetrics {
            metrics: Arc::clone(self),
            org: org.name.clone(),
            current: sources.first().cloned().unwrap_or_default(),
            task: sources.join(","),
            sources,
            figures,
        }
    }

    /// The text exposition, with the counters brought up to the figures and the lag computed
    /// for `now`.
    pub fn render(&self, now: OffsetDateTime) -> String {
        let _one_at_a_time = lock(&self.render);
        let mut totals: BTreeMap<(String, String), (u64, u64, Option<OffsetDateTime>)> =
            BTreeMap::new();
        for (org, figures) in lock(&self.figures).iter() {
            for (source, f) in figures.snapshot() {
                let total = totals.entry((org.clone(), source)).or_default();
                total.0 += f.rows;
                total.1 += f.bytes;
                total.2 = total.2.max(f.newest_event);
            }
        }
        for ((org, source), (rows, bytes, newest)) in totals {
            let labels = SourceLabels { org, source };
            for (family, total) in [(&self.rows, rows), (&self.bytes, bytes)] {
                let counter = family.get_or_create(&labels);
                let shown = counter.get();
                if total > shown {
                    counter.inc_by(total - shown);
                }
            }
            if let Some(newest) = newest {
                let lag = (now - newest).as_seconds_f64().max(0.0);
                self.lag.get_or_create(&labels).set(lag);
            }
        }
        let mut usage: BTreeMap<String, f64> = BTreeMap::new();
        for ((org, _), client) in lock(&self.clients).iter() {
            if let Some(u) = client.last_api_usage().filter(|u| u.limit > 0) {
                let ratio = (u.used as f64 / u.limit as f64).clamp(0.0, 1.0);
                let entry = usage.entry(org.clone()).or_insert(ratio);
                *entry = entry.max(ratio);
            }
        }
        for (org, ratio) in usage {
            self.api_usage.get_or_create(&OrgLabels { org }).set(ratio);
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One org task's side of the metrics.
#[derive(Debug)]
pub struct OrgMetrics {
    metrics: Arc<Metrics>,
    org: String,
    task: String,
    sources: Vec<String>,
    /// The source a pass works on, for the label of its errors.
    current: String,
    figures: DeliveryFigures,
}

impl OrgMetrics {
    /// The figures a collector of this task counts into (shared by its successive collectors).
    pub fn figures(&self) -> DeliveryFigures {
        self.figures.clone()
    }

    /// The client whose `Sforce-Limit-Info` gives the org's API usage.
    pub fn client(&self, client: &JwtBearerClient) {
        lock(&self.metrics.clients).insert((self.org.clone(), self.task.clone()), client.clone());
    }

    /// The source a pass works on, from its progress: objects are named by their progress;
    /// anything else is EventLogFile, collected first.
    pub fn working_on(&mut self, current: Option<&str>) {
        match current {
            Some(name) if self.sources.iter().any(|s| s == name) => self.current = name.into(),
            Some(_) if self.sources.iter().any(|s| s == "EventLogFile") => {
                self.current = "EventLogFile".into();
            }
            _ => {}
        }
    }

    /// A pass of every source of the task ended without error at `now`.
    pub fn succeeded(&self, now: OffsetDateTime) {
        let seconds = now.unix_timestamp_nanos() as f64 / 1e9;
        for source in &self.sources {
            self.metrics
                .last_success
                .get_or_create(&self.labels(source))
                .set(seconds);
        }
    }

    /// A pass failed with `error`.
    pub fn failed(&self, error: &Error) {
        self.metrics
            .errors
            .get_or_create(&ErrorLabels {
                org: self.org.clone(),
                source: self.current.clone(),
                kind: error_kind(error).into(),
            })
            .inc();
    }

    /// Whether this process holds the lease of the task's source.
    pub fn lease(&self, held: bool) {
        for source in &self.sources {
            self.metrics
                .lease_held
                .get_or_create(&self.labels(source))
                .set(i64::from(held));
        }
    }

    fn labels(&self, source: &str) -> SourceLabels {
        SourceLabels {
            org: self.org.clone(),
            source: source.to_string(),
        }
    }
}

/// The `kind` label of an error: what to look at, in a few stable words.
pub fn error_kind(error: &Error) -> &'static str {
    match error {
        Error::Config(_) | Error::Key(_) | Error::InvalidArgument(_) => "config",
        Error::OAuth(_) | Error::SessionRefused { .. } => "auth",
        Error::RequestLimitExceeded { .. }
        | Error::ConcurrentRequestLimit { .. }
        | Error::ApiBudgetReached { .. } => "api_limit",
        Error::Api(_) | Error::UnexpectedResponse(_) | Error::ForeignUrl { .. } => "api",
        Error::Transport { .. }
        | Error::DownloadAborted { .. }
        | Error::TruncatedLogFile { .. } => "transport",
        Error::Csv { .. } => "data",
        Error::Checkpoint { .. } | Error::CheckpointStore { .. } => "checkpoint",
        Error::Sink { .. } | Error::Io { .. } => "output",
        _ => "other",
    }
}

/// Checks the form of a `--metrics-addr` / `metrics_addr` value: `HOST:PORT`.
pub fn check_addr(text: &str) -> Result<(), String> {
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!(
            "{text:?} is not HOST:PORT: write it like 127.0.0.1:9464 or [::]:9464 (port 0 picks a \
             free port)"
        )),
    }
}

/// Listens on `addr`; the error says what to change.
pub async fn bind(addr: &str, field: &str) -> Result<(TcpListener, SocketAddr), String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("{field}: cannot listen on {addr} ({e}); choose another address"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("{field}: cannot read the address bound for {addr} ({e})"))?;
    Ok((listener, bound))
}

/// Serves `/metrics` and `/healthz` until the process ends.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "the metrics endpoint cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = respond(&metrics, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            // A client that never finishes its request does not hold a connection forever.
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "a metrics connection ended with an error");
            }
        });
    }
}

fn respond<B>(metrics: &Metrics, request: &Request<B>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &'static str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(content_type),
        );
        response
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET\n".into(),
        );
    }
    match request.uri().path() {
        "/metrics" => reply(
            StatusCode::OK,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            metrics.render(OffsetDateTime::now_utc()),
        ),
        "/healthz" => reply(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into()),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: /metrics or /healthz\n".into(),
        ),
    }
}

/// `sf-ingest healthcheck URL`: `Ok` when `url` (plain `http://HOST:PORT/PATH`) answers 200
/// within a few seconds.
pub async fn healthcheck(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?}: only http:// URLs, like {DEFAULT_HEALTH_URL}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(authority)
            .await
            .map_err(|e| format!("{url}: cannot connect ({e})"))?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("{url}: cannot send the request ({e})"))?;
        let mut head = Vec::new();
        // The status line is all that matters; a bound keeps a strange server from feeding us.
        let mut reader = stream.take(4096);
        reader
            .read_to_end(&mut head)
            .await
            .map_err(|e| format!("{url}: cannot read the answer ({e})"))?;
        let text = String::from_utf8_lossy(&head);
        let status = text.lines().next().unwrap_or_default().to_string();
        match status.split_whitespace().nth(1) {
            Some("200") => Ok(()),
            _ => Err(format!("{url}: answered {status:?}, not 200")),
        }
    };
    tokio::time::timeout(Duration::from_secs(5), ask)
        .await
        .map_err(|_| format!("{url}: no answer within 5 seconds"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_need_a_host_and_a_port() {
        assert!(check_addr("127.0.0.1:9464").is_ok());
        assert!(check_addr("[::]:0").is_ok());
        assert!(check_addr("localhost:9464").is_ok());
        assert!(check_addr("9464").unwrap_err().contains("HOST:PORT"));
        assert!(check_addr("host:99999").is_err());
    }
}
