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
use salesforce_jwt::collect::{Collector, CollectorOptions, Sink as _};
use salesforce_jwt::event_log_file::EventLogFileQuery;
use salesforce_jwt::sink::NdjsonRow;
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

/// A Login file of `interval` with `csv` as its body.
fn login_file(
    interval: Interval,
    log_date: time::OffsetDateTime,
    created: time::OffsetDateTime,
    csv: String,
) -> MockLogFile {
    MockLogFile::builder("Login")
        .interval(interval)
        .log_date(log_date)
        .sequence(if interval == Interval::Hourly { 1 } else { 0 })
        .created_date(created)
        .csv(csv)
        .build()
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_already_in_the_table_count_as_delivered_and_a_nul_is_stored_escaped() {
    let url = fresh_database("dupes").await;
    let clock = clock();
    let mock = MockOrg::builder()
        .clock(Arc::new(clock.clone()))
        .start()
        .await;
    const HEADER: &str = "\"EVENT_TYPE\",\"TIMESTAMP_DERIVED\",\"REQUEST_ID\",\"USER_AGENT\"\n";
    let a = "\"Login\",\"2025-06-10T02:01:00.000Z\",\"req-a\",\"Mozilla/5.0\"\n";
    let b = "\"Login\",\"2025-06-10T02:02:00.000Z\",\"req-b\",\"curl/8.0 \\ x\"\n";
    let c = "\"Login\",\"2025-06-10T02:03:00.000Z\",\"req-c\",\"Mozilla/5.0\"\n";
    let nul = "\"Login\",\"2025-06-10T02:04:00.000Z\",\"req-nul\",\"bad\u{0}agent\\0\"\n";
    // Salesforce publishes the hour's rows in the hourly file and again in the day's file; the
    // hourly file also holds one row twice.
    mock.add_file(login_file(
        Interval::Hourly,
        datetime!(2025-06-10 02:00 UTC),
        datetime!(2025-06-10 04:00 UTC),
        format!("{HEADER}{a}{b}{b}{nul}"),
    ));
    mock.add_file(login_file(
        Interval::Daily,
        datetime!(2025-06-09 00:00 UTC),
        datetime!(2025-06-10 06:00 UTC),
        format!("{HEADER}{a}{b}{c}{nul}"),
    ));
    let config = mock.config_builder().build().unwrap();
    let client = JwtBearerClient::builder(config)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let worker = worker(&url, &clock, "a").await;
    let store = PgCheckpointStore::new(worker.clone(), "acme", SOURCE, DEFAULT_LEASE_TTL);
    let mut sink = store.sink();
    let mut collector =
        Collector::new(client.clone(), EventLogFileQuery::new(), store, options()).unwrap();
    let stop = AtomicBool::new(false);
    let first = collector
        .run_pass(&mut sink, &mut |_| {}, &stop)
        .await
        .unwrap();
    assert_eq!((first.files, first.rows), (2, 8));
    assert!(first.skipped.is_empty());
    // The second b of the hourly file, then a, b and the NUL row again in the daily one.
    assert_eq!(sink.already_present(), 4);
    assert_eq!(collector.checkpoint().rows_delivered, 8);

    // Each distinct row once, in the order first collected; the stored form of the NUL row
    // says which field was escaped and reads back as collected.
    let mut want = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for (id, record) in expected(&mock, &client).await {
        if ids.insert(id.clone()) {
            want.push((id, record));
        }
    }
    assert_eq!(want.len(), 4);
    let stored = table(&url, "acme").await;
    let with_nul = stored
        .iter()
        .find(|(_, r)| r["REQUEST_ID"] == "req-nul")
        .unwrap();
    assert_eq!(with_nul.1["USER_AGENT"], "bad\\0agent\\\\0");
    assert_eq!(
        with_nul.1[salesforce_jwt_postgres::NUL_ESCAPED_KEY],
        serde_json::json!(["USER_AGENT"])
    );
    let read_back: Vec<_> = stored
        .into_iter()
        .map(|(id, mut record)| {
            salesforce_jwt_postgres::unescape_nul(&mut record);
            (id, record)
        })
        .collect();
    assert_eq!(read_back, want);
    let row_b = &read_back[1].1;
    assert_eq!(
        row_b["USER_AGENT"], "curl/8.0 \\ x",
        "untouched without a NUL"
    );

    // A second pass adds nothing, nor does a restarted process.
    let second = collector
        .run_pass(&mut sink, &mut |_| {}, &stop)
        .await
        .unwrap();
    assert_eq!(second.files, 0);
    let store = PgCheckpointStore::new(worker.clone(), "acme", SOURCE, DEFAULT_LEASE_TTL);
    let mut sink = store.sink();
    let mut collector =
        Collector::new(client.clone(), EventLogFileQuery::new(), store, options()).unwrap();
    let again = collector
        .run_pass(&mut sink, &mut |_| {}, &stop)
        .await
        .unwrap();
    assert_eq!(again.files, 0);
    assert_eq!(table(&url, "acme").await.len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn files_larger_than_a_batch_stream_into_their_transaction_and_a_cut_off_one_leaves_nothing()
{
    let url = fresh_database("stream").await;
    let clock = clock();
    let mock = MockOrg::builder()
        .clock(Arc::new(clock.clone()))
        .start()
        .await;
    for i in 0..2 {
        let hour = datetime!(2025-06-10 02:00 UTC) + time::Duration::hours(i);
        mock.add_file(
            MockLogFile::builder("Login")
                .interval(Interval::Hourly)
                .log_date(hour)
                .sequence(1)
                .created_date(hour + time::Duration::hours(2))
                .rows(3_000)
                .seed(i as u64)
                .build(),
        );
    }
    let first = mock.files()[0].id.clone();
    // Half of the first file's rows (several batches) reach its transaction before the
    // download breaks off; the file is downloaded again and none of them may stay twice.
    mock.inject(salesforce_jwt_mock::Fault::OnFile {
        id: first,
        fault: Box::new(salesforce_jwt_mock::Fault::TruncatedBody),
    });
    let config = mock.config_builder().build().unwrap();
    let client = JwtBearerClient::builder(config)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let worker = worker(&url, &clock, "a").await;
    let store = PgCheckpointStore::new(worker.clone(), "acme", SOURCE, DEFAULT_LEASE_TTL);
    let mut sink = store.sink();
    let mut collector =
        Collector::new(client.clone(), EventLogFileQuery::new(), store, options()).unwrap();
    let summary = collector
        .run_pass(&mut sink, &mut |_| {}, &AtomicBool::new(false))
        .await
        .unwrap();
    assert_eq!((summary.files, summary.rows), (2, 6_000));
    assert_eq!(mock.pending_faults(), 0, "the download was cut off");
    assert_eq!(sink.already_present(), 0);
    let want = expected(&mock, &client).await;
    // A batch is 256 KiB: the half of the first file that arrived before the cut spans two.
    let json_bytes: usize = want.iter().map(|(_, r)| r.to_string().len()).sum();
    assert!(json_bytes > 4 << 20, "{json_bytes} bytes of rows");
    let stored = table(&url, "acme").await;
    let ids = |rows: &[(String, serde_json::Value)]| -> Vec<String> {
        rows.iter().map(|(id, _)| id.clone()).collect()
    };
    // Ids first: a difference there is readable, unlike two lists of 6,000 records.
    let (got, wanted) = (ids(&stored), ids(&want));
    let first_difference = got.iter().zip(&wanted).position(|(a, b)| a != b);
    assert_eq!(
        (got.len(), first_difference),
        (wanted.len(), None),
        "rows stored, and where they first differ from the org's"
    );
    assert!(stored == want, "the records differ");
}
