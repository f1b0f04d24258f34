//! Exactly-once collection of real-time objects against the mock org: every object, late rows,
//! faults mid-window, window splitting, refused shapes, interrupted runs, quiet sources.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use salesforce_jwt::clock::ManualClock;
use salesforce_jwt::collect::{
    MemoryCheckpointStore, ObjectCollectorOptions, Row, Sink, SourceState, Unit,
};
use salesforce_jwt::objects::{EventObject, FieldSelection, ObjectKind, ObjectRecord};
use salesforce_jwt::sink::NdjsonFileSink;
use salesforce_jwt::{Error, JwtBearerClient, RetryPolicy};
use salesforce_jwt_mock::{Fault, FaultTarget, MockOrg, generate_records};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

fn now() -> OffsetDateTime {
    datetime!(2025-06-10 12:00 UTC)
}

struct Org {
    mock: Arc<MockOrg>,
    clock: ManualClock,
    client: JwtBearerClient,
}

async fn org_with(builder: salesforce_jwt_mock::MockOrgBuilder) -> Org {
    let clock = ManualClock::new(now());
    let mock = builder.clock(Arc::new(clock.clone())).start().await;
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
        mock: Arc::new(mock),
        clock,
        client,
    }
}

async fn org() -> Org {
    org_with(MockOrg::builder()).await
}

impl Org {
    fn collector(
        &self,
        objects: Vec<EventObject>,
        store: MemoryCheckpointStore,
        options: ObjectCollectorOptions,
    ) -> salesforce_jwt::collect::Collector<MemoryCheckpointStore> {
        common::object_collector(self.client.clone(), objects, store, options).unwrap()
    }

    /// Adds `count` generated rows of `object` with times in `(after, up_to]`.
    fn add(
        &self,
        object: &str,
        after: OffsetDateTime,
        up_to: OffsetDateTime,
        count: usize,
        seed: u64,
    ) -> Vec<Map<String, Value>> {
        self.mock
            .add_records(object, generate_records(object, after, up_to, count, seed))
            .unwrap()
    }
}

/// The saved position of `object` in the store's checkpoint.
fn saved_state(store: &MemoryCheckpointStore, object: &str) -> Option<SourceState> {
    store.get().and_then(|c| c.sources.get(object).cloned())
}

fn options() -> ObjectCollectorOptions {
    ObjectCollectorOptions::default()
}

fn object(name: &str) -> EventObject {
    EventObject::named(name).unwrap()
}

/// The key a row is told apart by: EventIdentifier on big objects, Id on standard ones.
fn key_of(object: &str, row: &Map<String, Value>) -> String {
    let field = match EventObject::named(object).map(|o| o.kind()) {
        Some(ObjectKind::Standard) => "Id",
        _ => "EventIdentifier",
    };
    row[field].as_str().unwrap().to_string()
}

type Hook = Box<dyn FnMut(usize) + Send>;

/// A sink that keeps committed rows in memory and forgets rolled-back ones; an optional hook
/// runs before each write with the number of rows written so far (to inject faults mid-window).
#[derive(Default)]
struct Recorder {
    committed: Vec<(String, ObjectRecord)>,
    staged: Vec<(String, ObjectRecord)>,
    writes: usize,
    rollbacks: usize,
    hook: Option<Hook>,
}

impl Sink for Recorder {
    async fn begin(&mut self, _unit: &Unit<'_>) -> Result<(), Error> {
        assert!(self.staged.is_empty(), "begin inside an open batch");
        Ok(())
    }
    async fn write(&mut self, row: Row<'_>) -> Result<(), Error> {
        let Row::Object { object, record } = row else {
            panic!("an object row")
        };
        if let Some(hook) = &mut self.hook {
            hook(self.writes);
        }
        self.writes += 1;
        self.staged
            .push((object.name().to_string(), record.clone()));
        Ok(())
    }
    async fn commit(&mut self, _unit: &Unit<'_>) -> Result<Option<u64>, Error> {
        self.committed.append(&mut self.staged);
        Ok(None)
    }
    async fn rollback(&mut self, _unit: &Unit<'_>) -> Result<(), Error> {
        self.rollbacks += 1;
        self.staged.clear();
        Ok(())
    }
}

