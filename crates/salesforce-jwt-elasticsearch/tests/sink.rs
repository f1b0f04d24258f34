//! The sink against the Elasticsearch double, or against a real cluster when
//! `SFJWT_TEST_ES_URL` names one (credentials from `ES_API_KEY`, or `ES_USERNAME` and
//! `ES_PASSWORD`). Tests that need fault injection (503s, cuts, 429s, 413s, wrong credentials)
//! run against the double only and say so when skipped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use salesforce_jwt_elasticsearch::testing::EsDouble;
use salesforce_jwt_elasticsearch::{
    Credentials, EsConfig, EsSink, RetryPolicy, data_stream_name, index_template,
};
use serde_json::{Value, json};

/// Where the tests send: the double, or a real cluster.
struct Target {
    double: Option<EsDouble>,
    url: String,
    credentials: Credentials,
    /// A namespace of this test's own, so that tests against one cluster do not meet.
    namespace: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn target() -> Target {
    let namespace = format!(
        "t{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    match std::env::var("SFJWT_TEST_ES_URL") {
        Ok(url) if !url.is_empty() => {
            let env = |name: &str| std::env::var(name).ok();
            let credentials =
                Credentials::from_env(&env, "ES_API_KEY", "ES_USERNAME", "ES_PASSWORD").unwrap();
            Target {
                double: None,
                url,
                credentials,
                namespace,
            }
        }
        _ => {
            let double = EsDouble::start().unwrap();
            Target {
                url: double.url(),
                double: Some(double),
                credentials: Credentials::None,
                namespace,
            }
        }
    }
}

/// The double, or `None` (with a note) against a real cluster.
fn double_only(test: &str) -> Option<Target> {
    let t = target();
    if t.double.is_none() {
        eprintln!(
            "{test}: skipped against SFJWT_TEST_ES_URL: it needs the double's fault injection"
        );
        return None;
    }
    Some(t)
}

impl Target {
    fn config(&self) -> EsConfig {
        let mut config = EsConfig::new(&self.url)
            .unwrap()
            .credentials(self.credentials.clone())
            .namespace(self.namespace.clone());
        config.retry = RetryPolicy {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(20),
            attempts: 8,
        };
        config
    }

    fn sink(&self) -> EsSink {
        EsSink::new(&self.config()).unwrap()
    }

    fn stream(&self, dataset: &str) -> String {
        data_stream_name(dataset, &self.namespace)
    }

    fn http(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    fn authorize(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.credentials {
            Credentials::None => r,
            Credentials::ApiKey(k) => r.header("Authorization", format!("ApiKey {k}")),
            Credentials::Basic { username, password } => r.basic_auth(username, Some(password)),
        }
    }

    /// The documents in `stream`, counted by `_count` after `_refresh` (0 when it does not exist).
    async fn count(&self, stream: &str) -> u64 {
        let http = self.http();
        let _ = self
            .authorize(http.post(format!("{}/{stream}/_refresh", self.url)))
            .send()
            .await
            .unwrap();
        let response = self
            .authorize(http.get(format!("{}/{stream}/_count", self.url)))
            .send()
            .await
            .unwrap();
        if response.status() == 404 {
            return 0;
        }
        let body: Value = response.json().await.unwrap();
        body["count"].as_u64().unwrap()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if self.double.is_some() {
            return;
        }
        // Best effort: this test's data streams on the real cluster.
        let (url, ns, creds) = (
            self.url.clone(),
            self.namespace.clone(),
            self.credentials.clone(),
        );
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut r =
                    reqwest::Client::new().delete(format!("{url}/_data_stream/logs-*-{ns}"));
                r = match creds {
                    Credentials::ApiKey(k) => r.header("Authorization", format!("ApiKey {k}")),
                    Credentials::Basic { username, password } => {
                        r.basic_auth(username, Some(password))
                    }
                    Credentials::None => r,
                };
                let _ = r.send().await;
            });
        })
        .join();
    }
}

/// An ECS document of `dataset` with `event.id` `id`.
fn doc(dataset: &str, id: &str, extra: Value) -> Vec<u8> {
    let mut d = json!({
        "@timestamp": "2026-12-07T10:00:00.000Z",
        "ecs": {"version": "8.11.0"},
        "event": {"kind": "event", "module": "salesforce", "dataset": dataset, "id": id},
        "message": format!("row {id}"),
    });
    if let (Some(d), Some(extra)) = (d.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            d.insert(k.clone(), v.clone());
        }
    }
    serde_json::to_vec(&d).unwrap()
}

