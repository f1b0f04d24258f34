//! `IntervalFilter::Auto` against a mock org publishing both hourly and daily EventLogFiles:
//! each event once, whichever copy of its day appears first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use salesforce_jwt::clock::ManualClock;
use salesforce_jwt::collect::{
    CheckpointStore, Collector, CollectorOptions, MemoryCheckpointStore, Progress, Row, Sink, Unit,
};
use salesforce_jwt::event_log_file::{EventLogFileQuery, IntervalFilter};
use salesforce_jwt::{Error, JwtBearerClient};
use salesforce_jwt_mock::{Interval, MockLogFile, MockOrg};
use time::OffsetDateTime;
use time::macros::datetime;

const HEADER: &str = "\"EVENT_TYPE\",\"TIMESTAMP_DERIVED\",\"REQUEST_ID\"\n";

struct Org {
    mock: MockOrg,
    clock: ManualClock,
    client: JwtBearerClient,
}

async fn org() -> Org {
    let clock = ManualClock::new(datetime!(2025-06-10 12:00 UTC));
    let mock = MockOrg::builder()
        .clock(Arc::new(clock.clone()))
        .start()
        .await;
    let client = JwtBearerClient::builder(mock.config_builder().build().unwrap())
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    Org {
        mock,
        clock,
        client,
    }
}

fn collector<S: CheckpointStore>(org: &Org, store: S, interval: IntervalFilter) -> Collector<S> {
    Collector::new(
        org.client.clone(),
        EventLogFileQuery::new().interval(interval),
        store,
        CollectorOptions {
            since: Duration::from_secs(3 * 24 * 3600),
            ..CollectorOptions::default()
        },
    )
    .unwrap()
}

/// Login events `(timestamp, request id)` as a CSV body.
fn csv(events: &[(&str, &str)]) -> String {
    let mut body = HEADER.to_string();
    for (at, id) in events {
        body.push_str(&format!("\"Login\",\"{at}\",\"{id}\"\n"));
    }
    body
}

fn login_file(
    interval: Interval,
    log_date: OffsetDateTime,
    created: OffsetDateTime,
    events: &[(&str, &str)],
) -> MockLogFile {
    MockLogFile::builder("Login")
        .interval(interval)
        .log_date(log_date)
        .sequence(if interval == Interval::Hourly { 1 } else { 0 })
        .created_date(created)
        .csv(csv(events))
        .build()
}

/// Keeps the REQUEST_ID of each delivered row.
#[derive(Default)]
struct Events {
    committed: Vec<String>,
    pending: Vec<String>,
}

impl Sink for Events {
    async fn begin(&mut self, _unit: &Unit<'_>) -> Result<(), Error> {
        Ok(())
    }
    async fn write(&mut self, row: Row<'_>) -> Result<(), Error> {
        let Row::LogFile {
            file: _file,
            record: row,
        } = row
        else {
            panic!("a log-file row")
        };
        let json = serde_json::to_value(row).unwrap();
        let id = json["REQUEST_ID"]
            .as_str()
            .expect("a REQUEST_ID")
            .to_string();
        self.pending.push(id);
        Ok(())
    }
    async fn commit(&mut self, _unit: &Unit<'_>) -> Result<Option<u64>, Error> {
        self.committed.append(&mut self.pending);
        Ok(None)
    }
    async fn rollback(&mut self, _unit: &Unit<'_>) -> Result<(), Error> {
        self.pending.clear();
        Ok(())
    }
}

