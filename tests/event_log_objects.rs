//! Exactly-once collection of Event Log Objects against the mock org: Timestamp windows of at
//! most 15 days ending at the org's clock, rows published 25-45 minutes late caught by the
//! overlap and deduplicated by Id, 30-day retention in `since`, kills mid-window, refused
//! queries, API version 61.0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use salesforce_jwt::clock::ManualClock;
use salesforce_jwt::collect::{
    Collector, CollectorOptions, EventLogObjectOptions, MemoryCheckpointStore,
    ObjectCollectorOptions, Row, Sink, SourceState, Unit,
};
use salesforce_jwt::objects::{EventObject, FieldSelection, ObjectRecord};
use salesforce_jwt::sink::NdjsonFileSink;
use salesforce_jwt::{Error, JwtBearerClient, RetryPolicy};
use salesforce_jwt_mock::{MockOrg, RequestKind, generate_records};
use serde_json::{Map, Value};
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

async fn org_at_version(version: &str) -> Org {
    let clock = ManualClock::new(now());
    let mock = MockOrg::builder()
        .clock(Arc::new(clock.clone()))
        .page_size(7)
        .start()
        .await;
    let config = mock
        .config_builder()
        .api_version(version)
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

async fn org() -> Org {
    org_at_version("64.0").await
}

fn object(name: &str) -> EventObject {
    EventObject::named(name).unwrap()
}

fn collector(
    client: JwtBearerClient,
    objects: Vec<EventObject>,
    store: MemoryCheckpointStore,
    options: ObjectCollectorOptions,
) -> Result<Collector<MemoryCheckpointStore>, Error> {
    Collector::with_sources(
        client,
        None,
        objects,
        store,
        CollectorOptions::default(),
        options,
    )
}

impl Org {
    fn add(
        &self,
        object: &str,
        after: OffsetDateTime,
        up_to: OffsetDateTime,
        count: usize,
        seed: u64,
    ) {
        self.mock
            .add_records(object, generate_records(object, after, up_to, count, seed))
            .unwrap();
    }

    /// Every query SOQL the org received on `object`.
    fn queries(&self, object: &str) -> Vec<String> {
        self.mock
            .requests()
            .into_iter()
            .filter(|r| r.kind == RequestKind::Query)
            .filter_map(|r| r.soql)
            .filter(|q| q.contains(&format!("FROM {object} ")))
            .collect()
    }

    async fn pass(
        &self,
        objects: &[&str],
        store: &MemoryCheckpointStore,
        options: &ObjectCollectorOptions,
        sink: &mut Recorder,
    ) -> salesforce_jwt::collect::PassSummary {
        collector(
            self.client.clone(),
            objects.iter().map(|o| object(o)).collect(),
            store.clone(),
            options.clone(),
        )
        .unwrap()
        .run_pass(sink, &mut |_| {}, &AtomicBool::new(false))
        .await
        .unwrap()
    }
}

/// A sink that keeps committed rows and forgets rolled-back ones.
#[derive(Default)]
struct Recorder {
    committed: Vec<(String, ObjectRecord)>,
    staged: Vec<(String, ObjectRecord)>,
    units: Vec<(OffsetDateTime, OffsetDateTime)>,
    /// Rows of each committed unit.
    unit_rows: Vec<usize>,
}

impl Sink for Recorder {
    async fn begin(&mut self, unit: &Unit<'_>) -> Result<(), Error> {
        let Unit::Batch(batch) = unit else {
            panic!("an object batch")
        };
        self.units.push((batch.after, batch.up_to));
        Ok(())
    }
    async fn write(&mut self, row: Row<'_>) -> Result<(), Error> {
        let Row::Object { object, record } = row else {
            panic!("an object row")
        };
        self.staged
            .push((object.name().to_string(), record.clone()));
        Ok(())
    }
    async fn commit(&mut self, _unit: &Unit<'_>) -> Result<Option<u64>, Error> {
        self.unit_rows.push(self.staged.len());
        self.committed.append(&mut self.staged);
        Ok(None)
    }
    async fn rollback(&mut self, _unit: &Unit<'_>) -> Result<(), Error> {
        self.staged.clear();
        Ok(())
    }
}

impl Recorder {
    fn ids(&self, object: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .committed
            .iter()
            .filter(|(o, _)| o == object)
            .map(|(_, r)| r.id().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    }
}

/// The Ids of the stored rows of `object` with `Timestamp` in `(after, up_to]`.
fn stored_ids(
    mock: &MockOrg,
    object: &str,
    after: OffsetDateTime,
    up_to: OffsetDateTime,
) -> Vec<String> {
    let mut ids: Vec<String> = mock
        .records(object)
        .iter()
        .filter(|r| {
            let t = salesforce_jwt::datetime::parse(r["Timestamp"].as_str().unwrap()).unwrap();
            after < t && t <= up_to
        })
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// The `(after, up_to]` window of a query the collector sent, checked to be the one shape the
/// platform accepts.
fn window_of(soql: &str) -> (OffsetDateTime, OffsetDateTime) {
    assert_eq!(
        soql.matches("Timestamp ").count(),
        3,
        "two filters and the order: {soql}"
    );
    for refused in ["!=", " OFFSET ", " HAVING ", " OR "] {
        assert!(!soql.contains(refused), "{soql}");
    }
    assert!(soql.ends_with("ORDER BY Timestamp ASC, Id ASC"), "{soql}");
    let after = soql
        .split("Timestamp > ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let up_to = soql
        .split("Timestamp <= ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let parse =
        |s: &str| OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap();
    let (a, b) = (parse(after), parse(up_to));
    assert!(a < b && b - a <= time::Duration::days(15), "{soql}");
    (a, b)
}

#[tokio::test]
async fn rows_published_late_are_collected_once_by_the_overlap() {
    let org = org().await;
    // Three hours of logins: the last 25-45 minutes are not published yet at `now`.
    org.add(
        "LoginEventLog",
        now() - time::Duration::hours(3),
        now(),
        300,
        1,
    );
    org.add(
        "ApiTotalUsageEventLog",
        now() - time::Duration::hours(3),
        now(),
        120,
        2,
    );
    let store = MemoryCheckpointStore::new();
    let options = ObjectCollectorOptions {
        since: Duration::from_secs(4 * 3600),
        ..ObjectCollectorOptions::default()
    };
    let objects = ["LoginEventLog", "ApiTotalUsageEventLog"];
    let mut sink = Recorder::default();
    let first = org.pass(&objects, &store, &options, &mut sink).await;
    let published_first = sink.ids("LoginEventLog").len();
    assert!(
        published_first < 300,
        "rows of the last 25-45 minutes are not published yet: {published_first}"
    );
    assert_eq!(first.objects.len(), 2);
    // Twenty minutes later, then an hour later: every late row is caught by the 60-minute
    // overlap, and none twice.
    for minutes in [20, 60] {
        org.clock.set(now() + time::Duration::minutes(minutes));
        let summary = org.pass(&objects, &store, &options, &mut sink).await;
        // The overlap was read again and what it had delivered was dropped by Id.
        assert!(summary.objects[0].duplicates_dropped > 0, "{summary:?}");
    }
    for object in objects {
        assert_eq!(
            sink.ids(object),
            stored_ids(&org.mock, object, now() - time::Duration::hours(4), now()),
            "{object}: every row once"
        );
        for soql in org.queries(object) {
            let (_, up_to) = window_of(&soql);
            assert!(up_to <= now() + time::Duration::minutes(60), "{soql}");
        }
    }
    let Some(SourceState::EventLogObject(state)) = store
        .get()
        .and_then(|c| c.sources.get("LoginEventLog").cloned())
    else {
        panic!("an Event Log Object position")
    };
    assert_eq!(state.watermark, Some(now() + time::Duration::minutes(60)));
    // Only the overlap's Ids are kept.
    assert!(
        state.delivered_in_overlap.len() < 300,
        "{}",
        state.delivered_in_overlap.len()
    );
    // The rows are the object's own fields under their API names.
    let (_, row) = sink
        .committed
        .iter()
        .find(|(o, _)| o == "LoginEventLog")
        .unwrap();
    assert!(row.get_str("UserIdentifier").is_some() && row.get_datetime("Timestamp").is_some());
}

#[tokio::test]
async fn since_reads_at_most_the_30_days_kept_in_windows_of_at_most_15_days() {
    let org = org().await;
    for (days, seed) in [(29, 1), (20, 2), (9, 3), (1, 4)] {
        let at = now() - time::Duration::days(days);
        org.add("LoginEventLog", at - time::Duration::hours(1), at, 5, seed);
    }
    let store = MemoryCheckpointStore::new();
    let options = ObjectCollectorOptions {
        since: Duration::from_secs(40 * 24 * 3600),
        event_log_objects: EventLogObjectOptions {
            window: Duration::from_secs(15 * 24 * 3600),
            ..EventLogObjectOptions::default()
        },
        ..ObjectCollectorOptions::default()
    };
    let mut sink = Recorder::default();
    org.pass(&["LoginEventLog"], &store, &options, &mut sink)
        .await;
    assert_eq!(sink.ids("LoginEventLog").len(), 20);
    let windows: Vec<_> = org
        .queries("LoginEventLog")
        .iter()
        .map(|q| window_of(q))
        .collect();
    assert_eq!(
        windows.len(),
        2,
        "30 days in two 15-day windows: {windows:?}"
    );
    assert_eq!(
        windows[0].0,
        now() - time::Duration::days(30),
        "not the 40 days asked"
    );
    assert_eq!(windows[1].1, now());
    assert_eq!(windows[0].1, windows[1].0, "contiguous");
}

/// Delivers `rows_left` rows, then dies: a process killed mid-window.
struct DiesMidWindow {
    inner: NdjsonFileSink,
    rows_left: usize,
}

impl Sink for DiesMidWindow {
    fn committed_position(&self) -> Option<u64> {
        self.inner.committed_position()
    }
    fn output(&self) -> Option<String> {
        self.inner.output()
    }
    async fn begin(&mut self, unit: &Unit<'_>) -> Result<(), Error> {
        self.inner.begin(unit).await
    }
    async fn write(&mut self, row: Row<'_>) -> Result<(), Error> {
        if self.rows_left == 0 {
            panic!("killed");
        }
        self.rows_left -= 1;
        self.inner.write(row).await
    }
    async fn commit(&mut self, unit: &Unit<'_>) -> Result<Option<u64>, Error> {
        self.inner.commit(unit).await
    }
    async fn rollback(&mut self, unit: &Unit<'_>) -> Result<(), Error> {
        self.inner.rollback(unit).await
    }
}

#[tokio::test]
async fn a_process_killed_mid_window_resumes_with_every_row_exactly_once() {
    let org = org().await;
    org.add(
        "LoginEventLog",
        now() - time::Duration::hours(6),
        now() - time::Duration::hours(1),
        90,
        9,
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("elo.ndjson");
    let store = MemoryCheckpointStore::new();
    let options = ObjectCollectorOptions {
        since: Duration::from_secs(7 * 3600),
        ..ObjectCollectorOptions::default()
    };
    for rows_left in [10, 40] {
        let (client, st, o, options) = (
            org.client.clone(),
            store.clone(),
            out.clone(),
            options.clone(),
        );
        let killed = tokio::spawn(async move {
            let inner = NdjsonFileSink::resume(&o, &st.get().unwrap_or_default()).unwrap();
            let mut sink = DiesMidWindow { inner, rows_left };
            let mut collector =
                collector(client, vec![object("LoginEventLog")], st, options).unwrap();
            let _ = collector
                .run_pass(&mut sink, &mut |_| {}, &AtomicBool::new(false))
                .await;
        })
        .await;
        assert!(killed.unwrap_err().is_panic());
    }
    let position = store.get().and_then(|c| c.sink_position);
    let mut sink = NdjsonFileSink::open(&out, position).unwrap();
    collector(
        org.client.clone(),
        vec![object("LoginEventLog")],
        store,
        options,
    )
    .unwrap()
    .run_pass(&mut sink, &mut |_| {}, &AtomicBool::new(false))
    .await
    .unwrap();
    drop(sink);
    let mut ids = Vec::new();
    for line in std::fs::read_to_string(&out).unwrap().lines() {
        let row: Map<String, Value> = serde_json::from_str(line).unwrap();
        assert_eq!(row["SObjectType"], "LoginEventLog");
        ids.push(row["Id"].as_str().unwrap().to_string());
    }
    ids.sort();
    assert_eq!(
        ids,
        stored_ids(
            &org.mock,
            "LoginEventLog",
            now() - time::Duration::days(1),
            now()
        )
    );
}

#[tokio::test]
async fn a_refused_query_is_not_retried_and_names_the_query() {
    let org = org().await;
    org.add(
        "LoginEventLog",
        now() - time::Duration::hours(3),
        now() - time::Duration::hours(2),
        5,
        3,
    );
    let mut fields = BTreeMap::new();
    fields.insert(
        "LoginEventLog".to_string(),
        FieldSelection::Fields(vec!["NoSuchField".into()]),
    );
    let options = ObjectCollectorOptions {
        fields,
        ..ObjectCollectorOptions::default()
    };
    let error = collector(
        org.client.clone(),
        vec![object("LoginEventLog")],
        MemoryCheckpointStore::new(),
        options,
    )
    .unwrap()
    .run_pass(
        &mut Recorder::default(),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .await
    .unwrap_err();
    assert!(!error.is_retryable(), "{error}");
    assert!(error.is_query_shape_refused(), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("SELECT NoSuchField, Id, Timestamp FROM LoginEventLog WHERE Timestamp >"),
        "{text}"
    );
    assert!(text.contains("not retried"), "{text}");
    assert_eq!(org.queries("LoginEventLog").len(), 1, "sent once");
}

#[tokio::test]
async fn api_versions_below_61_are_refused_with_what_to_do() {
    let org = org_at_version("60.0").await;
    let error = collector(
        org.client.clone(),
        vec![object("LoginEventLog")],
        MemoryCheckpointStore::new(),
        ObjectCollectorOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("61.0") && error.contains("SF_API_VERSION"),
        "{error}"
    );
    // Other objects do not need it.
    assert!(
        collector(
            org.client.clone(),
            vec![object("LoginEvent")],
            MemoryCheckpointStore::new(),
            ObjectCollectorOptions::default(),
        )
        .is_ok()
    );
}

#[tokio::test]
async fn a_window_wider_than_15_days_is_refused_before_any_request() {
    let org = org().await;
    let options = ObjectCollectorOptions {
        event_log_objects: EventLogObjectOptions {
            window: Duration::from_secs(16 * 24 * 3600),
            ..EventLogObjectOptions::default()
        },
        ..ObjectCollectorOptions::default()
    };
    let error = collector(
        org.client.clone(),
        vec![object("LoginEventLog")],
        MemoryCheckpointStore::new(),
        options,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("event_log_objects.window"), "{error}");
}

#[tokio::test]
async fn a_window_with_more_rows_than_max_rows_per_window_is_halved_before_writing() {
    let org = org().await;
    org.add(
        "LoginEventLog",
        now() - time::Duration::hours(3),
        now() - time::Duration::hours(2),
        100,
        6,
    );
    let store = MemoryCheckpointStore::new();
    let options = ObjectCollectorOptions {
        since: Duration::from_secs(4 * 3600),
        max_rows_per_window: 30,
        ..ObjectCollectorOptions::default()
    };
    let mut sink = Recorder::default();
    let summary = org
        .pass(&["LoginEventLog"], &store, &options, &mut sink)
        .await;
    assert!(summary.objects[0].splits >= 2, "{summary:?}");
    assert!(
        sink.unit_rows.iter().all(|n| *n <= 30),
        "{:?}",
        sink.unit_rows
    );
    assert_eq!(
        sink.ids("LoginEventLog"),
        stored_ids(
            &org.mock,
            "LoginEventLog",
            now() - time::Duration::days(1),
            now()
        )
    );
    // The windows committed are contiguous and end where the pass did.
    let mut units = sink.units.clone();
    units.sort();
    for pair in units.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "{units:?}");
    }
}
