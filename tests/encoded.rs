//! Rows encoded in the download tasks (`Sink::encoded_format`): the output is the same,
//! byte for byte, as when the collector hands the sink rows, in both formats, also when a file
//! fails mid-body and is downloaded again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use salesforce_jwt::clock::ManualClock;
use salesforce_jwt::collect::{
    Collector, CollectorOptions, MemoryCheckpointStore, PassSummary, Progress, Row, Sink, Unit,
};
use salesforce_jwt::event_log_file::EventLogFileQuery;
use salesforce_jwt::format::OutputFormat;
use salesforce_jwt::sink::NdjsonFileSink;
use salesforce_jwt::{Error, JwtBearerClient, RetryPolicy};
use salesforce_jwt_mock::{Fault, Interval, MockLogFile, MockOrg};
use time::macros::datetime;

/// An `NdjsonFileSink` that takes rows only (the default `encoded_format`), as every sink did
/// before encoded lines: the reference output.
struct RowsOnly(NdjsonFileSink);

impl Sink for RowsOnly {
    async fn begin(&mut self, unit: &Unit<'_>) -> Result<(), Error> {
        let file = unit.log_file().expect("a log file");
        self.0.begin(&Unit::LogFile(file)).await
    }
    async fn write(&mut self, row: Row<'_>) -> Result<(), Error> {
        let Row::LogFile { file, record: row } = row else {
            panic!("a log-file row")
        };
        self.0.write(Row::LogFile { file, record: row }).await
    }
    async fn commit(&mut self, unit: &Unit<'_>) -> Result<Option<u64>, Error> {
        let file = unit.log_file().expect("a log file");
        self.0.commit(&Unit::LogFile(file)).await
    }
    fn committed_position(&self) -> Option<u64> {
        Sink::committed_position(&self.0)
    }
    async fn rollback(&mut self, unit: &Unit<'_>) -> Result<(), Error> {
        let file = unit.log_file().expect("a log file");
        self.0.rollback(&Unit::LogFile(file)).await
    }
}

/// An org with daily files of several types, the larger ones past one encoded batch (256 KiB)
/// so that a file's lines arrive in several pieces.
async fn org() -> (MockOrg, JwtBearerClient) {
    org_with(&[
        ("Login", 2_000),
        ("URI", 7),
        ("API", 1_500),
        ("Logout", 1),
        ("Report", 40),
    ])
    .await
}

/// An org with one daily file per `(EventType, rows)`, created in that order.
async fn org_with(files: &[(&str, usize)]) -> (MockOrg, JwtBearerClient) {
    let clock = ManualClock::new(datetime!(2025-06-10 12:00 UTC));
    let mock = MockOrg::builder()
        .clock(Arc::new(clock.clone()))
        .start()
        .await;
    let day = datetime!(2025-06-08 00:00 UTC);
    for (i, &(t, rows)) in files.iter().enumerate() {
        mock.add_file(
            MockLogFile::builder(t)
                .interval(Interval::Daily)
                .log_date(day)
                .created_date(day + time::Duration::minutes(26 * 60 + i as i64))
                .rows(rows)
                .seed(i as u64)
                .build(),
        );
    }
    let config = mock
        .config_builder()
        .retry_policy(RetryPolicy {
            max_attempts: 4,
            ..RetryPolicy::default()
        })
        .build()
        .unwrap();
    let client = JwtBearerClient::builder(config)
        .clock(Arc::new(clock))
        .build()
        .unwrap();
    (mock, client)
}

async fn run<K: Sink>(client: &JwtBearerClient, sink: &mut K) -> PassSummary {
    run_with(client, sink, 3).await
}

/// One pass over every file, `concurrency` downloads at once.
async fn run_with<K: Sink>(
    client: &JwtBearerClient,
    sink: &mut K,
    concurrency: usize,
) -> PassSummary {
    let options = CollectorOptions {
        since: Duration::from_secs(5 * 86_400),
        concurrency,
        ..CollectorOptions::default()
    };
    let mut collector = Collector::new(
        client.clone(),
        EventLogFileQuery::new(),
        MemoryCheckpointStore::new(),
        options,
    )
    .unwrap();
    collector
        .run_pass(sink, &mut |_: &Progress| {}, &AtomicBool::new(false))
        .await
        .unwrap()
}