async fn pass<S: CheckpointStore>(collector: &mut Collector<S>, sink: &mut Events) -> usize {
    collector
        .run_pass(sink, &mut |_: &Progress| {}, &AtomicBool::new(false))
        .await
        .unwrap()
        .files
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

fn strings(ids: &[&str]) -> Vec<String> {
    sorted(ids.iter().map(|s| s.to_string()).collect())
}

const D_EARLY: (&str, &str) = ("2025-06-09T02:10:00.000Z", "req-d-02");
const D_LATE: (&str, &str) = ("2025-06-09T14:20:00.000Z", "req-d-14");
const D1_EVENT: (&str, &str) = ("2025-06-08T09:00:00.000Z", "req-d1-09");

#[tokio::test]
async fn auto_delivers_each_event_once_from_hourly_files_where_published_else_daily() {
    let org = org().await;
    // Day D: published hourly and daily (the daily file holds the same events).
    org.mock.add_file(login_file(
        Interval::Hourly,
        datetime!(2025-06-09 02:00 UTC),
        datetime!(2025-06-09 06:00 UTC),
        &[D_EARLY],
    ));
    org.mock.add_file(login_file(
        Interval::Hourly,
        datetime!(2025-06-09 14:00 UTC),
        datetime!(2025-06-09 18:00 UTC),
        &[D_LATE],
    ));
    org.mock.add_file(login_file(
        Interval::Daily,
        datetime!(2025-06-09 00:00 UTC),
        datetime!(2025-06-10 02:00 UTC),
        &[D_EARLY, D_LATE],
    ));
    // Day D-1: only its daily file.
    org.mock.add_file(login_file(
        Interval::Daily,
        datetime!(2025-06-08 00:00 UTC),
        datetime!(2025-06-09 02:00 UTC),
        &[D1_EVENT],
    ));

    let mut auto = collector(&org, MemoryCheckpointStore::new(), IntervalFilter::Auto);
    let mut sink = Events::default();
    assert_eq!(pass(&mut auto, &mut sink).await, 3);
    assert_eq!(
        sorted(sink.committed.clone()),
        strings(&[D_EARLY.1, D_LATE.1, D1_EVENT.1]),
        "every event exactly once"
    );
    assert_eq!(pass(&mut auto, &mut sink).await, 0);

    // `all` still takes both copies: the events repeat.
    let mut all = collector(&org, MemoryCheckpointStore::new(), IntervalFilter::All);
    let mut every = Events::default();
    assert_eq!(pass(&mut all, &mut every).await, 4);
    assert_eq!(every.committed.len(), 5);
}

#[tokio::test]
async fn a_daily_file_appearing_after_its_hours_were_collected_is_skipped() {
    let org = org().await;
    org.mock.add_file(login_file(
        Interval::Hourly,
        datetime!(2025-06-10 02:00 UTC),
        datetime!(2025-06-10 06:00 UTC),
        &[("2025-06-10T02:10:00.000Z", "req-02")],
    ));
    let store = MemoryCheckpointStore::new();
    let mut auto = collector(&org, store.clone(), IntervalFilter::Auto);
    let mut sink = Events::default();
    assert_eq!(pass(&mut auto, &mut sink).await, 1);

    // The next day the daily file comes, and a last hourly file of the same day.
    org.clock.advance(Duration::from_secs(20 * 3600));
    org.mock.add_file(login_file(
        Interval::Hourly,
        datetime!(2025-06-10 20:00 UTC),
        datetime!(2025-06-11 01:00 UTC),
        &[("2025-06-10T20:10:00.000Z", "req-20")],
    ));
    org.mock.add_file(login_file(
        Interval::Daily,
        datetime!(2025-06-10 00:00 UTC),
        datetime!(2025-06-11 02:00 UTC),
        &[
            ("2025-06-10T02:10:00.000Z", "req-02"),
            ("2025-06-10T20:10:00.000Z", "req-20"),
        ],
    ));
    // A new collector: what decides is in the checkpoint.
    drop(auto);
    let mut auto = collector(&org, store.clone(), IntervalFilter::Auto);
    assert_eq!(pass(&mut auto, &mut sink).await, 1);
    assert_eq!(
        sorted(sink.committed.clone()),
        strings(&["req-02", "req-20"])
    );
    assert_eq!(pass(&mut auto, &mut sink).await, 0);
}

#[tokio::test]
async fn an_hourly_file_appearing_after_its_day_was_collected_daily_is_skipped() {
    let org = org().await;
    org.mock.add_file(login_file(
        Interval::Daily,
        datetime!(2025-06-09 00:00 UTC),
        datetime!(2025-06-10 02:00 UTC),
        &[D_EARLY, D_LATE],
    ));
    let store = MemoryCheckpointStore::new();
    let mut auto = collector(&org, store.clone(), IntervalFilter::Auto);
    let mut sink = Events::default();
    assert_eq!(pass(&mut auto, &mut sink).await, 1);

    org.clock.advance(Duration::from_secs(3600));
    org.mock.add_file(login_file(
        Interval::Hourly,
        datetime!(2025-06-09 14:00 UTC),
        datetime!(2025-06-10 12:30 UTC),
        &[D_LATE],
    ));
    drop(auto);
    let mut auto = collector(&org, store.clone(), IntervalFilter::Auto);
    assert_eq!(pass(&mut auto, &mut sink).await, 0);
    assert_eq!(
        sorted(sink.committed.clone()),
        strings(&[D_EARLY.1, D_LATE.1])
    );
}

#[tokio::test]
async fn a_checkpoint_written_with_another_interval_keeps_it_under_auto() {
    let org = org().await;
    org.mock.add_file(login_file(
        Interval::Daily,
        datetime!(2025-06-09 00:00 UTC),
        datetime!(2025-06-10 02:00 UTC),
        &[D_EARLY],
    ));
    let store = MemoryCheckpointStore::new();
    let mut daily = collector(&org, store.clone(), IntervalFilter::Daily);
    pass(&mut daily, &mut Events::default()).await;
    drop(daily);
    org.mock.add_file(login_file(
        Interval::Hourly,
        datetime!(2025-06-10 02:00 UTC),
        datetime!(2025-06-10 06:00 UTC),
        &[("2025-06-10T02:10:00.000Z", "req-02")],
    ));
    // Not refused, and still daily files only.
    let mut auto = collector(&org, store.clone(), IntervalFilter::Auto);
    assert_eq!(pass(&mut auto, &mut Events::default()).await, 0);
    let checkpoint = store.get().unwrap();
    assert_eq!(
        checkpoint.event_log_file(None).unwrap().interval,
        IntervalFilter::Daily
    );
}