impl Recorder {
    fn keys(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (object, record) in &self.committed {
            out.entry(object.clone())
                .or_default()
                .push(key_of(object, record.fields()));
        }
        out
    }
}

/// Every stored row of each object delivered once, nothing else.
fn assert_exactly_once(
    mock: &MockOrg,
    objects: &[&str],
    delivered: &BTreeMap<String, Vec<String>>,
) {
    for object in objects {
        let mut expected: Vec<String> = mock
            .records(object)
            .iter()
            .map(|r| key_of(object, r))
            .collect();
        expected.sort();
        let mut got = delivered.get(*object).cloned().unwrap_or_default();
        got.sort();
        assert_eq!(got.len(), expected.len(), "{object}: rows delivered");
        assert_eq!(got, expected, "{object}: every row once");
    }
}

const ALL: &[&str] = &[
    "LoginEvent",
    "LogoutEvent",
    "LoginAsEvent",
    "ApiEvent",
    "ReportEvent",
    "UriEvent",
    "LightningUriEvent",
    "ListViewEvent",
    "BulkApiResultEventStore",
    "FileEventStore",
    "PermissionSetEventStore",
    "IdentityProviderEventStore",
    "IdentityVerificationEvent",
    "ApiAnomalyEventStore",
    "CredentialStuffingEventStore",
    "ReportAnomalyEventStore",
    "SessionHijackingEventStore",
    "SetupAuditTrail",
];

