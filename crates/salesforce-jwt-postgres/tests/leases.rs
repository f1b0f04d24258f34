//! Leases, fencing and the transactional commit against a real PostgreSQL server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{clock, fresh_database, store};
use salesforce_jwt::clock::Clock as _;
use salesforce_jwt_postgres::{DEFAULT_LEASE_TTL, EventRow, PgError, PgStore, PgTarget};
use serde_json::json;

fn row(id: &str) -> EventRow {
    EventRow {
        event_id: id.to_string(),
        record: format!(r#"{{"EVENT_TYPE":"Login","id":"{id}"}}"#).into_bytes(),
    }
}

#[tokio::test]
async fn migrations_are_idempotent_and_safe_to_race() {
    let url = fresh_database("migrate").await;
    let clock = clock();
    let mut handles = Vec::new();
    for i in 0..4 {
        let url = url.clone();
        let clock = clock.clone();
        handles.push(tokio::spawn(async move {
            PgStore::connect(
                &PgTarget::parse(&url).unwrap(),
                Arc::new(clock),
                format!("racer-{i}"),
            )
            .await
        }));
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    // A fifth connect finds the schema in place.
    store(&url, &clock, "late").await;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let versions: i64 = client
        .query_one("SELECT count(*) FROM sfjwt_schema_version", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(versions, 1);
}

#[tokio::test]
async fn two_stores_racing_for_one_lease_one_wins() {
    let url = fresh_database("race").await;
    let clock = clock();
    let mut handles = Vec::new();
    for i in 0..8 {
        let s = store(&url, &clock, &format!("host-{i}")).await;
        handles.push(tokio::spawn(async move {
            s.claim("acme", "EventLogFile", DEFAULT_LEASE_TTL).await
        }));
    }
    let mut winners = Vec::new();
    let mut busy = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(lease) => winners.push(lease),
            Err(PgError::LeaseBusy { .. }) => busy += 1,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins");
    assert_eq!(busy, 7);
    assert_eq!(winners[0].fencing_token, 1);
}

#[tokio::test]
async fn a_taken_over_holder_cannot_write_or_renew() {
    let url = fresh_database("fence").await;
    let clock = clock();
    let a = store(&url, &clock, "host-a").await;
    let b = store(&url, &clock, "host-b").await;
    let mut lease_a = a
        .claim("acme", "LoginEvent", DEFAULT_LEASE_TTL)
        .await
        .unwrap();
    a.commit(&lease_a, &[row("1")], &json!({"cursor": 1}))
        .await
        .unwrap();

    // While A's lease is live, B is refused.
    let err = b
        .claim("acme", "LoginEvent", DEFAULT_LEASE_TTL)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PgError::LeaseBusy { ref holder, .. } if holder == "host-a"),
        "{err}"
    );

    // A pauses past its expiry; B takes over with a larger token.
    clock.advance(DEFAULT_LEASE_TTL + Duration::from_secs(1));
    let lease_b = b
        .claim("acme", "LoginEvent", DEFAULT_LEASE_TTL)
        .await
        .unwrap();
    assert_eq!(lease_b.fencing_token, lease_a.fencing_token + 1);
    b.commit(&lease_b, &[row("2")], &json!({"cursor": 2}))
        .await
        .unwrap();

    // A wakes up: its write and its renewal are refused, and nothing of it lands.
    let err = a
        .commit(&lease_a, &[row("3")], &json!({"cursor": 0}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PgError::LeaseLost { ref holder, current, mine: Some(m), .. } if holder == "host-b" && current == m + 1),
        "{err}"
    );
    assert!(err.to_string().contains("host-b"));
    let err = a.renew(&mut lease_a, DEFAULT_LEASE_TTL).await.unwrap_err();
    assert!(matches!(err, PgError::LeaseLost { .. }), "{err}");
    let checkpoint: serde_json::Value = a
        .load_checkpoint("acme", "LoginEvent")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(checkpoint, json!({"cursor": 2}));
    assert_eq!(a.event_count("acme", "LoginEvent").await.unwrap(), 2);
}

#[tokio::test]
async fn renewal_keeps_the_lease_and_release_hands_it_over_at_once() {
    let url = fresh_database("renew").await;
    let clock = clock();
    let a = store(&url, &clock, "host-a").await;
    let b = store(&url, &clock, "host-b").await;
    let mut lease = a
        .claim("acme", "EventLogFile", DEFAULT_LEASE_TTL)
        .await
        .unwrap();
    assert!(!lease.renew_due(clock.now(), DEFAULT_LEASE_TTL));
    for _ in 0..5 {
        // Past two thirds of the lease: renewal due, and the lease still live.
        clock.advance(Duration::from_secs(25));
        assert!(lease.renew_due(clock.now(), DEFAULT_LEASE_TTL));
        assert!(lease.is_live(clock.now()));
        a.renew(&mut lease, DEFAULT_LEASE_TTL).await.unwrap();
        assert!(matches!(
            b.claim("acme", "EventLogFile", DEFAULT_LEASE_TTL).await,
            Err(PgError::LeaseBusy { .. })
        ));
    }
    a.release(lease).await.unwrap();
    let taken = b
        .claim("acme", "EventLogFile", DEFAULT_LEASE_TTL)
        .await
        .unwrap();
    assert_eq!(taken.fencing_token, 2);
}

#[tokio::test]
async fn rows_and_checkpoint_commit_together_and_a_duplicate_is_reported_not_hidden() {
    let url = fresh_database("commit").await;
    let clock = clock();
    let a = store(&url, &clock, "host-a").await;
    let lease = a
        .claim("acme", "EventLogFile", DEFAULT_LEASE_TTL)
        .await
        .unwrap();
    a.commit(&lease, &[row("1"), row("2")], &json!({"files": 1}))
        .await
        .unwrap();
    let err = a
        .commit(&lease, &[row("3"), row("2")], &json!({"files": 2}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PgError::DuplicateEvent { ref event_id, .. } if event_id == "2"),
        "{err}"
    );
    // Nothing of the failed transaction is there: neither row 3 nor the new checkpoint.
    assert_eq!(a.event_count("acme", "EventLogFile").await.unwrap(), 2);
    let checkpoint: serde_json::Value = a
        .load_checkpoint("acme", "EventLogFile")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(checkpoint, json!({"files": 1}));
}
