//! The real-time collector against an org whose clock is not the collector's: windows end at
//! the org's time (from the `Date` header of its answers), so a collector six minutes fast
//! loses nothing and one six minutes slow holds nothing back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::LogCapture;
use common::ObjectRecorder as Recorder;
use common::object_row_key as key;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use salesforce_jwt::clock::{Clock, ManualClock};
use salesforce_jwt::collect::{MemoryCheckpointStore, ObjectCollectorOptions, SourceState};
use salesforce_jwt::objects::EventObject;
use salesforce_jwt::{JwtBearerClient, RetryPolicy};
use salesforce_jwt_mock::{MockOrg, generate_records};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

const LOGIN: &str = "LoginEvent";
const AUDIT: &str = "SetupAuditTrail";

fn t0() -> OffsetDateTime {
    datetime!(2025-06-10 12:00 UTC)
}

fn sf(t: OffsetDateTime) -> String {
    salesforce_jwt::datetime::format(t)
}

fn parse(v: &Value) -> OffsetDateTime {
    salesforce_jwt::datetime::parse(v.as_str().unwrap()).unwrap()
}

/// The org on its own clock, the collector's client on a clock `skew` away from it.
struct Skewed {
    mock: MockOrg,
    org_clock: ManualClock,
    local_clock: ManualClock,
    client: JwtBearerClient,
}

impl Skewed {
    async fn new(skew: time::Duration) -> Self {
        let org_clock = ManualClock::new(t0());
        let local_clock = ManualClock::new(t0() + skew);
        let mock = MockOrg::builder()
            .page_size(7)
            .clock(Arc::new(org_clock.clone()))
            .start()
            .await;
        let config = mock
            .config_builder()
            .retry_policy(RetryPolicy {
                max_attempts: 4,
                ..RetryPolicy::default()
            })
            .build()
            .unwrap();
        let client = JwtBearerClient::builder(config)
            .clock(Arc::new(local_clock.clone()))
            .build()
            .unwrap();
        Skewed {
            mock,
            org_clock,
            local_clock,
            client,
        }
    }

    /// Both clocks move together: the skew stays.
    fn advance(&self, d: Duration) {
        self.org_clock.advance(d);
        self.local_clock.advance(d);
    }

    /// A LoginEvent stamped `event_date`, written (queryable) at `written`.
    fn login(&self, event_date: OffsetDateTime, written: OffsetDateTime, seed: u64) {
        let mut rows = generate_records(
            LOGIN,
            event_date - time::Duration::SECOND,
            event_date,
            1,
            seed,
        );
        rows[0].insert("EventDate".into(), json!(sf(event_date)));
        rows[0].insert("CreatedDate".into(), json!(sf(written)));
        self.mock.add_records(LOGIN, rows).unwrap();
    }

    /// A SetupAuditTrail row created at `created` (queryable at once).
    fn audit(&self, created: OffsetDateTime, seed: u64) {
        let mut rows = generate_records(AUDIT, created - time::Duration::SECOND, created, 1, seed);
        rows[0].insert("CreatedDate".into(), json!(sf(created)));
        self.mock.add_records(AUDIT, rows).unwrap();
    }

    /// The keys of the rows queryable at the org's time now (written at or before it).
    fn queryable(&self, object: &str) -> BTreeSet<String> {
        let now = self.org_clock.now();
        self.mock
            .records(object)
            .iter()
            .filter(|r| parse(&r["CreatedDate"]) <= now)
            .map(|r| key(object, r))
            .collect()
    }

    fn collector(
        &self,
        store: &MemoryCheckpointStore,
    ) -> salesforce_jwt::collect::Collector<MemoryCheckpointStore> {
        common::object_collector(
            self.client.clone(),
            vec![
                EventObject::named(LOGIN).unwrap(),
                EventObject::named(AUDIT).unwrap(),
            ],
            store.clone(),
            ObjectCollectorOptions::default(),
        )
        .unwrap()
    }
}

