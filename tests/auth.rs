//! The JWT bearer flow against a wiremock Salesforce: assertions, token metadata, OAuth errors,
//! retries, the token cache (refresh ahead, single flight, invalidate) and `send()`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::{
    AUDIENCE, CLIENT_ID, Expected, GRANT_TYPE, ORG_ID, TOKEN_PATH, TokenEndpoint, USER_ID,
    USERNAME, access_token_for, client, config, config_builder, fixture_path, manual_clock,
    oauth_error, requests_to, rest_error, server_with_token_endpoint, start_time, verify_signature,
};
use jsonwebtoken::Algorithm;
use salesforce_jwt::clock::Clock;
use salesforce_jwt::{
    AccessToken, ApiUsage, Error, InstanceRequest, JwtBearerClient, JwtBearerConfig, OAuthError,
    OAuthErrorKind,
};
use serde_json::Value;
use tokio::sync::Barrier;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const LIMITS: &str = "/services/data/v64.0/limits";

fn oauth(error: Error) -> OAuthError {
    match error {
        Error::OAuth(e) => e,
        other => panic!("expected an OAuth error, got {other:?}"),
    }
}

// ---- the token request ----

#[tokio::test]
async fn the_token_request_carries_a_valid_rs256_assertion() {
    let clock = manual_clock();
    let (server, endpoint) = server_with_token_endpoint(&clock).await;
    let client = client(config(&server.uri()), &clock);

    let token = client.access_token().await.unwrap();
    assert_eq!(token.expose_secret(), access_token_for(1));
    assert_eq!(endpoint.rejections(), Vec::<String>::new());

    // Look at the request ourselves too, independently of the endpoint's checks.
    let requests = requests_to(&server, TOKEN_PATH).await;
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(
        request.headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect();
    assert_eq!(form.len(), 2, "{form:?}");
    assert_eq!(form[0], ("grant_type".to_string(), GRANT_TYPE.to_string()));
    assert_eq!(form[1].0, "assertion");
    let jwt = &form[1].1;
    assert_eq!(endpoint.assertions(), std::slice::from_ref(jwt));

    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    let (alg, claims) = verify_signature(jwt).unwrap();
    assert_eq!(alg, Algorithm::RS256);
    let Value::Object(claims) = claims else {
        panic!("claims are not an object")
    };
    let names: BTreeSet<&str> = claims.keys().map(String::as_str).collect();
    assert_eq!(names, BTreeSet::from(["aud", "exp", "iss", "sub"]));
    assert_eq!(claims["iss"], CLIENT_ID);
    assert_eq!(claims["sub"], USERNAME);
    assert_eq!(claims["aud"], AUDIENCE);
    // Whole seconds, numeric, exactly the configured lifetime ahead.
    assert!(claims["exp"].is_i64(), "{:?}", claims["exp"]);
    assert_eq!(claims["exp"], start_time().unix_timestamp() + 180);
}

#[tokio::test]
async fn a_shorter_assertion_lifetime_is_used_for_exp() {
    let clock = manual_clock();
    let (server, endpoint) = server_with_token_endpoint(&clock).await;
    let config = config_builder(&server.uri())
        .assertion_lifetime(Duration::from_secs(60))
        .build()
        .unwrap();
    client(config, &clock).access_token().await.unwrap();
    let (_, claims) = verify_signature(&endpoint.assertions()[0]).unwrap();
    assert_eq!(claims["exp"], start_time().unix_timestamp() + 60);
}

#[tokio::test]
async fn token_metadata_comes_from_the_response() {
    let clock = manual_clock();
    let (server, _endpoint) = server_with_token_endpoint(&clock).await;
    let client = client(config(&server.uri()), &clock);

    let token = client.access_token().await.unwrap();
    assert_eq!(token.instance_url().as_str(), format!("{}/", server.uri()));
    assert_eq!(token.org_id(), Some(ORG_ID));
    assert_eq!(token.user_id(), Some(USER_ID));
    assert_eq!(
        token.identity_url(),
        Some(format!("https://login.salesforce.com/id/{ORG_ID}/{USER_ID}").as_str())
    );
    assert_eq!(token.scope(), Some("api"));
    assert_eq!(token.token_type(), "Bearer");
    assert_eq!(
        token.issued_at(),
        Some(time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap())
    );
    assert_eq!(token.obtained_at(), start_time());
    assert_eq!(
        token.expires_at(),
        start_time() + Duration::from_secs(2 * 3600)
    );
    assert_eq!(
        token.refresh_at(),
        start_time() + Duration::from_secs(2 * 3600 - 300)
    );
}

#[tokio::test]
async fn the_mock_endpoint_refuses_what_salesforce_would() {
    // Each misconfiguration makes the verifying endpoint answer like Salesforce, which shows
    // both that the endpoint really checks and how each mistake surfaces.
    let clock = manual_clock();
    let server = MockServer::start().await;
    let cases = [
        (
            config_builder(&server.uri()).client_key_path(fixture_path("other_rsa_pkcs1.pem")),
            OAuthErrorKind::InvalidAssertion,
        ),
        (
            config_builder(&server.uri()).audience_url("https://acme.my.salesforce.com"),
            OAuthErrorKind::InvalidAudience,
        ),
        (
            config_builder(&server.uri()).username("someone@example.com"),
            OAuthErrorKind::UserNotApproved,
        ),
        (
            config_builder(&server.uri()).client_id("3MVG9WrongKey"),
            OAuthErrorKind::InvalidClientId,
        ),
    ];
    for (builder, kind) in cases {
        let endpoint = TokenEndpoint::new(&clock, server.uri());
        endpoint.mock().expect(1).mount(&server).await;
        let client = client(builder.build().unwrap(), &clock);
        let error = oauth(client.access_token().await.unwrap_err());
        assert_eq!(error.kind, kind, "{error}");
        assert_eq!(endpoint.rejections().len(), 1);
        assert_eq!(endpoint.issued(), 0);
        server.verify().await;
        server.reset().await;
    }

    // This machine's clock is 10 minutes behind Salesforce's.
    let salesforce_clock = manual_clock();
    salesforce_clock.advance(Duration::from_secs(600));
    let endpoint = TokenEndpoint::new(&salesforce_clock, server.uri());
    endpoint.mock().expect(1).mount(&server).await;
    let client = client(config(&server.uri()), &clock);
    let error = oauth(client.access_token().await.unwrap_err());
    assert_eq!(error.kind, OAuthErrorKind::ExpiredAssertion, "{error}");
    assert!(error.to_string().contains("clock"), "{error}");

    // An endpoint that expects other claims accepts them.
    let endpoint = TokenEndpoint::with_expected(
        &clock,
        server.uri(),
        Expected {
            audience: "https://test.salesforce.com".into(),
            ..Expected::default()
        },
    );
    server.reset().await;
    endpoint.mount(&server).await;
    let config = config_builder(&server.uri())
        .audience_url("https://test.salesforce.com")
        .build()
        .unwrap();
    common::client(config, &clock).access_token().await.unwrap();
}

// ---- OAuth errors ----

#[tokio::test]
async fn each_oauth_error_maps_to_its_kind_and_hint_and_is_not_retried() {
    let clock = manual_clock();
    let cases = [
        (
            "invalid_grant",
            "user hasn't approved this consumer",
            OAuthErrorKind::UserNotApproved,
            "pre-authorized",
        ),
        (
            "invalid_grant",
            "invalid assertion",
            OAuthErrorKind::InvalidAssertion,
            "certificate uploaded",
        ),
        (
            "invalid_grant",
            "audience is invalid",
            OAuthErrorKind::InvalidAudience,
            "https://test.salesforce.com",
        ),
        (
            "invalid_grant",
            "Audience validation failed",
            OAuthErrorKind::InvalidAudience,
            "SF_AUDIENCE_URL",
        ),
        (
            "invalid_grant",
            "expired authorization code",
            OAuthErrorKind::ExpiredAssertion,
            "NTP",
        ),
        (
            "invalid_client_id",
            "client identifier invalid",
            OAuthErrorKind::InvalidClientId,
            "10 minutes",
        ),
        (
            "invalid_grant",
            "authentication failure",
            OAuthErrorKind::AuthenticationFailure,
            "Login IP Ranges",
        ),
        (
            "invalid_app_access",
            "user is not admin approved to access this app",
            OAuthErrorKind::AppAccessDenied,
            "permission set",
        ),
        (
            "inactive_user",
            "inactive user",
            OAuthErrorKind::InactiveUser,
            "reactivate",
        ),
        (
            "inactive_org",
            "inactive organization",
            OAuthErrorKind::InactiveOrg,
            "inactive, locked or expired",
        ),
        (
            "unsupported_grant_type",
            "grant type not supported",
            OAuthErrorKind::UnsupportedGrantType,
            "proxy",
        ),
    ];
    for (code, description, kind, hint) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(TOKEN_PATH))
            .respond_with(oauth_error(400, code, description))
            .expect(1)
            .mount(&server)
            .await;
        let client = client(config(&server.uri()), &clock);
        let error = client.access_token().await.unwrap_err();
        assert!(!error.is_retryable(), "{code}");
        let text = error.to_string();
        let error = oauth(error);
        assert_eq!(error.kind, kind, "{code} / {description}");
        assert_eq!(error.status, 400);
        assert_eq!(error.code, code);
        assert_eq!(error.description, description);
        assert!(text.contains(code), "{text}");
        assert!(text.contains(description), "{text}");
        assert!(text.contains(hint), "{code}: {text}");
        assert!(text.contains(error.hint()), "{text}");
        server.verify().await;
        assert_eq!(clock.slept(), Vec::<Duration>::new(), "{code}");
    }
}

