//! `Balancer`: collectors announcing themselves with heartbeat rows, counting each other, and
//! holding their fair share of the leases, against a real PostgreSQL server. Time moves only when
//! the test moves the clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{SteppedClock, fresh_database, raw};
use salesforce_jwt_postgres::{
    Balancer, Claim, HeldLease, LeaseHolder, PgTarget, PgWorker, fair_share, unit_set_id,
};

const TTL: Duration = Duration::from_secs(30);

async fn worker(url: &str, clock: &SteppedClock, name: &str) -> PgWorker {
    PgWorker::connect(
        &PgTarget::parse(url).unwrap(),
        Arc::new(clock.clone()),
        name,
    )
    .await
    .unwrap()
}

/// `n` units of the org "acme": sources `unit0`, `unit1`...
fn units(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| ("acme".to_string(), format!("unit{i}")))
        .collect()
}

/// Waits (bounded, in real time: the background task only has to run) until `f` holds.
async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}

/// Ends `collector`'s heartbeat row now by the database's clock, as if its TTL had passed there.
async fn expire_collector(url: &str, collector: &str) {
    raw(url)
        .await
        .execute(
            "UPDATE sfjwt_collectors SET expires_at = now() - interval '1 second'
             WHERE collector = $1",
            &[&collector],
        )
        .await
        .unwrap();
}