#[tokio::test]
async fn every_row_of_every_object_is_collected_once_and_a_second_run_collects_nothing() {
    let org = org_with(MockOrg::builder().page_size(7)).await;
    for (i, name) in ALL.iter().enumerate() {
        // Written at least a minute ago: all queryable now.
        org.add(
            name,
            now() - time::Duration::hours(20),
            now() - time::Duration::minutes(1),
            25 + i,
            i as u64,
        );
    }
    let store = MemoryCheckpointStore::new();
    let options = ObjectCollectorOptions {
        window: Duration::from_secs(6 * 3600),
        batch_size: 10,
        ..options()
    };
    let mut collector = org.collector(EventObject::catalogue(), store.clone(), options.clone());
    let mut sink = Recorder::default();
    let summary = collector
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap();
    assert_exactly_once(&org.mock, ALL, &sink.keys());
    assert_eq!(summary.objects.len(), ALL.len());
    assert!(
        org.mock.received().query_more > 0,
        "windows of more than a page follow nextRecordsUrl"
    );

    org.clock.advance(Duration::from_secs(600));
    let mut collector = org.collector(EventObject::catalogue(), store.clone(), options);
    let mut again = Recorder::default();
    let summary = collector
        .run_pass(
            &mut again,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap();
    assert_eq!(summary.rows, 0, "{summary:?}");
    assert!(again.committed.is_empty());
    // The state only remembers identifiers inside the overlap: none after ten quiet minutes.
    match saved_state(&store, "LoginEvent") {
        Some(SourceState::BigObject(state)) => {
            assert!(state.delivered_in_overlap.is_empty(), "{state:?}");
            assert_eq!(state.watermark, Some(now() + time::Duration::minutes(10)));
        }
        other => panic!("unexpected state {other:?}"),
    }
}

#[tokio::test]
async fn rows_that_become_queryable_late_inside_the_overlap_are_delivered_once() {
    let org = org().await;
    let login = "LoginEvent";
    org.add(
        login,
        now() - time::Duration::hours(2),
        now() - time::Duration::seconds(30),
        40,
        1,
    );
    org.mock
        .set_queryable_lag("SetupAuditTrail", Duration::from_secs(90))
        .unwrap();
    // Written in the last 90 s: not readable yet at the first pass.
    org.add(
        "SetupAuditTrail",
        now() - time::Duration::hours(2),
        now(),
        30,
        2,
    );
    org.add(
        "SetupAuditTrail",
        now() - time::Duration::seconds(60),
        now(),
        3,
        20,
    );
    let unreadable_at_first = org
        .mock
        .records("SetupAuditTrail")
        .iter()
        .filter(|r| r["CreatedDate"].as_str().unwrap() > "2025-06-10T11:58:30.000+0000")
        .count();
    assert!(unreadable_at_first >= 3);
    let objects = vec![object(login), object("SetupAuditTrail")];
    let store = MemoryCheckpointStore::new();
    let mut sink = Recorder::default();
    org.collector(objects.clone(), store.clone(), options())
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap();

    // A login three minutes old becomes queryable only now, after the first pass read its time.
    org.clock.advance(Duration::from_secs(120));
    let t = now() + time::Duration::seconds(120);
    let mut late = generate_records(
        login,
        t - time::Duration::minutes(4),
        t - time::Duration::minutes(3),
        1,
        9,
    );
    late[0].insert("CreatedDate".into(), json!("2025-06-10T12:01:59.000+0000"));
    org.mock.add_records(login, late).unwrap();
    // And one fresh login.
    org.add(
        login,
        t - time::Duration::seconds(40),
        t - time::Duration::seconds(20),
        1,
        10,
    );
    let summary = org
        .collector(objects.clone(), store.clone(), options())
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap();
    assert!(
        summary.objects[0].duplicates_dropped > 0,
        "the overlap was read again and its rows dropped: {summary:?}"
    );
    assert_eq!(
        summary.objects[0].rows, 2,
        "the late login and the fresh one"
    );
    assert_eq!(summary.objects[1].rows, unreadable_at_first as u64);
    assert_exactly_once(&org.mock, &[login, "SetupAuditTrail"], &sink.keys());

    org.clock.advance(Duration::from_secs(60));
    let summary = org
        .collector(objects, store, options())
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap();
    assert_eq!(summary.rows, 0);
    assert_exactly_once(&org.mock, &[login, "SetupAuditTrail"], &sink.keys());
}

#[tokio::test]
async fn a_page_failing_mid_window_with_503_then_401_leaves_no_gap_and_no_repeat() {
    let org = org_with(MockOrg::builder().page_size(10)).await;
    org.add(
        "LoginEvent",
        now() - time::Duration::minutes(50),
        now() - time::Duration::minutes(1),
        45,
        3,
    );
    let mock = Arc::clone(&org.mock);
    let mut sink = Recorder {
        hook: Some(Box::new(move |written| {
            // After the first page's rows: the next page answers 503, and its retry meets a
            // revoked session.
            if written == 5 {
                mock.inject(Fault::ServiceUnavailable {
                    target: FaultTarget::Query,
                    retry_after_secs: None,
                });
                mock.inject(Fault::RevokeSessions);
            }
        })),
        ..Recorder::default()
    };
    let summary = org
        .collector(
            vec![object("LoginEvent")],
            MemoryCheckpointStore::new(),
            options(),
        )
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap();
    assert_eq!(org.mock.pending_faults(), 0);
    assert_eq!(org.mock.received().faults_fired, 2);
    assert!(org.mock.received().unauthorized >= 1);
    assert_eq!(summary.rows, 45);
    assert_exactly_once(&org.mock, &["LoginEvent"], &sink.keys());
}

#[tokio::test]
async fn the_request_limit_stops_the_run_and_a_later_run_completes_exactly_once() {
    let org = org_with(MockOrg::builder().page_size(10)).await;
    org.add(
        "LoginEvent",
        now() - time::Duration::minutes(50),
        now() - time::Duration::minutes(1),
        30,
        4,
    );
    let mock = Arc::clone(&org.mock);
    let store = MemoryCheckpointStore::new();
    let mut sink = Recorder {
        hook: Some(Box::new(move |written| {
            if written == 3 {
                mock.inject(Fault::RequestLimitExceeded {
                    target: FaultTarget::Query,
                });
            }
        })),
        ..Recorder::default()
    };
    let objects = vec![object("LoginEvent")];
    let error = org
        .collector(objects.clone(), store.clone(), options())
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::RequestLimitExceeded { .. }),
        "{error}"
    );
    assert_eq!(sink.rollbacks, 1);
    assert!(sink.committed.is_empty());
    sink.hook = None;
    org.collector(objects, store, options())
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap();
    assert_exactly_once(&org.mock, &["LoginEvent"], &sink.keys());
}

/// A few explicit fields (the collector adds EventDate and EventIdentifier): 50,000 rows of
/// FIELDS(STANDARD) through a debug build are slow and prove nothing more.
fn lean_fields() -> BTreeMap<String, FieldSelection> {
    BTreeMap::from([(
        "LoginEvent".to_string(),
        FieldSelection::Fields(vec!["UserId".into(), "CreatedDate".into()]),
    )])
}

