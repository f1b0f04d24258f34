//! A checkpoint belongs to one Salesforce org: both collectors record the org of the token
//! response on their first pass and refuse another org's credentials before the output moves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::AtomicBool;

use salesforce_jwt::collect::{
    Collector, CollectorOptions, MemoryCheckpointStore, ObjectCollectorOptions,
};
use salesforce_jwt::event_log_file::EventLogFileQuery;
use salesforce_jwt::objects::EventObject;
use salesforce_jwt::sink::NdjsonFileSink;
use salesforce_jwt::{Error, JwtBearerClient};
use salesforce_jwt_mock::{MockLogFile, MockOrg};

fn client(org: &MockOrg) -> JwtBearerClient {
    JwtBearerClient::new(org.config_builder().build().unwrap()).unwrap()
}

fn login_event() -> Vec<EventObject> {
    vec![EventObject::named("LoginEvent").unwrap()]
}

fn assert_other_org(error: Error, recorded: &MockOrg, reached: &MockOrg) {
    match &error {
        Error::CheckpointOrg {
            checkpoint_org,
            org,
        } => {
            assert_eq!(
                (checkpoint_org.as_str(), org.as_str()),
                (recorded.org_id().as_str(), reached.org_id().as_str())
            );
        }
        other => panic!("not CheckpointOrg: {other:?}"),
    }
    let text = error.to_string();
    assert!(
        text.contains(&recorded.org_id()) && text.contains(&reached.org_id()),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_object_collector_and_the_collector_refuse_another_orgs_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let first = MockOrg::builder().org_id("00D0000000000Aa").start().await;
    let other = MockOrg::builder().org_id("00D0000000000Bb").start().await;
    let now = time::OffsetDateTime::now_utc();
    first.add_file(
        MockLogFile::builder("Login")
            .log_date(now - time::Duration::days(1))
            .created_date(now - time::Duration::hours(2))
            .rows(3)
            .build(),
    );
    let store = MemoryCheckpointStore::new();

    // The real-time collector records the org on its first pass.
    let mut objects = common::object_collector(
        client(&first),
        login_event(),
        store.clone(),
        ObjectCollectorOptions::default(),
    )
    .unwrap();
    let mut sink = NdjsonFileSink::resume(&out, objects.checkpoint()).unwrap();
    objects
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap();
    drop(sink);
    assert_eq!(store.get().unwrap().org_id, Some(first.org_id()));

    // The EventLogFile collector goes on in the same org.
    let mut files = Collector::new(
        client(&first),
        EventLogFileQuery::new(),
        store.clone(),
        CollectorOptions::default(),
    )
    .unwrap();
    let mut sink = NdjsonFileSink::resume(&out, files.checkpoint()).unwrap();
    let summary = files
        .run_pass(&mut sink, &mut |_| {}, &AtomicBool::new(false))
        .await
        .unwrap();
    assert_eq!((summary.files, summary.rows), (1, 3));
    drop(sink);
    let before = (std::fs::read(&out).unwrap(), store.get());

    // Another org's credentials: refused by both, the output and the checkpoint as they were.
    let mut objects = common::object_collector(
        client(&other),
        login_event(),
        store.clone(),
        ObjectCollectorOptions::default(),
    )
    .unwrap();
    let mut sink = NdjsonFileSink::resume(&out, objects.checkpoint()).unwrap();
    let error = objects
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap_err();
    assert_other_org(error, &first, &other);
    drop(sink);

    let mut files = Collector::new(
        client(&other),
        EventLogFileQuery::new(),
        store.clone(),
        CollectorOptions::default(),
    )
    .unwrap();
    let mut sink = NdjsonFileSink::resume(&out, files.checkpoint()).unwrap();
    let error = files
        .run_pass(&mut sink, &mut |_| {}, &AtomicBool::new(false))
        .await
        .unwrap_err();
    assert_other_org(error, &first, &other);
    drop(sink);
    assert_eq!((std::fs::read(&out).unwrap(), store.get()), before);
}
