//! Download slots shared by collectors (`Collector::with_download_slots`): a file's download
//! takes one, a query none, and collectors sharing few slots all finish, every row once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use salesforce_jwt::JwtBearerClient;
use salesforce_jwt::clock::ManualClock;
use salesforce_jwt::collect::{Collector, CollectorOptions, MemoryCheckpointStore};
use salesforce_jwt::event_log_file::EventLogFileQuery;
use salesforce_jwt::sink::NdjsonFileSink;
use salesforce_jwt_mock::{Fault, Interval, MockLogFile, MockOrg};
use time::OffsetDateTime;
use time::macros::datetime;
use tokio::sync::Semaphore;

/// What a file's download logs when every slot is taken.
const SLOT_WAIT: &str = "waits for a download slot";

fn now() -> OffsetDateTime {
    datetime!(2025-06-10 12:00 UTC)
}

async fn org_with_files(files: usize, seed: u64) -> (MockOrg, JwtBearerClient) {
    let clock = ManualClock::new(now());
    let mock = MockOrg::builder()
        .clock(Arc::new(clock.clone()))
        .start()
        .await;
    for i in 0..files {
        let hour = datetime!(2025-06-10 00:00 UTC) + time::Duration::hours(i as i64);
        mock.add_file(
            MockLogFile::builder("Login")
                .interval(Interval::Hourly)
                .log_date(hour)
                .sequence(1)
                .created_date(hour + time::Duration::hours(1))
                .rows(7)
                .seed(seed * 100 + i as u64)
                .build(),
        );
    }
    let client = JwtBearerClient::builder(mock.config_builder().build().unwrap())
        .clock(Arc::new(clock))
        .build()
        .unwrap();
    (mock, client)
}

fn collector(client: &JwtBearerClient, slots: &Arc<Semaphore>) -> Collector<MemoryCheckpointStore> {
    Collector::new(
        client.clone(),
        EventLogFileQuery::new(),
        MemoryCheckpointStore::new(),
        CollectorOptions {
            since: Duration::from_secs(2 * 24 * 3600),
            concurrency: 3,
            ..CollectorOptions::default()
        },
    )
    .unwrap()
    .with_download_slots(Arc::clone(slots))
}

/// Every row of every file of `mock` delivered once.
fn assert_every_row_once(mock: &MockOrg, rows: &common::Recorder) {
    let ids: Vec<String> = mock.files().into_iter().map(|f| f.id).collect();
    common::assert_exactly_once(mock, &ids, &rows.committed);
}