async fn send(sink: &mut EsSink, dataset: &str, ids: impl IntoIterator<Item = String>) {
    for id in ids {
        sink.add_document(&doc(dataset, &id, json!({})))
            .await
            .unwrap();
    }
    sink.flush().await.unwrap();
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:05}")).collect()
}

/// The sink's error, as the collector reports it (the library keeps the source as an
/// `Arc<dyn Error>`, so its text is what can be checked).
fn text(e: &salesforce_jwt::Error) -> String {
    assert!(matches!(e, salesforce_jwt::Error::Sink { .. }), "{e:?}");
    e.to_string()
}

#[tokio::test]
async fn documents_go_to_their_data_stream_with_event_id_as_id_and_backing_indices_are_named() {
    let t = target();
    let mut sink = t.sink();
    send(&mut sink, "salesforce.login", ids("l", 30)).await;
    send(&mut sink, "salesforce.apex", ids("a", 5)).await;
    assert_eq!(t.count(&t.stream("salesforce.login")).await, 30);
    assert_eq!(t.count(&t.stream("salesforce.apex")).await, 5);
    assert_eq!(
        (sink.stats().created, sink.stats().already_delivered),
        (35, 0)
    );
    if let Some(double) = &t.double {
        let stream = double.stream(&t.stream("salesforce.login")).unwrap();
        assert!(stream.data_stream);
        assert!(
            stream
                .backing_index
                .starts_with(&format!(".ds-logs-salesforce.login-{}-", t.namespace))
                && stream.backing_index.ends_with("-000001"),
            "{}",
            stream.backing_index
        );
        let docs = double.documents(&t.stream("salesforce.login"));
        assert_eq!(docs[0].0, "l00000");
        assert_eq!(docs[0].1["event"]["id"], "l00000");
    }
}

#[tokio::test]
async fn data_stream_fields_route_before_event_dataset() {
    let t = target();
    let mut sink = t.sink();
    let d = doc(
        "salesforce.login",
        "x1",
        json!({"data_stream": {"type": "logs", "dataset": "salesforce.logout", "namespace": t.namespace}}),
    );
    sink.add_document(&d).await.unwrap();
    sink.flush().await.unwrap();
    assert_eq!(t.count(&t.stream("salesforce.logout")).await, 1);
    assert_eq!(t.count(&t.stream("salesforce.login")).await, 0);
}

#[tokio::test]
async fn a_second_delivery_is_absorbed_by_409s_and_stores_nothing_twice() {
    let t = target();
    let mut sink = t.sink();
    send(&mut sink, "salesforce.login", ids("r", 20)).await;
    let mut again = t.sink();
    send(&mut again, "salesforce.login", ids("r", 25)).await;
    assert_eq!(
        (again.stats().created, again.stats().already_delivered),
        (5, 20)
    );
    assert_eq!(t.count(&t.stream("salesforce.login")).await, 25);
}

#[tokio::test]
async fn three_503s_in_a_row_and_two_cut_connections_are_ridden_out() {
    let Some(t) = double_only("three_503s_and_two_cuts") else {
        return;
    };
    let double = t.double.as_ref().unwrap();
    let mut sink = t.sink();
    double.fail_requests(3);
    double.cut_connections(2);
    send(&mut sink, "salesforce.login", ids("f", 40)).await;
    let requests = double.requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [503, 503, 503, 0, 0, 200],
        "503s, two cuts (applied), then the answer"
    );
    assert_eq!(double.documents(&t.stream("salesforce.login")).len(), 40);
    // The cut requests had landed: the last send met them as 409s.
    assert_eq!(
        (sink.stats().created, sink.stats().already_delivered),
        (0, 40)
    );
}

#[tokio::test]
async fn retries_run_out_with_an_error_naming_the_last_failure() {
    let Some(t) = double_only("retries_run_out") else {
        return;
    };
    let double = t.double.as_ref().unwrap();
    let mut sink = t.sink();
    double.fail_requests(100);
    sink.add_document(&doc("salesforce.login", "e1", json!({})))
        .await
        .unwrap();
    let error = sink.flush().await.unwrap_err();
    assert!(
        text(&error).contains("still failing after 8 attempts"),
        "{error}"
    );
    assert!(error.to_string().contains("503"), "{error}");
    assert!(!error.is_retryable());
    assert_eq!(double.document_count(), 0);
}

