//! Many orgs from one config at a real org's latency: starts N org doubles whose every answer
//! takes 40 ms, each with a week of small daily EventLogFiles and a sparse LoginEvent, writes
//! one config with the N orgs, runs `sf-ingest --config` once and prints its wall time and
//! peak RSS, after checking that every org's output holds every row once.
//!
//! ```sh
//! CARGO_TARGET_DIR=/tmp/bench cargo build --release -p sf-ingest --bin sf-ingest --example orgs_bench
//! /tmp/bench/release/examples/orgs_bench 200                       # the binary beside it
//! /tmp/bench/release/examples/orgs_bench 200 /path/to/sf-ingest    # another one
//! ```
//!
//! A run that has not ended after `ORGS_BENCH_TIMEOUT` seconds (default 600) is killed and
//! reported as such.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use salesforce_jwt_mock::{
    DEMO_PRIVATE_KEY_PEM, Fault, FaultTarget, Interval, MockLogFile, MockOrg,
};

/// Every answer takes this long.
const LATENCY: Duration = Duration::from_millis(40);
const EVENT_TYPES: [&str; 4] = ["Login", "Logout", "API", "URI"];
const DAYS: i64 = 7;
const ROWS_PER_FILE: usize = 50;
const LOGIN_EVENTS: usize = 20;

async fn org(seed: u64) -> MockOrg {
    let org = MockOrg::start().await;
    org.inject_always(Fault::Delay {
        target: FaultTarget::Any,
        delay: LATENCY,
    });
    let now = time::OffsetDateTime::now_utc();
    let today = now.replace_time(time::Time::MIDNIGHT);
    for day in 1..=DAYS {
        let log_date = today - time::Duration::days(day);
        for (t, event_type) in EVENT_TYPES.iter().enumerate() {
            org.add_file(
                MockLogFile::builder(event_type)
                    .interval(Interval::Daily)
                    .log_date(log_date)
                    .sequence(0)
                    .created_date(log_date + time::Duration::hours(26))
                    .rows(ROWS_PER_FILE)
                    .seed(seed * 1000 + day as u64 * 10 + t as u64)
                    .build(),
            );
        }
    }
    let rows = salesforce_jwt_mock::generate_records(
        "LoginEvent",
        now - time::Duration::days(DAYS - 1),
        now - time::Duration::minutes(30),
        LOGIN_EVENTS,
        seed,
    );
    org.add_records("LoginEvent", rows).unwrap();
    org
}

fn config(dir: &Path, orgs: &[MockOrg]) -> PathBuf {
    let key = dir.join("demo.key");
    std::fs::write(&key, DEMO_PRIVATE_KEY_PEM).unwrap();
    let mut text =
        String::from("[defaults]\nsince = \"7d\"\nsources = [\"EventLogFile\", \"LoginEvent\"]\n");
    for (i, org) in orgs.iter().enumerate() {
        text.push_str(&format!(
            "\n[[org]]\nname = \"org{i}\"\naudience_url = \"{}\"\nclient_key_path = \"{}\"\n\
             username = \"{}\"\nclient_id = \"{}\"\ninstance_url = \"{}\"\ntoken_url = \"{}\"\n\
             out = \"org{i}.ndjson\"\n",
            org.audience(),
            key.display(),
            org.username(),
            org.client_id(),
            org.instance_url(),
            org.token_url(),
        ));
    }
    let path = dir.join("sf-ingest.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `binary` and waits for it with wait4(2): its exit status, wall time and peak RSS in
/// KiB; `None` for the status when it was killed at `timeout`.
fn run(binary: &Path, config: &Path, timeout: Duration) -> (Option<i32>, Duration, i64) {
    let started = Instant::now();
    let child = std::process::Command::new(binary)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sf-ingest starts");
    let pid = i32::try_from(child.id()).unwrap();
    let killer = std::thread::spawn(move || {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            // SAFETY: signal 0 only asks whether the process exists.
            if unsafe { libc::kill(pid, 0) } != 0 {
                return false;
            }
        }
        // SAFETY: our own child, not yet reaped (the wait below reaps it).
        unsafe { libc::kill(pid, libc::SIGKILL) };
        true
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, which std does not reap (its Child is dropped unwaited).
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4 failed");
    let wall = started.elapsed();
    drop(child);
    let killed = killer.join().unwrap();
    let code = (!killed && libc::WIFEXITED(status)).then(|| libc::WEXITSTATUS(status));
    (code, wall, usage.ru_maxrss)
}

/// Rows in `path` and whether each is there once: (rows, duplicates).
fn rows_in(path: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    for line in text.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = match (row.get("REQUEST_ID"), row.get("EventIdentifier")) {
            (Some(id), _) => format!("{}/{}", row["EventLogFileId"], id),
            (None, Some(id)) => id.to_string(),
            _ => line.to_string(),
        };
        if !seen.insert(key) {
            duplicates += 1;
        }
    }
    (seen.len(), duplicates)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args
        .next()
        .map_or(20, |n| n.parse().expect("a number of orgs"));
    let binary = args.next().map_or_else(
        || {
            std::env::current_exe()
                .unwrap()
                .parent()
                .and_then(Path::parent)
                .unwrap()
                .join("sf-ingest")
        },
        PathBuf::from,
    );
    let timeout = Duration::from_secs(
        std::env::var("ORGS_BENCH_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(600),
    );
    let setup = Instant::now();
    let mut orgs = Vec::with_capacity(count);
    for i in 0..count {
        orgs.push(org(i as u64).await);
    }
    println!(
        "{count} org doubles ready in {:.1} s",
        setup.elapsed().as_secs_f64()
    );
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &orgs);
    let expected = EVENT_TYPES.len() * DAYS as usize * ROWS_PER_FILE + LOGIN_EVENTS;
    println!(
        "{count} orgs, {} ms per answer, {} files and {LOGIN_EVENTS} LoginEvent rows each, {}",
        LATENCY.as_millis(),
        EVENT_TYPES.len() * DAYS as usize,
        binary.display()
    );
    let (code, wall, rss_kib) = tokio::task::spawn_blocking({
        let binary = binary.clone();
        move || run(&binary, &config, timeout)
    })
    .await
    .unwrap();
    let (mut complete, mut duplicates) = (0, 0);
    for i in 0..count {
        let (rows, twice) = rows_in(&dir.path().join(format!("org{i}.ndjson")));
        complete += usize::from(rows == expected);
        duplicates += twice;
    }
    let requests: u64 = orgs
        .iter()
        .map(|o| {
            let r = o.received();
            r.token_requests + r.queries + r.query_more + r.downloads
        })
        .sum();
    match code {
        Some(code) => println!(
            "exit {code}: wall {:.1} s, peak RSS {:.1} MiB",
            wall.as_secs_f64(),
            rss_kib as f64 / 1024.0
        ),
        None => println!(
            "killed after {:.0} s (not finished), peak RSS {:.1} MiB",
            wall.as_secs_f64(),
            rss_kib as f64 / 1024.0
        ),
    }
    println!(
        "orgs complete: {complete}/{count}, rows written twice: {duplicates}, requests: {requests}"
    );
    // Stopping hundreds of org doubles one by one takes minutes and measures nothing.
    std::process::exit(0);
}
