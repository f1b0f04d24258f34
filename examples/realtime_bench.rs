//! Real-time collection benchmark: one objects-only `Collector` pass over a mock org holding many
//! LoginEvent rows, into an NDJSON file, with rows/s.
//!
//! ```sh
//! cargo run --release --example realtime_bench
//! cargo run --release --example realtime_bench -- --rows 200000
//! ```
//!
//! The org holds `--rows` LoginEvent rows (default 100,000) spread over the last day. The
//! collector reads them in one-hour EventDate windows (split when a window holds more than
//! 10,000 rows), newest first in 2,000-row pages, deduplicates the overlap, and writes each
//! window with `NdjsonFileSink` (fsync per window) and a `FileCheckpointStore`. The mock runs in
//! the same process and serialises every page as JSON, so its CPU time is part of the figure:
//! this measures the whole loop on one machine, not Salesforce's speed. The CPU seconds of the
//! pass are printed per side: the mock (wiremock serves from one thread of its own) and the
//! collector (the main thread, which runs the collector and the sink, plus the tokio workers,
//! which run the HTTP connections). On a shared machine compare these, not the wall time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use salesforce_jwt::collect::{FileCheckpointStore, ObjectCollectorOptions};
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
        .unwrap_or(100_000);

    let org = MockOrg::builder().request_log_capacity(0).start().await;
    let now = OffsetDateTime::now_utc();
    let day_ago = now - time::Duration::days(1);
    // Rows become queryable by the time the pass starts: end a minute before now.
    org.add_records(
        "LoginEvent",
        generate_records(
            "LoginEvent",
            day_ago,
            now - time::Duration::minutes(1),
            rows,
            7,
        ),
    )
    .unwrap();

    let config = org.config_builder().build().unwrap();
    let client = JwtBearerClient::new(config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let store = FileCheckpointStore::new(dir.path().join("events.checkpoint.json"));
    let options = ObjectCollectorOptions {
        since: Duration::from_secs(26 * 3600),
        ..ObjectCollectorOptions::default()
    };
    let login_event = EventObject::named("LoginEvent").unwrap();
    let mut collector = object_collector(client, vec![login_event], store, options).unwrap();
    let mut sink = NdjsonFileSink::resume(&out, collector.checkpoint()).unwrap();

    let uptime = || {
        let text = std::fs::read_to_string("/proc/uptime").unwrap();
        text.split_whitespace().next().unwrap().to_string()
    };
    let uptime_before = uptime();
    let cpu_before = thread_cpu();
    let started = Instant::now();
    let summary = collector
        .run_pass(
            &mut sink,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    let cpu_after = thread_cpu();
    let uptime_after = uptime();
    let delivered = summary.rows;
    let lines = std::fs::read_to_string(&out).unwrap().lines().count();
    assert_eq!(delivered as usize, rows, "every row once");
    assert_eq!(lines, rows, "one line per row");
    println!(
        "LoginEvent: {rows} rows in {secs:.2} s = {:.0} rows/s ({} MB of NDJSON, {} queries)",
        rows as f64 / secs,
        std::fs::metadata(&out).unwrap().len() / 1_000_000,
        org.received().queries + org.received().query_more,
    );
    let (mut collector_cpu, mut mock_cpu) = (0.0, 0.0);
    for (tid, (name, after)) in &cpu_after {
        let before = cpu_before.get(tid).map_or(0.0, |(_, b)| *b);
        // wiremock runs its server on an unnamed thread of its own; everything else is ours.
        if *tid == std::process::id() || name.starts_with("tokio-rt-worker") {
            collector_cpu += after - before;
        } else {
            mock_cpu += after - before;
        }
    }
    println!("CPU during the pass: collector {collector_cpu:.2} s, mock {mock_cpu:.2} s");
    // For `perf record -k CLOCK_MONOTONIC` then `perf report --time START,END`: the pass alone,
    // without the setup (CLOCK_MONOTONIC and /proc/uptime agree where nothing was suspended).
    println!("pass on the monotonic clock: {uptime_before},{uptime_after}");
}

/// CPU seconds (user + system) of every thread of this process, by thread id, with its name.
fn thread_cpu() -> std::collections::HashMap<u32, (String, f64)> {
    let mut out = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc/self/task").unwrap() {
        let entry = entry.unwrap();
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let name = stat[stat.find('(').unwrap() + 1..stat.rfind(')').unwrap()].to_string();
        // After the name (in parentheses, may hold spaces): state first; utime and stime are
        // the 12th and 13th fields. USER_HZ is 100 on Linux.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        out.insert(tid, (name, ticks as f64 / 100.0));
    }
    out
}

/// A collector of `objects` only (what `ObjectCollector::new` was).
fn object_collector<S: salesforce_jwt::collect::CheckpointStore>(
    client: salesforce_jwt::JwtBearerClient,
    objects: Vec<salesforce_jwt::objects::EventObject>,
    store: S,
    options: salesforce_jwt::collect::ObjectCollectorOptions,
) -> Result<salesforce_jwt::collect::Collector<S>, salesforce_jwt::Error> {
    salesforce_jwt::collect::Collector::with_sources(
        client,
        None,
        objects,
        store,
        salesforce_jwt::collect::CollectorOptions::default(),
        options,
    )
}
