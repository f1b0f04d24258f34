//! `LeaseHolder`: claiming, renewing on the holder's clock, and noticing a takeover, against a
//! real PostgreSQL server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{SteppedClock, clock, expire_lease, fresh_database, host_port};
use futures_util::FutureExt as _;
use salesforce_jwt::clock::Clock;
use salesforce_jwt_postgres::{LeaseBusy, LeaseHolder, LeaseLoss, PgTarget, PgWorker};
use time::OffsetDateTime;

const TTL: Duration = Duration::from_secs(30);

/// Waits (bounded) until the renewal task has renewed past `before`.
async fn renewed_after(held: &salesforce_jwt_postgres::HeldLease, before: OffsetDateTime) {
    for _ in 0..500 {
        if held.lease().valid_until > before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no renewal: {:?}", held.lease());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_lease_is_renewed_on_the_clock_and_its_loss_is_reported_once_taken_over() {
    let url = fresh_database("holder").await;
    let target = PgTarget::parse(&url).unwrap();
    let stepped = SteppedClock::new();
    let manual = clock();
    let a = PgWorker::connect(&target, Arc::new(stepped.clone()), "host-a")
        .await
        .unwrap();
    let b = PgWorker::connect(&target, Arc::new(manual.clone()), "host-b")
        .await
        .unwrap();
    let a = LeaseHolder::new(a, "acme", "EventLogFile", TTL);
    let b = LeaseHolder::new(b, "acme", "EventLogFile", TTL);

    // Claimed at once: nobody holds it.
    let held = a
        .acquire(|busy| panic!("busy: {busy:?}"), std::future::pending())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.fencing_token(), 1);
    assert_eq!(held.store().lease(), Some(&held.lease()));
    let claimed = held.lease();
    assert_eq!(claimed.valid_until, stepped.now() + TTL);

    // Renewed a third of the TTL later by the holder's clock, not before.
    stepped.advance(TTL / 3 - Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(held.lease(), claimed);
    stepped.advance(Duration::from_secs(1));
    renewed_after(&held, claimed.valid_until).await;
    assert_eq!(held.lease().valid_until, stepped.now() + TTL);
    assert_eq!(held.lease().fencing_token, 1);
    assert!(held.lost().now_or_never().is_none());

    // Another holder is told who has it, waits at most half the TTL between claims on its
    // clock, and gives up when told to.
    let mut refusals: Vec<LeaseBusy> = Vec::new();
    let got = b
        .acquire(
            |busy| {
                refusals.push(busy.clone());
                (refusals.len() < 2).then_some(Duration::from_secs(3600))
            },
            std::future::pending(),
        )
        .await
        .unwrap();
    assert!(got.is_none());
    assert_eq!(refusals.len(), 2);
    assert_eq!(refusals[0].holder, "host-a");
    assert_eq!(manual.slept(), [TTL / 2]);

    // Once the lease ran out by the database's clock, the other holder takes it over, and the
    // first one finds out at its next renewal.
    expire_lease(&url, "acme", "EventLogFile").await;
    let taken = b
        .acquire(|busy| panic!("busy: {busy:?}"), std::future::pending())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.fencing_token(), 2);
    stepped.advance(TTL / 3);
    let loss = tokio::time::timeout(Duration::from_secs(10), held.lost())
        .await
        .expect("the loss is reported");
    let LeaseLoss::TakenOver { reason } = &loss else {
        panic!("{loss:?}")
    };
    assert!(reason.contains("host-b"), "{reason}");
    drop(held);

    // A stop request ends the wait for a busy lease.
    let stopped = a
        .acquire(|_| Some(Duration::from_secs(1)), std::future::ready(()))
        .await
        .unwrap();
    assert!(stopped.is_none());

    // A release hands it over at once.
    taken.release().await.unwrap();
    let again = a
        .acquire(|busy| panic!("busy: {busy:?}"), std::future::pending())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.fencing_token(), 3);
}

/// A TCP proxy in front of the test server that can be cut: its connections closed and new ones
/// refused, as when the database host goes away.
struct CuttableProxy {
    addr: String,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl CuttableProxy {
    async fn start(upstream: String) -> CuttableProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let tasks = Arc::new(std::sync::Mutex::new(Vec::new()));
        let spawned = Arc::clone(&tasks);
        let accept = tokio::spawn(async move {
            loop {
                let (mut client, _) = listener.accept().await.unwrap();
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    let mut server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                spawned.lock().unwrap().push(task);
            }
        });
        tasks.lock().unwrap().push(accept);
        CuttableProxy { addr, tasks }
    }

    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn renewals_that_fail_until_the_lease_runs_out_by_the_holders_clock_report_its_loss() {
    let url = fresh_database("holder_cut").await;
    let proxy = CuttableProxy::start(host_port(&url)).await;
    let via_proxy = url.replace(&host_port(&url), &proxy.addr);
    let stepped = SteppedClock::new();
    let worker = PgWorker::connect(
        &PgTarget::parse(&via_proxy).unwrap(),
        Arc::new(stepped.clone()),
        "host-a",
    )
    .await
    .unwrap();
    let holder = LeaseHolder::new(worker, "acme", "EventLogFile", TTL);
    let held = holder
        .acquire(|busy| panic!("busy: {busy:?}"), std::future::pending())
        .await
        .unwrap()
        .unwrap();
    let claimed = held.lease();

    // PostgreSQL unreachable: two renewals fail while the lease is still valid by the holder's
    // clock, and the holder goes on; the third finds it run out.
    proxy.cut();
    for _ in 0..2 {
        stepped.advance(TTL / 3);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(held.lost().now_or_never().is_none());
    }
    stepped.advance(TTL / 3);
    let loss = tokio::time::timeout(Duration::from_secs(10), held.lost())
        .await
        .expect("the loss is reported");
    assert!(matches!(loss, LeaseLoss::RanOut { .. }), "{loss:?}");
    assert!(
        loss.to_string()
            .starts_with("the lease ran out while it could not be renewed: "),
        "{loss}"
    );
    assert!(!stepped.now().lt(&claimed.valid_until));
    assert_eq!(held.lease(), claimed);
}
