//! Narrow protocol cases on plain wiremock: a big-object page that says there are more rows
//! than it holds but offers no `nextRecordsUrl` (reported by a third-party collector against a
//! real org) must not lose those rows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use salesforce_jwt::Error;
use salesforce_jwt::clock::Clock;
use salesforce_jwt::collect::{ObjectCollectorOptions, Row, Sink, Unit};
use salesforce_jwt::datetime;
use salesforce_jwt::objects::EventObject;
use serde_json::json;
use time::OffsetDateTime;
use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

/// Answers `EventDate > a AND EventDate <= b` windows over fixed rows, newest first, but never
/// more than two rows and never a `nextRecordsUrl`, while `totalSize` tells the truth.
struct TwoRowsAtMost {
    dates: Vec<OffsetDateTime>,
    /// The org's clock, for the `Date` of its answers.
    clock: salesforce_jwt::clock::ManualClock,
}

fn bound(q: &str, prefix: &str) -> OffsetDateTime {
    let start = q.find(prefix).unwrap() + prefix.len();
    let text = q[start..].split_whitespace().next().unwrap();
    datetime::parse(text).unwrap()
}

impl Respond for TwoRowsAtMost {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let q = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "q")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        let (a, b) = (bound(&q, "EventDate > "), bound(&q, "EventDate <= "));
        let mut rows: Vec<_> = self
            .dates
            .iter()
            .enumerate()
            .filter(|(_, d)| **d > a && **d <= b)
            .map(|(i, d)| {
                json!({
                    "attributes": {"type": "LoginEvent"},
                    "Id": "000000000000000AAA",
                    "EventDate": datetime::format(*d),
                    "EventIdentifier": format!("00000000-0000-4000-8000-{i:012}"),
                })
            })
            .collect();
        rows.reverse();
        let total = rows.len();
        rows.truncate(2);
        ResponseTemplate::new(200)
            .set_body_json(json!({"totalSize": total, "done": true, "records": rows}))
            .insert_header("Date", salesforce_jwt_mock::http_date(self.clock.now()))
    }
}

#[derive(Default)]
struct Recorder {
    committed: Vec<String>,
    staged: Vec<String>,
    rollbacks: usize,
}

impl Sink for Recorder {
    async fn begin(&mut self, _unit: &Unit<'_>) -> Result<(), Error> {
        Ok(())
    }
    async fn write(&mut self, row: Row<'_>) -> Result<(), Error> {
        let Row::Object { record, .. } = row else {
            panic!("an object row")
        };
        self.staged
            .push(record.event_identifier().unwrap().to_string());
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

#[tokio::test]
async fn a_page_short_of_its_total_without_next_records_url_splits_the_window() {
    let clock = common::manual_clock();
    let (server, _token) = common::server_with_token_endpoint(&clock).await;
    let now = common::start_time();
    let dates: Vec<OffsetDateTime> = (1..=7)
        .map(|i| now - time::Duration::minutes(7 * i))
        .collect();
    Mock::given(method("GET"))
        .and(path("/services/data/v64.0/query"))
        .respond_with(TwoRowsAtMost {
            dates: dates.clone(),
            clock: clock.clone(),
        })
        .mount(&server)
        .await;
    let client = common::client(common::config(&server.uri()), &clock);
    let mut sink = Recorder::default();
    let summary = common::object_collector(
        client,
        vec![EventObject::named("LoginEvent").unwrap()],
        salesforce_jwt::collect::MemoryCheckpointStore::new(),
        ObjectCollectorOptions::default(),
    )
    .unwrap()
    .run_pass(
        &mut sink,
        &mut |_| {},
        &std::sync::atomic::AtomicBool::new(false),
    )
    .await
    .unwrap();
    assert!(summary.objects[0].splits >= 2, "{summary:?}");
    assert!(
        sink.rollbacks >= 1,
        "the short window's rows were taken back"
    );
    let mut got = sink.committed.clone();
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 7, "every row, once");
    assert_eq!(sink.committed.len(), 7);
}
