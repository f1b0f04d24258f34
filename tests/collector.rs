//! Exactly-once collection against the mock org: full runs, late files, faults, crashes and
//! corrupted checkpoints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use salesforce_jwt::clock::ManualClock;
use salesforce_jwt::collect::{
    Checkpoint, CheckpointStore, Collector, CollectorOptions, EventLogFileState,
    FileCheckpointStore, MemoryCheckpointStore, PendingCommit, Progress, Row, Sink, Unit,
};
use salesforce_jwt::event_log_file::{EventLogFileQuery, EventType, IntervalFilter, LogRecord};
use salesforce_jwt::sink::NdjsonFileSink;
use salesforce_jwt::{Error, JwtBearerClient, RetryPolicy};
use salesforce_jwt_mock::{Fault, FaultTarget, Interval, MockLogFile, MockOrg};
use time::OffsetDateTime;
use time::macros::datetime;

fn now() -> OffsetDateTime {
    datetime!(2025-06-10 12:00 UTC)
}

struct Org {
    mock: MockOrg,
    clock: ManualClock,
    client: JwtBearerClient,
}

async fn org() -> Org {
    org_with(RetryPolicy {
        max_attempts: 4,
        ..RetryPolicy::default()
    })
    .await
}

/// An org whose client retries requests with `retry_policy`.
async fn org_with(retry_policy: RetryPolicy) -> Org {
    let clock = ManualClock::new(now());
    let mock = MockOrg::builder()
        .clock(Arc::new(clock.clone()))
        .page_size(3)
        .start()
        .await;
    let config = mock
        .config_builder()
        .retry_policy(retry_policy)
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
    /// A collector over every event type with the tests' options.
    fn collector<S: CheckpointStore>(&self, store: S) -> Collector<S> {
        self.collector_with(store, options())
    }

    /// A collector over every event type with `options`.
    fn collector_with<S: CheckpointStore>(
        &self,
        store: S,
        options: CollectorOptions,
    ) -> Collector<S> {
        Collector::new(
            self.client.clone(),
            EventLogFileQuery::new(),
            store,
            options,
        )
        .unwrap()
    }
}

/// A spread of files: daily and hourly, several types, sequences, and two files sharing a
/// CreatedDate (the tie the cursor's Id breaks).
fn add_files(mock: &MockOrg) -> Vec<String> {
    let day = datetime!(2025-06-09 00:00 UTC);
    let mut ids = Vec::new();
    for (i, t) in ["Login", "Logout", "API", "URI", "ApexExecution", "Report"]
        .iter()
        .enumerate()
    {
        ids.push(
            mock.add_file(
                MockLogFile::builder(t)
                    .interval(Interval::Daily)
                    .log_date(day)
                    .sequence(0)
                    .created_date(day + time::Duration::hours(26))
                    .rows(5 + i)
                    .seed(i as u64)
                    .build(),
            ),
        );
    }
    for h in 0..4i64 {
        let hour = datetime!(2025-06-10 02:00 UTC) + time::Duration::hours(h);
        for (j, t) in ["Login", "API"].iter().enumerate() {
            ids.push(
                mock.add_file(
                    MockLogFile::builder(t)
                        .interval(Interval::Hourly)
                        .log_date(hour)
                        .sequence(1)
                        .created_date(hour + time::Duration::hours(4))
                        .rows(9)
                        .seed(100 + (h as u64) * 10 + j as u64)
                        .build(),
                ),
            );
        }
    }
    ids
}

fn options() -> CollectorOptions {
    CollectorOptions {
        since: Duration::from_secs(3 * 24 * 3600),
        concurrency: 3,
        ..CollectorOptions::default()
    }
}

/// The EventLogFile position for all event types (what the tests' collectors select).
fn all_types(checkpoint: &Checkpoint) -> &EventLogFileState {
    checkpoint
        .event_log_file(None)
        .expect("an all-types EventLogFile source")
}

async fn pass<S: CheckpointStore, K: Sink>(
    collector: &mut Collector<S>,
    sink: &mut K,
) -> Result<salesforce_jwt::collect::PassSummary, Error> {
    collector
        .run_pass(sink, &mut |_: &Progress| {}, &AtomicBool::new(false))
        .await
}

#[tokio::test]
async fn a_full_run_delivers_every_row_once_and_a_second_run_nothing() {
    let org = org().await;
    let ids = add_files(&org.mock);
    let store = MemoryCheckpointStore::new();
    let mut collector = org.collector(store.clone());
    let mut sink = common::Recorder::default();
    let summary = pass(&mut collector, &mut sink).await.unwrap();
    assert_eq!(summary.files, ids.len());
    common::assert_exactly_once(&org.mock, &ids, &sink.committed);
    // In (CreatedDate, Id) order.
    let mut files = org.mock.files();
    files.sort_by(|a, b| (a.created_date, &a.id).cmp(&(b.created_date, &b.id)));
    assert_eq!(
        sink.commits,
        files.iter().map(|f| f.id.clone()).collect::<Vec<_>>()
    );
    assert_eq!(store.get().unwrap().rows_delivered, summary.rows);

    let before = org.mock.received().downloads;
    let again = pass(&mut collector, &mut sink).await.unwrap();
    assert_eq!((again.files, again.rows), (0, 0));
    assert_eq!(
        org.mock.received().downloads,
        before,
        "nothing downloaded again"
    );
    common::assert_exactly_once(&org.mock, &ids, &sink.committed);
}

#[tokio::test]
async fn files_added_later_and_late_hourly_files_are_delivered_once() {
    let org = org().await;
    let mut ids = add_files(&org.mock);
    let store = MemoryCheckpointStore::new();
    let mut collector = org.collector(store.clone());
    let mut sink = common::Recorder::default();
    pass(&mut collector, &mut sink).await.unwrap();
    let cursor = all_types(&store.get().unwrap()).cursor.clone().unwrap();

    // A newer file, and a late hourly file whose CreatedDate is *older* than the newest file
    // already collected (it became visible after the first pass): same LogDate, Sequence 2.
    org.clock.advance(Duration::from_secs(3600));
    ids.push(
        org.mock.add_file(
            MockLogFile::builder("URI")
                .interval(Interval::Hourly)
                .log_date(datetime!(2025-06-10 06:00 UTC))
                .sequence(1)
                .created_date(datetime!(2025-06-10 11:30 UTC))
                .rows(7)
                .seed(999)
                .build(),
        ),
    );
    let late_created = cursor.created_date - time::Duration::hours(2);
    ids.push(
        org.mock.add_file(
            MockLogFile::builder("Login")
                .interval(Interval::Hourly)
                .log_date(datetime!(2025-06-10 02:00 UTC))
                .sequence(2)
                .created_date(late_created)
                .rows(4)
                .seed(998)
                .build(),
        ),
    );
    let summary = pass(&mut collector, &mut sink).await.unwrap();
    assert_eq!(summary.files, 2);
    common::assert_exactly_once(&org.mock, &ids, &sink.committed);
    let third = pass(&mut collector, &mut sink).await.unwrap();
    assert_eq!(third.files, 0);
    // The cursor never moves backwards for the late file.
    assert!(
        all_types(&store.get().unwrap())
            .cursor
            .clone()
            .unwrap()
            .created_date
            >= cursor.created_date
    );
}

async fn run_with_fault(fault: Fault) -> (Org, common::Recorder, Vec<String>) {
    let org = org().await;
    let ids = add_files(&org.mock);
    org.mock.inject(fault);
    let mut collector = org.collector(MemoryCheckpointStore::new());
    let mut sink = common::Recorder::default();
    pass(&mut collector, &mut sink).await.unwrap();
    assert_eq!(org.mock.pending_faults(), 0, "the fault fired");
    common::assert_exactly_once(&org.mock, &ids, &sink.committed);
    (org, sink, ids)
}