async fn lean_logins(org: &Org, count: usize) {
    // Lean rows: the window is what matters, not the fields.
    let rows = generate_records(
        "LoginEvent",
        now() - time::Duration::hours(20),
        now() - time::Duration::minutes(1),
        count,
        5,
    )
    .into_iter()
    .map(|r| {
        [
            "Id",
            "EventDate",
            "EventIdentifier",
            "CreatedDate",
            "UserId",
        ]
        .iter()
        .map(|f| (f.to_string(), r[*f].clone()))
        .collect()
    });
    org.mock.add_records("LoginEvent", rows).unwrap();
}

#[tokio::test]
async fn a_window_with_50000_logins_completes_by_splitting_on_query_timeout() {
    let org = org_with(MockOrg::builder().big_object_query_timeout_rows(Some(12_000))).await;
    lean_logins(&org, 50_000).await;
    let options = ObjectCollectorOptions {
        since: Duration::from_secs(24 * 3600),
        window: Duration::from_secs(48 * 3600),
        // Only the platform's QUERY_TIMEOUT can make it split.
        max_rows_per_window: u64::MAX,
        fields: lean_fields(),
        ..options()
    };
    let mut sink = Recorder::default();
    let summary = org
        .collector(
            vec![object("LoginEvent")],
            MemoryCheckpointStore::new(),
            options,
        )
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap();
    assert!(summary.objects[0].splits >= 3, "{summary:?}");
    assert_eq!(summary.rows, 50_000);
    assert_eq!(
        sink.rollbacks, 0,
        "splits happen before anything is written"
    );
    assert_exactly_once(&org.mock, &["LoginEvent"], &sink.keys());
}

#[tokio::test]
async fn a_window_over_the_row_bound_is_split_before_anything_is_written() {
    let org = org().await;
    lean_logins(&org, 12_000).await;
    let options = ObjectCollectorOptions {
        window: Duration::from_secs(48 * 3600),
        max_rows_per_window: 2_500,
        fields: lean_fields(),
        ..options()
    };
    let mut sink = Recorder::default();
    let summary = org
        .collector(
            vec![object("LoginEvent")],
            MemoryCheckpointStore::new(),
            options,
        )
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap();
    assert!(summary.objects[0].splits >= 3, "{summary:?}");
    assert_eq!(sink.rollbacks, 0);
    assert_exactly_once(&org.mock, &["LoginEvent"], &sink.keys());
}

#[tokio::test]
async fn a_query_shape_the_platform_refuses_is_an_error_not_a_retry_loop() {
    let org = org().await;
    org.add(
        "LoginEvent",
        now() - time::Duration::hours(1),
        now() - time::Duration::minutes(1),
        5,
        6,
    );
    // LoginEvent declared as a standard object: the keyset query orders by CreatedDate ASC.
    let wrong = EventObject::custom("LoginEvent", ObjectKind::Standard).unwrap();
    let error = org
        .collector(vec![wrong], MemoryCheckpointStore::new(), options())
        .run_pass(
            &mut Recorder::default(),
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap_err();
    assert!(error.is_query_shape_refused(), "{error:?}");
    assert!(!error.is_retryable());
    let text = error.to_string();
    assert!(text.contains("LoginEvent"), "{text}");
    assert!(text.contains("ORDER BY CreatedDate ASC"), "{text}");
    assert!(text.contains("BIG_OBJECT_UNSUPPORTED_OPERATION"), "{text}");
    assert!(text.contains("ObjectKind::BigObject"), "{text}");
    assert_eq!(org.mock.received().queries, 1, "sent once, never retried");
}

/// A sink that dies mid-batch the way a killed process does: no rollback; buffered rows reach
/// the file when dropped.
struct DiesMidBatch {
    inner: NdjsonFileSink,
    rows_left: usize,
}

impl Sink for DiesMidBatch {
    async fn begin(&mut self, unit: &Unit<'_>) -> Result<(), Error> {
        self.inner.begin(unit).await
    }
    async fn write(&mut self, row: Row<'_>) -> Result<(), Error> {
        let Row::Object { object, record } = row else {
            panic!("an object row")
        };
        if self.rows_left == 0 {
            panic!("killed");
        }
        self.rows_left -= 1;
        self.inner.write(Row::Object { object, record }).await
    }
    async fn commit(&mut self, unit: &Unit<'_>) -> Result<Option<u64>, Error> {
        self.inner.commit(unit).await
    }
    async fn rollback(&mut self, unit: &Unit<'_>) -> Result<(), Error> {
        self.inner.rollback(unit).await
    }
    // A wrapper of an exactly-once sink passes its positions on: without them the restart
    // cannot cut the output back, and the protocol is at-least-once.
    fn committed_position(&self) -> Option<u64> {
        self.inner.committed_position()
    }
    fn output(&self) -> Option<String> {
        self.inner.output()
    }
}

fn output_keys(path: &std::path::Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let Ok(row) = serde_json::from_str::<Map<String, Value>>(line) else {
            continue; // a torn last line
        };
        let object = row["SObjectType"].as_str().unwrap().to_string();
        out.entry(object.clone())
            .or_default()
            .push(key_of(&object, &row));
    }
    out
}

