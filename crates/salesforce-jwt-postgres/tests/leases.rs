//! Leases, fencing and the transactional commit against a real PostgreSQL server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{FreezingProxy, clock, fresh_database, host_port, raw, store, store_with};
use salesforce_jwt::clock::Clock as _;
use salesforce_jwt_postgres::{
    DEFAULT_LEASE_TTL, EventRow, LeaseTimeouts, PgError, PgStore, PgTarget,
};
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
    assert_eq!(versions, i64::from(salesforce_jwt_postgres::SCHEMA_VERSION));
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

    // A pauses past its expiry (by the database's clock, which judges it); B takes over with a
    // larger token.
    common::expire_lease(&url, "acme", "LoginEvent").await;
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

#[tokio::test]
async fn expiry_is_judged_by_the_database_clock_not_each_clients() {
    let url = fresh_database("dbclock").await;
    let base = clock();
    let a = store(&url, &base, "host-a").await;
    // B's clock runs an hour ahead of A's, C's an hour behind: neither may decide alone.
    let ahead = clock();
    ahead.advance(Duration::from_secs(3600));
    let b = store(&url, &ahead, "host-b").await;
    let behind = common::clock();
    behind.set(base.now() - Duration::from_secs(3600));
    let c = store(&url, &behind, "host-c").await;
    let ttl = Duration::from_secs(2);
    let lease = a.claim("acme", "LoginEvent", ttl).await.unwrap();
    let err = b.claim("acme", "LoginEvent", ttl).await.unwrap_err();
    assert!(
        matches!(err, PgError::LeaseBusy { ref holder, .. } if holder == "host-a"),
        "a clock ahead does not take a live lease over: {err}"
    );
    // The lease's expiry is the database's, not A's (whose clock says 2025).
    let db_now: time::OffsetDateTime = raw(&url)
        .await
        .query_one("SELECT now()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        (lease.expires_at - db_now).abs() < time::Duration::seconds(5),
        "{} vs {db_now}",
        lease.expires_at
    );
    assert_eq!(lease.valid_until, base.now() + ttl);
    // Past the TTL by the database's clock, a clock that is behind takes it over.
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    let taken = c.claim("acme", "LoginEvent", ttl).await.unwrap();
    assert_eq!(taken.fencing_token, lease.fencing_token + 1);
}

#[tokio::test]
async fn a_fencing_token_is_never_issued_twice_even_after_the_lease_row_is_deleted() {
    let url = fresh_database("reissue").await;
    let clock = clock();
    let a = store(&url, &clock, "host-a").await;
    let b = store(&url, &clock, "host-b").await;
    let lease_a = a
        .claim("acme", "EventLogFile", DEFAULT_LEASE_TTL)
        .await
        .unwrap();
    a.commit(&lease_a, &[row("1")], &json!({"files": 1}))
        .await
        .unwrap();
    // An operator clears the "stuck" lease while A is merely paused.
    raw(&url)
        .await
        .batch_execute("DELETE FROM sfjwt_leases")
        .await
        .unwrap();
    let lease_b = b
        .claim("acme", "EventLogFile", DEFAULT_LEASE_TTL)
        .await
        .unwrap();
    assert!(
        lease_b.fencing_token > lease_a.fencing_token,
        "B got token {} again after A's {}",
        lease_b.fencing_token,
        lease_a.fencing_token
    );
    b.commit(&lease_b, &[row("2")], &json!({"files": 2}))
        .await
        .unwrap();
    // A wakes up: refused, and nothing of it lands.
    let err = a
        .commit(&lease_a, &[row("3")], &json!({"files": 0}))
        .await
        .unwrap_err();
    assert!(matches!(err, PgError::LeaseLost { .. }), "{err}");
    let checkpoint: serde_json::Value = b
        .load_checkpoint("acme", "EventLogFile")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(checkpoint, json!({"files": 2}));
    assert_eq!(b.event_count("acme", "EventLogFile").await.unwrap(), 2);
    // Deleting the lease row again, and again: every token is new.
    let mut seen = vec![lease_a.fencing_token, lease_b.fencing_token];
    for _ in 0..3 {
        raw(&url)
            .await
            .batch_execute("DELETE FROM sfjwt_leases")
            .await
            .unwrap();
        let lease = a
            .claim("acme", "EventLogFile", DEFAULT_LEASE_TTL)
            .await
            .unwrap();
        assert!(!seen.contains(&lease.fencing_token), "{seen:?} {lease:?}");
        seen.push(lease.fencing_token);
    }
}