/// Three passes (at the org's t0, t0 + 3 min, t0 + 10 min) over rows stamped up to the
/// second before each pass, and one login written late, 3.5 minutes after its `EventDate`
/// (inside the 5-minute overlap). After every pass, what was delivered is exactly what was
/// queryable when it began: nothing lost, nothing held back, nothing twice.
async fn collect_through_skew(skew: time::Duration) {
    let org = Skewed::new(skew).await;
    let log = LogCapture::default();
    let _guard = log.on_this_thread(tracing::Level::WARN);
    let minute = time::Duration::minutes(1);
    // Rows over the last hour, and several in the last 6 minutes: the ones a slow collector's
    // window would leave out.
    for i in 0..12i32 {
        let event_date = t0() - minute * (5 * i + 1) - time::Duration::seconds(i64::from(i));
        org.login(
            event_date,
            event_date + time::Duration::seconds(2),
            i as u64,
        );
        org.audit(event_date, 100 + i as u64);
    }
    for i in 1..=4i64 {
        let event_date = t0() - time::Duration::seconds(20 * i);
        org.login(
            event_date,
            event_date + time::Duration::seconds(3),
            200 + i as u64,
        );
        org.audit(t0() - time::Duration::seconds(15 * i), 300 + i as u64);
    }
    // Stamped a minute before t0 but written only at t0 + 150 s.
    org.login(t0() - minute, t0() + time::Duration::seconds(150), 400);

    let store = MemoryCheckpointStore::new();
    let mut sink = Recorder::default();
    for (pass, step) in [(1, 0u64), (2, 180), (3, 420)] {
        org.advance(Duration::from_secs(step));
        if pass == 3 {
            let now = org.org_clock.now();
            org.login(
                now - time::Duration::seconds(5),
                now - time::Duration::seconds(2),
                500,
            );
            org.audit(now - time::Duration::seconds(1), 501);
        }
        let expected_login = org.queryable(LOGIN);
        let expected_audit = org.queryable(AUDIT);
        org.collector(&store)
            .run_pass(
                &mut sink,
                &mut |_| {},
                &std::sync::atomic::AtomicBool::new(false),
            )
            .await
            .unwrap();
        assert_eq!(
            sink.keys(LOGIN),
            expected_login,
            "skew {skew}: LoginEvent after pass {pass}"
        );
        assert_eq!(
            sink.keys(AUDIT),
            expected_audit,
            "skew {skew}: SetupAuditTrail after pass {pass}"
        );
        sink.assert_no_repeat();
        // The window ended at the org's time, to the header's second.
        let org_now = org.org_clock.now();
        match store.get().and_then(|c| c.sources.get(LOGIN).cloned()) {
            Some(SourceState::BigObject(state)) => {
                let watermark = state.watermark.unwrap();
                assert!(
                    watermark >= org_now && watermark <= org_now + time::Duration::SECOND,
                    "skew {skew}: watermark {watermark} for the org's {org_now}"
                );
            }
            other => panic!("unexpected state {other:?}"),
        }
    }
    let offset = org.client.org_clock_offset().unwrap();
    assert!(
        (offset + skew).abs() <= time::Duration::SECOND,
        "offset {offset} for a skew of {skew}"
    );
    assert_eq!(
        log.lines_with("windows follow the org's clock"),
        1,
        "one skew warning over three passes and dozens of requests"
    );
}

#[tokio::test]
async fn a_collector_six_minutes_fast_loses_nothing() {
    collect_through_skew(time::Duration::minutes(6)).await;
}

#[tokio::test]
async fn a_collector_six_minutes_slow_holds_nothing_back() {
    collect_through_skew(-time::Duration::minutes(6)).await;
}

#[tokio::test]
async fn a_skew_within_half_the_overlap_is_followed_without_a_warning() {
    let org = Skewed::new(time::Duration::seconds(-90)).await;
    let log = LogCapture::default();
    let _guard = log.on_this_thread(tracing::Level::WARN);
    org.login(
        t0() - time::Duration::seconds(30),
        t0() - time::Duration::seconds(28),
        1,
    );
    let store = MemoryCheckpointStore::new();
    let mut sink = Recorder::default();
    org.collector(&store)
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap();
    assert_eq!(
        sink.keys(LOGIN).len(),
        1,
        "stamped 30 s before the org's now, 90 s after ours"
    );
    assert_eq!(log.lines_with("WARN"), 0);
}