#[tokio::test]
async fn interrupted_runs_resume_with_every_row_exactly_once() {
    let org = org().await;
    org.add(
        "LoginEvent",
        now() - time::Duration::hours(5),
        now() - time::Duration::minutes(1),
        60,
        7,
    );
    org.add(
        "SetupAuditTrail",
        now() - time::Duration::hours(5),
        now() - time::Duration::minutes(1),
        60,
        8,
    );
    let objects = vec![object("LoginEvent"), object("SetupAuditTrail")];
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("realtime.ndjson");
    let store = MemoryCheckpointStore::new();
    let options = ObjectCollectorOptions {
        batch_size: 25,
        ..options()
    };
    // Killed twice: inside a LoginEvent window, then inside a SetupAuditTrail batch.
    for rows_left in [20, 80] {
        let (client, store, out, options, objects) = (
            org.client.clone(),
            store.clone(),
            out.clone(),
            options.clone(),
            objects.clone(),
        );
        let killed = tokio::spawn(async move {
            let position = store.get().and_then(|c| c.sink_position);
            let inner = NdjsonFileSink::open(&out, position).unwrap();
            let mut sink = DiesMidBatch { inner, rows_left };
            let mut collector = common::object_collector(client, objects, store, options).unwrap();
            let _ = collector
                .run_pass(
                    &mut sink,
                    &mut |_| {},
                    &std::sync::atomic::AtomicBool::new(false),
                )
                .await;
        })
        .await;
        assert!(killed.unwrap_err().is_panic());
    }
    let before = std::fs::read(&out).unwrap();
    let position = store.get().and_then(|c| c.sink_position);
    assert_eq!(
        Some(before.len() as u64),
        position,
        "only committed rows reached the output"
    );
    let mut sink = NdjsonFileSink::open(&out, position).unwrap();
    assert!(
        std::fs::read(&out).unwrap() == before,
        "opening left the output as it was"
    );
    org.collector(objects, store, options)
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap();
    drop(sink);
    assert_exactly_once(
        &org.mock,
        &["LoginEvent", "SetupAuditTrail"],
        &output_keys(&out),
    );
}

#[tokio::test]
async fn setup_audit_trail_rows_sharing_a_created_date_are_split_across_batches_exactly_once() {
    let org = org().await;
    let second = now() - time::Duration::minutes(30);
    // Twelve rows in one second: a CreatedDate cursor alone would skip or repeat some.
    let rows = generate_records(
        "SetupAuditTrail",
        second - time::Duration::seconds(1),
        second,
        12,
        11,
    );
    org.mock.add_records("SetupAuditTrail", rows).unwrap();
    org.add(
        "SetupAuditTrail",
        now() - time::Duration::hours(3),
        now() - time::Duration::minutes(1),
        20,
        12,
    );
    let options = ObjectCollectorOptions {
        batch_size: 5,
        ..options()
    };
    let store = MemoryCheckpointStore::new();
    let mut sink = Recorder::default();
    let summary = org
        .collector(
            vec![object("SetupAuditTrail")],
            store.clone(),
            options.clone(),
        )
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap();
    assert!(summary.objects[0].batches >= 6, "{summary:?}");
    assert_exactly_once(&org.mock, &["SetupAuditTrail"], &sink.keys());
    org.clock.advance(Duration::from_secs(30));
    let summary = org
        .collector(vec![object("SetupAuditTrail")], store, options)
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap();
    assert_eq!(summary.rows, 0);
}

