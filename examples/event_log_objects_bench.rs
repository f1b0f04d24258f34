//! Event Log Object collection benchmark: one `Collector` pass over a mock org holding many
//! `LoginEventLog` rows, into an NDJSON file, with rows/s.
//!
//! ```sh
//! cargo run --release --example event_log_objects_bench
//! cargo run --release --example event_log_objects_bench -- --rows 500000
//! ```
//!
//! The org holds `--rows` LoginEventLog rows (default 200,000) over the day before the last
//! hour (all published: rows appear 25-45 minutes after their Timestamp). The collector reads
//! them in one-hour `Timestamp` windows ordered by `Timestamp, Id` in 2,000-row pages, keeps
//! the last 60 minutes' Ids for the overlap, and commits each window with `NdjsonFileSink`
//! (fsync per window) and a `FileCheckpointStore`. The mock runs in the same process and
//! serialises every page as JSON, so its CPU time is part of the figure: this measures the
//! whole loop on one machine, not Salesforce's speed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use salesforce_jwt::collect::{
    Collector, CollectorOptions, FileCheckpointStore, ObjectCollectorOptions,
};
use salesforce_jwt::objects::EventObject;
use salesforce_jwt::sink::NdjsonFileSink;
use salesforce_jwt::{JwtBearerClient, OffsetDateTime};
use salesforce_jwt_mock::{MockOrg, generate_records};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: usize = args
        .iter()
        .position(|a| a == "--rows")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("--rows takes a number"))
        .unwrap_or(200_000);

    let org = MockOrg::builder().request_log_capacity(0).start().await;
    let now = OffsetDateTime::now_utc();
    let hour_ago = now - time::Duration::HOUR;
    let records = generate_records(
        "LoginEventLog",
        hour_ago - time::Duration::DAY,
        hour_ago,
        rows,
        7,
    );
    org.add_records("LoginEventLog", records).unwrap();

    let client = JwtBearerClient::new(org.config_builder().build().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let store = FileCheckpointStore::new(dir.path().join("events.checkpoint.json"));
    let options = ObjectCollectorOptions {
        since: Duration::from_secs(26 * 3600),
        ..ObjectCollectorOptions::default()
    };
    let login = EventObject::named("LoginEventLog").unwrap();
    let mut collector = Collector::with_sources(
        client,
        None,
        vec![login],
        store,
        CollectorOptions::default(),
        options,
    )
    .unwrap();
    let mut sink = NdjsonFileSink::resume(&out, collector.checkpoint()).unwrap();

    let started = Instant::now();
    let summary = collector
        .run_pass(&mut sink, &mut |_| {}, &AtomicBool::new(false))
        .await
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    let lines = std::fs::read_to_string(&out).unwrap().lines().count();
    assert_eq!(summary.rows as usize, rows, "every row once");
    assert_eq!(lines, rows, "one line per row");
    println!(
        "LoginEventLog: {rows} rows in {secs:.2} s = {:.0} rows/s ({} MB of NDJSON, {} queries)",
        rows as f64 / secs,
        std::fs::metadata(&out).unwrap().len() / 1_000_000,
        org.received().queries + org.received().query_more,
    );
}
