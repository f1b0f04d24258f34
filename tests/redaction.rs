//! Secrets never reach Debug or Display: not the private key, not the assertion, not the access
//! token. Where the output is stable it is pinned exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fmt::Debug;
use std::time::Duration;

use common::{
    TOKEN_PATH, access_token_for, client, config, config_builder, fixture, fixture_path,
    manual_clock, oauth_error, private_pem_body_lines, rest_error, server_with_token_endpoint,
    start_time,
};
use salesforce_jwt::assertion::{self, Claims};
use salesforce_jwt::{Error, InstanceRequest, JwtBearerClient, JwtBearerConfig, SigningKey};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Everything that must never be printed.
struct Secrets {
    strings: Vec<String>,
}

impl Secrets {
    fn new() -> Self {
        let mut strings = private_pem_body_lines();
        strings.extend((1..=20).map(access_token_for));
        // The distinctive part alone, in case a prefix were cut off.
        strings.push("fixture-access-token".into());
        Secrets { strings }
    }

    fn with_assertions(mut self, assertions: &[String]) -> Self {
        assert!(!assertions.is_empty());
        for jwt in assertions {
            strings_of_assertion(jwt, &mut self.strings);
        }
        self
    }

    #[track_caller]
    fn assert_absent(&self, what: &str, text: &str) {
        for secret in &self.strings {
            assert!(
                !text.contains(secret.as_str()),
                "{what} leaks {secret:?}:\n{text}"
            );
        }
    }

    /// Checks `{:?}`, `{:#?}` and, when given, Display.
    #[track_caller]
    fn check_debug(&self, what: &str, value: &impl Debug) {
        self.assert_absent(what, &format!("{value:?}"));
        self.assert_absent(what, &format!("{value:#?}"));
    }

    #[track_caller]
    fn check_error(&self, what: &str, error: &Error) {
        self.check_debug(what, error);
        self.assert_absent(what, &error.to_string());
        let mut source = std::error::Error::source(error);
        while let Some(s) = source {
            self.assert_absent(what, &s.to_string());
            source = s.source();
        }
    }
}

/// The whole JWT and its signature (the part that makes it usable).
fn strings_of_assertion(jwt: &str, into: &mut Vec<String>) {
    into.push(jwt.to_string());
    into.push(jwt.rsplit('.').next().unwrap().to_string());
}

fn pem_key() -> SigningKey {
    SigningKey::from_pem(fixture("test_rsa_pkcs1.pem")).unwrap()
}

fn fixed_config() -> JwtBearerConfig {
    JwtBearerConfig::builder()
        .audience_url("https://login.salesforce.com")
        .signing_key(pem_key())
        .username("integration@example.com")
        .client_id("3MVG9Consumer")
        .instance_url("https://acme.my.salesforce.com")
        .token_url("https://login.salesforce.com")
        .build()
        .unwrap()
}

#[test]
fn signing_key_debug_is_pinned() {
    let key = pem_key();
    assert_eq!(
        format!("{key:?}"),
        r#"SigningKey { origin: "the in-memory PEM", key: "** redacted **" }"#
    );
    let from_file = SigningKey::from_pem_file(fixture_path("test_rsa_pkcs8.pem")).unwrap();
    assert_eq!(
        format!("{from_file:?}"),
        format!(
            r#"SigningKey {{ origin: "file {}", key: "** redacted **" }}"#,
            fixture_path("test_rsa_pkcs8.pem").display()
        )
    );
    let secrets = Secrets::new();
    secrets.check_debug("SigningKey", &key);
    secrets.check_debug("SigningKey", &from_file);
}

#[test]
fn assertion_debug_is_pinned() {
    let claims = Claims::new(
        "3MVG9Consumer",
        "integration@example.com",
        "https://login.salesforce.com",
        start_time(),
        Duration::from_secs(180),
    );
    let signed = assertion::sign(&claims, &pem_key()).unwrap();
    assert_eq!(format!("{signed:?}"), "Assertion(** redacted **)");
    assert_eq!(format!("{signed:#?}"), "Assertion(** redacted **)");
    let mut secrets = Secrets::new();
    strings_of_assertion(signed.expose_secret(), &mut secrets.strings);
    secrets.check_debug("Assertion", &signed);
    // The claims are not secret (they are in the config), and their Debug is ordinary.
    assert!(format!("{claims:?}").contains("3MVG9Consumer"));
}

#[test]
fn config_debug_is_pinned() {
    let config = fixed_config();
    assert_eq!(
        format!("{config:?}"),
        "JwtBearerConfig { audience: \"https://login.salesforce.com\", \
         key: SigningKey { origin: \"the in-memory PEM\", key: \"** redacted **\" }, \
         username: \"integration@example.com\", client_id: \"3MVG9Consumer\", \
         instance_url: \"https://acme.my.salesforce.com/\", \
         token_url: \"https://login.salesforce.com/services/oauth2/token\", \
         api_version: \"64.0\", assertion_lifetime: 180s, session_lifetime: 7200s, \
         refresh_margin: 300s, http_timeout: 60s, retry: RetryPolicy { max_attempts: 5, \
         initial_backoff: 500ms, max_backoff: 30s, max_elapsed: 120s } }"
    );
    Secrets::new().check_debug("JwtBearerConfig", &config);
}