fn warned(summary: &salesforce_jwt::collect::PassSummary) -> bool {
    summary.objects.iter().any(|o| o.storage_warning)
}

#[tokio::test]
async fn a_source_quiet_for_a_day_warns_once_about_event_manager_storage() {
    let org = org().await;
    let objects = vec![object("FileEventStore")];
    let store = MemoryCheckpointStore::new();
    let mut sink = Recorder::default();
    let mut pass = async || {
        org.collector(objects.clone(), store.clone(), options())
            .run_pass(
                &mut sink,
                &mut |_| {},
                &std::sync::atomic::AtomicBool::new(false),
            )
            .await
            .unwrap()
    };
    assert!(!warned(&pass().await));
    org.clock.advance(Duration::from_secs(12 * 3600));
    assert!(!warned(&pass().await));
    org.clock.advance(Duration::from_secs(12 * 3600));
    assert!(warned(&pass().await), "24 h of zero rows");
    org.clock.advance(Duration::from_secs(3600));
    assert!(!warned(&pass().await), "once");
    // Rows arrive: the watch starts over.
    org.add(
        "FileEventStore",
        now() + time::Duration::hours(25),
        now() + time::Duration::hours(25) + time::Duration::minutes(5),
        2,
        13,
    );
    org.clock.advance(Duration::from_secs(600));
    let summary = pass().await;
    assert_eq!(summary.rows, 2);
    match saved_state(&store, "FileEventStore") {
        Some(SourceState::BigObject(state)) => {
            assert_eq!(state.quiet.empty_since, None);
            assert!(!state.quiet.warned);
        }
        other => panic!("unexpected state {other:?}"),
    }
}

#[tokio::test]
async fn options_out_of_range_are_refused_naming_the_option() {
    let org = org().await;
    let error = common::object_collector(
        org.client.clone(),
        vec![object("LoginEvent")],
        MemoryCheckpointStore::new(),
        ObjectCollectorOptions {
            max_rows_per_window: 0,
            ..options()
        },
    )
    .unwrap_err();
    assert!(error.to_string().contains("max_rows_per_window"), "{error}");
}

#[tokio::test]
async fn a_state_saved_for_another_kind_is_refused() {
    let org = org().await;
    let store = MemoryCheckpointStore::new();
    let mut sink = Recorder::default();
    org.collector(vec![object("LoginEvent")], store.clone(), options())
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap();
    let error = org
        .collector(
            vec![EventObject::custom("LoginEvent", ObjectKind::Standard).unwrap()],
            store,
            options(),
        )
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("another kind"), "{error}");
}

#[tokio::test]
async fn a_pass_delivers_every_row_queryable_when_it_starts_even_a_second_old() {
    let org = org().await;
    let mut rows = generate_records(
        "LoginEvent",
        now() - time::Duration::seconds(2),
        now() - time::Duration::seconds(1),
        1,
        14,
    );
    rows[0].insert("CreatedDate".into(), json!("2025-06-10T11:59:59.500+0000"));
    org.mock.add_records("LoginEvent", rows).unwrap();
    let store = MemoryCheckpointStore::new();
    let mut sink = Recorder::default();
    let summary = org
        .collector(vec![object("LoginEvent")], store.clone(), options())
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap();
    assert_eq!(summary.rows, 1, "not held back for the overlap");
    match saved_state(&store, "LoginEvent") {
        Some(SourceState::BigObject(state)) => {
            assert_eq!(
                state.watermark,
                Some(now()),
                "the window ends when the pass began"
            );
            assert_eq!(state.delivered_in_overlap.len(), 1);
        }
        other => panic!("unexpected state {other:?}"),
    }
}