/// While the test holds the only slot: the listing (a query) goes out, and the first file's
/// download waits for a slot (it says so in the log) without having started.
async fn queries_but_no_download(mock: &MockOrg, log: &common::LogCapture) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    // Polls for something that comes, so the wait ends as soon as it does; a download that
    // skipped the slot never logs the wait and fails the deadline. (Under `cargo test` another
    // test's wait can end this one early: then it checks less, never wrongly.)
    while log.lines_with(SLOT_WAIT) == 0 || mock.received().queries == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no download waited for a slot; queries {}, downloads {}",
            mock.received().queries,
            mock.received().downloads
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A download started beside the wait rather than after it would log the wait too; its
    // request crosses loopback to the mock's real server well within this bound.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(mock.received().downloads, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_queries_without_a_slot_and_downloads_only_once_it_has_one() {
    let log = common::LogCapture::global(tracing::Level::DEBUG);
    let (mock, client) = org_with_files(4, 1).await;
    let slots = Arc::new(Semaphore::new(1));
    // Another org is downloading: the only slot is taken.
    let taken = Arc::clone(&slots).acquire_owned().await.unwrap();
    let mut collector = collector(&client, &slots);
    let pass = tokio::spawn(async move {
        let mut rows = common::Recorder::default();
        let summary = collector
            .run_pass(&mut rows, &mut |_| {}, &AtomicBool::new(false))
            .await
            .unwrap();
        (rows, summary)
    });
    queries_but_no_download(&mock, log).await;
    assert!(!pass.is_finished());
    drop(taken);
    let (rows, summary) = tokio::time::timeout(Duration::from_secs(30), pass)
        .await
        .expect("the pass ends once the slot is free")
        .unwrap();
    assert_eq!(summary.files, 4);
    assert_every_row_once(&mock, &rows);
    assert_eq!(mock.received().downloads, 4);
    // Every slot went back.
    assert_eq!(slots.available_permits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collectors_sharing_one_slot_each_deliver_every_row_once_even_when_a_file_is_retried() {
    let slots = Arc::new(Semaphore::new(1));
    let mut passes = Vec::new();
    let mut mocks = Vec::new();
    for seed in 0..3 {
        let (mock, client) = org_with_files(6, seed).await;
        // A cut-off download: the file is downloaded again, by the consumer, without a slot.
        mock.inject(Fault::TruncatedBody);
        let mut collector = collector(&client, &slots);
        passes.push(tokio::spawn(async move {
            let mut rows = common::Recorder::default();
            collector
                .run_pass(&mut rows, &mut |_| {}, &AtomicBool::new(false))
                .await
                .unwrap();
            rows
        }));
        mocks.push(mock);
    }
    for (pass, mock) in passes.into_iter().zip(&mocks) {
        // Slots taken out of order (a file behind the one being written first) would leave
        // the pass waiting here for ever.
        let rows = tokio::time::timeout(Duration::from_secs(60), pass)
            .await
            .expect("no pass waits for ever for a slot")
            .unwrap();
        assert_every_row_once(mock, &rows);
        assert_eq!(mock.received().downloads, 7, "six files, one twice");
    }
    assert_eq!(slots.available_permits(), 1);
}

/// Files for a sink that takes encoded lines (NDJSON here) are decoded and encoded by their
/// download tasks: they wait for a slot all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_encoded_for_an_ndjson_file_wait_for_a_slot_too() {
    let log = common::LogCapture::global(tracing::Level::DEBUG);
    let (mock, client) = org_with_files(4, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let slots = Arc::new(Semaphore::new(1));
    let taken = Arc::clone(&slots).acquire_owned().await.unwrap();
    let mut collector = collector(&client, &slots);
    let mut sink = NdjsonFileSink::resume(&out, collector.checkpoint()).unwrap();
    let pass = tokio::spawn(async move {
        collector
            .run_pass(&mut sink, &mut |_| {}, &AtomicBool::new(false))
            .await
            .unwrap()
    });
    queries_but_no_download(&mock, log).await;
    drop(taken);
    let summary = tokio::time::timeout(Duration::from_secs(30), pass)
        .await
        .expect("the pass ends once the slot is free")
        .unwrap();
    assert_eq!(summary.files, 4);
    let lines = std::fs::read_to_string(&out).unwrap().lines().count();
    assert_eq!(lines, 4 * 7);
    assert_eq!(slots.available_permits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collectors_into_ndjson_files_sharing_one_slot_each_write_every_row_once() {
    let slots = Arc::new(Semaphore::new(1));
    let dir = tempfile::tempdir().unwrap();
    let mut passes = Vec::new();
    let mut mocks = Vec::new();
    for seed in 0..3 {
        let (mock, client) = org_with_files(6, 10 + seed).await;
        mock.inject(Fault::TruncatedBody);
        let out = dir.path().join(format!("org{seed}.ndjson"));
        let mut collector = collector(&client, &slots);
        let mut sink = NdjsonFileSink::resume(&out, collector.checkpoint()).unwrap();
        passes.push(tokio::spawn(async move {
            collector
                .run_pass(&mut sink, &mut |_| {}, &AtomicBool::new(false))
                .await
                .unwrap()
        }));
        mocks.push((mock, out));
    }
    for (pass, (mock, out)) in passes.into_iter().zip(&mocks) {
        let summary = tokio::time::timeout(Duration::from_secs(60), pass)
            .await
            .expect("no pass waits for ever for a slot")
            .unwrap();
        assert_eq!(summary.files, 6);
        let text = std::fs::read_to_string(out).unwrap();
        let lines: HashSet<&str> = text.lines().collect();
        assert_eq!(text.lines().count(), 6 * 7);
        assert_eq!(lines.len(), 6 * 7, "a row was written twice");
        assert_eq!(mock.received().downloads, 7, "six files, one twice");
    }
    assert_eq!(slots.available_permits(), 1);
}
