//! Rows per second into `salesforce_events`: collectors (the library's `Collector` over
//! `PgCheckpointStore` and `PgSink`) each collecting its own org double, one alone, then three at
//! once; then PostgreSQL alone (the one collector's rows committed again the same way, with
//! nothing else running), the most a collector could reach on this host.
//!
//! ```sh
//! eval "$(scripts/pg-test-cluster start)"      # or set SFJWT_TEST_PG_URL to a server of yours
//! cargo run --release -p salesforce-jwt-postgres --example pg_bench
//! ```
//!
//! Each run uses a new database on that server (created, and left for inspection).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use salesforce_jwt::JwtBearerClient;
use salesforce_jwt::clock::SystemClock;
use salesforce_jwt::collect::{Collector, CollectorOptions};
use salesforce_jwt::event_log_file::EventLogFileQuery;
use salesforce_jwt_mock::{Interval, MockLogFile, MockOrg};
use salesforce_jwt_postgres::{
    DEFAULT_LEASE_TTL, EventRow, PgCheckpointStore, PgStore, PgTarget, PgWorker,
};

const FILES: usize = 40;
const ROWS: usize = 2_500;

async fn org() -> (MockOrg, JwtBearerClient) {
    let mock = MockOrg::start().await;
    let now = time::OffsetDateTime::now_utc();
    let base = now.replace_time(time::Time::MIDNIGHT) - time::Duration::days(1);
    for i in 0..FILES {
        let hour = base + time::Duration::hours((i % 24) as i64);
        mock.add_file(
            MockLogFile::builder("Login")
                .interval(Interval::Hourly)
                .log_date(hour)
                .sequence(1 + (i / 24) as i32)
                .created_date(hour + time::Duration::hours(1))
                .rows(ROWS)
                .seed(i as u64)
                .build(),
        );
    }
    let config = mock.config_builder().build().unwrap();
    (mock, JwtBearerClient::new(config).unwrap())
}

async fn database(admin: &str, name: &str) -> String {
    let (client, conn) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    // Two statements: neither may run inside the implicit transaction of a batch.
    for sql in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        client.batch_execute(&sql).await.unwrap();
    }
    database_url(admin, name)
}

/// The URL of the database `name` on the server of `admin`.
fn database_url(admin: &str, name: &str) -> String {
    format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
}

/// PostgreSQL alone: the rows in the database at `collected` (one collector's run) committed
/// again into a new database as `PgSink` and `PgCheckpointStore` do (`PgStore::deliver`, a
/// transaction per file of `ROWS` rows: a binary COPY into a temporary table, the lease's
/// fencing check, `INSERT ... ON CONFLICT DO NOTHING`, the checkpoint), with no org double,
/// download, decoding or encoding beside it.
async fn postgres_alone(admin: &str, collected: &str) -> (u64, f64) {
    let (client, conn) = tokio_postgres::connect(collected, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let events: Vec<EventRow> = client
        .query(
            "SELECT event_id, record::text FROM salesforce_events ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| EventRow {
            event_id: row.get(0),
            record: row.get::<_, String>(1).into_bytes(),
        })
        .collect();
    let url = database(admin, "sfjwt_bench_postgres_alone").await;
    let target = PgTarget::parse(&url).unwrap();
    let store = PgStore::connect(&target, Arc::new(SystemClock), "bench-alone")
        .await
        .unwrap();
    let lease = store
        .claim("org0", "EventLogFile", DEFAULT_LEASE_TTL)
        .await
        .unwrap();
    let files: Vec<Vec<EventRow>> = events.chunks(ROWS).map(<[EventRow]>::to_vec).collect();
    let started = Instant::now();
    for (i, file) in files.into_iter().enumerate() {
        let checkpoint = serde_json::json!({ "files": i + 1 });
        store.deliver(&lease, file, &checkpoint).await.unwrap();
    }
    let rows = events.len() as u64;
    (rows, rows as f64 / started.elapsed().as_secs_f64())
}

/// `collectors` processes' worth of collectors (each its own worker, as separate processes
/// would have), each over its own org; returns rows per second for all together.
async fn run(admin: &str, collectors: usize) -> (u64, f64) {
    let url = database(admin, &format!("sfjwt_bench_{collectors}")).await;
    let target = PgTarget::parse(&url).unwrap();
    let mut setups = Vec::new();
    for i in 0..collectors {
        let (mock, client) = org().await;
        let worker = PgWorker::connect(&target, Arc::new(SystemClock), format!("bench-{i}"))
            .await
            .unwrap();
        setups.push((mock, client, worker, format!("org{i}")));
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (mock, client, worker, name) in setups {
        tasks.spawn(async move {
            let store = PgCheckpointStore::new(worker, name, "EventLogFile", DEFAULT_LEASE_TTL);
            let mut sink = store.sink();
            let options = CollectorOptions {
                since: Duration::from_secs(3 * 24 * 3600),
                concurrency: 4,
                ..CollectorOptions::default()
            };
            let mut collector =
                Collector::new(client, EventLogFileQuery::new(), store, options).unwrap();
            let summary = collector
                .run_pass(&mut sink, &mut |_| {}, &AtomicBool::new(false))
                .await
                .unwrap();
            drop(mock);
            summary.rows
        });
    }
    let mut rows = 0;
    while let Some(r) = tasks.join_next().await {
        rows += r.unwrap();
    }
    (rows, rows as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    let admin = std::env::var("SFJWT_TEST_PG_URL").expect(
        "set SFJWT_TEST_PG_URL (eval \"$(scripts/pg-test-cluster start)\" does) to a server where \
         this may create databases",
    );
    for collectors in [1, 3] {
        let (rows, per_second) = run(&admin, collectors).await;
        println!(
            "{collectors} collector(s): {rows} rows into salesforce_events, {per_second:.0} rows/s"
        );
    }
    let collected = database_url(&admin, "sfjwt_bench_1");
    let (rows, per_second) = postgres_alone(&admin, &collected).await;
    println!(
        "PostgreSQL alone (the same rows and transactions, nothing else running): {rows} rows, \
         {per_second:.0} rows/s"
    );
}