fn sink(path: &Path, format: OutputFormat) -> NdjsonFileSink {
    NdjsonFileSink::open(path, None)
        .unwrap()
        .with_format(format)
}

#[tokio::test]
async fn encoded_lines_are_the_rows_path_byte_for_byte_in_both_formats() {
    let (mock, client) = org().await;
    let rows: u64 = mock.files().iter().map(|f| f.row_count as u64).sum();
    let dir = tempfile::tempdir().unwrap();
    for format in [OutputFormat::Ndjson, OutputFormat::Ecs] {
        let encoded_path = dir.path().join(format!("encoded.{format}"));
        let mut encoded = sink(&encoded_path, format);
        assert_eq!(encoded.encoded_format(), Some(format));
        let summary = run(&client, &mut encoded).await;
        drop(encoded);

        let rows_path = dir.path().join(format!("rows.{format}"));
        let mut reference = RowsOnly(sink(&rows_path, format));
        assert_eq!(reference.encoded_format(), None);
        run(&client, &mut reference).await;
        drop(reference);

        assert_eq!(summary.rows, rows, "{format}: rows counted");
        let (encoded, reference) = (
            std::fs::read(&encoded_path).unwrap(),
            std::fs::read(&rows_path).unwrap(),
        );
        assert_eq!(
            encoded.iter().filter(|&&b| b == b'\n').count() as u64,
            rows,
            "{format}: one line per row"
        );
        assert!(
            encoded == reference,
            "{format}: same bytes as the rows path"
        );
    }
}

#[tokio::test]
async fn a_file_cut_mid_body_is_written_once_after_its_retry() {
    let (mock, client) = org().await;
    let rows: u64 = mock.files().iter().map(|f| f.row_count as u64).sum();
    let dir = tempfile::tempdir().unwrap();
    let reference_path = dir.path().join("reference.ndjson");
    let mut reference = RowsOnly(sink(&reference_path, OutputFormat::Ndjson));
    run(&client, &mut reference).await;
    drop(reference);

    // The first download is cut: its lines so far were written from the encoded pieces, then
    // rolled back; the retry goes through write_row.
    mock.inject(Fault::TruncatedBody);
    let path = dir.path().join("cut.ndjson");
    let mut encoded = sink(&path, OutputFormat::Ndjson);
    let downloads_before = mock.received().downloads;
    let summary = run(&client, &mut encoded).await;
    drop(encoded);
    assert_eq!(mock.pending_faults(), 0, "the fault fired");
    assert_eq!(
        mock.received().downloads - downloads_before,
        mock.files().len() as u64 + 1,
        "one file downloaded twice"
    );
    assert_eq!(summary.rows, rows);
    assert!(
        std::fs::read(&path).unwrap() == std::fs::read(&reference_path).unwrap(),
        "every row once, as the rows path writes them"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_larger_than_their_share_of_the_look_ahead_finish_in_order() {
    // 16 MiB shared by 12 files: 1.3 MiB each, and every file's lines are larger, so the files
    // behind the head fill their budgets and wait while the head goes on.
    let files: Vec<(&str, usize)> = (0..14)
        .map(|i| (["Login", "URI", "API"][i % 3], 4_000))
        .collect();
    let (mock, client) = org_with(&files).await;
    mock.precompress_downloads();
    let dir = tempfile::tempdir().unwrap();
    let mut out = sink(&dir.path().join("large.ndjson"), OutputFormat::Ndjson);
    let summary = tokio::time::timeout(Duration::from_secs(120), run_with(&client, &mut out, 12))
        .await
        .expect("the pass finished");
    assert_eq!((summary.files, summary.rows), (14, 14 * 4_000));
}
