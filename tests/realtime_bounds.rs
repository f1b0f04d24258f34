//! Bounds of the real-time collector: an object page that cannot be read is skipped only with
//! `skip_unreadable_pages` (sf-ingest's `--skip-bad-files`), narrowly and on the record, and
//! the checkpoint's overlap sets stay within `max_overlap_rows`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::ObjectRecorder as Recorder;
use common::object_row_key as key;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use salesforce_jwt::clock::ManualClock;
use salesforce_jwt::collect::{
    Checkpoint, MemoryCheckpointStore, ObjectCollectorOptions, SourceState,
};
use salesforce_jwt::objects::EventObject;
use salesforce_jwt::{Error, JwtBearerClient, RetryPolicy};
use salesforce_jwt_mock::{Fault, MockOrg, generate_records};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

const LOGIN: &str = "LoginEvent";
const AUDIT: &str = "SetupAuditTrail";

fn now() -> OffsetDateTime {
    datetime!(2025-06-10 12:00 UTC)
}

struct Org {
    mock: MockOrg,
    clock: ManualClock,
    client: JwtBearerClient,
}

async fn org() -> Org {
    let clock = ManualClock::new(now());
    let mock = MockOrg::builder()
        .page_size(7)
        .clock(Arc::new(clock.clone()))
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
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    Org {
        mock,
        clock,
        client,
    }
}

impl Org {
    async fn pass(
        &self,
        objects: &[&str],
        store: &MemoryCheckpointStore,
        options: ObjectCollectorOptions,
        sink: &mut Recorder,
    ) -> Result<salesforce_jwt::collect::PassSummary, Error> {
        let objects = objects
            .iter()
            .map(|o| EventObject::named(o).unwrap())
            .collect();
        common::object_collector(self.client.clone(), objects, store.clone(), options)
            .unwrap()
            .run_pass(
                sink,
                &mut |_| {},
                &std::sync::atomic::AtomicBool::new(false),
            )
            .await
    }

    fn keys(&self, object: &str) -> BTreeSet<String> {
        self.mock
            .records(object)
            .iter()
            .map(|r| key(object, r))
            .collect()
    }
}

fn skipping() -> ObjectCollectorOptions {
    ObjectCollectorOptions {
        skip_unreadable_pages: true,
        ..ObjectCollectorOptions::default()
    }
}

fn checkpoint(store: &MemoryCheckpointStore) -> Checkpoint {
    store.get().unwrap()
}

#[tokio::test]
async fn an_unreadable_object_page_stops_the_pass_unless_skipping_then_only_its_millisecond_is_skipped_and_recorded()
 {
    let org = org().await;
    let mut rows = generate_records(
        LOGIN,
        now() - time::Duration::hours(3),
        now() - time::Duration::minutes(1),
        60,
        7,
    );
    // Inside the overlap of the next pass, which must read around it.
    rows[23].insert("EventDate".into(), json!("2025-06-10T11:58:00.123+0000"));
    rows[23].insert("CreatedDate".into(), json!("2025-06-10T11:58:03.000+0000"));
    let rows = org.mock.add_records(LOGIN, rows).unwrap();
    // One row breaks every page it is on.
    let bad = rows[23].clone();
    let bad_id = bad["EventIdentifier"].as_str().unwrap().to_string();
    let fault = org.mock.inject_always(Fault::CorruptPage {
        containing: Some(bad_id.clone()),
    });

    let store = MemoryCheckpointStore::new();
    let mut sink = Recorder::default();
    let error = org
        .pass(
            &[LOGIN],
            &store,
            ObjectCollectorOptions::default(),
            &mut sink,
        )
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("could not be read"), "{text}");
    assert!(text.contains("LoginEvent"), "{text}");
    assert!(text.contains("EventDate window ("), "{text}");
    assert!(text.contains("skip_unreadable_pages"), "{text}");
    assert!(
        store.get().is_none_or(|c| c.skipped.is_empty()),
        "nothing skipped without being told to"
    );
    assert!(!sink.keys(LOGIN).contains(&bad_id));

    let summary = org
        .pass(&[LOGIN], &store, skipping(), &mut sink)
        .await
        .unwrap();
    assert_eq!(summary.objects[0].skipped_windows, 1, "{summary:?}");
    let bad_date = salesforce_jwt::datetime::parse(bad["EventDate"].as_str().unwrap()).unwrap();
    let lost: BTreeSet<String> = rows
        .iter()
        .filter(|r| r["EventDate"] == bad["EventDate"])
        .map(|r| key(LOGIN, r))
        .collect();
    let mut expected = org.keys(LOGIN);
    expected.retain(|k| !lost.contains(k));
    assert_eq!(
        sink.keys(LOGIN),
        expected,
        "everything but the bad row's millisecond"
    );
    let skipped = checkpoint(&store).skipped;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    let (name, entry) = skipped.iter().next().unwrap();
    assert_eq!(
        *name,
        format!(
            "LoginEvent EventDate ({}, {}]",
            salesforce_jwt::datetime::rfc3339_millis(bad_date - time::Duration::milliseconds(1)),
            salesforce_jwt::datetime::rfc3339_millis(bad_date)
        )
    );
    assert_eq!(entry.event_type, LOGIN);
    assert_eq!(entry.created_date, bad_date);
    assert!(entry.error.contains("could not be read"), "{}", entry.error);
    let fired = org.mock.times_fired(fault);
    assert!(
        fired <= 2 + 3 * 24,
        "about one failing query per halving of the hour's window: {fired}"
    );

    // The next passes read around the skipped millisecond while it is in the overlap, and
    // deliver new rows; nothing is skipped or delivered twice.
    org.clock.advance(Duration::from_secs(60));
    org.mock
        .add_records(
            LOGIN,
            generate_records(
                LOGIN,
                now() - time::Duration::minutes(1),
                now() + time::Duration::seconds(50),
                5,
                8,
            ),
        )
        .unwrap();
    let fired_before = org.mock.times_fired(fault);
    let summary = org
        .pass(&[LOGIN], &store, skipping(), &mut sink)
        .await
        .unwrap();
    assert_eq!(summary.objects[0].skipped_windows, 0);
    assert_eq!(summary.objects[0].rows, 5);
    assert_eq!(checkpoint(&store).skipped.len(), 1);
    let mut expected = org.keys(LOGIN);
    expected.retain(|k| !lost.contains(k));
    assert_eq!(sink.keys(LOGIN), expected);
    assert_eq!(org.mock.times_fired(fault), fired_before, "read around");
}

