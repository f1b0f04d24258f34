//! The token exchange against a wiremock Salesforce: the assertion, token metadata, OAuth
//! errors and their hints, retries and redirects of the token request, hostile token responses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::{
    AUDIENCE, CLIENT_ID, Expected, GRANT_TYPE, ORG_ID, TOKEN_PATH, TokenEndpoint, USER_ID,
    USERNAME, access_token_for, client, config, config_builder, fixture_path, manual_clock, oauth,
    oauth_error, requests_to, server_with_token_endpoint, start_time, verify_signature,
};
use jsonwebtoken::Algorithm;
use salesforce_jwt::clock::Clock;
use salesforce_jwt::{Error, OAuthErrorKind};
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

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
    endpoint.mock().expect(3).mount(&server).await;
    let client = client(config(&server.uri()), &clock);
    // Refused as expired once; the refusal's Date shows the skew, and the assertion signed
    // with the org's time is accepted. (The ExpiredAssertion error and its clock hint, when no
    // Date explains the refusal, are checked with the other OAuth errors.)
    client.access_token().await.unwrap();
    assert_eq!(
        endpoint.rejections().len(),
        1,
        "{:?}",
        endpoint.rejections()
    );
    assert!(endpoint.rejections()[0].contains("is not after now"));
    assert_eq!(endpoint.issued(), 1);
    let (_, claims) = common::verify_signature(&endpoint.assertions()[1]).unwrap();
    assert_eq!(
        claims["exp"].as_i64().unwrap(),
        salesforce_clock.now().unix_timestamp() + 180,
        "signed at the org's time"
    );
    assert_eq!(
        client.org_clock_offset(),
        Some(time::Duration::seconds(601))
    );
    // The next token (after the session's lifetime) is signed at the org's time at once.
    clock.advance(Duration::from_secs(3 * 3600));
    salesforce_clock.advance(Duration::from_secs(3 * 3600));
    client.access_token().await.unwrap();
    assert_eq!(endpoint.rejections().len(), 1);
    assert_eq!(endpoint.issued(), 2);
    server.verify().await;

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