async fn collectors_rows(url: &str) -> Vec<(String, i32)> {
    raw(url)
        .await
        .query(
            "SELECT collector, units FROM sfjwt_collectors ORDER BY collector",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[test]
fn the_fair_share_is_the_ceiling_of_units_over_live_collectors() {
    assert_eq!(fair_share(24, 3), 8);
    assert_eq!(fair_share(24, 2), 12);
    assert_eq!(fair_share(25, 3), 9);
    assert_eq!(fair_share(2, 3), 1);
    assert_eq!(fair_share(24, 1), 24);
    assert_eq!(fair_share(24, 0), 24);
    assert_eq!(fair_share(0, 3), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn collectors_of_the_same_units_count_each_other_and_stop_counting_one_that_left_or_expired()
{
    let url = fresh_database("heartbeat").await;
    let clock = SteppedClock::new();
    let a = Balancer::join(worker(&url, &clock, "host-a").await, &units(24), TTL)
        .await
        .unwrap();
    assert_eq!(
        (a.collector(), a.units(), a.live(), a.share()),
        ("host-a", 24, 1, 24)
    );
    assert_eq!(a.held(), 0);

    // A newcomer counts the others at once; they count it at their next heartbeat, a third of
    // the TTL later by their clock, not before.
    let b = Balancer::join(worker(&url, &clock, "host-b").await, &units(24), TTL)
        .await
        .unwrap();
    // The same units in another order, one of them twice: the same set.
    let mut same = units(24);
    same.reverse();
    same.push(same[0].clone());
    let c = Balancer::join(worker(&url, &clock, "host-c").await, &same, TTL)
        .await
        .unwrap();
    assert_eq!((b.live(), c.live()), (2, 3));
    assert_eq!((b.share(), c.share(), c.units()), (12, 8, 24));
    // A collector of other units is no help with these: it neither counts nor is counted.
    let other = Balancer::join(worker(&url, &clock, "host-x").await, &units(12), TTL)
        .await
        .unwrap();
    assert_eq!((other.live(), other.share()), (1, 12));
    clock.advance(TTL / 3 - Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(a.live(), 1);
    clock.advance(Duration::from_secs(1));
    until("a counts three", || a.live() == 3 && b.live() == 3).await;
    assert_eq!(a.share(), 8);
    assert_eq!(other.live(), 1);
    assert_eq!(
        collectors_rows(&url).await,
        [
            ("host-a".to_string(), 24),
            ("host-b".to_string(), 24),
            ("host-c".to_string(), 24),
            ("host-x".to_string(), 12)
        ]
    );
    assert_eq!(unit_set_id(&same), unit_set_id(&units(24)));
    assert_ne!(unit_set_id(&units(12)), unit_set_id(&units(24)));
    other.leave().await.unwrap();

    // One that leaves deletes its row: counted out at the next heartbeat.
    c.leave().await.unwrap();
    assert_eq!(collectors_rows(&url).await.len(), 2);
    clock.advance(TTL / 3);
    until("a counts two", || a.live() == 2).await;
    assert_eq!(a.share(), 12);

    // One that stops heartbeating (dropped: its process died) is counted until its row expires
    // by the database's clock, and no longer after.
    drop(b);
    clock.advance(TTL / 3);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(a.live(), 2);
    expire_collector(&url, "host-b").await;
    clock.advance(TTL / 3);
    until("a counts itself only", || a.live() == 1).await;
    assert_eq!(a.share(), 24);
    // The expired row stays for the operator to see (deleted a day after it expired).
    assert_eq!(collectors_rows(&url).await.len(), 2);
}

/// `acquire` with a stop request `after` (real time), and an `on_busy` that fails the test: a
/// balanced holder at its share must not even try to claim.
async fn acquire_within(holder: &LeaseHolder, after: Duration) -> Option<HeldLease> {
    holder
        .acquire(
            |busy| panic!("claimed while at its share: {busy:?}"),
            tokio::time::sleep(after),
        )
        .await
        .unwrap()
}

async fn lease_rows(url: &str) -> Vec<(String, String, bool)> {
    raw(url)
        .await
        .query(
            "SELECT source, holder, expires_at > now() FROM sfjwt_leases ORDER BY source",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_balanced_holder_claims_up_to_its_share_waits_there_and_hands_only_the_surplus_over() {
    let url = fresh_database("share").await;
    let clock = SteppedClock::new();
    let wa = worker(&url, &clock, "host-a").await;
    let a = Balancer::join(wa.clone(), &units(4), TTL).await.unwrap();
    let b = Balancer::join(worker(&url, &clock, "host-b").await, &units(4), TTL)
        .await
        .unwrap();
    clock.advance(TTL / 3);
    until("a counts two", || a.live() == 2).await;
    assert_eq!(a.share(), 2);
    let holders: Vec<LeaseHolder> = (0..4)
        .map(|i| LeaseHolder::new(wa.clone(), "acme", format!("unit{i}"), TTL).balanced(a.clone()))
        .collect();

    // Up to the share...
    let mut held = Vec::new();
    for holder in &holders[..2] {
        held.push(
            acquire_within(holder, Duration::from_secs(10))
                .await
                .unwrap(),
        );
    }
    assert_eq!(a.held(), 2);
    // ...and no further, although the lease is free: it is left for a collector below its
    // share, and not even claimed.
    assert!(
        acquire_within(&holders[2], Duration::from_millis(300))
            .await
            .is_none()
    );
    assert_eq!(a.held(), 2);
    assert_eq!(
        lease_rows(&url).await,
        [
            ("unit0".to_string(), "host-a".to_string(), true),
            ("unit1".to_string(), "host-a".to_string(), true)
        ]
    );

    // The other collector dies: once its heartbeat row expired, the share grows and the waiting
    // claim goes ahead, without waiting out its own bound (half the TTL).
    let waiting = {
        let holder = holders[2].clone();
        tokio::spawn(async move { acquire_within(&holder, Duration::from_secs(10)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished());
    drop(b);
    expire_collector(&url, "host-b").await;
    clock.advance(TTL / 3);
    held.push(waiting.await.unwrap().expect("claimed once the share grew"));
    assert_eq!((a.live(), a.share(), a.held()), (1, 4, 3));
    // At or under the share, nothing is handed over.
    assert!(held.iter().all(|h| !h.hand_over_due()));
    assert_eq!(a.held(), 3);

    // A newcomer makes the share 2: of the three leases, exactly one is told to go, however
    // many ask.
    let c = Balancer::join(worker(&url, &clock, "host-c").await, &units(4), TTL)
        .await
        .unwrap();
    clock.advance(TTL / 3);
    until("a counts two again", || a.live() == 2).await;
    let due: Vec<bool> = held.iter().map(HeldLease::hand_over_due).collect();
    assert_eq!(due.iter().filter(|d| **d).count(), 1, "{due:?}");
    // Asked again, the answers stand: the one told to go stays told, the others stay.
    let again: Vec<bool> = held.iter().map(HeldLease::hand_over_due).collect();
    assert_eq!(again, due);
    assert_eq!(a.held(), 2);
    let going = held.remove(due.iter().position(|d| *d).unwrap());
    let source = going.lease().source;
    going.release().await.unwrap();
    assert_eq!(a.held(), 2);
    // The newcomer, below its share, claims the released lease at once.
    let newcomer = LeaseHolder::new(
        worker(&url, &clock, "host-c").await,
        "acme",
        source.clone(),
        TTL,
    )
    .balanced(c.clone());
    let taken = acquire_within(&newcomer, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(taken.lease().holder, "host-c");
    assert_eq!(c.held(), 1);

    // A lease that ends in any way stops counting: released or dropped.
    held.pop().unwrap().release().await.unwrap();
    assert_eq!(a.held(), 1);
    drop(held);
    assert_eq!(a.held(), 0);
    // A plain claim counts too, whatever the share.
    let Claim::Held(extra) = holders[3].claim().await.unwrap() else {
        panic!("busy")
    };
    assert_eq!(a.held(), 1);
    drop(extra);
    assert_eq!(a.held(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_collector_stops_counting_when_its_row_expires_not_at_the_next_heartbeat() {
    let url = fresh_database("expiry").await;
    let clock = SteppedClock::new();
    let a = Balancer::join(worker(&url, &clock, "host-a").await, &units(24), TTL)
        .await
        .unwrap();
    // A TTL short enough to run out in real time: the database judges expiry by its own clock.
    let short = Duration::from_secs(2);
    let b = Balancer::join(worker(&url, &clock, "host-b").await, &units(24), short)
        .await
        .unwrap();
    clock.advance(TTL / 3);
    until("a counts two", || a.live() == 2).await;
    drop(b);
    tokio::time::sleep(short + Duration::from_millis(300)).await;
    // Well before a's next heartbeat (a third of its TTL away), it reads the rows again when
    // b's was due to expire, and counts itself only.
    clock.advance(short + Duration::from_millis(300));
    until("a counts itself only", || a.live() == 1).await;
    assert_eq!(a.share(), 24);
}