#[tokio::test]
async fn service_unavailable_on_each_kind_of_request_is_survived() {
    for target in [
        FaultTarget::Token,
        FaultTarget::Query,
        FaultTarget::Download,
    ] {
        let (org, _, _) = run_with_fault(Fault::ServiceUnavailable {
            target,
            retry_after_secs: Some(5),
        })
        .await;
        assert!(
            org.clock.slept().contains(&Duration::from_secs(5)),
            "{target:?}: Retry-After honoured"
        );
    }
}

#[tokio::test]
async fn too_many_requests_is_survived() {
    run_with_fault(Fault::TooManyRequests {
        target: FaultTarget::Any,
        retry_after_secs: None,
    })
    .await;
}

#[tokio::test]
async fn revoked_sessions_are_survived_with_one_reauthentication() {
    let (org, _, _) = run_with_fault(Fault::RevokeSessions).await;
    assert_eq!(org.mock.received().token_successes, 2);
    assert_eq!(org.mock.received().unauthorized, 1);
}

#[tokio::test]
async fn a_truncated_body_is_rolled_back_and_the_file_downloaded_again() {
    let (org, sink, ids) = run_with_fault(Fault::TruncatedBody).await;
    assert_eq!(sink.rollbacks, 1);
    assert_eq!(org.mock.received().downloads, ids.len() as u64 + 1);
}

#[tokio::test]
async fn an_expired_session_mid_run_is_renewed() {
    let org = org().await;
    let ids = add_files(&org.mock);
    let mut collector = org.collector(MemoryCheckpointStore::new());
    let mut sink = common::Recorder::default();
    let clock = org.clock.clone();
    let mut progress = |p: &Progress| {
        // Past the assumed 2 h session after the first file: the client must renew.
        if p.files_done == 1 {
            clock.advance(Duration::from_secs(3 * 3600));
        }
    };
    collector
        .run_pass(&mut sink, &mut progress, &AtomicBool::new(false))
        .await
        .unwrap();
    common::assert_exactly_once(&org.mock, &ids, &sink.committed);
    assert!(org.mock.received().token_successes >= 2);
}

#[tokio::test]
async fn the_request_limit_stops_the_pass_and_a_later_pass_completes_exactly_once() {
    let org = org().await;
    let ids = add_files(&org.mock);
    org.mock.inject(Fault::RequestLimitExceeded {
        target: FaultTarget::Download,
    });
    let store = MemoryCheckpointStore::new();
    let mut collector = org.collector(store.clone());
    let mut sink = common::Recorder::default();
    let err = pass(&mut collector, &mut sink).await.unwrap_err();
    assert!(matches!(err, Error::RequestLimitExceeded { .. }), "{err:?}");
    pass(&mut collector, &mut sink).await.unwrap();
    common::assert_exactly_once(&org.mock, &ids, &sink.committed);
}

#[tokio::test]
async fn stop_ends_the_pass_after_the_current_file_with_a_consistent_checkpoint() {
    let org = org().await;
    let ids = add_files(&org.mock);
    let store = MemoryCheckpointStore::new();
    let mut collector = org.collector(store.clone());
    let mut sink = common::Recorder::default();
    let stop = AtomicBool::new(false);
    let mut progress = |p: &Progress| {
        if p.files_done == 2 {
            stop.store(true, Ordering::SeqCst);
        }
    };
    let summary = collector
        .run_pass(&mut sink, &mut progress, &stop)
        .await
        .unwrap();
    assert!(summary.stopped);
    assert_eq!(summary.files, 2);
    assert_eq!(store.get().unwrap().files_delivered, 2);
    let rest = pass(&mut collector, &mut sink).await.unwrap();
    assert_eq!(rest.files, ids.len() - 2);
    common::assert_exactly_once(&org.mock, &ids, &sink.committed);
}

fn output_lines(path: &std::path::Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value =
                serde_json::from_str(line).expect("every line is whole JSON");
            (
                v["EventLogFileId"].as_str().unwrap().to_string(),
                line.to_string(),
            )
        })
        .collect()
}

/// The crash: a file's rows are half written (and reach the disk, as buffered writes do when a
/// process dies), nothing is confirmed, everything is dropped. The restart must discard the half
/// file and deliver everything exactly once.
#[tokio::test]
async fn a_run_killed_mid_file_resumes_with_every_row_exactly_once() {
    let org = org().await;
    let ids = add_files(&org.mock);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let state = dir.path().join("events.checkpoint.json");

    // First run: two files delivered and confirmed.
    {
        let store = FileCheckpointStore::new(&state);
        let mut collector = org.collector(store);
        let mut sink = NdjsonFileSink::open(&out, collector.checkpoint().sink_position).unwrap();
        let stop = AtomicBool::new(false);
        let mut progress = |p: &Progress| {
            if p.files_done == 2 {
                stop.store(true, Ordering::SeqCst);
            }
        };
        collector
            .run_pass(&mut sink, &mut progress, &stop)
            .await
            .unwrap();
    }
    // Second run, killed: the third file half written, never confirmed.
    {
        let store = FileCheckpointStore::new(&state);
        let collector = org.collector(store);
        let mut sink = NdjsonFileSink::open(&out, collector.checkpoint().sink_position).unwrap();
        let file = collector.pending_files().await.unwrap().remove(0);
        let rows: Vec<LogRecord> = org
            .client
            .log_records(&file)
            .await
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
            .await;
        for row in &rows[..rows.len() / 2] {
            sink.write(Row::LogFile {
                file: &file,
                record: row,
            })
            .await
            .unwrap();
        }
        // A sink can even have committed its bytes when the kill comes before the checkpoint.
        sink.commit(&Unit::LogFile(&file)).await.unwrap();
        sink.write(Row::LogFile {
            file: &file,
            record: &rows[rows.len() / 2],
        })
        .await
        .unwrap();
        drop(sink);
        drop(collector);
    }
    let torn = output_lines(&out).len();
    // Third run: resume.
    {
        let store = FileCheckpointStore::new(&state);
        let mut collector = org.collector(store);
        let mut sink = NdjsonFileSink::open(&out, collector.checkpoint().sink_position).unwrap();
        assert!(
            output_lines(&out).len() < torn,
            "the unconfirmed rows were cut off"
        );
        pass(&mut collector, &mut sink).await.unwrap();
    }
    common::assert_exactly_once(&org.mock, &ids, &output_lines(&out));
}

#[tokio::test]
async fn a_failure_mid_file_rolls_the_output_file_back() {
    let org = org().await;
    let ids = add_files(&org.mock);
    org.mock.inject(Fault::TruncatedBody);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let store = FileCheckpointStore::new(dir.path().join("state.json"));
    let mut collector = org.collector(store);
    let mut sink = NdjsonFileSink::open(&out, collector.checkpoint().sink_position).unwrap();
    pass(&mut collector, &mut sink).await.unwrap();
    common::assert_exactly_once(&org.mock, &ids, &output_lines(&out));
    assert_eq!(
        collector.checkpoint().sink_position,
        Some(std::fs::metadata(&out).unwrap().len())
    );
}

#[tokio::test]
async fn a_corrupted_checkpoint_is_refused_with_a_clear_error() {
    let org = org().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    for garbage in ["{\"version\": 1, \"cursor\": ", "not json at all", ""] {
        std::fs::write(&state, garbage).unwrap();
        let err = Collector::new(
            org.client.clone(),
            EventLogFileQuery::new(),
            FileCheckpointStore::new(&state),
            options(),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Checkpoint { .. }), "{err:?}");
        assert!(
            text.contains("corrupted") && text.contains("state.json"),
            "{text}"
        );
    }
    // Another format version is refused too, not misread.
    let mut checkpoint = salesforce_jwt::collect::Checkpoint::new();
    checkpoint.version = 99;
    std::fs::write(&state, serde_json::to_vec(&checkpoint).unwrap()).unwrap();
    let err = FileCheckpointStore::new(&state).load().unwrap_err();
    assert!(err.to_string().contains("version 99"), "{err}");
}