#[test]
fn config_builder_debug_is_pinned() {
    let builder = JwtBearerConfig::builder()
        .audience_url("https://login.salesforce.com")
        .client_key_pem(fixture("test_rsa_pkcs8.pem"))
        .username("integration@example.com")
        .client_id("3MVG9Consumer")
        .instance_url("https://acme.my.salesforce.com")
        .token_url("https://login.salesforce.com");
    assert_eq!(
        format!("{builder:?}"),
        "JwtBearerConfigBuilder { audience: Some(\"https://login.salesforce.com\"), \
         username: Some(\"integration@example.com\"), client_id: Some(\"3MVG9Consumer\"), \
         instance_url: Some(\"https://acme.my.salesforce.com\"), \
         token_url: Some(\"https://login.salesforce.com\"), key: \"** redacted **\", .. }"
    );
    let secrets = Secrets::new();
    secrets.check_debug("JwtBearerConfigBuilder", &builder);
    // A parsed key and a path are redacted the same way.
    secrets.check_debug(
        "JwtBearerConfigBuilder",
        &JwtBearerConfig::builder().signing_key(pem_key()),
    );
    secrets.check_debug(
        "JwtBearerConfigBuilder",
        &JwtBearerConfig::builder().client_key_path(fixture_path("test_rsa_pkcs1.pem")),
    );
}