#[tokio::test]
async fn a_version_1_database_is_upgraded_and_its_tokens_are_not_issued_again() {
    let url = fresh_database("upgrade").await;
    // The schema of version 1, as the previous release created it, with a lease at token 7 and
    // a checkpoint written at token 9 whose lease row is gone.
    raw(&url)
        .await
        .batch_execute(
            "CREATE TABLE sfjwt_schema_version (version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO sfjwt_schema_version (version) VALUES (1);
             CREATE TABLE sfjwt_leases (org text NOT NULL, source text NOT NULL,
                 holder text NOT NULL, fencing_token bigint NOT NULL,
                 expires_at timestamptz NOT NULL, PRIMARY KEY (org, source));
             CREATE TABLE sfjwt_checkpoints (org text NOT NULL, source text NOT NULL,
                 fencing_token bigint NOT NULL, checkpoint jsonb NOT NULL,
                 updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (org, source));
             CREATE TABLE salesforce_events (id bigserial PRIMARY KEY, org text NOT NULL,
                 source text NOT NULL, event_id text NOT NULL, record jsonb NOT NULL,
                 collected_at timestamptz NOT NULL DEFAULT now(),
                 UNIQUE (org, source, event_id));
             INSERT INTO sfjwt_leases VALUES ('acme', 'LoginEvent', 'old', 7, '-infinity');
             INSERT INTO sfjwt_checkpoints (org, source, fencing_token, checkpoint)
                 VALUES ('acme', 'EventLogFile', 9, '{}');",
        )
        .await
        .unwrap();
    let clock = clock();
    let s = store(&url, &clock, "host-a").await;
    raw(&url)
        .await
        .batch_execute("DELETE FROM sfjwt_leases")
        .await
        .unwrap();
    let login = s
        .claim("acme", "LoginEvent", DEFAULT_LEASE_TTL)
        .await
        .unwrap();
    assert_eq!(login.fencing_token, 8);
    let elf = s
        .claim("acme", "EventLogFile", DEFAULT_LEASE_TTL)
        .await
        .unwrap();
    assert_eq!(elf.fencing_token, 10);
    let version: i32 = raw(&url)
        .await
        .query_one("SELECT max(version) FROM sfjwt_schema_version", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, salesforce_jwt_postgres::SCHEMA_VERSION);
}

