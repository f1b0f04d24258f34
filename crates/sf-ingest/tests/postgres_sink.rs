//! `--out postgres://`: what goes into salesforce_events, seen from outside the binary. Rows
//! Salesforce publishes twice never block the org, and a file far larger than the process's
//! memory bound streams through it.
//!
//! Needs the test server (`scripts/test`, or `eval "$(scripts/pg-test-cluster start)"`); fails,
//! never skips, without it.

mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use common::{demo_key, sf_ingest_for};
use salesforce_jwt_mock::{Interval, MockLogFile, MockOrg};
use time::OffsetDateTime;

fn admin_url() -> String {
    std::env::var("SFJWT_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "SFJWT_TEST_PG_URL is not set: start the test server first with \
             `eval \"$(scripts/pg-test-cluster start)\"` (or run scripts/test)"
        )
    })
}

async fn fresh_database(hint: &str) -> String {
    let admin = admin_url();
    let name = format!("t_{hint}_{}", std::process::id());
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
}

async fn query(url: &str, sql: &str) -> Vec<tokio_postgres::Row> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.query(sql, &[]).await.unwrap()
}

/// `sf-ingest` for `org` with state and rows in `url`.
fn collect_into(org: &MockOrg, key: &Path, url: &str) -> Command {
    let mut cmd = sf_ingest_for(org, key);
    cmd.args([
        "--log-format",
        "json",
        "--since",
        "7d",
        "--state",
        url,
        "--out",
        url,
    ]);
    cmd
}

/// The start of the hour `hours` hours ago.
fn hours_ago(hours: i64) -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_time(time::Time::MIDNIGHT) + time::Duration::hours(i64::from(now.hour()) - hours)
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_already_in_salesforce_events_never_stop_the_org_and_a_second_run_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let url = fresh_database("already").await;
    let org = MockOrg::start().await;
    const HEADER: &str = "\"EVENT_TYPE\",\"TIMESTAMP_DERIVED\",\"REQUEST_ID\",\"USER_AGENT\"\n";
    let row = |id: &str, agent: &str| {
        format!("\"Login\",\"2025-06-10T02:01:00.000Z\",\"{id}\",\"{agent}\"\n")
    };
    let (a, b, c) = (row("a", "x"), row("b", "y"), row("c", "z"));
    let nul = row("nul", "bad\u{0}agent");
    // The hour's rows are in the hourly file, one of them twice, and again in the day's file.
    let hour = hours_ago(30);
    let day = hour.replace_time(time::Time::MIDNIGHT);
    org.add_file(
        MockLogFile::builder("Login")
            .interval(Interval::Hourly)
            .log_date(hour)
            .sequence(1)
            .created_date(hour + time::Duration::hours(1))
            .csv(format!("{HEADER}{a}{b}{b}{nul}"))
            .build(),
    );
    org.add_file(
        MockLogFile::builder("Login")
            .interval(Interval::Daily)
            .log_date(day)
            .sequence(0)
            .created_date(day + time::Duration::hours(26))
            .csv(format!("{HEADER}{a}{b}{c}{nul}"))
            .build(),
    );
    // `all`: the sink, not the interval choice, is what must keep the day's rows once here.
    let first = common::run(collect_into(&org, &key, &url).args(["--interval", "all"]));
    let log = common::stderr(&first);
    assert!(first.status.success(), "{log}");
    let done = log
        .lines()
        .find(|l| l.contains(r#""message":"pass done""#))
        .unwrap();
    assert!(done.contains(r#""rows":8"#), "{done}");
    assert!(done.contains(r#""already_present":4"#), "{done}");

    let stored = |rows: Vec<tokio_postgres::Row>| -> Vec<(String, String)> {
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    let sql =
        "SELECT record->>'REQUEST_ID', record->>'USER_AGENT' FROM salesforce_events ORDER BY id";
    let want: Vec<(String, String)> = [("a", "x"), ("b", "y"), ("nul", "bad\\0agent"), ("c", "z")]
        .iter()
        .map(|(id, agent)| (id.to_string(), agent.to_string()))
        .collect();
    assert_eq!(stored(query(&url, sql).await), want);

    let second = common::run(collect_into(&org, &key, &url).args(["--interval", "all"]));
    let log = common::stderr(&second);
    assert!(second.status.success(), "{log}");
    assert!(log.contains(r#""files":0"#), "{log}");
    assert_eq!(stored(query(&url, sql).await), want);
}

/// Waits for `child`; its peak RSS in KiB. `RUSAGE_CHILDREN` holds the largest of the waited-for
/// children's peaks, and this test (a process of its own under nextest) runs no other child.
fn wait_with_peak_rss(child: &mut std::process::Child) -> (ExitStatus, i64) {
    let status = child.wait().unwrap();
    // SAFETY: a zeroed rusage is a valid value for getrusage to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer is to a live local of the right type.
    let got = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(got, 0, "getrusage: {}", std::io::Error::last_os_error());
    (status, usage.ru_maxrss)
}

/// Rows of the large file: about 74 MiB as JSON, more than the bound by themselves, and few
/// enough for a debug build to collect in well under a minute.
const LARGE_ROWS: usize = 80_000;

#[tokio::test(flavor = "multi_thread")]
async fn a_file_larger_than_64_mib_goes_into_salesforce_events_in_under_64_mib_of_rss() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let url = fresh_database("large").await;
    let org = MockOrg::start().await;
    let hour = hours_ago(3);
    org.add_file(
        MockLogFile::builder("Login")
            .interval(Interval::Hourly)
            .log_date(hour)
            .sequence(1)
            .created_date(hour + time::Duration::hours(1))
            .rows(LARGE_ROWS)
            .build(),
    );
    let stderr = dir.path().join("stderr.log");
    let mut child = collect_into(&org, &key, &url)
        .stdout(Stdio::null())
        .stderr(File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let (status, peak_kib) = wait_with_peak_rss(&mut child);
    let log = std::fs::read_to_string(&stderr).unwrap();
    assert!(status.success(), "{log}");
    let row = &query(
        &url,
        "SELECT count(*), sum(octet_length(record::text))::bigint FROM salesforce_events",
    )
    .await[0];
    let (rows, bytes): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(rows, LARGE_ROWS as i64);
    // Held at once (as before: a file's rows waited in memory for its commit), the rows alone
    // would exceed the bound.
    assert!(bytes > 64 << 20, "{bytes} bytes of rows");
    assert!(
        peak_kib < 64 << 10,
        "sf-ingest peaked at {} MiB of RSS for {} MiB of rows",
        peak_kib >> 10,
        bytes >> 20
    );
}