#[tokio::test]
async fn checkpoints_are_replaced_atomically_and_round_trip() {
    let org = org().await;
    add_files(&org.mock);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let mut collector = org.collector(FileCheckpointStore::new(&state));
    pass(&mut collector, &mut common::Recorder::default())
        .await
        .unwrap();
    let saved = FileCheckpointStore::new(&state).load().unwrap().unwrap();
    assert_eq!(&saved, collector.checkpoint());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut leftovers: Vec<_> = leftovers.into_iter().collect();
    leftovers.sort();
    assert_eq!(
        leftovers,
        vec![
            std::ffi::OsString::from("state.json"),
            std::ffi::OsString::from("state.json.lock")
        ],
        "no temp file left, only the checkpoint and its lock"
    );
}

#[tokio::test]
async fn an_output_shorter_than_the_checkpoint_says_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    std::fs::write(&out, b"{}\n").unwrap();
    let err = NdjsonFileSink::open(&out, Some(1000)).unwrap_err();
    assert!(err.to_string().contains("truncated or replaced"), "{err}");
}

#[tokio::test]
async fn completed_files_leave_the_checkpoint_once_outside_the_lookback() {
    let org = org().await;
    add_files(&org.mock);
    let store = MemoryCheckpointStore::new();
    let short = CollectorOptions {
        lookback: Duration::from_secs(3600),
        ..options()
    };
    let mut collector = org.collector_with(store.clone(), short);
    pass(&mut collector, &mut common::Recorder::default())
        .await
        .unwrap();
    let whole = store.get().unwrap();
    let checkpoint = all_types(&whole);
    let horizon = checkpoint.cursor.as_ref().unwrap().created_date - time::Duration::hours(1);
    assert!(!checkpoint.completed.is_empty());
    assert!(
        checkpoint
            .completed
            .values()
            .all(|f| f.created_date >= horizon)
    );
    assert!(whole.files_delivered as usize > checkpoint.completed.len());
    // The pass query starts at the window.
    assert!(collector.pass_query().to_soql().contains(&format!(
        "CreatedDate >= {}",
        salesforce_jwt::soql::datetime(horizon)
    )));
}

#[tokio::test]
async fn a_first_run_takes_whole_days_so_yesterdays_daily_file_is_not_lost() {
    let org = org().await;
    // now() is 12:00; a one-day `since` must still take the daily file of the day before,
    // whose LogDate is midnight, 36 hours ago.
    let day_before = datetime!(2025-06-09 00:00 UTC);
    let id = org.mock.add_file(
        MockLogFile::builder("Login")
            .interval(Interval::Daily)
            .log_date(day_before)
            .sequence(0)
            .created_date(day_before + time::Duration::hours(27))
            .rows(3)
            .seed(1)
            .build(),
    );
    let store = MemoryCheckpointStore::new();
    let one_day = CollectorOptions {
        since: Duration::from_secs(24 * 3600),
        ..options()
    };
    let mut collector = org.collector_with(store.clone(), one_day);
    // The fresh checkpoint is saved before anything is delivered.
    assert_eq!(all_types(&store.get().unwrap()).log_date_floor, day_before);
    let mut sink = common::Recorder::default();
    pass(&mut collector, &mut sink).await.unwrap();
    assert_eq!(sink.commits, vec![id]);
}

#[tokio::test]
async fn growing_the_lookback_between_runs_delivers_nothing_twice() {
    let org = org().await;
    let ids = add_files(&org.mock);
    let store = MemoryCheckpointStore::new();
    let short = CollectorOptions {
        lookback: Duration::from_secs(1800),
        ..options()
    };
    let mut sink = common::Recorder::default();
    let mut first = org.collector_with(store.clone(), short);
    pass(&mut first, &mut sink).await.unwrap();
    // Pruned down to the short window...
    assert!(all_types(&store.get().unwrap()).completed.len() < ids.len());
    // ...and a restart with a three-day lookback must not see the pruned files as new.
    let mut second = org.collector(store.clone());
    let again = pass(&mut second, &mut sink).await.unwrap();
    assert_eq!(again.files, 0);
    common::assert_exactly_once(&org.mock, &ids, &sink.committed);
}

/// A sink that dies in the middle of a file the way a killed process does: no rollback, no
/// cleanup beyond what dropping does (the buffered rows still reach the file, torn).
struct DiesMidFile {
    inner: NdjsonFileSink,
    rows_left: usize,
}

impl Sink for DiesMidFile {
    async fn begin(&mut self, unit: &Unit<'_>) -> Result<(), Error> {
        let file = unit.log_file().expect("a log file");
        self.inner.begin(&Unit::LogFile(file)).await
    }
    async fn write(&mut self, row: Row<'_>) -> Result<(), Error> {
        let Row::LogFile { file, record: row } = row else {
            panic!("a log-file row")
        };
        if self.rows_left == 0 {
            panic!("killed");
        }
        self.rows_left -= 1;
        self.inner.write(Row::LogFile { file, record: row }).await
    }
    async fn commit(&mut self, unit: &Unit<'_>) -> Result<Option<u64>, Error> {
        let file = unit.log_file().expect("a log file");
        self.inner.commit(&Unit::LogFile(file)).await
    }
    fn committed_position(&self) -> Option<u64> {
        self.inner.committed_position()
    }
    async fn rollback(&mut self, unit: &Unit<'_>) -> Result<(), Error> {
        let file = unit.log_file().expect("a log file");
        self.inner.rollback(&Unit::LogFile(file)).await
    }
}

#[tokio::test]
async fn a_kill_in_the_very_first_file_of_a_first_run_resumes_exactly_once() {
    let org = org().await;
    let ids = add_files(&org.mock);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let state = dir.path().join("state.json");
    // An output that already holds someone's earlier lines: they must survive untouched.
    std::fs::write(&out, "{\"EventLogFileId\":\"earlier\"}\n").unwrap();

    let client = org.client.clone();
    let (out2, state2) = (out.clone(), state.clone());
    let killed = tokio::spawn(async move {
        let mut collector = Collector::new(
            client,
            EventLogFileQuery::new(),
            FileCheckpointStore::new(&state2),
            options(),
        )
        .unwrap();
        let inner = NdjsonFileSink::open(&out2, collector.checkpoint().sink_position).unwrap();
        let mut sink = DiesMidFile {
            inner,
            rows_left: 3,
        };
        let _ = pass(&mut collector, &mut sink).await;
    })
    .await;
    assert!(killed.unwrap_err().is_panic());
    assert_eq!(
        output_lines(&out).len(),
        1,
        "no row of the killed file reached the output"
    );

    let mut collector = org.collector(FileCheckpointStore::new(&state));
    let mut sink = NdjsonFileSink::open(&out, collector.checkpoint().sink_position).unwrap();
    pass(&mut collector, &mut sink).await.unwrap();
    let mut lines = output_lines(&out);
    assert_eq!(lines.remove(0).0, "earlier");
    common::assert_exactly_once(&org.mock, &ids, &lines);
}

fn add_malformed_file(mock: &MockOrg) -> String {
    let hour = datetime!(2025-06-10 03:00 UTC);
    // Row 3 has one field too few: no retry can fix it.
    mock.add_file(
        MockLogFile::builder("Login")
            .interval(Interval::Hourly)
            .log_date(hour)
            .sequence(1)
            .created_date(hour + time::Duration::minutes(4 * 60 + 30))
            .csv("\"EVENT_TYPE\",\"USER_ID\"\n\"Login\",\"005A\"\n\"Login\"\n")
            .build(),
    )
}

#[tokio::test]
async fn a_malformed_file_stops_the_pass_by_default_naming_file_and_line() {
    let org = org().await;
    add_files(&org.mock);
    let bad = add_malformed_file(&org.mock);
    let mut collector = org.collector(MemoryCheckpointStore::new());
    let mut sink = common::Recorder::default();
    let err = pass(&mut collector, &mut sink).await.unwrap_err();
    match &err {
        Error::Csv { id, line, .. } => assert_eq!((id.as_str(), *line), (bad.as_str(), 3)),
        other => panic!("expected a CSV error, got {other:?}"),
    }
    // Nothing of the bad file was delivered; the files before it were.
    assert!(sink.committed.iter().all(|(id, _)| *id != bad));
    assert!(!sink.commits.is_empty());
}

