//! The API budget: no request past the share of the org's API limit the client may use, and
//! collector passes that end cleanly on it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use salesforce_jwt::clock::ManualClock;
use salesforce_jwt::collect::{Collector, CollectorOptions, MemoryCheckpointStore};
use salesforce_jwt::event_log_file::EventLogFileQuery;
use salesforce_jwt::sink::NdjsonFileSink;
use salesforce_jwt::{ApiUsage, InstanceRequest, JwtBearerClient};
use salesforce_jwt_mock::{Interval, MockLogFile, MockOrg};
use time::OffsetDateTime;
use time::macros::datetime;

fn now() -> OffsetDateTime {
    datetime!(2025-06-10 12:00 UTC)
}

async fn org_and_client(budget: u8) -> (MockOrg, JwtBearerClient) {
    let clock = ManualClock::new(now());
    let mock = MockOrg::builder()
        .clock(Arc::new(clock.clone()))
        .page_size(2)
        .start()
        .await;
    let client = JwtBearerClient::builder(mock.config_builder().build().unwrap())
        .clock(Arc::new(clock))
        .api_budget(budget)
        .build()
        .unwrap();
    (mock, client)
}

fn data_requests(mock: &MockOrg) -> usize {
    mock.requests()
        .iter()
        .filter(|r| r.path.starts_with("/services/data/v"))
        .count()
}

#[tokio::test]
async fn no_request_is_sent_at_or_above_the_budget_until_a_probe_sees_usage_fall() {
    let (mock, client) = org_and_client(50).await;
    // The limit is 15000: 50% is 7500. Each request adds one.
    mock.set_api_usage(7497);
    let limits = format!("/services/data/v{}/limits", client.config().api_version());
    for _ in 0..3 {
        client.send(&InstanceRequest::get(&limits)).await.unwrap();
    }
    assert_eq!(
        client.last_api_usage(),
        Some(ApiUsage {
            used: 7500,
            limit: 15000
        })
    );
    let sent = data_requests(&mock);
    let error = client
        .send(&InstanceRequest::get(&limits))
        .await
        .unwrap_err();
    assert!(error.is_api_budget_reached(), "{error:?}");
    assert!(!error.is_retryable());
    assert_eq!(
        error.to_string(),
        "API usage 7500/15000 (50%) is at or above the budget of 50%"
    );
    assert_eq!(
        data_requests(&mock),
        sent,
        "nothing is sent over the budget"
    );

    // Still over: the probe is sent whatever the budget, and says so.
    let usage = client.probe_api_usage().await.unwrap().unwrap();
    assert_eq!(usage.used, 7501);
    assert!(client.api_budget_reached().is_some());

    // The rolling 24 hours moved on.
    mock.set_api_usage(100);
    let usage = client.probe_api_usage().await.unwrap().unwrap();
    assert_eq!(usage.used, 101);
    assert!(client.api_budget_reached().is_none());
    client.send(&InstanceRequest::get(&limits)).await.unwrap();
}

#[tokio::test]
async fn a_budget_outside_one_to_a_hundred_percent_is_refused() {
    let mock = MockOrg::builder().start().await;
    for bad in [0u8, 101] {
        let error = JwtBearerClient::builder(mock.config_builder().build().unwrap())
            .api_budget(bad)
            .build()
            .unwrap_err();
        assert!(error.to_string().contains("from 1 to 100"), "{error}");
    }
}

