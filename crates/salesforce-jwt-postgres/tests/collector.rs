//! The library's Collector over PgCheckpointStore and PgSink: rows and checkpoint in one fenced
//! transaction, against a real PostgreSQL server and the org double.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::{clock, fresh_database};
use futures_util::{StreamExt as _, TryStreamExt as _};
use salesforce_jwt::JwtBearerClient;
use salesforce_jwt::clock::ManualClock;
use salesforce_jwt::event_log::{
    Collector, CollectorOptions, EventLogFileQuery, NdjsonRow, RecordSink as _,
};
use salesforce_jwt_mock::{Interval, MockLogFile, MockOrg};
use salesforce_jwt_postgres::{
    DEFAULT_LEASE_TTL, PG_OUTPUT, PgCheckpointStore, PgTarget, PgWorker,
};
use time::macros::datetime;

const SOURCE: &str = "EventLogFile";

async fn org(clock: &ManualClock, files: usize) -> (MockOrg, JwtBearerClient) {
    let mock = MockOrg::builder()
        .clock(Arc::new(clock.clone()))
        .page_size(2)
        .start()
        .await;
    for i in 0..files {
        let hour = datetime!(2025-06-10 02:00 UTC) + time::Duration::hours(i as i64);
        mock.add_file(
            MockLogFile::builder("Login")
                .interval(Interval::Hourly)
                .log_date(hour)
                .sequence(1)
                .created_date(hour + time::Duration::hours(2))
                .rows(7 + i)
                .seed(i as u64)
                .build(),
        );
    }
    let config = mock.config_builder().build().unwrap();
    let client = JwtBearerClient::builder(config)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    (mock, client)
}

async fn worker(url: &str, clock: &ManualClock, holder: &str) -> PgWorker {
    PgWorker::connect(
        &PgTarget::parse(url).unwrap(),
        Arc::new(clock.clone()),
        holder,
    )
    .await
    .unwrap()
}

fn options() -> CollectorOptions {
    CollectorOptions {
        since: Duration::from_secs(3 * 24 * 3600),
        concurrency: 2,
        ..CollectorOptions::default()
    }
}

/// `(event_id, record)` of every row of `org` in salesforce_events, in insertion order.
async fn table(url: &str, org: &str) -> Vec<(String, serde_json::Value)> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .query(
            "SELECT event_id, record FROM salesforce_events WHERE org = $1 AND source = $2 ORDER BY id",
            &[&org, &SOURCE],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// What the org holds, as `(event_id, record)` the way the NDJSON format writes each row.
async fn expected(mock: &MockOrg, client: &JwtBearerClient) -> Vec<(String, serde_json::Value)> {
    let mut files: Vec<_> = client
        .event_log_files(&EventLogFileQuery::new())
        .try_collect()
        .await
        .unwrap();
    files.sort_by(|a, b| (a.created_date, &a.id).cmp(&(b.created_date, &b.id)));
    let mut out = Vec::new();
    for file in files {
        assert!(mock.csv_of(&file.id).is_some());
        let mut rows = client.log_records(&file).await.unwrap();
        while let Some(row) = rows.next().await {
            let row = row.unwrap();
            out.push((
                salesforce_jwt::format::event_id::log_row_event_id(&file, &row),
                serde_json::to_value(NdjsonRow {
                    file: &file,
                    row: &row,
                })
                .unwrap(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_commits_every_row_once_with_its_checkpoint_and_a_second_pass_adds_nothing() {
    let url = fresh_database("collect").await;
    let clock = clock();
    let (mock, client) = org(&clock, 4).await;
    let worker = worker(&url, &clock, "a").await;
    let store = PgCheckpointStore::new(worker.clone(), "acme", SOURCE, DEFAULT_LEASE_TTL);
    let mut sink = store.sink();
    assert_eq!(sink.output().as_deref(), Some(PG_OUTPUT));
    let mut collector =
        Collector::new(client.clone(), EventLogFileQuery::new(), store, options()).unwrap();
    let stop = AtomicBool::new(false);
    let first = collector
        .run_pass(&mut sink, &mut |_| {}, &stop)
        .await
        .unwrap();
    assert_eq!(first.files, 4);
    let want = expected(&mock, &client).await;
    assert_eq!(table(&url, "acme").await, want);
    // The checkpoint in the database counts the four commits; the sink agrees.
    assert_eq!(collector.checkpoint().sink_position, Some(4));
    assert_eq!(sink.committed_position(), Some(4));
    let second = collector
        .run_pass(&mut sink, &mut |_| {}, &stop)
        .await
        .unwrap();
    assert_eq!(second.files, 0);
    assert_eq!(table(&url, "acme").await.len(), want.len());

    // A restarted process (new store, sink and collector) goes on from the database.
    let store = PgCheckpointStore::new(worker.clone(), "acme", SOURCE, DEFAULT_LEASE_TTL);
    let mut sink = store.sink();
    let mut collector =
        Collector::new(client.clone(), EventLogFileQuery::new(), store, options()).unwrap();
    assert_eq!(sink.committed_position(), Some(4));
    let again = collector
        .run_pass(&mut sink, &mut |_| {}, &stop)
        .await
        .unwrap();
    assert_eq!(again.files, 0);
    assert_eq!(table(&url, "acme").await, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_taken_over_collector_makes_nothing_durable_and_the_new_holder_delivers_each_row_once() {
    let url = fresh_database("takeover").await;
    let clock = clock();
    let (mock, client) = org(&clock, 3).await;
    let ttl = Duration::from_secs(30);
    let old = worker(&url, &clock, "old").await;
    let store = PgCheckpointStore::new(old.clone(), "acme", SOURCE, ttl);
    let mut old_sink = store.sink();
    let mut old_collector =
        Collector::new(client.clone(), EventLogFileQuery::new(), store, options()).unwrap();

    // The old holder pauses past its lease (by the database's clock, which judges it); another
    // process takes the org over.
    common::expire_lease(&url, "acme", SOURCE).await;
    let new = worker(&url, &clock, "new").await;
    let store = PgCheckpointStore::new(new.clone(), "acme", SOURCE, ttl);
    let mut new_sink = store.sink();
    let mut new_collector =
        Collector::new(client.clone(), EventLogFileQuery::new(), store, options()).unwrap();

    // The old one wakes up and tries to deliver: its first commit is refused by the fence, and
    // none of that file's rows is left in the table.
    let stop = AtomicBool::new(false);
    let refused = old_collector
        .run_pass(&mut old_sink, &mut |_| {}, &stop)
        .await
        .unwrap_err();
    let text = format!("{refused:#}");
    assert!(text.contains("held by \"new\""), "{text}");
    assert_eq!(table(&url, "acme").await, Vec::new());

    let summary = new_collector
        .run_pass(&mut new_sink, &mut |_| {}, &stop)
        .await
        .unwrap();
    assert_eq!(summary.files, 3);
    let by_id: BTreeMap<String, usize> =
        table(&url, "acme")
            .await
            .into_iter()
            .fold(BTreeMap::new(), |mut m, (id, _)| {
                *m.entry(id).or_default() += 1;
                m
            });
    assert!(by_id.values().all(|n| *n == 1));
    assert_eq!(table(&url, "acme").await, expected(&mock, &client).await);
}