#[tokio::test]
async fn access_token_and_client_debug_hold_no_secret() {
    let clock = manual_clock();
    let (server, endpoint) = server_with_token_endpoint(&clock).await;
    let client = client(
        config_builder(&server.uri())
            .client_key_pem(fixture("test_rsa_pkcs8.pem"))
            .build()
            .unwrap(),
        &clock,
    );
    let token = client.access_token().await.unwrap();
    assert_eq!(token.expose_secret(), access_token_for(1));
    let secrets = Secrets::new().with_assertions(&endpoint.assertions());

    let token_debug = format!(
        "AccessToken {{ token: \"** redacted **\", instance_url: \"{}/\", \
         org_id: Some(\"00DXX0000000001AAA\"), user_id: Some(\"005XX0000000001AAA\"), \
         obtained_at: 2025-06-01 12:00:00.0 +00:00:00, \
         expires_at: 2025-06-01 14:00:00.0 +00:00:00 }}",
        server.uri()
    );
    assert_eq!(format!("{token:?}"), token_debug);
    secrets.check_debug("AccessToken", &token);
    // The client, with the token cached.
    assert!(client.cached_token().is_some());
    let debug = format!("{client:?}");
    assert!(
        debug.contains(r#"token: Some(AccessToken { token: "** redacted **""#),
        "{debug}"
    );
    assert_eq!(
        debug,
        format!(
            "JwtBearerClient {{ config: {:?}, token: Some({token_debug}), .. }}",
            client.config()
        )
    );
    secrets.check_debug("JwtBearerClient", &client);
    secrets.check_debug(
        "JwtBearerClientBuilder",
        &JwtBearerClient::builder(fixed_config()),
    );
}

#[test]
fn config_and_key_errors_hold_no_key_material() {
    let secrets = Secrets::new();
    let pkcs1 = fixture("test_rsa_pkcs1.pem");
    let bad_pems = [
        ("public key", fixture("test_rsa_public.pem")),
        ("certificate", fixture("test_rsa_cert.pem")),
        ("encrypted pkcs8", fixture("test_rsa_encrypted_pkcs8.pem")),
        ("encrypted pkcs1", fixture("test_rsa_encrypted_pkcs1.pem")),
        ("EC", fixture("test_ec.pem")),
        ("Ed25519", fixture("test_ed25519_pkcs8.pem")),
        ("garbage", "hello".to_string()),
        ("damaged base64", pkcs1.replacen("MIIE", "MI!E", 1)),
        (
            "cut DER",
            pkcs1
                .lines()
                .enumerate()
                .filter(|(i, _)| !(4..8).contains(i))
                .map(|(_, l)| format!("{l}\n"))
                .collect(),
        ),
        // A BEGIN line that lost a dash: the label search runs into the key material.
        (
            "BEGIN line with four dashes",
            pkcs1.replacen("KEY-----", "KEY----", 1),
        ),
        (
            "BEGIN line without dashes",
            pkcs1.replacen(
                "-----BEGIN RSA PRIVATE KEY-----",
                "-----BEGIN RSA PRIVATE KEY",
                1,
            ),
        ),
        (
            "single line, BEGIN line with four dashes",
            pkcs1.replacen("KEY-----", "KEY----", 1).replace('\n', ""),
        ),
        (
            "the body twice",
            pkcs1.replace("-----END RSA PRIVATE KEY-----", &pkcs1),
        ),
    ];
    for (what, pem) in bad_pems {
        let error = SigningKey::from_pem(&pem).expect_err(what);
        secrets.check_error(what, &Error::Key(error.clone()));
        let error = JwtBearerConfig::builder()
            .client_key_pem(pem)
            .build()
            .expect_err(what);
        secrets.check_error(what, &error);
    }
    for name in [
        "test_rsa_public.pem",
        "test_rsa_cert.pem",
        "test_rsa_encrypted_pkcs8.pem",
        "test_rsa_encrypted_pkcs1.pem",
        "test_ec.pem",
        "test_ed25519_pkcs8.pem",
        "no_such_file.pem",
    ] {
        let error = SigningKey::from_pem_file(fixture_path(name)).expect_err(name);
        secrets.check_error(name, &Error::Key(error));
    }
    // from_lookup with both key variables and everything else missing.
    let pem = fixture("test_rsa_pkcs8.pem");
    let error = JwtBearerConfig::from_lookup(|name| match name {
        "SF_CLIENT_KEY_PEM" => Some(pem.clone()),
        "SF_CLIENT_KEY_PATH" => Some("/etc/key.pem".into()),
        _ => None,
    })
    .unwrap_err();
    secrets.check_error("from_lookup", &error);
}

/// `/401`, `/403` (`REQUEST_LIMIT_EXCEEDED`) and `/500` (an HTML page), as Salesforce answers them.
async fn mount_api_errors(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/401"))
        .respond_with(rest_error(
            401,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        ))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/403"))
        .respond_with(
            rest_error(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.",
            )
            .insert_header("Sforce-Limit-Info", "api-usage=18/5000"),
        )
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/500"))
        .respond_with(ResponseTemplate::new(500).set_body_string("<html>oops</html>"))
        .mount(server)
        .await;
}

#[tokio::test]
async fn errors_from_the_wire_hold_no_token_or_assertion() {
    let clock = manual_clock();
    let server = MockServer::start().await;
    let endpoint = common::TokenEndpoint::new(&clock, server.uri());
    endpoint
        .mock()
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(oauth_error(400, "invalid_grant", "invalid assertion"))
        .mount(&server)
        .await;
    mount_api_errors(&server).await;
    let client = client(
        config_builder(&server.uri())
            .retry_policy(salesforce_jwt::RetryPolicy::none())
            .build()
            .unwrap(),
        &clock,
    );
    let first = client.access_token().await.unwrap();
    let mut errors = Vec::new();
    // 401: the token is invalidated, the re-authentication is refused (OAuth error).
    errors.push(
        client
            .send(&InstanceRequest::get("/401"))
            .await
            .unwrap_err(),
    );
    assert!(matches!(errors.last(), Some(Error::OAuth(_))));
    assert!(client.cached_token().is_none());
    assert!(!first.expose_secret().is_empty());
    errors.push(
        client
            .instance_url_for("https://evil.example/x")
            .unwrap_err(),
    );

    // Fresh token endpoint for the rest.
    server.reset().await;
    let endpoint2 = common::TokenEndpoint::new(&clock, server.uri());
    endpoint2.mount(&server).await;
    mount_api_errors(&server).await;
    for target in ["/401", "/403", "/500"] {
        errors.push(
            client
                .send(&InstanceRequest::get(target))
                .await
                .unwrap_err(),
        );
        // A refused fresh token holds new token requests back for a while.
        clock.advance(std::time::Duration::from_secs(600));
    }
    assert!(
        matches!(errors[2], Error::SessionRefused { .. }),
        "{:?}",
        errors[2]
    );
    assert!(
        matches!(errors[3], Error::RequestLimitExceeded { .. }),
        "{:?}",
        errors[3]
    );
    assert!(matches!(errors[4], Error::Api(_)), "{:?}", errors[4]);

    // A redirect and a refused instance_url.
    let redirecting = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(
            ResponseTemplate::new(302).insert_header("Location", "https://elsewhere.example/token"),
        )
        .mount(&redirecting)
        .await;
    errors.push(
        common::client(config(&redirecting.uri()), &clock)
            .access_token()
            .await
            .unwrap_err(),
    );
    let http_instance = MockServer::start().await;
    let endpoint3 = common::TokenEndpoint::new(&clock, "http://acme.my.salesforce.com");
    endpoint3.mount(&http_instance).await;
    errors.push(
        common::client(config(&http_instance.uri()), &clock)
            .access_token()
            .await
            .unwrap_err(),
    );

    // A connection refused: a port that was just free.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let closed = format!("http://127.0.0.1:{port}");
    let error = common::client(
        config_builder(&closed)
            .retry_policy(salesforce_jwt::RetryPolicy::none())
            .build()
            .unwrap(),
        &clock,
    )
    .access_token()
    .await
    .unwrap_err();
    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
    errors.push(error);

    let mut assertions = endpoint.assertions();
    assertions.extend(endpoint2.assertions());
    assertions.extend(endpoint3.assertions());
    let secrets = Secrets::new().with_assertions(&assertions);
    for error in &errors {
        secrets.check_error(&format!("{error:?}"), error);
    }
}
