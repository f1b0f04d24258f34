//! The mock org as a downstream service's tests use it: a `JwtBearerClient` pointed at a
//! `MockOrg`, with the token value chosen by the test, OAuth errors and latency injected on the
//! token endpoint, faults that fire several times and are counted, and the received requests
//! inspected.

use std::sync::Arc;
use std::time::Duration;

use salesforce_jwt::clock::{Clock, ManualClock};
use salesforce_jwt::{Error, JwtBearerClient, OAuthErrorKind, RetryPolicy};
use salesforce_jwt_mock::{
    Fault, FaultTarget, Interval, MockLogFile, MockOrg, MockOrgBuilder, RequestKind,
};
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2025-06-01 12:00 UTC);
const COUNT_LOGINS: &str = "SELECT COUNT() FROM EventLogFile WHERE EventType = 'Login'";

/// The org a downstream test starts: its own clock, and whatever the test adds to the builder.
async fn org(configure: impl FnOnce(MockOrgBuilder) -> MockOrgBuilder) -> (MockOrg, ManualClock) {
    let clock = ManualClock::new(NOW);
    let org = configure(MockOrg::builder().clock(Arc::new(clock.clone())))
        .start()
        .await;
    (org, clock)
}

/// The client the service under test would build, with no retries unless `retry` says so.
fn client(
    org: &MockOrg,
    clock: &ManualClock,
    timeout: Duration,
    retry: RetryPolicy,
) -> JwtBearerClient {
    let config = org
        .config_builder()
        .http_timeout(timeout)
        .retry_policy(retry)
        .build()
        .unwrap();
    JwtBearerClient::builder(config)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap()
}

fn plain_client(org: &MockOrg, clock: &ManualClock) -> JwtBearerClient {
    client(org, clock, Duration::from_secs(30), RetryPolicy::none())
}

fn is_timeout(error: &Error) -> bool {
    matches!(error, Error::Transport { source, .. } if source.is_timeout())
}

// ---------------------------------------------------------------------------------------------
// The token value