#[tokio::test]
async fn a_page_unreadable_once_is_read_again_by_narrowing_and_nothing_is_skipped() {
    let org = org().await;
    org.mock
        .add_records(
            LOGIN,
            generate_records(
                LOGIN,
                now() - time::Duration::hours(2),
                now() - time::Duration::minutes(1),
                40,
                9,
            ),
        )
        .unwrap();
    org.mock.inject(Fault::CorruptPage { containing: None });
    let store = MemoryCheckpointStore::new();
    let mut sink = Recorder::default();
    let summary = org
        .pass(&[LOGIN], &store, skipping(), &mut sink)
        .await
        .unwrap();
    assert_eq!(summary.objects[0].skipped_windows, 0);
    assert_eq!(sink.keys(LOGIN), org.keys(LOGIN));
    assert!(checkpoint(&store).skipped.is_empty());
}

#[tokio::test]
async fn an_org_whose_every_page_is_unreadable_stops_the_pass_after_a_bounded_number_of_queries() {
    let org = org().await;
    org.mock
        .add_records(
            LOGIN,
            generate_records(
                LOGIN,
                now() - time::Duration::hours(2),
                now() - time::Duration::minutes(1),
                40,
                10,
            ),
        )
        .unwrap();
    let fault = org
        .mock
        .inject_always(Fault::CorruptPage { containing: None });
    let store = MemoryCheckpointStore::new();
    let mut sink = Recorder::default();
    let error = org
        .pass(&[LOGIN], &store, skipping(), &mut sink)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("look broken"), "{text}");
    let fired = org.mock.times_fired(fault);
    eprintln!(
        "fired all {fired} skipped {}",
        checkpoint(&store).skipped.len()
    );
    assert!(fired <= 128 + 16 + 1, "{fired} queries");
    assert!(checkpoint(&store).skipped.len() <= 16);
}

