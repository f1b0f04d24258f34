//! Authorized requests to the instance (`send()`) against a wiremock Salesforce: the bearer
//! token, re-authentication on 401, refused tokens, API errors and usage, retries, URLs off the
//! instance.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    LIMITS, TOKEN_PATH, TokenEndpoint, access_token_for, client, config, manual_clock, ok_json,
    requests_to, rest_error, server_with_token_endpoint,
};
use salesforce_jwt::{ApiUsage, Error, InstanceRequest};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

// ---- send() ----

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

#[tokio::test]
async fn a_refused_limits_probe_still_yields_the_usage_its_answer_carried() {
    let clock = manual_clock();
    let (server, _endpoint) = server_with_token_endpoint(&clock).await;
    // The limits resource needs "View Setup and Configuration".
    Mock::given(method("GET"))
        .and(path(LIMITS))
        .respond_with(
            rest_error(403, "INSUFFICIENT_ACCESS", "insufficient access rights")
                .insert_header("Sforce-Limit-Info", "api-usage=40/100"),
        )
        .expect(2)
        .mount(&server)
        .await;
    let client = client(config(&server.uri()), &clock);
    client.set_api_budget(Some(50)).unwrap();
    let usage = client.probe_api_usage().await.unwrap();
    assert_eq!(
        usage,
        Some(ApiUsage {
            used: 40,
            limit: 100
        })
    );
    assert!(client.api_budget_reached().is_none());
    // A request under the budget is sent, and its refusal is an error as ever.
    let error = client
        .send(&InstanceRequest::get(LIMITS))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Api(ref e) if e.status == 403),
        "{error:?}"
    );
}