#[tokio::test]
async fn with_skipping_a_malformed_file_is_recorded_and_the_rest_is_delivered_once() {
    let org = org().await;
    let ids = add_files(&org.mock);
    let bad = add_malformed_file(&org.mock);
    let store = MemoryCheckpointStore::new();
    let skipping = CollectorOptions {
        skip_failed_files: true,
        ..options()
    };
    let mut collector = org.collector_with(store.clone(), skipping);
    let mut sink = common::Recorder::default();
    let summary = pass(&mut collector, &mut sink).await.unwrap();
    assert_eq!(summary.files, ids.len());
    assert_eq!(summary.skipped.len(), 1);
    assert_eq!(summary.skipped[0].0.id, bad);
    let checkpoint = store.get().unwrap();
    assert!(checkpoint.skipped[&bad].error.contains("line 3"));
    assert_eq!(checkpoint.files_delivered as usize, ids.len());
    common::assert_exactly_once(&org.mock, &ids, &sink.committed);
    let again = pass(&mut collector, &mut sink).await.unwrap();
    assert_eq!(
        (again.files, again.skipped.len()),
        (0, 0),
        "not retried forever"
    );
}

#[tokio::test]
async fn skipping_never_applies_to_failures_of_the_org_or_the_network() {
    let org = org().await;
    add_files(&org.mock);
    org.mock.inject(Fault::RequestLimitExceeded {
        target: FaultTarget::Download,
    });
    let skipping = CollectorOptions {
        skip_failed_files: true,
        ..options()
    };
    let mut collector = org.collector_with(MemoryCheckpointStore::new(), skipping);
    let err = pass(&mut collector, &mut common::Recorder::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RequestLimitExceeded { .. }), "{err:?}");
    assert!(collector.checkpoint().skipped.is_empty());
}

#[tokio::test]
async fn two_collectors_cannot_write_one_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let first = NdjsonFileSink::open(&out, None).unwrap();
    let err = NdjsonFileSink::open(&out, None).unwrap_err();
    assert!(
        err.to_string().contains("in use by another collector"),
        "{err}"
    );
    drop(first);
    NdjsonFileSink::open(&out, None).expect("free again once the first sink is gone");
}

/// A clock that panics at its next reading once armed (once): a download task that reads it
/// dies the way a task with a bug in it would.
#[derive(Debug, Clone)]
struct PanicsWhenArmed {
    inner: ManualClock,
    armed: Arc<AtomicBool>,
}

impl salesforce_jwt::clock::Clock for PanicsWhenArmed {
    fn now(&self) -> OffsetDateTime {
        if self.armed.swap(false, Ordering::SeqCst) {
            panic!("a download task dies");
        }
        self.inner.now()
    }
    fn sleep(&self, duration: Duration) -> salesforce_jwt::clock::Sleep {
        self.inner.sleep(duration)
    }
}

#[tokio::test]
async fn a_download_task_that_panics_is_retried_never_committed_as_a_short_file() {
    let org = org().await;
    let ids = add_files(&org.mock);
    let armed = Arc::new(AtomicBool::new(false));
    let clock = PanicsWhenArmed {
        inner: org.clock.clone(),
        armed: Arc::clone(&armed),
    };
    let client = JwtBearerClient::builder(org.client.config().clone())
        .clock(Arc::new(clock))
        .build()
        .unwrap();
    let mut collector = Collector::new(
        client,
        EventLogFileQuery::new(),
        MemoryCheckpointStore::new(),
        options(),
    )
    .unwrap();
    let mut sink = common::Recorder::default();
    let mut progress = |p: &Progress| {
        // Right after the listing, before any download task runs: the first one to read the
        // clock panics.
        if p.files_done == 0 && p.current.is_none() {
            armed.store(true, Ordering::SeqCst);
        }
    };
    collector
        .run_pass(&mut sink, &mut progress, &AtomicBool::new(false))
        .await
        .unwrap();
    assert!(!armed.load(Ordering::SeqCst), "a download task panicked");
    assert_eq!(sink.rollbacks, 1, "the dead download was rolled back");
    common::assert_exactly_once(&org.mock, &ids, &sink.committed);
}

/// The library needs no multi-thread runtime: a whole pass, with a file rolled back and every
/// fsync of the output and the checkpoint, runs on a current-thread runtime.
#[tokio::test(flavor = "current_thread")]
async fn a_full_pass_with_a_rollback_runs_on_a_current_thread_runtime() {
    let org = org().await;
    let ids = add_files(&org.mock);
    org.mock.inject(Fault::TruncatedBody);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let mut collector = org.collector(FileCheckpointStore::new(dir.path().join("state.json")));
    let mut sink = NdjsonFileSink::open(&out, collector.checkpoint().sink_position).unwrap();
    pass(&mut collector, &mut sink).await.unwrap();
    assert_eq!(org.mock.pending_faults(), 0);
    common::assert_exactly_once(&org.mock, &ids, &output_lines(&out));
}

/// The file of `ids` downloaded first in a pass (the oldest).
fn first_file(org: &Org) -> String {
    let mut files = org.mock.files();
    files.sort_by(|a, b| (a.created_date, &a.id).cmp(&(b.created_date, &b.id)));
    files[0].id.clone()
}

fn on_file(id: &str, fault: Fault) -> Fault {
    Fault::OnFile {
        id: id.to_string(),
        fault: Box::new(fault),
    }
}

#[tokio::test]
async fn one_file_failing_six_times_in_a_row_is_ridden_out_with_capped_full_jitter() {
    // No retries inside a request: every cut-off body and every 503 costs the file an attempt.
    let policy = RetryPolicy {
        max_attempts: 1,
        initial_backoff: Duration::from_millis(400),
        max_backoff: Duration::from_secs(2),
        ..RetryPolicy::default()
    };
    let org = org_with(policy).await;
    let ids = add_files(&org.mock);
    let victim = first_file(&org);
    for _ in 0..4 {
        org.mock.inject(on_file(&victim, Fault::TruncatedBody));
    }
    for _ in 0..2 {
        org.mock.inject(on_file(
            &victim,
            Fault::ServiceUnavailable {
                target: FaultTarget::Download,
                retry_after_secs: None,
            },
        ));
    }
    let mut collector = org.collector(MemoryCheckpointStore::new());
    let mut sink = common::Recorder::default();
    pass(&mut collector, &mut sink).await.unwrap();
    assert_eq!(org.mock.pending_faults(), 0, "all six failures fired");
    common::assert_exactly_once(&org.mock, &ids, &sink.committed);
    assert_eq!(org.mock.received().downloads, ids.len() as u64 + 6);
    let slept = org.clock.slept();
    assert_eq!(slept.len(), 6, "{slept:?}");
    for (n, delay) in slept.iter().enumerate() {
        let ceiling = (policy.initial_backoff * (1 << n)).min(policy.max_backoff);
        assert!(*delay <= ceiling, "backoff {n}: {delay:?} > {ceiling:?}");
    }
}

#[tokio::test]
async fn a_file_retry_waits_the_retry_after_the_server_asked_for() {
    let org = org_with(RetryPolicy::none()).await;
    let ids = add_files(&org.mock);
    let victim = first_file(&org);
    org.mock.inject(on_file(
        &victim,
        Fault::ServiceUnavailable {
            target: FaultTarget::Download,
            retry_after_secs: Some(7),
        },
    ));
    let mut collector = org.collector(MemoryCheckpointStore::new());
    let mut sink = common::Recorder::default();
    pass(&mut collector, &mut sink).await.unwrap();
    common::assert_exactly_once(&org.mock, &ids, &sink.committed);
    assert_eq!(org.clock.slept(), vec![Duration::from_secs(7)]);
}