#[tokio::test]
async fn items_answered_429_are_sent_again_alone() {
    let Some(t) = double_only("items_answered_429") else {
        return;
    };
    let double = t.double.as_ref().unwrap();
    let mut sink = t.sink();
    double.reject_items(3);
    send(&mut sink, "salesforce.login", ids("q", 10)).await;
    let actions: Vec<usize> = double.requests().iter().map(|r| r.actions).collect();
    assert_eq!(
        actions,
        [10, 3],
        "the retry carried only the rejected items"
    );
    assert_eq!(sink.stats().item_retries, 3);
    assert_eq!(
        (sink.stats().created, sink.stats().already_delivered),
        (10, 0)
    );
    assert_eq!(double.documents(&t.stream("salesforce.login")).len(), 10);
}

#[tokio::test]
async fn a_413_splits_the_request_and_a_document_too_large_alone_is_refused() {
    let Some(t) = double_only("413") else { return };
    let double = t.double.as_ref().unwrap();
    let mut sink = t.sink();
    let one = doc("salesforce.login", "s00000", json!({})).len() + 100;
    double.set_max_content_length(Some(one * 3));
    send(&mut sink, "salesforce.login", ids("s", 10)).await;
    assert_eq!(double.documents(&t.stream("salesforce.login")).len(), 10);
    assert!(double.requests().iter().any(|r| r.status == 413));
    assert!(
        double
            .requests()
            .iter()
            .filter(|r| r.status == 200)
            .all(|r| r.body_bytes <= one * 3)
    );

    let big = doc(
        "salesforce.login",
        "big",
        json!({"pad": "x".repeat(one * 4)}),
    );
    sink.add_document(&big).await.unwrap();
    let error = sink.flush().await.unwrap_err();
    assert!(
        text(&error).contains("event.id big") && text(&error).contains("(413 "),
        "{error}"
    );
}