#[tokio::test]
async fn the_token_the_test_chooses_is_the_one_the_client_gets_and_sends() {
    let (org, clock) =
        org(|b| b.access_token(|n| format!("00D000000000001!AR.downstream-token-{n}"))).await;
    let client = plain_client(&org, &clock);

    let token = client.access_token().await.unwrap();
    assert_eq!(
        token.expose_secret(),
        "00D000000000001!AR.downstream-token-1"
    );
    client.count(COUNT_LOGINS).await.unwrap();
    let query = org.requests().pop().unwrap();
    assert_eq!(query.kind, RequestKind::Query);
    assert_eq!(
        query.bearer_token(),
        Some("00D000000000001!AR.downstream-token-1")
    );

    // A revoked session makes the client fetch the second token and send that one.
    org.revoke_all_tokens();
    client.count(COUNT_LOGINS).await.unwrap();
    let sent: Vec<_> = org
        .requests()
        .iter()
        .filter(|r| r.kind == RequestKind::Query)
        .map(|r| r.bearer_token().unwrap().to_owned())
        .collect();
    assert_eq!(
        sent,
        [
            "00D000000000001!AR.downstream-token-1",
            "00D000000000001!AR.downstream-token-1",
            "00D000000000001!AR.downstream-token-2",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// OAuth errors and latency on the token endpoint

#[tokio::test]
async fn an_injected_oauth_error_reaches_the_client_as_salesforce_sends_it() {
    let (org, clock) = org(|b| b).await;
    let client = plain_client(&org, &clock);
    org.inject(Fault::oauth(
        "invalid_grant",
        "user hasn't approved this consumer",
    ));

    let Err(Error::OAuth(error)) = client.access_token().await else {
        panic!("expected an OAuth error");
    };
    assert_eq!(error.kind, OAuthErrorKind::UserNotApproved);
    assert_eq!(error.status, 400);
    assert_eq!(error.code, "invalid_grant");
    assert_eq!(error.description, "user hasn't approved this consumer");
    // The assertion itself was valid: the next request gets a token.
    client.access_token().await.unwrap();
    assert_eq!(org.received().token_requests, 2);
    assert_eq!(org.received().token_successes, 1);
}

#[tokio::test]
async fn an_oauth_fault_carries_the_status_it_is_given() {
    let (org, clock) = org(|b| b).await;
    let client = plain_client(&org, &clock);
    org.inject(Fault::OAuth {
        error: "invalid_client_id".into(),
        description: "client identifier invalid".into(),
        status: 401,
    });

    let Err(Error::OAuth(error)) = client.access_token().await else {
        panic!("expected an OAuth error");
    };
    assert_eq!(error.kind, OAuthErrorKind::InvalidClientId);
    assert_eq!(error.status, 401);
}

#[tokio::test]
async fn token_latency_beyond_the_client_timeout_times_the_token_request_out() {
    let (org, clock) = org(|b| b.token_latency(Duration::from_secs(60))).await;
    let client = client(
        &org,
        &clock,
        Duration::from_millis(200),
        RetryPolicy::none(),
    );

    let error = client.access_token().await.unwrap_err();
    assert!(is_timeout(&error), "{error}");
    assert_eq!(org.received().token_requests, 1);
}

#[tokio::test]
async fn a_delay_fault_holds_back_one_token_answer_only() {
    let (org, clock) = org(|b| b).await;
    let client = client(
        &org,
        &clock,
        Duration::from_millis(200),
        RetryPolicy::none(),
    );
    let delay = org.inject_times(
        Fault::Delay {
            target: FaultTarget::Token,
            delay: Duration::from_secs(60),
        },
        1,
    );

    let error = client.access_token().await.unwrap_err();
    assert!(is_timeout(&error), "{error}");
    client.access_token().await.unwrap();
    assert_eq!(org.times_fired(delay), 1);
    assert_eq!(org.pending_faults(), 0);
}

#[tokio::test]
async fn a_slow_query_is_retried_by_the_client_and_answered() {
    let (org, clock) = org(|b| b).await;
    let retry = RetryPolicy {
        max_attempts: 2,
        ..RetryPolicy::default()
    };
    let client = client(&org, &clock, Duration::from_millis(300), retry);
    let delay = org.inject_times(
        Fault::Delay {
            target: FaultTarget::Query,
            delay: Duration::from_secs(60),
        },
        1,
    );

    assert_eq!(client.count(COUNT_LOGINS).await.unwrap(), 0);
    assert_eq!(org.times_fired(delay), 1);
    assert_eq!(org.received().queries, 2);
    // The delay is answered after the request was logged: both attempts are in the log.
    let kinds: Vec<_> = org.requests().iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [RequestKind::Token, RequestKind::Query, RequestKind::Query]
    );
}

// ---------------------------------------------------------------------------------------------
// Repeatable and counted faults

#[tokio::test]
async fn a_fault_injected_n_times_fires_n_times_then_stops() {
    let (org, clock) = org(|b| b).await;
    let client = plain_client(&org, &clock);
    let unavailable = org.inject_times(
        Fault::ServiceUnavailable {
            target: FaultTarget::Query,
            retry_after_secs: None,
        },
        2,
    );

    for _ in 0..2 {
        let error = client.count(COUNT_LOGINS).await.unwrap_err();
        assert!(
            matches!(&error, Error::Api(api) if api.status == 503),
            "{error}"
        );
    }
    assert_eq!(org.times_fired(unavailable), 2);
    assert_eq!(org.pending_faults(), 0);
    client.count(COUNT_LOGINS).await.unwrap();
    assert_eq!(org.times_fired(unavailable), 2);
}

#[tokio::test]
async fn a_fault_injected_always_fires_until_cleared_and_its_count_stays() {
    let (org, clock) = org(|b| b).await;
    let client = plain_client(&org, &clock);
    let refused = org.inject_always(Fault::oauth("inactive_user", "user is inactive"));

    for _ in 0..3 {
        assert!(matches!(
            client.access_token().await,
            Err(Error::OAuth(ref e)) if e.code == "inactive_user"
        ));
    }
    assert_eq!(org.times_fired(refused), 3);
    assert_eq!(org.pending_faults(), 1);

    org.clear_faults();
    assert_eq!(org.pending_faults(), 0);
    client.access_token().await.unwrap();
    assert_eq!(org.times_fired(refused), 3);
    assert_eq!(org.received().faults_fired, 3);
}

#[tokio::test]
async fn counts_are_kept_per_fault() {
    let (org, clock) = org(|b| b).await;
    let client = plain_client(&org, &clock);
    let first = org.inject_times(Fault::oauth("invalid_grant", "invalid assertion"), 1);
    let second = org.inject_times(Fault::oauth("invalid_grant", "audience is invalid"), 5);

    for expected in [
        OAuthErrorKind::InvalidAssertion,
        OAuthErrorKind::InvalidAudience,
        OAuthErrorKind::InvalidAudience,
    ] {
        let Err(Error::OAuth(error)) = client.access_token().await else {
            panic!("expected an OAuth error");
        };
        assert_eq!(error.kind, expected);
    }
    assert_eq!(org.times_fired(first), 1);
    assert_eq!(org.times_fired(second), 2);
    assert_eq!(org.pending_faults(), 1);
}

// ---------------------------------------------------------------------------------------------
// Received requests

#[tokio::test]
async fn received_requests_show_what_the_client_sent_without_showing_the_token() {
    let (org, clock) = org(|b| b.access_token(|n| format!("00D000000000001!AR.secret-{n}"))).await;
    let client = plain_client(&org, &clock);

    client.access_token().await.unwrap();
    clock.advance(Duration::from_secs(5));
    client.count(COUNT_LOGINS).await.unwrap();

    let requests = org.requests();
    assert_eq!(requests.len(), 2);
    let (token, query) = (&requests[0], &requests[1]);
    assert_eq!(token.kind, RequestKind::Token);
    assert_eq!(token.method, "POST");
    assert_eq!(token.path, "/services/oauth2/token");
    assert!(!token.has_bearer_token());
    assert_eq!(token.soql, None);
    assert_eq!(token.received_at, NOW);
    assert_eq!(query.kind, RequestKind::Query);
    assert_eq!(query.method, "GET");
    assert!(query.path.ends_with("/query"), "{}", query.path);
    assert_eq!(query.soql.as_deref(), Some(COUNT_LOGINS));
    assert!(query.has_bearer_token());
    assert_eq!(query.received_at, clock.now());
    assert!(token.sequence < query.sequence);

    let debug = format!("{requests:?}");
    assert!(!debug.contains("secret-1"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");

    org.clear_requests();
    assert!(org.requests().is_empty());
    assert_eq!(org.received().queries, 1);
}

#[tokio::test]
async fn the_request_log_keeps_the_newest_up_to_its_capacity() {
    let (org, clock) = org(|b| b.request_log_capacity(2)).await;
    let client = plain_client(&org, &clock);

    client.count(COUNT_LOGINS).await.unwrap();
    client
        .count("SELECT COUNT() FROM EventLogFile")
        .await
        .unwrap();

    let requests = org.requests();
    let seen: Vec<_> = requests.iter().map(|r| (r.sequence, r.kind)).collect();
    assert_eq!(seen, [(2, RequestKind::Query), (3, RequestKind::Query)]);
    assert_eq!(
        requests[1].soql.as_deref(),
        Some("SELECT COUNT() FROM EventLogFile")
    );
}

// ---------------------------------------------------------------------------------------------
// EventLogFiles by builder

#[tokio::test]
async fn a_file_built_field_by_field_is_what_the_client_counts() {
    let (org, clock) = org(|b| b).await;
    let client = plain_client(&org, &clock);
    let hour = datetime!(2025-06-01 08:00 UTC);
    let file = MockLogFile::builder("Login")
        .interval(Interval::Hourly)
        .log_date(hour)
        .created_date(hour + time::Duration::hours(3))
        .rows(4)
        .seed(11)
        .build();
    assert_eq!(file.sequence, 1, "an hourly file's Sequence starts at 1");
    assert_eq!(file.row_count(), 4);
    org.add_file(file);

    assert_eq!(client.count(COUNT_LOGINS).await.unwrap(), 1);
    let info = &org.files()[0];
    assert_eq!(
        (info.interval, info.log_date, info.sequence, info.row_count),
        (Interval::Hourly, hour, 1, 4)
    );
}

#[test]
fn the_builder_defaults_a_daily_file_to_a_whole_period() {
    let day = datetime!(2025-06-01 00:00 UTC);
    let file = MockLogFile::builder("API").log_date(day).build();
    assert_eq!(file.interval, Interval::Daily);
    assert_eq!(file.sequence, 0);
    assert_eq!(file.created_date, day + time::Duration::days(1));
    assert_eq!(file.row_count(), salesforce_jwt_mock::EDGE_CASE_CYCLE);
}

#[test]
#[allow(deprecated)]
fn the_deprecated_constructors_build_what_the_builder_builds() {
    let day = datetime!(2025-06-01 00:00 UTC);
    let created = day + time::Duration::hours(26);
    let built = MockLogFile::builder("API")
        .interval(Interval::Daily)
        .log_date(day)
        .sequence(0)
        .created_date(created)
        .rows(9)
        .seed(3)
        .build();
    assert_eq!(
        MockLogFile::generated("API", Interval::Daily, day, 0, created, 9, 3),
        built
    );
    let from_csv =
        MockLogFile::from_csv("API", Interval::Daily, day, 0, created, built.csv.clone());
    let custom = MockLogFile::builder("API")
        .interval(Interval::Daily)
        .log_date(day)
        .sequence(0)
        .created_date(created)
        .csv(built.csv.clone())
        .build();
    assert_eq!(from_csv, custom);
    assert_eq!(custom.field_names, built.field_names);

    let settings = MockLogFile::builder("API")
        .interval(Interval::Hourly)
        .log_date(day)
        .rows(9)
        .seed(3);
    let generated = salesforce_jwt_mock::generate_log_csv("API", day, 1, 9, 3);
    assert_eq!(settings.generate_csv(), generated);
    let streamed: Vec<u8> = salesforce_jwt_mock::CsvRowGenerator::new("API", day, 1, 9, 3)
        .flatten()
        .collect();
    assert_eq!(
        settings.csv_generator().flatten().collect::<Vec<u8>>(),
        streamed
    );
    assert_eq!(streamed, generated.body);
}