#[tokio::test]
async fn an_error_no_retry_can_fix_ends_the_file_attempts_at_once() {
    let org = org().await;
    add_files(&org.mock);
    let bad = add_malformed_file(&org.mock);
    let mut collector = org.collector(MemoryCheckpointStore::new());
    let before = org.mock.received().downloads;
    let err = pass(&mut collector, &mut common::Recorder::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Csv { ref id, .. } if *id == bad),
        "{err:?}"
    );
    assert!(
        org.clock.slept().is_empty(),
        "no backoff for a malformed file"
    );
    assert!(org.mock.received().downloads - before <= org.mock.files().len() as u64);
}

#[tokio::test]
async fn two_collectors_cannot_share_one_checkpoint() {
    let org = org().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let first = org.collector(FileCheckpointStore::new(&state));
    let err = Collector::new(
        org.client.clone(),
        EventLogFileQuery::new(),
        FileCheckpointStore::new(&state),
        options(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Checkpoint { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("in use by another collector") && text.contains("state.json.lock"),
        "{text}"
    );
    // Reading it is fine while it is in use.
    assert!(FileCheckpointStore::new(&state).load().unwrap().is_some());
    drop(first);
    // A clone of a store that holds the lock does not share it.
    let mut held = FileCheckpointStore::new(&state);
    held.acquire().unwrap();
    let err = Collector::new(
        org.client.clone(),
        EventLogFileQuery::new(),
        held.clone(),
        options(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("in use by another collector"),
        "{err}"
    );
    drop(held);
    org.collector(FileCheckpointStore::new(&state));
}

#[tokio::test]
async fn whatever_sits_at_the_old_fixed_temp_name_never_blocks_a_save() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    // A crashed save's leftover that cannot even be replaced.
    std::fs::create_dir(dir.path().join("state.json.tmp")).unwrap();
    let mut store = FileCheckpointStore::new(&state);
    let checkpoint = salesforce_jwt::collect::Checkpoint::new();
    store.save(&checkpoint).unwrap();
    assert_eq!(store.load().unwrap(), Some(checkpoint));
}

fn collector_for<S: CheckpointStore>(
    org: &Org,
    store: S,
    types: &[&str],
    options: CollectorOptions,
) -> Result<Collector<S>, Error> {
    Collector::new(
        org.client.clone(),
        EventLogFileQuery::new().event_types(types.iter().map(|t| EventType::from(*t))),
        store,
        options,
    )
}

fn ids_of_type(org: &Org, event_type: &str) -> Vec<String> {
    org.mock
        .files()
        .into_iter()
        .filter(|f| f.event_type == event_type)
        .map(|f| f.id)
        .collect()
}

#[tokio::test]
async fn adding_an_event_type_starts_it_from_since_and_removing_one_keeps_its_position() {
    let org = org().await;
    add_files(&org.mock);
    let store = MemoryCheckpointStore::new();
    // A short lookback: the API files are older than Login's window, so one cursor for the
    // selection would skip them.
    let short = CollectorOptions {
        lookback: Duration::from_secs(3600),
        ..options()
    };
    let mut sink = common::Recorder::default();
    let mut login = collector_for(&org, store.clone(), &["Login"], short).unwrap();
    pass(&mut login, &mut sink).await.unwrap();
    drop(login);
    let logins = ids_of_type(&org, "Login");
    assert_eq!(sink.commits, logins);

    let mut both = collector_for(&org, store.clone(), &["Login", "API"], short).unwrap();
    let summary = pass(&mut both, &mut sink).await.unwrap();
    let apis = ids_of_type(&org, "API");
    assert_eq!(
        summary.files,
        apis.len(),
        "every API file, no Login file again"
    );
    assert_eq!(sink.commits[logins.len()..], apis[..]);
    drop(both);

    // API removed (and Login spelled as SOQL allows it), then a new API file, then API
    // back: nothing lost, nothing twice.
    let mut login = collector_for(&org, store.clone(), &["login"], short).unwrap();
    assert_eq!(pass(&mut login, &mut sink).await.unwrap().files, 0);
    drop(login);
    org.clock.advance(Duration::from_secs(3600));
    let late_api = org.mock.add_file(
        MockLogFile::builder("API")
            .interval(Interval::Hourly)
            .log_date(datetime!(2025-06-10 07:00 UTC))
            .sequence(1)
            .created_date(datetime!(2025-06-10 12:30 UTC))
            .rows(3)
            .seed(4242)
            .build(),
    );
    let mut both = collector_for(&org, store.clone(), &["API", "Login"], short).unwrap();
    pass(&mut both, &mut sink).await.unwrap();
    assert_eq!(sink.commits.last(), Some(&late_api));
    let mut all: Vec<String> = logins.iter().chain(&apis).cloned().collect();
    all.push(late_api);
    common::assert_exactly_once(&org.mock, &all, &sink.committed);
    let checkpoint = store.get().unwrap();
    assert!(checkpoint.event_log_file(Some("Login")).is_some());
    assert!(checkpoint.event_log_file(Some("API")).is_some());
}

#[tokio::test]
async fn a_selection_that_would_skip_or_repeat_files_is_refused_with_what_to_do() {
    let org = org().await;
    add_files(&org.mock);
    let store = MemoryCheckpointStore::new();
    let mut login = collector_for(&org, store.clone(), &["Login"], options()).unwrap();
    pass(&mut login, &mut common::Recorder::default())
        .await
        .unwrap();
    drop(login);
    // Another interval: the hourly files it adds lie before the position.
    let err = Collector::new(
        org.client.clone(),
        EventLogFileQuery::new()
            .event_types([EventType::Login])
            .interval(IntervalFilter::Daily),
        store.clone(),
        options(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("interval"), "{err}");
    // All types after collecting them one by one: Login would come again.
    let err = collector_for(&org, store.clone(), &[], options()).unwrap_err();
    assert!(
        err.to_string().contains("EventLogFileQuery::event_types")
            && err.to_string().contains("Login"),
        "{err}"
    );
}

/// The version-1 format, as the previous release wrote it.
fn as_version_1(checkpoint: &Checkpoint) -> serde_json::Value {
    let state = all_types(checkpoint);
    serde_json::json!({
        "version": 1,
        "log_date_floor": state.log_date_floor.format(&time::format_description::well_known::Rfc3339).unwrap(),
        "cursor": state.cursor,
        "completed": state.completed,
        "window_start": state.window_start.map(|t| t.format(&time::format_description::well_known::Rfc3339).unwrap()),
        "skipped": checkpoint.skipped,
        "sink_position": checkpoint.sink_position,
        "files_delivered": checkpoint.files_delivered,
        "rows_delivered": checkpoint.rows_delivered,
    })
}

#[tokio::test]
async fn a_version_1_checkpoint_is_migrated_and_goes_on_where_it_was() {
    let org = org().await;
    let ids = add_files(&org.mock);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let mut sink = common::Recorder::default();
    {
        let mut collector = org.collector(MemoryCheckpointStore::new());
        pass(&mut collector, &mut sink).await.unwrap();
        std::fs::write(
            &state,
            serde_json::to_vec(&as_version_1(collector.checkpoint())).unwrap(),
        )
        .unwrap();
    }
    let loaded = FileCheckpointStore::new(&state).load().unwrap().unwrap();
    assert_eq!(loaded.version, salesforce_jwt::collect::CHECKPOINT_VERSION);
    assert!(
        loaded
            .sources
            .contains_key(salesforce_jwt::collect::MIGRATED_V1_SOURCE)
    );
    let mut collector = org.collector(FileCheckpointStore::new(&state));
    assert_eq!(pass(&mut collector, &mut sink).await.unwrap().files, 0);
    common::assert_exactly_once(&org.mock, &ids, &sink.committed);
    let saved = FileCheckpointStore::new(&state).load().unwrap().unwrap();
    assert_eq!(saved.sources.len(), 1, "{:?}", saved.sources.keys());
    assert_eq!(saved.files_delivered as usize, ids.len());
}

#[tokio::test]
async fn a_checkpoint_of_another_output_never_touches_it() {
    let org = org().await;
    add_files(&org.mock);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let mut collector = org.collector(FileCheckpointStore::new(&state));
    let mut sink =
        NdjsonFileSink::resume(dir.path().join("a.ndjson"), collector.checkpoint()).unwrap();
    pass(&mut collector, &mut sink).await.unwrap();
    drop(sink);
    // Someone else's file, longer than the checkpoint's position.
    let other = dir.path().join("b.ndjson");
    let precious = "{\"keep\":true}\n".repeat(100_000);
    std::fs::write(&other, &precious).unwrap();
    let err = NdjsonFileSink::resume(&other, collector.checkpoint()).unwrap_err();
    assert!(
        err.to_string().contains("belongs to another output")
            && err.to_string().contains("a.ndjson"),
        "{err}"
    );
    // A sink opened without the check is refused by the pass, before any write.
    let mut unchecked = NdjsonFileSink::open(&other, None).unwrap();
    let err = pass(&mut collector, &mut unchecked).await.unwrap_err();
    assert!(err.to_string().contains("belongs to the output"), "{err}");
    assert_eq!(std::fs::read_to_string(&other).unwrap(), precious);
}

/// A checkpoint store whose saves fail while `failing` is set, as a database that went away
/// would.
#[derive(Clone, Default)]
struct FlakyStore {
    inner: MemoryCheckpointStore,
    failing: Arc<AtomicBool>,
}

impl FlakyStore {
    fn get_checkpoint(&self) -> Checkpoint {
        self.inner.get().unwrap()
    }
}

impl CheckpointStore for FlakyStore {
    fn load(&self) -> Result<Option<Checkpoint>, Error> {
        self.inner.load()
    }
    fn save(&mut self, checkpoint: &Checkpoint) -> Result<(), Error> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(Error::checkpoint_store(
                "saving the checkpoint to the test database",
                "connection reset",
                true,
            ));
        }
        self.inner.save(checkpoint)
    }
}

#[tokio::test]
async fn after_a_failed_checkpoint_save_the_next_pass_refuses_an_unproven_output() {
    let org = org().await;
    let ids = add_files(&org.mock);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let store = FlakyStore::default();
    let mut collector = org.collector(store.clone());
    let mut sink = NdjsonFileSink::resume(&out, collector.checkpoint()).unwrap();
    let failing = Arc::clone(&store.failing);
    let mut progress = |p: &Progress| {
        // The third file's rows are committed to the output, then its checkpoint save fails.
        if p.files_done == 2 {
            failing.store(true, Ordering::SeqCst);
        }
    };
    let err = collector
        .run_pass(&mut sink, &mut progress, &AtomicBool::new(false))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CheckpointStore { .. }), "{err:?}");
    assert!(err.is_retryable(), "the store said a retry may help");
    store.failing.store(false, Ordering::SeqCst);

    // The same sink, past the checkpoint: going on would deliver the third file twice.
    let err = pass(&mut collector, &mut sink).await.unwrap_err();
    assert!(matches!(err, Error::Sink { .. }), "{err:?}");
    assert!(err.to_string().contains("resume"), "{err}");
    drop(sink);

    let mut sink = NdjsonFileSink::resume(&out, collector.checkpoint()).unwrap();
    pass(&mut collector, &mut sink).await.unwrap();
    common::assert_exactly_once(&org.mock, &ids, &output_lines(&out));
}