#[tokio::test]
async fn a_mapping_conflict_stops_with_the_id_and_elasticsearchs_reason() {
    let t = target();
    let mut sink = t.sink();
    sink.add_document(&doc("salesforce.login", "m1", json!({"labels": {"n": 1}})))
        .await
        .unwrap();
    sink.flush().await.unwrap();
    // A value where an object is mapped: refused whatever index.mapping.ignore_malformed says
    // (the built-in logs template of Elasticsearch 8 turns it on).
    sink.add_document(&doc("salesforce.login", "m2", json!({"labels": "flat"})))
        .await
        .unwrap();
    sink.add_document(&doc("salesforce.login", "m3", json!({})))
        .await
        .unwrap();
    let error = sink.flush().await.unwrap_err();
    let message = text(&error);
    let expected = format!(
        "event.id m2 for {} for good (400 ",
        t.stream("salesforce.login")
    );
    assert!(message.contains(&expected), "{message}");
    // mapper_parsing_exception (the double, OpenSearch, Elasticsearch 7) or
    // document_parsing_exception (Elasticsearch 8).
    assert!(
        message.contains("parsing_exception") && message.contains("[labels]"),
        "{message}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn with_a_dead_letter_file_a_refused_document_is_set_aside_and_the_rest_delivered() {
    let t = target();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead.ndjson");
    let mut config = t.config();
    config.dead_letter = Some(path.clone());
    let mut sink = EsSink::new(&config).unwrap();
    sink.add_document(&doc("salesforce.login", "d1", json!({"labels": {"n": 1}})))
        .await
        .unwrap();
    sink.flush().await.unwrap();
    for (id, labels) in [("d2", json!("text")), ("d3", json!({"n": 3}))] {
        sink.add_document(&doc("salesforce.login", id, json!({"labels": labels})))
            .await
            .unwrap();
    }
    sink.flush().await.unwrap();
    let lines: Vec<Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["_id"], "d2");
    assert_eq!(lines[0]["status"], 400);
    assert_eq!(lines[0]["document"]["labels"], "text");
    assert!(
        lines[0]["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("[labels]")
    );
    assert_eq!(sink.stats().dead_lettered, 1);
    assert_eq!(t.count(&t.stream("salesforce.login")).await, 2);
}

#[tokio::test]
async fn wrong_or_missing_credentials_end_with_the_401_reason_and_nothing_stored() {
    let Some(t) = double_only("wrong_credentials") else {
        return;
    };
    let double = t.double.as_ref().unwrap();
    double.require_api_key("right-key");
    for (credentials, expected) in [
        (
            Credentials::ApiKey("wrong-key".into()),
            "unable to authenticate with provided credentials",
        ),
        (Credentials::None, "missing authentication credentials"),
        (
            Credentials::Basic {
                username: "elastic".into(),
                password: "nope".into(),
            },
            "unable to authenticate user [elastic]",
        ),
    ] {
        let mut sink = EsSink::new(&t.config().credentials(credentials)).unwrap();
        sink.add_document(&doc("salesforce.login", "w1", json!({})))
            .await
            .unwrap();
        let error = sink.flush().await.unwrap_err();
        assert!(
            text(&error).contains("Elasticsearch answered 401 to _bulk"),
            "{error}"
        );
        assert!(error.to_string().contains(expected), "{error}");
        assert!(!error.to_string().contains("wrong-key") && !error.to_string().contains("nope"));
    }
    assert_eq!(double.document_count(), 0);
    assert_eq!(
        double.requests().len(),
        0,
        "refused before the body was read"
    );
}

#[tokio::test]
async fn api_keys_and_basic_credentials_are_sent_as_elasticsearch_expects() {
    let Some(t) = double_only("credentials") else {
        return;
    };
    let double = t.double.as_ref().unwrap();
    double.require_api_key("a2V5OnNlY3JldA==");
    let mut sink = EsSink::new(
        &t.config()
            .credentials(Credentials::ApiKey("a2V5OnNlY3JldA==".into())),
    )
    .unwrap();
    send(&mut sink, "salesforce.login", ids("k", 2)).await;
    double.require_basic("elastic", "changeme");
    let basic = Credentials::Basic {
        username: "elastic".into(),
        password: "changeme".into(),
    };
    assert!(!format!("{basic:?}").contains("changeme"));
    let mut sink = EsSink::new(&t.config().credentials(basic)).unwrap();
    send(&mut sink, "salesforce.login", ids("b", 2)).await;
    let schemes: Vec<Option<String>> = double
        .requests()
        .into_iter()
        .map(|r| r.auth_scheme)
        .collect();
    assert_eq!(schemes, [Some("ApiKey".into()), Some("Basic".into())]);
    assert_eq!(double.documents(&t.stream("salesforce.login")).len(), 4);
}

#[tokio::test]
async fn bodies_are_gzipped_and_every_request_stays_under_the_byte_bound() {
    let Some(t) = double_only("gzip_and_bounds") else {
        return;
    };
    let double = t.double.as_ref().unwrap();
    let mut config = t.config();
    config.max_batch_bytes = 64 * 1024;
    let mut sink = EsSink::new(&config).unwrap();
    for id in ids("g", 2000) {
        sink.add_document(&doc(
            "salesforce.login",
            &id,
            json!({"pad": "y".repeat(400)}),
        ))
        .await
        .unwrap();
    }
    sink.flush().await.unwrap();
    let requests = double.requests();
    assert!(requests.len() >= 10, "{} requests", requests.len());
    for r in &requests {
        assert!(r.gzip);
        assert!(r.body_bytes <= 64 * 1024, "{} bytes", r.body_bytes);
        assert!(
            r.wire_bytes * 4 < r.body_bytes,
            "compressed: {} of {}",
            r.wire_bytes,
            r.body_bytes
        );
    }
    assert_eq!(double.documents(&t.stream("salesforce.login")).len(), 2000);

    config.gzip = false;
    let mut plain = EsSink::new(&config).unwrap();
    send(&mut plain, "salesforce.login", ids("p", 3)).await;
    let last = double.requests().pop().unwrap();
    assert!(!last.gzip && last.wire_bytes == last.body_bytes);
}

#[tokio::test]
async fn the_index_template_types_fields_before_the_first_document() {
    let t = target();
    let client = t.sink().client().clone();
    // Without the template the first document fixes user.roles as a number (and a later
    // "admin" is left unindexed, or refused where ignore_malformed is off)...
    let mut sink = t.sink();
    sink.add_document(&doc("salesforce.apex", "u1", json!({"user": {"roles": 5}})))
        .await
        .unwrap();
    sink.flush().await.unwrap();
    // ...with it, the field is a keyword whatever comes first.
    client
        .put_index_template("logs-salesforce", &index_template())
        .await
        .unwrap();
    let mut sink = t.sink();
    sink.add_document(&doc(
        "salesforce.login",
        "u3",
        json!({"user": {"roles": 5}}),
    ))
    .await
    .unwrap();
    sink.add_document(&doc(
        "salesforce.login",
        "u4",
        json!({"user": {"roles": "admin"}}),
    ))
    .await
    .unwrap();
    // A numeric field with "N/A" after numbers: kept, as ignore_malformed.
    sink.add_document(&doc(
        "salesforce.login",
        "u5",
        json!({"http": {"response": {"bytes": "N/A"}}}),
    ))
    .await
    .unwrap();
    sink.flush().await.unwrap();
    assert_eq!(t.count(&t.stream("salesforce.login")).await, 3);
    if let Some(double) = &t.double {
        assert_eq!(
            double
                .stream(&t.stream("salesforce.apex"))
                .unwrap()
                .mappings["user.roles"],
            "long"
        );
        let stream = double.stream(&t.stream("salesforce.login")).unwrap();
        assert_eq!(stream.mappings["source.ip"], "ip");
        assert_eq!(stream.mappings["user.roles"], "keyword");
        assert!(stream.ignore_malformed);
    }
}

/// The double's answers, byte for byte in the shapes Elasticsearch documents.
#[tokio::test]
async fn the_double_answers_bulk_as_elasticsearch_documents_it() {
    let Some(t) = double_only("double_shapes") else {
        return;
    };
    let http = reqwest::Client::new();
    let stream = t.stream("salesforce.login");
    let body = format!(
        "{{\"create\":{{\"_index\":\"{stream}\",\"_id\":\"1\"}}}}\n{{\"@timestamp\":\"2026-01-01T00:00:00Z\",\"o\":{{\"n\":1}}}}\n\
         {{\"create\":{{\"_index\":\"{stream}\",\"_id\":\"1\"}}}}\n{{\"@timestamp\":\"2026-01-01T00:00:00Z\",\"n\":1}}\n\
         {{\"index\":{{\"_index\":\"{stream}\",\"_id\":\"2\"}}}}\n{{\"@timestamp\":\"2026-01-01T00:00:00Z\"}}\n\
         {{\"create\":{{\"_index\":\"{stream}\",\"_id\":\"3\"}}}}\n{{\"@timestamp\":\"2026-01-01T00:00:00Z\",\"o\":\"x\"}}\n"
    );
    let answer: Value = http
        .post(format!("{}/_bulk", t.url))
        .header("Content-Type", "application/x-ndjson")
        .body(body.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["errors"], true);
    assert!(answer["took"].is_u64());
    let items = answer["items"].as_array().unwrap();
    let created = &items[0]["create"];
    assert!(
        created["_index"]
            .as_str()
            .unwrap()
            .starts_with(&format!(".ds-{stream}-"))
    );
    assert_eq!(
        (
            created["_id"].clone(),
            created["status"].clone(),
            created["result"].clone()
        ),
        (json!("1"), json!(201), json!("created"))
    );
    assert_eq!(created["_shards"]["failed"], 0);
    assert_eq!(items[1]["create"]["status"], 409);
    assert_eq!(
        items[1]["create"]["error"]["type"],
        "version_conflict_engine_exception"
    );
    assert_eq!(items[2]["index"]["status"], 400);
    assert!(
        items[2]["index"]["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("op_type of create")
    );
    assert_eq!(items[3]["create"]["status"], 400);
    assert_eq!(
        items[3]["create"]["error"]["type"],
        "mapper_parsing_exception"
    );

    let unterminated = http
        .post(format!("{}/_bulk", t.url))
        .header("Content-Type", "application/x-ndjson")
        .body(body.trim_end().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(unterminated.status(), 400);
    let error: Value = unterminated.json().await.unwrap();
    assert!(
        error["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("terminated by a newline")
    );
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[tokio::test]
async fn https_trusts_a_ca_file_and_refuses_an_unknown_issuer_at_once() {
    let Some(_) = double_only("https") else {
        return;
    };
    let double = EsDouble::start_tls(
        &std::fs::read(fixture("server.pem")).unwrap(),
        &std::fs::read(fixture("server.key")).unwrap(),
    )
    .unwrap();
    assert!(double.url().starts_with("https://127.0.0.1:"));
    let mut config = EsConfig::new(&double.url()).unwrap();
    config.retry = RetryPolicy {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(20),
        attempts: 8,
    };
    // The system's roots do not know the test CA: refused without retrying.
    let mut sink = EsSink::new(&config).unwrap();
    sink.add_document(&doc("salesforce.login", "h1", json!({})))
        .await
        .unwrap();
    let error = sink.flush().await.unwrap_err().to_string();
    assert!(
        error.contains("TLS handshake failed") && error.contains("es_ca_file"),
        "{error}"
    );
    assert_eq!(sink.stats().requests, 1, "not retried");

    config.ca_file = Some(fixture("ca.pem"));
    let mut sink = EsSink::new(&config).unwrap();
    send(&mut sink, "salesforce.login", ids("h", 3)).await;
    assert_eq!(double.documents("logs-salesforce.login-default").len(), 3);
}