#[tokio::test]
async fn the_stop_flag_ends_the_pass_after_a_committed_window_and_the_next_pass_goes_on_exactly_once()
 {
    use std::sync::atomic::{AtomicBool, Ordering};
    let org = org().await;
    org.add(
        "LoginEvent",
        now() - time::Duration::hours(20),
        now() - time::Duration::minutes(1),
        80,
        21,
    );
    org.add(
        "SetupAuditTrail",
        now() - time::Duration::hours(20),
        now() - time::Duration::minutes(1),
        30,
        22,
    );
    let objects = vec![object("LoginEvent"), object("SetupAuditTrail")];
    let store = MemoryCheckpointStore::new();
    let mut sink = Recorder::default();
    let stop = AtomicBool::new(false);
    let mut reports = Vec::new();
    let mut collector = org.collector(objects.clone(), store.clone(), options());
    let summary = collector
        .run_pass(
            &mut sink,
            &mut |p| {
                reports.push(p.clone());
                // Asked to stop once the third window has been committed.
                if p.current.as_deref() == Some("LoginEvent") && p.rows > 0 && reports.len() >= 4 {
                    stop.store(true, Ordering::SeqCst);
                }
            },
            &stop,
        )
        .await
        .unwrap();
    assert!(summary.stopped, "{summary:?}");
    assert_eq!(summary.objects.len(), 1, "SetupAuditTrail was not started");
    let partial = sink.committed.len();
    assert!(partial > 0 && partial < 80, "{partial} rows");
    assert!(sink.staged.is_empty(), "stopped between windows");
    assert!(reports.iter().all(|p| p.sources_total == 2));
    // The checkpoint holds where it stopped: exactly what was committed.
    let checkpoint = store.get().unwrap();
    assert_eq!(checkpoint.rows_delivered, partial as u64);
    match &checkpoint.sources["LoginEvent"] {
        SourceState::BigObject(state) => assert!(state.watermark.unwrap() < now()),
        other => panic!("unexpected state {other:?}"),
    }
    assert!(!checkpoint.sources.contains_key("SetupAuditTrail"));

    let stop = AtomicBool::new(false);
    let summary = org
        .collector(objects, store.clone(), options())
        .run_pass(&mut sink, &mut |_| {}, &stop)
        .await
        .unwrap();
    assert!(!summary.stopped);
    assert_exactly_once(&org.mock, &["LoginEvent", "SetupAuditTrail"], &sink.keys());
    assert_eq!(store.get().unwrap().rows_delivered, 110);
}