#[test]
fn the_holder_id_is_unique_per_process_not_host_and_pid() {
    let id = salesforce_jwt_postgres::process_holder_id();
    assert_eq!(id, salesforce_jwt_postgres::process_holder_id(), "stable");
    let pid = format!(":{}", std::process::id());
    assert!(id.ends_with(&pid), "{id}");
    // Two processes with the same host name and pid (two containers' pid 1) get different
    // ids: the instance part is random, not derived from either.
    let (a, b) = (
        salesforce_jwt_postgres::new_holder_id(),
        salesforce_jwt_postgres::new_holder_id(),
    );
    assert_ne!(a, b);
    let host_pid = |s: &str| s.split_once('@').unwrap().1.to_string();
    assert_eq!(host_pid(&a), host_pid(&b));
    assert_eq!(host_pid(id), host_pid(&a));
    let instance = id.split_once('@').unwrap().0;
    assert_eq!(instance.len(), 16, "{id}");
    assert!(instance.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renewal_does_not_wait_behind_commits_and_a_stuck_commit_ends_at_its_timeout() {
    let url = fresh_database("renewpool").await;
    let clock = clock();
    let timeouts = LeaseTimeouts {
        commit_statement: Duration::from_secs(4),
        ..LeaseTimeouts::default()
    };
    let a = store_with(&url, &clock, "host-a", timeouts).await;
    let mut leases = Vec::new();
    for i in 0..8 {
        leases.push(
            a.claim(&format!("org{i}"), "EventLogFile", DEFAULT_LEASE_TTL)
                .await
                .unwrap(),
        );
    }
    let mut renewed = a
        .claim("acme", "EventLogFile", DEFAULT_LEASE_TTL)
        .await
        .unwrap();
    // Another client holds salesforce_events: every commit waits, holding its connection.
    let blocker = raw(&url).await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE salesforce_events IN EXCLUSIVE MODE")
        .await
        .unwrap();
    let mut commits = Vec::new();
    for lease in leases {
        let a = a.clone();
        commits.push(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let r = a.commit(&lease, &[row("1")], &json!({"files": 1})).await;
            (r, started.elapsed())
        }));
    }
    let watcher = raw(&url).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE wait_event_type = 'Lock' AND query LIKE 'COPY salesforce_events%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting == 8 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{waiting} commits wait"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every connection of the commit pool is taken; the renewal has connections of its own.
    tokio::time::timeout(
        Duration::from_secs(2),
        a.renew(&mut renewed, DEFAULT_LEASE_TTL),
    )
    .await
    .expect("the renewal waited for a connection")
    .unwrap();
    // The stuck commits end at their statement timeout, as retryable failures, and free their
    // lease rows: another process can claim those once they expire.
    for commit in commits {
        let (r, took) = commit.await.unwrap();
        let err = r.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert!(err.to_string().contains("statement timeout"), "{err}");
        assert!(took < Duration::from_secs(8), "{took:?}");
    }
    blocker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(a.event_count("org0", "EventLogFile").await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_holder_that_vanished_mid_commit_is_taken_over_within_the_ttl_and_its_timeouts() {
    let url = fresh_database("vanish").await;
    let clock = clock();
    let timeouts = LeaseTimeouts {
        claim_lock: Duration::from_millis(500),
        commit_statement: Duration::from_secs(3),
        commit_idle: Duration::from_secs(2),
        keepalive_idle: Duration::from_secs(10),
    };
    let ttl = Duration::from_secs(2);
    // A reaches the server through a proxy that goes silent once A starts sending its rows:
    // A has locked the lease row for its commit, and then sends nothing more, ever.
    let proxy = FreezingProxy::start(host_port(&url), b"COPY salesforce_events").await;
    let via_proxy = url.replace(&host_port(&url), &proxy.addr);
    let a = store_with(&via_proxy, &clock, "host-a", timeouts).await;
    let b = store_with(&url, &clock, "host-b", timeouts).await;
    let lease_a = a.claim("acme", "EventLogFile", ttl).await.unwrap();
    proxy.arm();
    let vanished = {
        let a = a.clone();
        let lease_a = lease_a.clone();
        tokio::spawn(async move { a.commit(&lease_a, &[row("1")], &json!({"files": 1})).await })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !proxy.frozen() {
        assert!(
            std::time::Instant::now() < deadline,
            "A never started its commit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = std::time::Instant::now();
    // The server sees A idle in its transaction: the commit's idle timeout ends A's session and
    // frees the lease row; the lease itself runs out after the TTL; B's next attempt gets it.
    let bound = ttl.max(timeouts.commit_idle) + Duration::from_secs(5);
    let lease_b = loop {
        // Each attempt gives up at the claim's lock timeout instead of queueing behind A.
        let attempt = tokio::time::timeout(
            timeouts.claim_lock + Duration::from_secs(2),
            b.claim("acme", "EventLogFile", ttl),
        )
        .await
        .expect("a claim waited behind the vanished holder's lock");
        match attempt {
            Ok(lease) => break lease,
            Err(PgError::LeaseBusy { holder, .. }) => assert_eq!(holder, "host-a"),
            Err(e) => panic!("{e}"),
        }
        assert!(started.elapsed() < bound, "not taken over within {bound:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(lease_b.fencing_token, lease_a.fencing_token + 1);
    b.commit(&lease_b, &[row("1")], &json!({"files": 1}))
        .await
        .unwrap();
    assert_eq!(b.event_count("acme", "EventLogFile").await.unwrap(), 1);
    vanished.abort();
}