#[tokio::test]
async fn an_unknown_oauth_code_keeps_the_raw_code_and_description() {
    let clock = manual_clock();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(oauth_error(
            400,
            "brand_new_error",
            "something Salesforce added last release",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(config(&server.uri()), &clock);
    let error = oauth(client.access_token().await.unwrap_err());
    assert_eq!(error.kind, OAuthErrorKind::Other);
    assert_eq!(error.code, "brand_new_error");
    assert_eq!(error.description, "something Salesforce added last release");
    let text = error.to_string();
    assert!(text.contains("brand_new_error"), "{text}");
    assert!(
        text.contains("something Salesforce added last release"),
        "{text}"
    );
}

#[tokio::test]
async fn a_login_rate_limit_is_reported_without_burning_more_logins() {
    // Retrying a login rate limit within the call only spends more of the hourly login quota.
    let clock = manual_clock();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(oauth_error(400, "rate_limit_exceeded", "too many logins"))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(config(&server.uri()), &clock);
    let error = client.access_token().await.unwrap_err();
    assert!(error.is_retryable(), "the caller may try later: {error}");
    assert_eq!(oauth(error).kind, OAuthErrorKind::RateLimited);
    assert_eq!(requests_to(&server, TOKEN_PATH).await.len(), 1);
    assert_eq!(clock.slept(), Vec::<Duration>::new());
}

// ---- retries and redirects ----

#[tokio::test]
async fn a_503_html_page_is_retried_after_retry_after() {
    let clock = manual_clock();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(
            ResponseTemplate::new(503)
                .insert_header("Retry-After", "7")
                .set_body_raw(
                    "<html><body><h1>503 Service Unavailable</h1></body></html>",
                    "text/html",
                ),
        )
        .up_to_n_times(1)
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let endpoint = TokenEndpoint::new(&clock, server.uri());
    endpoint.mock().expect(1).mount(&server).await;
    let client = client(config(&server.uri()), &clock);

    let token = client.access_token().await.unwrap();
    assert_eq!(token.expose_secret(), access_token_for(1));
    assert_eq!(clock.slept(), [Duration::from_secs(7)]);
    // The retry signed a fresh assertion at the later time, which the endpoint accepted.
    assert_eq!(endpoint.rejections(), Vec::<String>::new());
    assert_eq!(token.obtained_at(), start_time() + Duration::from_secs(7));
    let (_, claims) = verify_signature(&endpoint.assertions()[0]).unwrap();
    assert_eq!(claims["exp"], start_time().unix_timestamp() + 7 + 180);
}

#[tokio::test]
async fn persistent_5xx_gives_up_with_the_status_and_an_excerpt() {
    let clock = manual_clock();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(
            ResponseTemplate::new(502)
                .set_body_raw("<html>\n<b>Bad   Gateway</b>\n</html>", "text/html"),
        )
        .expect(3)
        .mount(&server)
        .await;
    let config = config_builder(&server.uri())
        .retry_policy(salesforce_jwt::RetryPolicy {
            max_attempts: 3,
            ..Default::default()
        })
        .build()
        .unwrap();
    let client = client(config, &clock);
    let error = client.access_token().await.unwrap_err();
    assert!(error.is_retryable());
    match &error {
        Error::Api(api) => {
            assert_eq!(api.status, 502);
            assert_eq!(api.error_code, None);
            assert_eq!(api.message, "<html> <b>Bad Gateway</b> </html>");
        }
        other => panic!("{other:?}"),
    }
    // Two backoffs, each within the jittered bounds of 500 ms doubling.
    let slept = clock.slept();
    assert_eq!(slept.len(), 2, "{slept:?}");
    assert!(slept[0] >= Duration::from_millis(250) && slept[0] <= Duration::from_millis(500));
    assert!(slept[1] >= Duration::from_millis(500) && slept[1] <= Duration::from_millis(1000));
}

#[tokio::test]
async fn a_redirect_from_the_token_url_is_an_error_and_not_followed() {
    let clock = manual_clock();
    let server = MockServer::start().await;
    let elsewhere = format!("{}/elsewhere/token", server.uri());
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(302).insert_header("Location", elsewhere.as_str()))
        .expect(1)
        .mount(&server)
        .await;
    let decoy = TokenEndpoint::new(&clock, server.uri());
    Mock::given(method("POST"))
        .and(path("/elsewhere/token"))
        .respond_with(decoy.clone())
        .expect(0)
        .mount(&server)
        .await;
    let client = client(config(&server.uri()), &clock);

    let error = client.access_token().await.unwrap_err();
    assert!(matches!(error, Error::UnexpectedResponse(_)), "{error:?}");
    assert!(!error.is_retryable());
    let text = error.to_string();
    assert!(text.contains("redirects (HTTP 302)"), "{text}");
    assert!(text.contains(&elsewhere), "{text}");
    assert_eq!(decoy.assertions().len(), 0);
    assert_eq!(requests_to(&server, "/elsewhere/token").await.len(), 0);
}

#[tokio::test]
async fn an_http_instance_url_in_the_token_response_is_refused() {
    let clock = manual_clock();
    let server = MockServer::start().await;
    TokenEndpoint::new(&clock, "http://acme.my.salesforce.com")
        .mock()
        .expect(1)
        .mount(&server)
        .await;
    let client = client(config(&server.uri()), &clock);
    let error = client.access_token().await.unwrap_err();
    assert!(matches!(error, Error::UnexpectedResponse(_)), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("http://acme.my.salesforce.com"), "{text}");
    assert!(text.contains("plain http"), "{text}");
    assert!(client.cached_token().is_none());

    // https on that host is fine.
    server.reset().await;
    TokenEndpoint::new(&clock, "https://acme.my.salesforce.com")
        .mount(&server)
        .await;
    let token = client.access_token().await.unwrap();
    assert_eq!(
        token.instance_url().as_str(),
        "https://acme.my.salesforce.com/"
    );
}

// ---- the cache ----

#[tokio::test]
async fn a_cached_token_is_returned_without_a_request() {
    let clock = manual_clock();
    let server = MockServer::start().await;
    let endpoint = TokenEndpoint::new(&clock, server.uri());
    endpoint.mock().expect(1).mount(&server).await;
    let client = client(config(&server.uri()), &clock);

    let first = client.access_token().await.unwrap();
    clock.advance(Duration::from_secs(3600));
    let second = client.access_token().await.unwrap();
    assert!(second.same_as(&first));
    // A clone shares the cache.
    let third = client.clone().access_token().await.unwrap();
    assert!(third.same_as(&first));
    assert!(client.cached_token().unwrap().same_as(&first));
    assert_eq!(endpoint.issued(), 1);
}

#[tokio::test]
async fn an_expired_token_is_replaced_before_it_is_returned() {
    let clock = manual_clock();
    let (server, endpoint) = server_with_token_endpoint(&clock).await;
    let client = client(config(&server.uri()), &clock);

    let old = client.access_token().await.unwrap();
    clock.advance(Duration::from_secs(2 * 3600));
    let new = client.access_token().await.unwrap();
    assert!(!new.same_as(&old));
    assert_eq!(new.expose_secret(), access_token_for(2));
    assert_eq!(new.obtained_at(), clock.now());
    assert_eq!(endpoint.issued(), 2);
    assert_eq!(endpoint.rejections(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_refresh_at_the_old_token_is_served_while_one_refresh_runs() {
    let clock = manual_clock();
    let server = MockServer::start().await;
    let endpoint = TokenEndpoint::new(&clock, server.uri());
    // The first token comes at once; the refresh takes a second, so it is surely in flight
    // while the callers below ask.
    endpoint
        .mock()
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    endpoint
        .delayed_by(Duration::from_secs(1))
        .mock()
        .mount(&server)
        .await;
    // A 60 s margin keeps the refresh's assertion (signed at refresh_at, valid 180 s) valid
    // when the clock then moves past expires_at.
    let config = config_builder(&server.uri())
        .session_lifetime(Duration::from_secs(900))
        .refresh_margin(Duration::from_secs(60))
        .build()
        .unwrap();
    let client = client(config, &clock);

    let old = client.access_token().await.unwrap();
    assert_eq!(old.refresh_at(), start_time() + Duration::from_secs(840));
    clock.set(old.refresh_at() + Duration::from_secs(1));
    for _ in 0..20 {
        let token = client.access_token().await.unwrap();
        assert!(
            token.same_as(&old),
            "the old token is served during the refresh"
        );
    }

    clock.set(old.expires_at() + Duration::from_secs(1));
    let new = client.access_token().await.unwrap();
    assert!(!new.same_as(&old));
    assert_eq!(new.expose_secret(), access_token_for(2));
    assert!(client.access_token().await.unwrap().same_as(&new));
    assert_eq!(
        endpoint.issued(),
        2,
        "one background refresh, not one per caller"
    );
    assert_eq!(requests_to(&server, TOKEN_PATH).await.len(), 2);
    assert_eq!(endpoint.rejections(), Vec::<String>::new());
}

#[tokio::test]
async fn a_failed_background_refresh_keeps_the_valid_token() {
    let clock = manual_clock();
    let server = MockServer::start().await;
    let endpoint = TokenEndpoint::new(&clock, server.uri());
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
    let client = client(config(&server.uri()), &clock);

    let old = client.access_token().await.unwrap();
    clock.set(old.refresh_at() + Duration::from_secs(1));
    assert!(client.access_token().await.unwrap().same_as(&old));
    // Until it expires, the token keeps being served whatever the refresh did.
    clock.set(old.expires_at() - Duration::from_secs(1));
    assert!(client.access_token().await.unwrap().same_as(&old));
    // Once expired, the error reaches the caller.
    clock.set(old.expires_at() + Duration::from_secs(1));
    let error = client.access_token().await.unwrap_err();
    assert_eq!(oauth(error).kind, OAuthErrorKind::InvalidAssertion);
}

/// Starts `n` tasks that all ask for a token at the same moment.
async fn concurrent_callers(client: &JwtBearerClient, n: usize) -> Vec<Result<AccessToken, Error>> {
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let client = client.clone();
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                client.access_token().await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_callers_on_a_cold_cache_cause_one_token_request() {
    let clock = manual_clock();
    let server = MockServer::start().await;
    let endpoint = TokenEndpoint::new(&clock, server.uri());
    endpoint
        .delayed_by(Duration::from_millis(500))
        .mock()
        .expect(1)
        .mount(&server)
        .await;
    let client = client(config(&server.uri()), &clock);

    let results = concurrent_callers(&client, 1000).await;
    let tokens: Vec<AccessToken> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(tokens.len(), 1000);
    assert!(tokens.iter().all(|t| t.same_as(&tokens[0])));
    assert_eq!(tokens[0].expose_secret(), access_token_for(1));
    assert_eq!(endpoint.issued(), 1);
    assert_eq!(requests_to(&server, TOKEN_PATH).await.len(), 1);
    server.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_callers_share_the_one_failure() {
    let clock = manual_clock();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(
            oauth_error(400, "invalid_grant", "user hasn't approved this consumer")
                .set_delay(Duration::from_millis(500)),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = client(config(&server.uri()), &clock);

    let results = concurrent_callers(&client, 1000).await;
    assert_eq!(results.len(), 1000);
    for result in results {
        let error = oauth(result.unwrap_err());
        assert_eq!(error.kind, OAuthErrorKind::UserNotApproved);
    }
    assert_eq!(requests_to(&server, TOKEN_PATH).await.len(), 1);
    server.verify().await;

    // The failure is not cached: the next caller asks again.
    server.reset().await;
    let endpoint = TokenEndpoint::new(&clock, server.uri());
    endpoint.mock().expect(1).mount(&server).await;
    let token = client.access_token().await.unwrap();
    assert_eq!(token.expose_secret(), access_token_for(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callers_arriving_during_a_request_after_expiry_share_it() {
    let clock = manual_clock();
    let server = MockServer::start().await;
    let endpoint = TokenEndpoint::new(&clock, server.uri());
    endpoint
        .delayed_by(Duration::from_millis(300))
        .mock()
        .expect(2)
        .mount(&server)
        .await;
    let client = client(config(&server.uri()), &clock);
    let old = client.access_token().await.unwrap();
    clock.set(old.expires_at());
    let results = concurrent_callers(&client, 200).await;
    let tokens: Vec<AccessToken> = results.into_iter().map(Result::unwrap).collect();
    assert!(
        tokens
            .iter()
            .all(|t| t.same_as(&tokens[0]) && !t.same_as(&old))
    );
    assert_eq!(endpoint.issued(), 2);
}

#[tokio::test]
async fn invalidating_an_old_token_keeps_the_newer_one() {
    let clock = manual_clock();
    let (server, endpoint) = server_with_token_endpoint(&clock).await;
    let client = client(config(&server.uri()), &clock);

    let old = client.access_token().await.unwrap();
    assert!(client.invalidate(&old));
    assert!(client.cached_token().is_none());
    assert!(!client.invalidate(&old), "already gone");

    let new = client.access_token().await.unwrap();
    assert!(!new.same_as(&old));
    // A task that still holds the old token reports it failed: the newer one stays.
    assert!(!client.invalidate(&old));
    assert!(client.cached_token().unwrap().same_as(&new));
    assert!(client.access_token().await.unwrap().same_as(&new));
    assert_eq!(endpoint.issued(), 2);
}

// ---- send() ----

fn ok_json() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({"DailyApiRequests": {}}))
}

fn session_expired() -> ResponseTemplate {
    rest_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
}

#[tokio::test]
async fn the_bearer_token_reaches_the_instance() {
    let clock = manual_clock();
    let (server, _endpoint) = server_with_token_endpoint(&clock).await;
    Mock::given(method("GET"))
        .and(path(LIMITS))
        .and(header(
            "Authorization",
            format!("Bearer {}", access_token_for(1)).as_str(),
        ))
        .respond_with(ok_json())
        .expect(1)
        .mount(&server)
        .await;
    let client = client(config(&server.uri()), &clock);

    let response = client
        .send(&InstanceRequest::get(LIMITS).query("q", "a b"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let requests = requests_to(&server, LIMITS).await;
    assert_eq!(requests.len(), 1);
    let authorization: Vec<_> = requests[0]
        .headers
        .get_all("authorization")
        .iter()
        .collect();
    assert_eq!(
        authorization,
        [format!("Bearer {}", access_token_for(1)).as_str()]
    );
    assert_eq!(requests[0].url.query(), Some("q=a+b"));
}

#[tokio::test]
async fn a_401_re_authenticates_once_and_retries_with_the_new_token() {
    let clock = manual_clock();
    let server = MockServer::start().await;
    let endpoint = TokenEndpoint::new(&clock, server.uri());
    endpoint.mock().expect(2).mount(&server).await;
    Mock::given(method("GET"))
        .and(path(LIMITS))
        .and(header(
            "Authorization",
            format!("Bearer {}", access_token_for(1)).as_str(),
        ))
        .respond_with(session_expired())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(LIMITS))
        .and(header(
            "Authorization",
            format!("Bearer {}", access_token_for(2)).as_str(),
        ))
        .respond_with(ok_json())
        .expect(1)
        .mount(&server)
        .await;
    let client = client(config(&server.uri()), &clock);

    let first = client.access_token().await.unwrap();
    let response = client.send(&InstanceRequest::get(LIMITS)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(endpoint.issued(), 2);
    assert_eq!(requests_to(&server, TOKEN_PATH).await.len(), 2);
    assert_eq!(requests_to(&server, LIMITS).await.len(), 2);
    let cached = client.cached_token().unwrap();
    assert!(!cached.same_as(&first));
    assert_eq!(cached.expose_secret(), access_token_for(2));
    server.verify().await;
}

#[tokio::test]
async fn a_refused_fresh_token_is_a_setup_problem_and_new_tokens_back_off() {
    let clock = manual_clock();
    let server = MockServer::start().await;
    let endpoint = TokenEndpoint::new(&clock, server.uri());
    endpoint.mount(&server).await;
    // The instance refuses every token: a wrong instance URL, or sessions revoked at once.
    Mock::given(method("GET"))
        .and(path(LIMITS))
        .respond_with(session_expired())
        .mount(&server)
        .await;
    let client = client(config(&server.uri()), &clock);

    let error = client
        .send(&InstanceRequest::get(LIMITS).context("reading limits"))
        .await
        .unwrap_err();
    assert!(!error.is_retryable());
    assert!(
        matches!(&error, Error::SessionRefused { message, .. } if message == "Session expired or invalid"),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.starts_with("reading limits: the instance ") && text.contains("SF_INSTANCE_URL"),
        "{text}"
    );
    // One re-authentication, then no third try; the refused token is not kept.
    assert_eq!(endpoint.issued(), 2);
    assert_eq!(requests_to(&server, LIMITS).await.len(), 2);
    assert!(client.cached_token().is_none());
    assert!(clock.slept().is_empty(), "not retried within the call");

    // Calls during the backoff fail the same way without asking for a token.
    for _ in 0..3 {
        let again = client
            .send(&InstanceRequest::get(LIMITS))
            .await
            .unwrap_err();
        assert!(matches!(again, Error::SessionRefused { .. }), "{again:?}");
        assert!(matches!(
            client.access_token().await,
            Err(Error::SessionRefused { .. })
        ));
    }
    assert_eq!(endpoint.issued(), 2);
    assert_eq!(requests_to(&server, LIMITS).await.len(), 2);

    // After the backoff (at most the policy's max_backoff), one more round is tried.
    clock.advance(salesforce_jwt::RetryPolicy::default().max_backoff);
    let later = client
        .send(&InstanceRequest::get(LIMITS))
        .await
        .unwrap_err();
    assert!(matches!(later, Error::SessionRefused { .. }), "{later:?}");
    assert_eq!(endpoint.issued(), 4);
}

#[tokio::test]
async fn a_refused_token_is_forgotten_once_the_setup_is_fixed() {
    let clock = manual_clock();
    let server = MockServer::start().await;
    let endpoint = TokenEndpoint::new(&clock, server.uri());
    endpoint.mount(&server).await;
    Mock::given(method("GET"))
        .and(path(LIMITS))
        .respond_with(session_expired())
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(LIMITS))
        .respond_with(ok_json())
        .mount(&server)
        .await;
    let client = client(config(&server.uri()), &clock);
    let error = client
        .send(&InstanceRequest::get(LIMITS))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::SessionRefused { .. }), "{error:?}");
    clock.advance(salesforce_jwt::RetryPolicy::default().max_backoff);
    client.send(&InstanceRequest::get(LIMITS)).await.unwrap();
    assert_eq!(endpoint.issued(), 3);
    // Accepted: later 401s are expiries again, re-authenticated at once.
    assert!(client.cached_token().is_some());
}

#[tokio::test]
async fn a_token_that_worked_and_then_gets_401_is_renewed_not_refused() {
    let clock = manual_clock();
    let server = MockServer::start().await;
    let endpoint = TokenEndpoint::new(&clock, server.uri());
    endpoint.mount(&server).await;
    Mock::given(method("GET"))
        .and(path(LIMITS))
        .respond_with(ok_json())
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(LIMITS))
        .and(header(
            "Authorization",
            format!("Bearer {}", access_token_for(1)).as_str(),
        ))
        .respond_with(session_expired())
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(LIMITS))
        .respond_with(ok_json())
        .with_priority(3)
        .mount(&server)
        .await;
    let client = client(config(&server.uri()), &clock);
    client.send(&InstanceRequest::get(LIMITS)).await.unwrap();
    // Token 1 worked once; its 401 now means an expired session: one renewal.
    client.send(&InstanceRequest::get(LIMITS)).await.unwrap();
    assert_eq!(endpoint.issued(), 2);
    client.send(&InstanceRequest::get(LIMITS)).await.unwrap();
    assert_eq!(endpoint.issued(), 2);
}

#[tokio::test]
async fn request_limit_exceeded_is_its_own_error_with_the_usage() {
    let clock = manual_clock();
    let (server, _endpoint) = server_with_token_endpoint(&clock).await;
    Mock::given(method("GET"))
        .and(path(LIMITS))
        .respond_with(
            rest_error(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.",
            )
            .insert_header("Sforce-Limit-Info", "api-usage=18/5000"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = client(config(&server.uri()), &clock);

    let error = client
        .send(&InstanceRequest::get(LIMITS))
        .await
        .unwrap_err();
    let text = error.to_string();
    match error {
        Error::RequestLimitExceeded { message, usage } => {
            assert_eq!(message, "TotalRequests Limit exceeded.");
            assert_eq!(
                usage,
                Some(ApiUsage {
                    used: 18,
                    limit: 5000
                })
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(text.contains("usage 18/5000"), "{text}");
    assert!(text.contains("rolling 24-hour"), "{text}");
    assert_eq!(
        client.last_api_usage(),
        Some(ApiUsage {
            used: 18,
            limit: 5000
        })
    );
}

#[tokio::test]
async fn the_api_usage_is_read_from_a_successful_response() {
    let clock = manual_clock();
    let (server, _endpoint) = server_with_token_endpoint(&clock).await;
    Mock::given(method("GET"))
        .and(path(LIMITS))
        .respond_with(ok_json().insert_header(
            "Sforce-Limit-Info",
            "api-usage=42/15000; per-app-api-usage=7/1000(appName=collector)",
        ))
        .mount(&server)
        .await;
    let client = client(config(&server.uri()), &clock);
    assert_eq!(client.last_api_usage(), None);
    client.send(&InstanceRequest::get(LIMITS)).await.unwrap();
    assert_eq!(
        client.last_api_usage(),
        Some(ApiUsage {
            used: 42,
            limit: 15000
        })
    );
}

#[tokio::test]
async fn an_api_503_is_retried_after_retry_after() {
    let clock = manual_clock();
    let (server, _endpoint) = server_with_token_endpoint(&clock).await;
    Mock::given(method("GET"))
        .and(path(LIMITS))
        .respond_with(
            ResponseTemplate::new(503)
                .insert_header("Retry-After", "3")
                .set_body_raw("<html>maintenance</html>", "text/html"),
        )
        .up_to_n_times(1)
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(LIMITS))
        .respond_with(ok_json())
        .expect(1)
        .mount(&server)
        .await;
    let client = client(config(&server.uri()), &clock);
    let response = client.send(&InstanceRequest::get(LIMITS)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(clock.slept(), [Duration::from_secs(3)]);
    // The token survived the retry: one token request.
    assert_eq!(requests_to(&server, TOKEN_PATH).await.len(), 1);
}

#[tokio::test]
async fn other_api_errors_keep_status_code_and_message() {
    let clock = manual_clock();
    let (server, _endpoint) = server_with_token_endpoint(&clock).await;
    Mock::given(method("GET"))
        .and(path("/services/data/v64.0/query"))
        .respond_with(rest_error(
            400,
            "INVALID_TYPE",
            "sObject type 'EventLogFile' is not supported.",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(config(&server.uri()), &clock);
    let error = client
        .send(
            &InstanceRequest::get("/services/data/v64.0/query")
                .query("q", "SELECT Id FROM EventLogFile"),
        )
        .await
        .unwrap_err();
    assert!(!error.is_retryable());
    let text = error.to_string();
    assert!(text.contains("View Event Log Files"), "{text}");
    match error {
        Error::Api(api) => {
            assert_eq!(api.status, 400);
            assert_eq!(api.error_code.as_deref(), Some("INVALID_TYPE"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn urls_off_the_instance_are_refused_before_anything_is_sent() {
    let clock = manual_clock();
    let (server, endpoint) = server_with_token_endpoint(&clock).await;
    let client = client(config(&server.uri()), &clock);
    let other_port = if server.address().port() == 1 { 2 } else { 1 };
    for target in [
        "https://evil.example/x".to_string(),
        "//evil.example/x".to_string(),
        "https://evil.example/services/data/v64.0/query".to_string(),
        format!("http://127.0.0.1:{other_port}/services/data"),
        format!("https://{}/services/data", server.address()),
    ] {
        match client.instance_url_for(&target) {
            Err(Error::ForeignUrl { url, instance }) => {
                assert_eq!(instance, format!("{}/", server.uri()), "{target}");
                assert!(!url.starts_with(&server.uri()), "{url}");
            }
            other => panic!("{target}: {other:?}"),
        }
        let error = client
            .send(&InstanceRequest::get(target.as_str()))
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::ForeignUrl { .. }),
            "{target}: {error:?}"
        );
        assert!(
            error
                .to_string()
                .contains("refused to send the access token"),
            "{error}"
        );
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 0);
    assert_eq!(endpoint.issued(), 0);

    // Paths and URLs on the instance are fine.
    assert_eq!(
        client.instance_url_for(LIMITS).unwrap().as_str(),
        format!("{}{LIMITS}", server.uri())
    );
    let full = format!("{}{LIMITS}", server.uri());
    assert_eq!(client.instance_url_for(&full).unwrap().as_str(), full);
}

#[tokio::test]
async fn a_token_endpoint_outage_costs_one_set_of_retries_not_one_per_api_retry() {
    let clock = manual_clock();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(common::TOKEN_PATH))
        .respond_with(ResponseTemplate::new(503).set_body_string("<html>down</html>"))
        // The default policy's five attempts, once: the API request around the token
        // request must not retry it again.
        .expect(5)
        .mount(&server)
        .await;
    let client = client(common::config(&server.uri()), &clock);
    let err = client
        .send(&salesforce_jwt::InstanceRequest::get(
            "/services/data/v64.0/limits",
        ))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn a_users_client_builder_cannot_make_the_token_request_follow_a_redirect() {
    let clock = manual_clock();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(common::TOKEN_PATH))
        .respond_with(ResponseTemplate::new(307).insert_header("Location", "/elsewhere"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/elsewhere"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let following = reqwest::Client::builder().redirect(reqwest::redirect::Policy::limited(10));
    let client = salesforce_jwt::JwtBearerClient::builder(common::config(&server.uri()))
        .http_client_builder(following)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let err = client.access_token().await.unwrap_err();
    assert!(err.to_string().contains("redirects"), "{err}");
}

// ---- hostile numbers in the token response ----

#[tokio::test]
async fn an_absurd_issued_at_is_dropped_not_a_panic() {
    let clock = manual_clock();
    let server = MockServer::start().await;
    let answers = [
        // Parses as i128 but overflows when turned into nanoseconds.
        "170141183460469231731687303715884105727",
        "99999999999999999999999999",
        "-99999999999999999999999999",
        "1e300",
        "",
    ];
    let client = client(config(&server.uri()), &clock);
    for issued_at in answers {
        server.reset().await;
        Mock::given(method("POST"))
            .and(path(TOKEN_PATH))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": "00Dx!AR.token",
                "instance_url": server.uri(),
                "id": format!("https://login.salesforce.com/id/{ORG_ID}/{USER_ID}"),
                "issued_at": issued_at,
            })))
            .mount(&server)
            .await;
        // Each answer is a fresh token request: forget the previous one.
        if let Some(old) = client.cached_token() {
            client.invalidate(&old);
        }
        let token = client.access_token().await.unwrap();
        assert_eq!(token.issued_at(), None, "{issued_at:?}");
    }
}

#[tokio::test]
async fn a_real_token_response_without_token_type_and_a_zero_issued_at_is_read() {
    let clock = manual_clock();
    let server = MockServer::start().await;
    let path_ = format!(
        "{}/../shared/realdata/sfdcelf_auth_success_response.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut body: Value = serde_json::from_slice(&std::fs::read(path_).unwrap()).unwrap();
    // The instance must be the configured one (the mock server).
    body["instance_url"] = Value::String(server.uri());
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    let token = client(config(&server.uri()), &clock)
        .access_token()
        .await
        .unwrap();
    assert_eq!(token.token_type(), "Bearer");
    assert_eq!(token.org_id(), Some("00Dx0000000BV7z"));
    assert_eq!(
        token.issued_at(),
        Some(time::OffsetDateTime::UNIX_EPOCH),
        "issued_at \"0000000000000\" is the epoch, not an error"
    );
}

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

#[tokio::test]
async fn a_url_with_credentials_is_refused_without_echoing_them() {
    let clock = manual_clock();
    let (server, _endpoint) = server_with_token_endpoint(&clock).await;
    let client = client(config(&server.uri()), &clock);
    let address = server.address();
    for target in [
        format!("http://intruder:s3cret-pa55@{address}/services/data"),
        "https://intruder:s3cret-pa55@evil.example/x".to_string(),
    ] {
        let error = client.instance_url_for(&target).unwrap_err();
        assert!(matches!(error, Error::ForeignUrl { .. }), "{error:?}");
        let text = format!("{error} {error:?}");
        assert!(!text.contains("s3cret-pa55"), "{text}");
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 0);
}

#[tokio::test]
async fn a_refused_token_for_another_instance_names_that_instance() {
    let clock = manual_clock();
    let server = MockServer::start().await;
    // The token is for another host of the org (or another org): SF_INSTANCE_URL is wrong.
    let endpoint = TokenEndpoint::new(&clock, "https://other.my.salesforce.com");
    endpoint.mount(&server).await;
    Mock::given(method("GET"))
        .and(path(LIMITS))
        .respond_with(session_expired())
        .mount(&server)
        .await;
    let client = client(config(&server.uri()), &clock);
    let error = client
        .send(&InstanceRequest::get(LIMITS))
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("the token response named https://other.my.salesforce.com/"),
        "{text}"
    );
    assert!(!text.contains(&access_token_for(1)), "{text}");
}