#[tokio::test]
async fn event_log_file_and_objects_share_one_checkpoint_and_one_ecs_file() {
    use salesforce_jwt::collect::{Collector, CollectorOptions};
    use salesforce_jwt::event_log_file::EventLogFileQuery;
    use salesforce_jwt::format::OutputFormat;
    use std::sync::atomic::AtomicBool;
    let org = org().await;
    org.mock.add_demo_data(now());
    org.add(
        "LoginEvent",
        now() - time::Duration::hours(20),
        now() - time::Duration::minutes(1),
        30,
        31,
    );
    org.add(
        "SetupAuditTrail",
        now() - time::Duration::hours(20),
        now() - time::Duration::minutes(1),
        20,
        32,
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("all.ndjson");
    let store = MemoryCheckpointStore::new();
    let mut collector = Collector::with_sources(
        org.client.clone(),
        Some(EventLogFileQuery::new()),
        vec![object("LoginEvent"), object("SetupAuditTrail")],
        store.clone(),
        CollectorOptions {
            since: Duration::from_secs(7 * 24 * 3600),
            ..CollectorOptions::default()
        },
        options(),
    )
    .unwrap();
    let mut sink = NdjsonFileSink::resume(&out, collector.checkpoint())
        .unwrap()
        .with_format(OutputFormat::Ecs);
    let summary = collector
        .run_pass(&mut sink, &mut |_| {}, &AtomicBool::new(false))
        .await
        .unwrap();
    assert!(summary.event_log_file_rows() > 0);
    assert_eq!(summary.object_rows(), 50);
    drop(sink);

    let checkpoint = store.get().unwrap();
    assert!(matches!(
        checkpoint.sources["EventLogFile"],
        SourceState::EventLogFile(_)
    ));
    assert!(matches!(
        checkpoint.sources["LoginEvent"],
        SourceState::BigObject(_)
    ));
    assert!(matches!(
        checkpoint.sources["SetupAuditTrail"],
        SourceState::Keyset(_)
    ));
    assert_eq!(checkpoint.rows_delivered, summary.rows);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        checkpoint.sink_position,
        Some(text.len() as u64),
        "one position for every source"
    );
    let ids: std::collections::HashSet<String> = text
        .lines()
        .map(|l| {
            let doc: Value = serde_json::from_str(l).unwrap();
            doc["event"]["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len() as u64, summary.rows, "every document once");
    for name in ["LoginEvent", "SetupAuditTrail"] {
        for record in org.mock.records(name) {
            let doc = salesforce_jwt::format::ecs::object_document(name, &record);
            assert!(
                ids.contains(doc["event"]["id"].as_str().unwrap()),
                "{name} row missing"
            );
        }
    }
}

#[tokio::test]
async fn an_object_collector_refuses_a_checkpoint_of_another_output_and_leaves_it_alone() {
    let org = org().await;
    org.add(
        "LoginEvent",
        now() - time::Duration::hours(2),
        now() - time::Duration::minutes(1),
        10,
        41,
    );
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryCheckpointStore::new();
    let first = dir.path().join("a.ndjson");
    let mut sink = NdjsonFileSink::resume(&first, &Default::default()).unwrap();
    org.collector(vec![object("LoginEvent")], store.clone(), options())
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap();
    drop(sink);
    let saved = store.get().unwrap();
    assert!(saved.output.as_deref().unwrap().ends_with("a.ndjson"));

    let other = dir.path().join("b.ndjson");
    let mut sink = NdjsonFileSink::open(&other, None).unwrap();
    let error = org
        .collector(vec![object("LoginEvent")], store.clone(), options())
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("a.ndjson"), "{error}");
    assert_eq!(store.get().unwrap(), saved, "nothing moved");
    assert_eq!(std::fs::read_to_string(&other).unwrap(), "");
}

/// A week of a quiet big object: with `max_window` a day, windows grow after each nearly empty
/// one, so the week costs a handful of queries instead of one an hour (168), and every row
/// still arrives once; a second pass reads only the overlap.
#[tokio::test]
async fn windows_of_a_sparse_object_grow_up_to_max_window_and_every_row_arrives_once() {
    let org = org().await;
    org.add(
        "LoginEvent",
        now() - time::Duration::days(6),
        now() - time::Duration::minutes(1),
        12,
        31,
    );
    let week = ObjectCollectorOptions {
        since: Duration::from_secs(7 * 24 * 3600),
        max_window: Duration::from_secs(24 * 3600),
        ..options()
    };
    let queries = |org: &Org| {
        org.mock
            .requests()
            .iter()
            .filter(|r| {
                r.soql
                    .as_deref()
                    .is_some_and(|q| q.contains("FROM LoginEvent"))
            })
            .count()
    };
    let store = MemoryCheckpointStore::new();
    let mut sink = Recorder::default();
    let summary = org
        .collector(vec![object("LoginEvent")], store.clone(), week.clone())
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap();
    assert_exactly_once(&org.mock, &["LoginEvent"], &sink.keys());
    assert_eq!(summary.rows, 12);
    // 1 + 2 + 4 + 8 + 16 hours, then days: 5 + 6 windows for 7 days, not 168.
    let first = queries(&org);
    assert!(first <= 12, "{first} queries for a week");

    // The same week in hourly windows, for comparison: one query an hour.
    let hourly = org_with(MockOrg::builder()).await;
    hourly.add(
        "LoginEvent",
        now() - time::Duration::days(6),
        now() - time::Duration::minutes(1),
        12,
        31,
    );
    let mut sink = Recorder::default();
    hourly
        .collector(
            vec![object("LoginEvent")],
            MemoryCheckpointStore::new(),
            ObjectCollectorOptions {
                max_window: Duration::from_secs(3600),
                ..week.clone()
            },
        )
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap();
    assert!(
        queries(&hourly) >= 168,
        "{} hourly queries",
        queries(&hourly)
    );

    // Nothing new: the next pass reads the overlap once and delivers nothing again.
    org.clock.advance(Duration::from_secs(60));
    let again = org
        .collector(vec![object("LoginEvent")], store, week)
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap();
    assert_eq!(again.rows, 0);
    assert_eq!(queries(&org) - first, 1);
}