/// A writer whose next write fails once.
struct FailsOnce {
    fail: bool,
    written: Vec<u8>,
}

impl std::io::Write for FailsOnce {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if std::mem::take(&mut self.fail) {
            return Err(std::io::Error::other("device gone"));
        }
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_sink_that_hit_a_write_error_refuses_everything_until_reopened() {
    let org = org().await;
    add_files(&org.mock);
    let collector = org.collector(MemoryCheckpointStore::new());
    let file = collector.pending_files().await.unwrap().remove(0);
    let rows: Vec<LogRecord> = org
        .client
        .log_records(&file)
        .await
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
        .await;
    let mut sink = salesforce_jwt::sink::NdjsonSink::new(FailsOnce {
        fail: true,
        written: Vec::new(),
    });
    sink.begin(&Unit::LogFile(&file)).await.unwrap();
    let first = sink
        .write(Row::LogFile {
            file: &file,
            record: &rows[0],
        })
        .await
        .unwrap_err();
    assert!(matches!(first, Error::Io { .. }), "{first:?}");
    // The writer works again, but the sink cannot know what the output holds now.
    let again = sink
        .write(Row::LogFile {
            file: &file,
            record: &rows[1],
        })
        .await
        .unwrap_err();
    assert!(
        matches!(again, Error::Sink { .. }) && again.to_string().contains("reopened"),
        "{again}"
    );
    assert!(sink.commit(&Unit::LogFile(&file)).await.is_err());
    assert!(sink.rollback(&Unit::LogFile(&file)).await.is_err());
    assert!(sink.into_inner().written.is_empty());
}

/// An in-memory "database" with transactions, standing for a SIEM's store: rows become
/// visible only when a transaction commits, and every commit is numbered.
#[derive(Clone, Default)]
struct Database {
    rows: Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl Database {
    fn rows(&self) -> Vec<(String, String)> {
        self.rows.lock().unwrap().clone()
    }
}

/// The example implementation of the restart protocol documented on [`Sink`]: a sink
/// over a transactional store whose position is its committed row count.
struct TransactionalSink {
    db: Database,
    transaction: Vec<(String, String)>,
    /// Fails `write_row` once when this many rows have been written in all (a lost
    /// connection mid-file).
    fail_at_row: Option<usize>,
    written: usize,
}

impl TransactionalSink {
    /// Opens the sink at the checkpoint's position: committed rows past it belong to a file
    /// the checkpoint never recorded, and are deleted (it is delivered again).
    fn resume(db: Database, checkpoint: &Checkpoint) -> Self {
        if let Some(position) = checkpoint.sink_position {
            db.rows.lock().unwrap().truncate(position as usize);
        }
        TransactionalSink {
            db,
            transaction: Vec::new(),
            fail_at_row: None,
            written: 0,
        }
    }
}

impl Sink for TransactionalSink {
    async fn begin(&mut self, _unit: &Unit<'_>) -> Result<(), Error> {
        self.transaction.clear();
        Ok(())
    }
    async fn write(&mut self, row: Row<'_>) -> Result<(), Error> {
        let Row::LogFile { file, record: row } = row else {
            panic!("a log-file row")
        };
        self.written += 1;
        if self.fail_at_row == Some(self.written) {
            self.fail_at_row = None;
            return Err(Error::sink(
                "writing to the test database",
                "connection reset by peer",
                true,
            ));
        }
        self.transaction
            .push((file.id.clone(), serde_json::to_string(row).unwrap()));
        Ok(())
    }
    async fn commit(&mut self, _unit: &Unit<'_>) -> Result<Option<u64>, Error> {
        let mut rows = self.db.rows.lock().unwrap();
        rows.append(&mut self.transaction);
        Ok(Some(rows.len() as u64))
    }
    fn committed_position(&self) -> Option<u64> {
        Some(self.db.rows.lock().unwrap().len() as u64)
    }
    fn output(&self) -> Option<String> {
        Some("test-database/events".to_string())
    }
    async fn rollback(&mut self, _unit: &Unit<'_>) -> Result<(), Error> {
        self.transaction.clear();
        Ok(())
    }
}

#[tokio::test]
async fn a_transactional_custom_sink_is_exactly_once_across_a_failure_mid_file_and_a_restart() {
    let org = org().await;
    let ids = add_files(&org.mock);
    let db = Database::default();
    let store = FlakyStore::default();

    // First run: a connection lost mid-file (retried), then the process "dies" between a
    // commit and its checkpoint save.
    {
        let mut collector = org.collector(store.clone());
        let mut sink = TransactionalSink::resume(db.clone(), collector.checkpoint());
        sink.fail_at_row = Some(7);
        let failing = Arc::clone(&store.failing);
        let mut progress = |p: &Progress| {
            if p.files_done == 4 {
                failing.store(true, Ordering::SeqCst);
            }
        };
        let err = collector
            .run_pass(&mut sink, &mut progress, &AtomicBool::new(false))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::CheckpointStore { .. }), "{err:?}");
        assert_eq!(sink.fail_at_row, None, "the mid-file failure happened");
    }
    store.failing.store(false, Ordering::SeqCst);
    let committed = store.get_checkpoint().sink_position.unwrap() as usize;
    assert!(
        db.rows().len() > committed,
        "a commit the checkpoint never saw"
    );

