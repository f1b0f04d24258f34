//! Which failures are retried and what they say: REQUEST_LIMIT_EXCEEDED (the daily allocation
//! or too many long requests at once) and transport failures that retrying does not heal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{
    AUDIENCE, CLIENT_ID, LIMITS, USERNAME, client, config, config_builder, fixture_path,
    manual_clock, ok_json, requests_to, rest_error, server_with_token_endpoint,
};
use salesforce_jwt::{ApiUsage, Error, InstanceRequest, JwtBearerClient, JwtBearerConfig};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

// ---- REQUEST_LIMIT_EXCEEDED: the daily allocation or too many long requests at once ----

fn limit_exceeded(message: &str, usage: &str) -> ResponseTemplate {
    rest_error(403, "REQUEST_LIMIT_EXCEEDED", message).insert_header("Sforce-Limit-Info", usage)
}

#[tokio::test]
async fn too_many_concurrent_long_requests_is_retried_with_backoff() {
    let clock = manual_clock();
    let (server, _endpoint) = server_with_token_endpoint(&clock).await;
    Mock::given(method("GET"))
        .and(path(LIMITS))
        .respond_with(limit_exceeded(
            "ConcurrentPerOrgLongTxn Limit exceeded.",
            "api-usage=18/5000",
        ))
        .up_to_n_times(2)
        .with_priority(1)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(LIMITS))
        .respond_with(ok_json())
        .expect(1)
        .mount(&server)
        .await;
    let client = client(config(&server.uri()), &clock);
    client.send(&InstanceRequest::get(LIMITS)).await.unwrap();
    assert_eq!(clock.slept().len(), 2, "two backoffs before the third try");
    server.verify().await;
}

#[tokio::test]
async fn a_persistent_concurrency_limit_is_a_retryable_error_with_the_usage() {
    let clock = manual_clock();
    let (server, _endpoint) = server_with_token_endpoint(&clock).await;
    // Salesforce's message may not say which limit: usage below the daily limit tells.
    Mock::given(method("GET"))
        .and(path(LIMITS))
        .respond_with(limit_exceeded("Limit exceeded.", "api-usage=4200/5000"))
        .mount(&server)
        .await;
    let client = client(
        config_builder(&server.uri())
            .retry_policy(salesforce_jwt::RetryPolicy {
                max_attempts: 3,
                ..Default::default()
            })
            .build()
            .unwrap(),
        &clock,
    );
    let error = client
        .send(&InstanceRequest::get(LIMITS))
        .await
        .unwrap_err();
    assert!(error.is_retryable());
    match &error {
        Error::ConcurrentRequestLimit { message, usage } => {
            assert_eq!(message, "Limit exceeded.");
            assert_eq!(
                *usage,
                Some(ApiUsage {
                    used: 4200,
                    limit: 5000
                })
            );
        }
        other => panic!("{other:?}"),
    }
    let text = error.to_string();
    assert!(text.contains("concurrent long-running requests"), "{text}");
    assert!(text.contains("4200/5000"), "{text}");
    assert_eq!(requests_to(&server, LIMITS).await.len(), 3);
}