#[tokio::test]
async fn a_pass_that_crosses_the_budget_stops_cleanly_and_the_next_one_delivers_the_rest_once() {
    let (mock, client) = org_and_client(50).await;
    let day = datetime!(2025-06-09 00:00 UTC);
    let mut total = 0;
    for i in 0..8usize {
        mock.add_file(
            MockLogFile::builder("Login")
                .interval(Interval::Daily)
                .log_date(day - time::Duration::days(i as i64))
                .created_date(day + time::Duration::hours(20))
                .rows(3 + i)
                .seed(i as u64)
                .build(),
        );
        total += 3 + i;
    }
    // Page size 2: 4 query pages and 8 downloads; 6 requests of room.
    mock.set_api_usage(7494);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ndjson");
    let store = MemoryCheckpointStore::new();
    let options = CollectorOptions {
        since: Duration::from_secs(30 * 24 * 3600),
        concurrency: 1,
        ..CollectorOptions::default()
    };
    let mut collector = Collector::new(
        client.clone(),
        EventLogFileQuery::new(),
        store.clone(),
        options,
    )
    .unwrap();
    let mut sink = NdjsonFileSink::resume(&out, collector.checkpoint()).unwrap();
    let summary = collector
        .run_pass(&mut sink, &mut |_| {}, &AtomicBool::new(false))
        .await
        .expect("a pass stopped by the budget is not a failure");
    drop(sink);
    assert!(summary.stopped);
    let reached = summary.budget_reached.expect("the budget stopped the pass");
    assert!(reached.is_api_budget_reached(), "{reached:?}");
    // A few requests at most past the last one under the budget (those already in flight).
    assert!(mock.api_usage() <= 7500 + 2, "usage {}", mock.api_usage());
    let checkpoint = store.get().unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(checkpoint.rows_delivered < total as u64);
    assert_eq!(checkpoint.sink_position, Some(text.len() as u64));

    // Still over the budget: the next pass asks for the usage once and sends nothing else.
    let mut collector = Collector::new(
        client.clone(),
        EventLogFileQuery::new(),
        store.clone(),
        options,
    )
    .unwrap();
    let mut sink = NdjsonFileSink::resume(&out, collector.checkpoint()).unwrap();
    mock.clear_requests();
    let summary = collector
        .run_pass(&mut sink, &mut |_| {}, &AtomicBool::new(false))
        .await
        .unwrap();
    drop(sink);
    assert!(summary.budget_reached.is_some());
    let paths: Vec<String> = mock
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/services/data/v"))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(paths.len(), 1, "{paths:?}");
    assert!(paths[0].ends_with("/limits"), "{paths:?}");

    mock.set_api_usage(0);
    let mut collector = Collector::new(
        client.clone(),
        EventLogFileQuery::new(),
        store.clone(),
        options,
    )
    .unwrap();
    let mut sink = NdjsonFileSink::resume(&out, collector.checkpoint()).unwrap();
    let summary = collector
        .run_pass(&mut sink, &mut |_| {}, &AtomicBool::new(false))
        .await
        .unwrap();
    drop(sink);
    assert!(summary.budget_reached.is_none() && !summary.stopped);
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), total);
    assert_eq!(lines.iter().collect::<HashSet<_>>().len(), total);
}

#[tokio::test]
async fn a_real_time_source_stopped_by_the_budget_resumes_where_it_stopped() {
    use salesforce_jwt::collect::ObjectCollectorOptions;
    use salesforce_jwt::objects::EventObject;
    use salesforce_jwt_mock::generate_records;
    let (mock, client) = org_and_client(50).await;
    let records = generate_records(
        "SetupAuditTrail",
        now() - time::Duration::hours(20),
        now() - time::Duration::minutes(1),
        20,
        7,
    );
    mock.add_records("SetupAuditTrail", records).unwrap();
    // Five batches of four rows, a query each; three requests of room.
    mock.set_api_usage(7497);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ndjson");
    let store = MemoryCheckpointStore::new();
    let collector = || {
        Collector::with_sources(
            client.clone(),
            None,
            vec![EventObject::named("SetupAuditTrail").unwrap()],
            store.clone(),
            CollectorOptions::default(),
            // Batches of 4 rows, each its own query: a unit of commit every request.
            ObjectCollectorOptions {
                batch_size: 4,
                ..ObjectCollectorOptions::default()
            },
        )
        .unwrap()
    };
    let mut first = collector();
    let mut sink = NdjsonFileSink::resume(&out, first.checkpoint()).unwrap();
    let summary = first
        .run_pass(&mut sink, &mut |_| {}, &AtomicBool::new(false))
        .await
        .unwrap();
    drop(sink);
    assert!(summary.stopped);
    assert!(summary.budget_reached.is_some());
    assert!(mock.api_usage() <= 7501, "usage {}", mock.api_usage());
    let partial = std::fs::read_to_string(&out).unwrap().lines().count();
    assert!(partial > 0 && partial < 20, "{partial}");
    assert_eq!(store.get().unwrap().rows_delivered, partial as u64);

    mock.set_api_usage(10);
    let mut second = collector();
    let mut sink = NdjsonFileSink::resume(&out, second.checkpoint()).unwrap();
    let summary = second
        .run_pass(&mut sink, &mut |_| {}, &AtomicBool::new(false))
        .await
        .unwrap();
    drop(sink);
    assert!(summary.budget_reached.is_none());
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 20);
    assert_eq!(lines.iter().collect::<HashSet<_>>().len(), 20);
}
