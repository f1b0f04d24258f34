//! The token cache against a wiremock Salesforce: cached tokens, refresh ahead, single flight
//! (one token request for many callers, one failure shared) and invalidation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    TOKEN_PATH, TokenEndpoint, access_token_for, client, config, config_builder, manual_clock,
    oauth, oauth_error, requests_to, server_with_token_endpoint, start_time,
};
use salesforce_jwt::clock::Clock;
use salesforce_jwt::{AccessToken, Error, JwtBearerClient, OAuthErrorKind};
use tokio::sync::Barrier;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

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
    // Awaiting hundreds of finished tasks spends this task's tokio coop budget, and the
    // `MockServer` dropped at the end of the test verifies its mocks with a blocking executor
    // on this thread: with the budget spent, tokio's RwLock inside it answers Pending forever
    // and the test spun at 100% CPU (seen once in CI, `gdb`: wiremock `verify` under
    // `futures_executor::block_on`, in `coop::poll_proceed`). Yielding once gives the task a
    // fresh budget before anything else runs.
    tokio::task::yield_now().await;
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