/// Rows stamped with the same time (a burst, or a second-precision `CreatedDate`) all sit in
/// the overlap: without a bound the set of identifiers grows with them.
#[tokio::test]
async fn the_overlap_sets_stay_within_max_overlap_rows_without_a_duplicate() {
    let org = org().await;
    let burst = now() - time::Duration::seconds(90);
    let stamp = |rows: Vec<Map<String, Value>>, field: &str| -> Vec<Map<String, Value>> {
        rows.into_iter()
            .map(|mut r| {
                r.insert(field.into(), json!(salesforce_jwt::datetime::format(burst)));
                r
            })
            .collect()
    };
    let logins = generate_records(LOGIN, burst - time::Duration::SECOND, burst, 300, 11);
    let mut logins = stamp(logins, "EventDate");
    for r in &mut logins {
        r.insert(
            "CreatedDate".into(),
            json!(salesforce_jwt::datetime::format(
                burst + time::Duration::SECOND
            )),
        );
    }
    org.mock.add_records(LOGIN, logins).unwrap();
    let audits = generate_records(AUDIT, burst - time::Duration::SECOND, burst, 300, 12);
    org.mock
        .add_records(AUDIT, stamp(audits, "CreatedDate"))
        .unwrap();
    let spread = |object: &str, seed: u64| {
        org.mock
            .add_records(
                object,
                generate_records(
                    object,
                    now() - time::Duration::minutes(4),
                    now() - time::Duration::seconds(10),
                    40,
                    seed,
                ),
            )
            .unwrap();
    };
    spread(LOGIN, 13);
    spread(AUDIT, 14);
    let options = ObjectCollectorOptions {
        max_overlap_rows: 50,
        ..ObjectCollectorOptions::default()
    };
    let store = MemoryCheckpointStore::new();
    let mut sink = Recorder::default();
    for pass in 0..4 {
        if pass > 0 {
            org.clock.advance(Duration::from_secs(30));
            let t = now() + time::Duration::seconds(30 * pass);
            for object in [LOGIN, AUDIT] {
                org.mock
                    .add_records(
                        object,
                        generate_records(
                            object,
                            t - time::Duration::seconds(25),
                            t - time::Duration::seconds(10),
                            10,
                            100 + pass as u64,
                        ),
                    )
                    .unwrap();
            }
        }
        org.pass(&[LOGIN, AUDIT], &store, options.clone(), &mut sink)
            .await
            .unwrap();
        assert_eq!(sink.keys(LOGIN), org.keys(LOGIN), "pass {pass}");
        assert_eq!(sink.keys(AUDIT), org.keys(AUDIT), "pass {pass}");
        let checkpoint = checkpoint(&store);
        match checkpoint.sources.get(LOGIN) {
            Some(SourceState::BigObject(state)) => {
                assert!(
                    state.delivered_in_overlap.len() <= 50,
                    "pass {pass}: {}",
                    state.delivered_in_overlap.len()
                );
                assert!(state.overlap_floor.is_some_and(|f| f >= burst));
            }
            other => panic!("{other:?}"),
        }
        match checkpoint.sources.get(AUDIT) {
            Some(SourceState::Keyset(state)) => {
                assert!(
                    state.delivered_in_overlap.len() <= 50,
                    "pass {pass}: {}",
                    state.delivered_in_overlap.len()
                );
                assert!(state.overlap_floor.is_some_and(|f| f >= burst));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn an_unreadable_setup_audit_trail_page_is_narrowed_to_its_millisecond_and_skipped_on_the_record()
 {
    let org = org().await;
    let mut rows = generate_records(
        AUDIT,
        now() - time::Duration::hours(3),
        now() - time::Duration::minutes(1),
        60,
        21,
    );
    rows[30].insert("CreatedDate".into(), json!("2025-06-10T11:58:00.123+0000"));
    let rows = org.mock.add_records(AUDIT, rows).unwrap();
    let bad = rows[30].clone();
    let bad_id = key(AUDIT, &bad);
    let fault = org.mock.inject_always(Fault::CorruptPage {
        containing: Some(bad_id.clone()),
    });
    let store = MemoryCheckpointStore::new();
    let mut sink = Recorder::default();
    let error = org
        .pass(
            &[AUDIT],
            &store,
            ObjectCollectorOptions::default(),
            &mut sink,
        )
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("CreatedDate window ("), "{text}");
    assert!(text.contains("skip_unreadable_pages"), "{text}");

    let summary = org
        .pass(&[AUDIT], &store, skipping(), &mut sink)
        .await
        .unwrap();
    assert_eq!(summary.objects[0].skipped_windows, 1, "{summary:?}");
    let mut expected = org.keys(AUDIT);
    expected.remove(&bad_id);
    assert_eq!(
        sink.keys(AUDIT),
        expected,
        "everything but the unreadable row"
    );
    let skipped = checkpoint(&store).skipped;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    let (name, entry) = skipped.iter().next().unwrap();
    assert!(
        name.starts_with("SetupAuditTrail CreatedDate (")
            && name.ends_with("2025-06-10T11:58:00.123Z]"),
        "{name}"
    );
    assert_eq!(entry.event_type, AUDIT);
    assert!(entry.error.contains("could not be read"), "{}", entry.error);
    match checkpoint(&store).sources.get(AUDIT) {
        Some(SourceState::Keyset(state)) => assert_eq!(state.skipped_windows.len(), 1),
        other => panic!("{other:?}"),
    }

    // The next pass reads around the skipped range (inside its overlap) and goes on.
    org.clock.advance(Duration::from_secs(60));
    org.mock
        .add_records(
            AUDIT,
            generate_records(AUDIT, now(), now() + time::Duration::seconds(50), 4, 22),
        )
        .unwrap();
    let fired = org.mock.times_fired(fault);
    let summary = org
        .pass(&[AUDIT], &store, skipping(), &mut sink)
        .await
        .unwrap();
    assert_eq!(summary.objects[0].skipped_windows, 0);
    assert_eq!(summary.objects[0].rows, 4);
    assert_eq!(org.mock.times_fired(fault), fired, "read around");
    let mut expected = org.keys(AUDIT);
    expected.remove(&bad_id);
    assert_eq!(sink.keys(AUDIT), expected);
}