#[tokio::test]
async fn the_daily_limit_stops_at_once_whatever_the_message_says() {
    let clock = manual_clock();
    let (server, _endpoint) = server_with_token_endpoint(&clock).await;
    Mock::given(method("GET"))
        .and(path(LIMITS))
        .respond_with(limit_exceeded("Limit exceeded.", "api-usage=5003/5000"))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(config(&server.uri()), &clock);
    let error = client
        .send(&InstanceRequest::get(LIMITS))
        .await
        .unwrap_err();
    assert!(!error.is_retryable());
    assert!(
        matches!(
            error,
            Error::RequestLimitExceeded {
                usage: Some(ApiUsage {
                    used: 5003,
                    limit: 5000
                }),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("rolling 24-hour"), "{error}");
    assert!(clock.slept().is_empty());
    server.verify().await;
}

// ---- transport failures that retrying does not heal ----

fn client_to_instance(
    server: &MockServer,
    instance: &str,
    clock: &salesforce_jwt::clock::ManualClock,
) -> JwtBearerClient {
    let config = JwtBearerConfig::builder()
        .audience_url(AUDIENCE)
        .client_key_path(fixture_path("test_rsa_pkcs8.pem"))
        .username(USERNAME)
        .client_id(CLIENT_ID)
        .instance_url(instance)
        .token_url(server.uri())
        .build()
        .unwrap();
    client(config, clock)
}

#[tokio::test]
async fn a_tls_failure_is_not_retried_and_shows_its_cause() {
    let clock = manual_clock();
    let (server, _endpoint) = server_with_token_endpoint(&clock).await;
    // https to a server that speaks plain http: the handshake fails.
    let instance = format!("https://{}", server.address());
    let client = client_to_instance(&server, &instance, &clock);
    let error = client
        .send(&InstanceRequest::get(LIMITS))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
    assert!(!error.is_retryable());
    assert!(clock.slept().is_empty(), "retried: {:?}", clock.slept());
    let text = error.to_string();
    // reqwest's own Display stops at "error sending request"; the cause is what helps.
    assert!(text.contains("received corrupt message"), "{text}");
    assert!(text.contains("TLS handshake failed"), "{text}");
}

/// A TLS server on loopback whose certificate (the self-signed fixture) no system trusts.
/// Returns its address and the number of connections it accepted.
fn untrusted_tls_server() -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::Read as _;

    let cert = CertificateDer::from_pem_file(fixture_path("test_rsa_cert.pem")).unwrap();
    let key = PrivateKeyDer::from_pem_file(fixture_path("test_rsa_pkcs8.pem")).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let connection = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            let mut stream = rustls::StreamOwned::new(connection, tcp);
            // Drives the handshake until the client gives up on the certificate.
            let _ = stream.read(&mut [0u8; 64]);
        }
    });
    (address, accepted)
}

#[tokio::test]
async fn an_untrusted_certificate_is_not_retried_and_says_so() {
    let clock = manual_clock();
    let (server, _endpoint) = server_with_token_endpoint(&clock).await;
    let (address, accepted) = untrusted_tls_server();
    let client = client_to_instance(&server, &format!("https://{address}"), &clock);
    let error = client
        .send(&InstanceRequest::get(LIMITS))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
    assert!(!error.is_retryable());
    assert!(clock.slept().is_empty(), "retried: {:?}", clock.slept());
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    let text = error.to_string();
    assert!(text.contains("certificate"), "{text}");
    assert!(text.contains("TLS handshake failed"), "{text}");
}

#[tokio::test]
async fn a_host_that_does_not_resolve_is_not_retried_within_the_call() {
    let clock = manual_clock();
    let (server, _endpoint) = server_with_token_endpoint(&clock).await;
    // `.invalid` never resolves (RFC 2606).
    let client = client_to_instance(&server, "https://salesforce-jwt-test.invalid", &clock);
    let error = client
        .send(&InstanceRequest::get(LIMITS))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
    assert!(clock.slept().is_empty(), "retried: {:?}", clock.slept());
    let text = error.to_string();
    assert!(text.contains("dns error"), "{text}");
    assert!(text.contains("does not resolve"), "{text}");
}

#[tokio::test]
async fn a_refused_connection_is_retried_and_shows_its_cause() {
    let clock = manual_clock();
    let (server, _endpoint) = server_with_token_endpoint(&clock).await;
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = client_to_instance(&server, &format!("http://127.0.0.1:{port}"), &clock);
    let error = client
        .send(&InstanceRequest::get(LIMITS))
        .await
        .unwrap_err();
    assert!(error.is_retryable());
    assert_eq!(clock.slept().len(), 4, "the default policy's five attempts");
    let text = error.to_string();
    assert!(text.contains("Connection refused"), "{text}");
}