    // Restart: the uncounted file is cut back and delivered again, once.
    let mut collector = org.collector(store.clone());
    let mut sink = TransactionalSink::resume(db.clone(), collector.checkpoint());
    pass(&mut collector, &mut sink).await.unwrap();
    common::assert_exactly_once(&org.mock, &ids, &db.rows());
    assert_eq!(
        store.get_checkpoint().output.as_deref(),
        Some("test-database/events")
    );
}

/// What [`DeferredCommits`] tells the test.
enum Deferred {
    /// A file's commit started; it resolves with what the test sends.
    Commit(
        String,
        tokio::sync::oneshot::Sender<Result<Option<u64>, Error>>,
    ),
    /// A row of a file was written.
    Row(String),
}

/// A sink whose commits run in the background until the test resolves them.
struct DeferredCommits {
    inner: common::Recorder,
    events: tokio::sync::mpsc::UnboundedSender<Deferred>,
}

impl Sink for DeferredCommits {
    async fn begin(&mut self, unit: &Unit<'_>) -> Result<(), Error> {
        let file = unit.log_file().expect("a log file");
        self.inner.begin(&Unit::LogFile(file)).await
    }
    async fn write(&mut self, row: Row<'_>) -> Result<(), Error> {
        let Row::LogFile { file, record: row } = row else {
            panic!("a log-file row")
        };
        self.inner.write(Row::LogFile { file, record: row }).await?;
        self.events.send(Deferred::Row(file.id.clone())).unwrap();
        Ok(())
    }
    async fn commit(&mut self, _unit: &Unit<'_>) -> Result<Option<u64>, Error> {
        unreachable!("the collector commits through start_commit")
    }
    async fn start_commit(&mut self, unit: &Unit<'_>) -> Result<PendingCommit, Error> {
        let file = unit.log_file().expect("a log file");
        self.inner.commit(&Unit::LogFile(file)).await?;
        let (resolve, resolved) = tokio::sync::oneshot::channel();
        self.events
            .send(Deferred::Commit(file.id.clone(), resolve))
            .unwrap();
        Ok(PendingCommit::running(async move {
            resolved
                .await
                .unwrap_or_else(|_| Err(Error::Internal("the test dropped a commit".into())))
        }))
    }
    async fn rollback(&mut self, unit: &Unit<'_>) -> Result<(), Error> {
        let file = unit.log_file().expect("a log file");
        self.inner.rollback(&Unit::LogFile(file)).await
    }
}

/// Runs a pass into [`DeferredCommits`], resolving each file's commit once the next file's
/// first row was written (the last file's at once), the commit of file number `fail` (from 0)
/// with an error. Checks at every step that the checkpoint records exactly the files whose
/// commits resolved. Returns the pass's outcome, the files recorded and how many commits ran
/// while the next file was written.
async fn run_with_deferred_commits(
    fail: Option<usize>,
) -> (Result<usize, Error>, u64, usize, Vec<String>) {
    let org = org().await;
    add_files(&org.mock);
    let mut order = org.mock.files();
    order.sort_by(|a, b| (a.created_date, &a.id).cmp(&(b.created_date, &b.id)));
    let last = order.last().unwrap().id.clone();
    let store = MemoryCheckpointStore::new();
    let mut collector = org.collector(store.clone());
    let (events, mut told) = tokio::sync::mpsc::unbounded_channel();
    let run = tokio::spawn(async move {
        let mut sink = DeferredCommits {
            inner: common::Recorder::default(),
            events,
        };
        pass(&mut collector, &mut sink).await.map(|s| s.files)
    });
    let recorded = || store.get().map_or(0, |c| c.files_delivered);
    let (mut resolved, mut overlapped, mut commits) = (0u64, 0, Vec::new());
    let mut running = None;
    let mut resolve = |id: String, gate: tokio::sync::oneshot::Sender<_>, resolved: &mut u64| {
        if fail == Some(commits.len()) {
            let _ = gate.send(Err(Error::Internal(format!("the disk lost {id}"))));
        } else {
            let _ = gate.send(Ok(None));
            *resolved += 1;
        }
        commits.push(id);
    };
    while let Some(event) = told.recv().await {
        match event {
            Deferred::Commit(id, gate) => {
                assert!(running.is_none(), "one commit runs at a time");
                assert_eq!(
                    recorded(),
                    resolved,
                    "recorded before {id}'s commit started"
                );
                if id == last {
                    resolve(id, gate, &mut resolved);
                } else {
                    running = Some((id, gate));
                }
            }
            Deferred::Row(id) => {
                if let Some((committing, gate)) = running.take() {
                    assert_ne!(id, committing);
                    assert_eq!(
                        recorded(),
                        resolved,
                        "{committing} recorded before it resolved"
                    );
                    overlapped += 1;
                    resolve(committing, gate, &mut resolved);
                }
            }
        }
    }
    let outcome = run.await.unwrap();
    assert_eq!(recorded(), resolved);
    (outcome, resolved, overlapped, commits)
}

#[tokio::test]
async fn a_commit_runs_while_the_next_file_is_written_and_is_recorded_once_it_resolved() {
    let (outcome, recorded, overlapped, commits) = run_with_deferred_commits(None).await;
    assert_eq!(outcome.unwrap(), commits.len());
    assert_eq!(recorded, commits.len() as u64);
    assert_eq!(overlapped, commits.len() - 1, "every commit but the last's");
}

#[tokio::test]
async fn a_commit_that_fails_in_the_background_ends_the_pass_unrecorded() {
    let (outcome, recorded, _, commits) = run_with_deferred_commits(Some(1)).await;
    let error = outcome.unwrap_err().to_string();
    assert!(
        error.contains(&format!("the disk lost {}", commits[1])),
        "{error}"
    );
    assert_eq!(recorded, 1, "only the file before");
    assert_eq!(commits.len(), 2, "no commit after the failed one");
}

#[tokio::test]
async fn delivery_figures_count_a_file_sent_again_once_and_follow_a_replacing_collector() {
    let org = org().await;
    add_files(&org.mock);
    org.mock.inject(Fault::TruncatedBody);
    let store = MemoryCheckpointStore::new();
    let figures = salesforce_jwt::collect::DeliveryFigures::new();
    let mut collector = org.collector(store.clone()).with_figures(figures.clone());
    let mut sink = common::Recorder::default();
    pass(&mut collector, &mut sink).await.unwrap();
    assert_eq!(sink.rollbacks, 1, "a file was rolled back and sent again");

    let files = org.mock.files();
    let elf = figures.get("EventLogFile").unwrap();
    assert_eq!(elf.rows, sink.committed.len() as u64);
    assert_eq!(
        elf.rows,
        files.iter().map(|f| f.row_count as u64).sum::<u64>()
    );
    assert_eq!(elf.bytes, files.iter().map(|f| f.length).sum::<u64>());
    let period_end = |f: &salesforce_jwt_mock::MockLogFileInfo| {
        f.log_date
            + match f.interval {
                Interval::Hourly => time::Duration::HOUR,
                _ => time::Duration::DAY,
            }
    };
    assert_eq!(elf.newest_event, files.iter().map(period_end).max());
    assert_eq!(figures.snapshot().len(), 1);

    // A collector that replaces this one (after a failure) goes on counting into the same
    // figures; with nothing new, they stay.
    drop(collector);
    let mut again = org.collector(store).with_figures(figures.clone());
    pass(&mut again, &mut sink).await.unwrap();
    assert_eq!(again.figures().get("EventLogFile"), Some(elf));
    org.mock.add_file(
        MockLogFile::builder("Login")
            .interval(Interval::Hourly)
            .log_date(datetime!(2025-06-10 07:00 UTC))
            .sequence(1)
            .created_date(datetime!(2025-06-10 11:00 UTC))
            .rows(7)
            .seed(999)
            .build(),
    );
    pass(&mut again, &mut sink).await.unwrap();
    assert_eq!(figures.get("EventLogFile").unwrap().rows, elf.rows + 7);
}

