//! Token benches: cache hits (one task, 64 tasks), assertion signing, and a cold cache under
//! 1000 concurrent callers (which must send exactly one token request).
//!
//! The clients use the system clock, as in production: a `ManualClock` would add its own mutex
//! to every cache hit and measure the test double instead of the cache.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use salesforce_jwt::assertion::{self, Claims};
use salesforce_jwt::{JwtBearerClient, JwtBearerConfig, SigningKey};
use serde_json::json;
use tokio::runtime::Runtime;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/test_rsa_pkcs8.pem"
);
const TASKS: usize = 64;
const CALLS_PER_TASK: usize = 1000;
const COLD_CALLERS: usize = 1000;

/// A token endpoint that counts requests and hands out a new token each time. (Signature checks
/// are the tests' business; here they would only add noise to the cold-cache figure.)
#[derive(Clone, Default)]
struct CountingEndpoint {
    requests: Arc<AtomicUsize>,
    instance_url: Arc<str>,
}

impl Respond for CountingEndpoint {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200).set_body_json(json!({
            "access_token": format!("00DXX0000000001AAA!AR.bench-{n}"),
            "scope": "api",
            "instance_url": &*self.instance_url,
            "id": "https://login.salesforce.com/id/00DXX0000000001AAA/005XX0000000001AAA",
            "token_type": "Bearer",
            "issued_at": "1700000000000",
        }))
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn token_server() -> (MockServer, CountingEndpoint) {
    let server = MockServer::start().await;
    let endpoint = CountingEndpoint {
        requests: Arc::default(),
        instance_url: server.uri().into(),
    };
    Mock::given(method("POST"))
        .and(path("/services/oauth2/token"))
        .respond_with(endpoint.clone())
        .mount(&server)
        .await;
    (server, endpoint)
}

fn config(server_uri: &str) -> JwtBearerConfig {
    JwtBearerConfig::builder()
        .audience_url("https://login.salesforce.com")
        .client_key_path(KEY)
        .username("integration@example.com")
        .client_id("3MVG9BenchConsumerKey")
        .instance_url(server_uri)
        .token_url(server_uri)
        .build()
        .unwrap()
}

fn cache_hits(c: &mut Criterion) {
    let rt = runtime();
    let (server, endpoint, client) = rt.block_on(async {
        let (server, endpoint) = token_server().await;
        let client = JwtBearerClient::new(config(&server.uri())).unwrap();
        client.access_token().await.unwrap();
        (server, endpoint, client)
    });

    let mut group = c.benchmark_group("access_token cache hit");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    group.bench_function("single task", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(client.access_token().await.unwrap()) })
    });

    group.sample_size(20);
    group.throughput(Throughput::Elements((TASKS * CALLS_PER_TASK) as u64));
    group.bench_function(format!("{TASKS} tasks x {CALLS_PER_TASK} calls"), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let client = client.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let tasks: Vec<_> = (0..TASKS)
                        .map(|_| {
                            let client = client.clone();
                            tokio::spawn(async move {
                                for _ in 0..CALLS_PER_TASK {
                                    black_box(client.access_token().await.unwrap());
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.unwrap();
                    }
                }
                start.elapsed()
            }
        })
    });
    group.finish();
    assert_eq!(
        endpoint.requests.load(Ordering::SeqCst),
        1,
        "cache hits sent token requests"
    );
    drop(server);
}

fn signing(c: &mut Criterion) {
    let key = SigningKey::from_pem_file(KEY).unwrap();
    let mut group = c.benchmark_group("assertion");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    // About 1 ms each: 50 samples fit the 3 s.
    group.sample_size(50);
    group.bench_function("Claims::new + sign (RS256, 2048-bit)", |b| {
        b.iter(|| {
            let claims = Claims::new(
                black_box("3MVG9BenchConsumerKey"),
                black_box("integration@example.com"),
                black_box("https://login.salesforce.com"),
                time::OffsetDateTime::now_utc(),
                Duration::from_secs(180),
            );
            black_box(assertion::sign(&claims, &key).unwrap())
        })
    });
    group.finish();
}

fn cold_cache(c: &mut Criterion) {
    let rt = runtime();
    let (server, endpoint) = rt.block_on(token_server());
    let config = config(&server.uri());
    // One HTTP client for all iterations, as a service would have; each iteration gets a new
    // JwtBearerClient and so a cold cache.
    let mut iterations = 0usize;
    let mut requests = 0usize;

    let mut group = c.benchmark_group("access_token cold cache");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    group.sample_size(10);
    group.throughput(Throughput::Elements(COLD_CALLERS as u64));
    group.bench_function(format!("{COLD_CALLERS} concurrent callers"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let client = JwtBearerClient::builder(config.clone()).build().unwrap();
                let before = endpoint.requests.load(Ordering::SeqCst);
                let start = Instant::now();
                rt.block_on(async {
                    let tasks: Vec<_> = (0..COLD_CALLERS)
                        .map(|_| {
                            let client = client.clone();
                            tokio::spawn(async move { client.access_token().await.unwrap() })
                        })
                        .collect();
                    let mut first = None;
                    for task in tasks {
                        let token = task.await.unwrap();
                        let first = first.get_or_insert_with(|| token.clone());
                        assert!(token.same_as(first), "callers got different tokens");
                    }
                });
                total += start.elapsed();
                let sent = endpoint.requests.load(Ordering::SeqCst) - before;
                assert_eq!(
                    sent, 1,
                    "{COLD_CALLERS} cold callers sent {sent} token requests"
                );
                iterations += 1;
                requests += sent;
            }
            total
        })
    });
    group.finish();
    println!(
        "cold cache: {iterations} rounds of {COLD_CALLERS} concurrent callers sent {requests} \
         token requests ({} per round)",
        requests as f64 / iterations.max(1) as f64
    );
    drop(server);
}

criterion_group!(benches, cache_hits, signing, cold_cache);
criterion_main!(benches);