/// An `NdjsonFileSink` that samples the output's length after every call the collector makes
/// (each write, commit and rollback) and after every checkpoint save it is told of: every
/// length a shipper tailing the output could see between two steps.
struct SamplesLength {
    inner: NdjsonFileSink,
    out: std::path::PathBuf,
    lengths: Arc<std::sync::Mutex<Vec<u64>>>,
    rollbacks: usize,
}

fn sample_length(out: &std::path::Path, lengths: &std::sync::Mutex<Vec<u64>>) {
    let len = std::fs::metadata(out).unwrap().len();
    let mut lengths = lengths.lock().unwrap();
    if lengths.last() != Some(&len) {
        lengths.push(len);
    }
}

impl SamplesLength {
    fn sample(&self) {
        sample_length(&self.out, &self.lengths);
    }
}

impl Sink for SamplesLength {
    async fn begin(&mut self, unit: &Unit<'_>) -> Result<(), Error> {
        let begun = self.inner.begin(unit).await;
        self.sample();
        begun
    }
    async fn write(&mut self, row: Row<'_>) -> Result<(), Error> {
        let written = self.inner.write(row).await;
        self.sample();
        written
    }
    fn encoded_format(&self) -> Option<salesforce_jwt::format::OutputFormat> {
        self.inner.encoded_format()
    }
    async fn write_encoded(
        &mut self,
        file: &salesforce_jwt::event_log_file::EventLogFile,
        lines: &[u8],
    ) -> Result<(), Error> {
        let written = self.inner.write_encoded(file, lines).await;
        self.sample();
        written
    }
    async fn commit(&mut self, unit: &Unit<'_>) -> Result<Option<u64>, Error> {
        let committed = self.inner.commit(unit).await;
        self.sample();
        committed
    }
    async fn start_commit(
        &mut self,
        unit: &Unit<'_>,
    ) -> Result<salesforce_jwt::collect::PendingCommit, Error> {
        let started = self.inner.start_commit(unit).await;
        self.sample();
        started
    }
    fn committed_position(&self) -> Option<u64> {
        self.inner.committed_position()
    }
    fn output(&self) -> Option<String> {
        self.inner.output()
    }
    fn save_listener(&mut self) -> Option<salesforce_jwt::collect::SaveListener> {
        let inner = self.inner.save_listener()?;
        let settling = inner.clone();
        let (out, lengths) = (self.out.clone(), Arc::clone(&self.lengths));
        let (out2, lengths2) = (out.clone(), Arc::clone(&lengths));
        let listener = salesforce_jwt::collect::SaveListener::new(move |position| {
            sample_length(&out, &lengths);
            let saved = inner.saved(position);
            sample_length(&out, &lengths);
            saved
        });
        // The pass's end waits for the appends: forwarded too, or the pass would return before
        // its rows are in the output.
        Some(listener.with_settle(move || {
            let settled = settling.settle();
            sample_length(&out2, &lengths2);
            settled
        }))
    }
    async fn rollback(&mut self, unit: &Unit<'_>) -> Result<(), Error> {
        self.rollbacks += 1;
        let rolled_back = self.inner.rollback(unit).await;
        self.sample();
        rolled_back
    }
}

/// A shipper tailing the output reads it again from its start when it gets shorter (Filebeat
/// does): a download that fails in the middle of a large file, after MBs of its rows were
/// written, must leave the output as it was, and the file is delivered once after the retries.
#[tokio::test(flavor = "multi_thread")]
async fn a_download_failing_mid_file_never_makes_the_output_shorter() {
    let org = org().await;
    let day = datetime!(2025-06-09 00:00 UTC);
    let ids: Vec<String> = (0..3)
        .map(|i| {
            org.mock.add_file(
                MockLogFile::builder("API")
                    .interval(Interval::Daily)
                    .log_date(day + time::Duration::days(i))
                    .sequence(0)
                    .created_date(day + time::Duration::days(i) + time::Duration::hours(26))
                    .rows(8_000)
                    .seed(i as u64)
                    .build(),
            )
        })
        .collect();
    // The second file is cut off half-way, twice.
    let fired = org
        .mock
        .inject_times(on_file(&ids[1], Fault::TruncatedBody), 2);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let store = FileCheckpointStore::new(dir.path().join("state.json"));
    let mut collector = org.collector(store);
    let inner = NdjsonFileSink::open(&out, collector.checkpoint().sink_position).unwrap();
    let mut sink = SamplesLength {
        inner,
        out: out.clone(),
        lengths: Arc::default(),
        rollbacks: 0,
    };
    let summary = pass(&mut collector, &mut sink).await.unwrap();
    assert_eq!(summary.files, 3);
    assert_eq!(org.mock.times_fired(fired), 2, "both faults fired");
    assert_eq!(sink.rollbacks, 2, "rolled back after rows were written");
    let lengths = sink.lengths.lock().unwrap().clone();
    assert!(lengths.len() > 3, "{lengths:?}");
    if let Some(w) = lengths.windows(2).find(|w| w[1] < w[0]) {
        panic!(
            "the output got shorter, {} -> {} bytes: {lengths:?}",
            w[0], w[1]
        );
    }
    drop(sink);
    common::assert_exactly_once(&org.mock, &ids, &output_lines(&out));
    assert_eq!(
        collector.checkpoint().sink_position,
        Some(std::fs::metadata(&out).unwrap().len())
    );
}

/// A `common::Recorder` whose save listener's pass-end wait ends only when another task of the same
/// runtime tells it to, as a sink finishing its appends on a thread of its own does.
struct SettlesThroughATask {
    inner: common::Recorder,
    listener: salesforce_jwt::collect::SaveListener,
}

impl Sink for SettlesThroughATask {
    async fn begin(&mut self, unit: &Unit<'_>) -> Result<(), Error> {
        self.inner.begin(unit).await
    }
    async fn write(&mut self, row: Row<'_>) -> Result<(), Error> {
        self.inner.write(row).await
    }
    async fn commit(&mut self, unit: &Unit<'_>) -> Result<Option<u64>, Error> {
        self.inner.commit(unit).await
    }
    async fn rollback(&mut self, unit: &Unit<'_>) -> Result<(), Error> {
        self.inner.rollback(unit).await
    }
    fn save_listener(&mut self) -> Option<salesforce_jwt::collect::SaveListener> {
        Some(self.listener.clone())
    }
}

/// The pass's end waits for the sink's appends off the runtime's threads: on a one-thread
/// runtime (as `#[tokio::test]` runs), a wait held on that thread would keep every other task
/// from running (other orgs' downloads and timers, in sf-ingest), here the one ending it.
#[tokio::test]
async fn the_pass_end_wait_for_the_sink_leaves_the_runtime_free() {
    let org = org().await;
    let ids = add_files(&org.mock);
    let (waiting, waited) = tokio::sync::oneshot::channel::<()>();
    let (go, gone) = std::sync::mpsc::channel::<()>();
    let waiting = std::sync::Mutex::new(Some(waiting));
    let gone = std::sync::Mutex::new(gone);
    let listener = salesforce_jwt::collect::SaveListener::new(|_| Ok(())).with_settle(move || {
        if let Some(waiting) = waiting.lock().unwrap().take() {
            let _ = waiting.send(());
        }
        gone.lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| Error::Internal("the task that ends the wait never ran".into()))
    });
    tokio::spawn(async move {
        if waited.await.is_ok() {
            let _ = go.send(());
        }
    });
    let mut sink = SettlesThroughATask {
        inner: common::Recorder::default(),
        listener,
    };
    let mut collector = org.collector(MemoryCheckpointStore::new());
    pass(&mut collector, &mut sink).await.unwrap();
    common::assert_exactly_once(&org.mock, &ids, &sink.inner.committed);
}
