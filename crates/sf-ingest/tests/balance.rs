//! Balanced collectors: several `sf-ingest --follow` processes on one PostgreSQL state database
//! each hold about their share of the (org, source) leases, take a dead one's share over within
//! the TTL plus one interval, and hand leases over to a newcomer between passes, while every row
//! is delivered exactly once.
//!
//! Needs the test server (`scripts/test`, or `eval "$(scripts/pg-test-cluster start)"`); fails,
//! never skips, without it.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{demo_key, org_table, rows_in_org, sf_ingest};
use salesforce_jwt_mock::{Fault, FaultTarget, Interval, MockLogFile, MockOrg};
use time::OffsetDateTime;

const COLLECTORS: usize = 3;
const ORGS: usize = 8;
const SOURCES: [&str; 3] = ["EventLogFile", "LoginEvent", "SetupAuditTrail"];
const UNITS: usize = ORGS * SOURCES.len();
/// `--lease-ttl` and `--follow`, short so that the test takes seconds.
const TTL: Duration = Duration::from_secs(3);
const INTERVAL: Duration = Duration::from_secs(1);
/// What the issue asks of the balance: 24 leases over 3 collectors, 8 +/- 2 each.
const SPREAD: usize = 2;

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
    let client = connect(&admin).await;
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// One `sf-ingest --follow` process, its log lines gathered as they come.
struct Collector {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Collector {
    fn spawn(config: &Path) -> Collector {
        let mut child = sf_ingest()
            .args([
                "--log-format",
                "json",
                "--metrics-addr",
                "127.0.0.1:0",
                "--follow",
            ])
            .arg(INTERVAL.as_secs().to_string())
            .arg("--lease-ttl")
            .arg(TTL.as_secs().to_string())
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
        Collector { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Where it serves `/metrics` (from its log line saying so).
    fn metrics_addr(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for line in self.log() {
                if line.contains("serving metrics") {
                    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                    let addr = v
                        .pointer("/fields/address")
                        .or_else(|| v.get("address"))
                        .and_then(serde_json::Value::as_str);
                    return addr.unwrap_or_else(|| panic!("{line}")).to_string();
                }
            }
            assert!(Instant::now() < deadline, "no metrics address");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until its `sf_ingest_collectors_live` is `live`.
    fn wait_for_live_gauge(&self, live: usize) {
        let addr = self.metrics_addr();
        let deadline = Instant::now() + INTERVAL * 5;
        loop {
            let (status, body) = common::http_get(&addr, "/metrics");
            assert_eq!(status, 200);
            let scrape = common::parse_metrics(&body);
            assert_eq!(scrape.types["sf_ingest_collectors_live"], "gauge");
            let seen = scrape.value("sf_ingest_collectors_live", &[]);
            if seen == Some(live as f64) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sf_ingest_collectors_live {seen:?}, not {live}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM; `true` when it exits cleanly within a bound.
    fn stop(&mut self) -> bool {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid, which has not been waited for yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(Instant::now() < deadline, "no exit on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Live leases by process slot (holder names end in `:PID`), from the lease table; `None` for a
/// slot that is not running. Leases held by no running process are counted under `others`.
async fn distribution(
    client: &tokio_postgres::Client,
    collectors: &[Option<Collector>],
) -> (Vec<Option<usize>>, usize) {
    let mut by_slot: Vec<Option<usize>> =
        collectors.iter().map(|c| c.as_ref().map(|_| 0)).collect();
    let mut others = 0;
    // Before the first collector created the schema, nobody holds anything.
    let rows = client
        .query(
            "SELECT holder, count(*) FROM sfjwt_leases WHERE expires_at > now() GROUP BY holder",
            &[],
        )
        .await
        .unwrap_or_default();
    for row in rows {
        let holder: String = row.get(0);
        let n = usize::try_from(row.get::<_, i64>(1)).unwrap();
        let slot = collectors.iter().position(|c| {
            c.as_ref()
                .is_some_and(|c| holder.ends_with(&format!(":{}", c.pid())))
        });
        match slot {
            Some(slot) => *by_slot[slot].as_mut().unwrap() += n,
            None => others += n,
        }
    }
    (by_slot, others)
}

/// Whether every running slot holds `share +/- SPREAD` and all units are held by running ones.
fn balanced(by_slot: &[Option<usize>], others: usize, share: usize) -> bool {
    let held: usize = by_slot.iter().flatten().sum();
    others == 0
        && held == UNITS
        && by_slot
            .iter()
            .flatten()
            .all(|n| n.abs_diff(share) <= SPREAD)
}

/// Samples the distribution every 100 ms until `done` or `limit`, printing each change; the
/// time it took.
async fn wait_for(
    what: &str,
    client: &tokio_postgres::Client,
    collectors: &[Option<Collector>],
    limit: Duration,
    done: impl Fn(&[Option<usize>], usize) -> bool,
) -> Duration {
    let start = Instant::now();
    let mut last = None;
    loop {
        let (by_slot, others) = distribution(client, collectors).await;
        let elapsed = start.elapsed();
        if last.as_ref() != Some(&(by_slot.clone(), others)) {
            eprintln!(
                "{what}: {elapsed:>6.1?} leases by collector {by_slot:?}, elsewhere {others}"
            );
            last = Some((by_slot.clone(), others));
        }
        if done(&by_slot, others) {
            return elapsed;
        }
        if elapsed > limit {
            let logs: Vec<String> = collectors
                .iter()
                .flatten()
                .flat_map(|c| c.log().into_iter().rev().take(20).collect::<Vec<_>>())
                .collect();
            panic!(
                "{what}: not done within {limit:?}: {by_slot:?}, elsewhere {others}\n{}",
                logs.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An hourly Login file created a moment ago, so the next pass of its org collects it.
fn add_new_file(org: &MockOrg, n: usize) {
    let now = OffsetDateTime::now_utc();
    let this_hour =
        now.replace_time(time::Time::MIDNIGHT) + time::Duration::hours(i64::from(now.hour()));
    org.add_file(
        MockLogFile::builder("Login")
            .interval(Interval::Hourly)
            .log_date(this_hour - time::Duration::hours(1))
            .sequence(i32::try_from(n).unwrap())
            .created_date(now - time::Duration::seconds(1))
            .rows(20)
            .seed(1000 + n as u64)
            .build(),
    );
}

/// Every row of every (org, source) in salesforce_events: REQUEST_ID by EventLogFileId for
/// EventLogFile, sorted event ids for the objects.
type Delivered = BTreeMap<(String, String), BTreeMap<String, Vec<String>>>;

async fn delivered(client: &tokio_postgres::Client) -> Delivered {
    let mut rows: Delivered = BTreeMap::new();
    for row in client
        .query(
            "SELECT org, source, coalesce(record->>'EventLogFileId', ''),
                    coalesce(record->>'REQUEST_ID', event_id)
             FROM salesforce_events ORDER BY id",
            &[],
        )
        .await
        .unwrap()
    {
        rows.entry((row.get(0), row.get(1)))
            .or_default()
            .entry(row.get(2))
            .or_default()
            .push(row.get(3));
    }
    for (key, by_file) in rows.iter_mut() {
        if key.1 != "EventLogFile" {
            by_file.values_mut().for_each(|ids| ids.sort());
        }
    }
    rows
}

fn expected(orgs: &[MockOrg], objects: &BTreeMap<(String, String), Vec<String>>) -> Delivered {
    let mut want: Delivered = BTreeMap::new();
    for (i, org) in orgs.iter().enumerate() {
        want.insert((format!("org{i}"), "EventLogFile".into()), rows_in_org(org));
    }
    for (key, ids) in objects {
        let mut ids = ids.clone();
        ids.sort();
        want.insert(key.clone(), BTreeMap::from([(String::new(), ids)]));
    }
    want
}

#[tokio::test(flavor = "multi_thread")]
async fn three_collectors_share_24_leases_absorb_a_dead_ones_share_and_hand_over_to_a_newcomer() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database("balance").await;
    let key = demo_key(dir.path(), "demo.key");
    let now = OffsetDateTime::now_utc();
    let sources = format!(
        "sources = [{}]\n",
        SOURCES.map(|s| format!("\"{s}\"")).join(", ")
    );
    let mut text = format!("[defaults]\nsince = \"7d\"\nstate = \"{url}\"\nout = \"{url}\"\n");
    let mut orgs = Vec::new();
    let mut objects: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for i in 0..ORGS {
        let org = MockOrg::start().await;
        common::add_files(&org, 4, 20);
        for (seed, object) in ["LoginEvent", "SetupAuditTrail"].into_iter().enumerate() {
            let rows = salesforce_jwt_mock::generate_records(
                object,
                now - time::Duration::hours(20),
                now - time::Duration::minutes(10),
                30,
                (i * 2 + seed) as u64,
            );
            for row in org.add_records(object, rows).unwrap() {
                objects
                    .entry((format!("org{i}"), object.to_string()))
                    .or_default()
                    .push(salesforce_jwt::format::event_id::object_event_id(
                        object, &row,
                    ));
            }
        }
        // Downloads take a while, so that a pass is still delivering when a lease is due to
        // move: it must move only after the pass's commit.
        org.inject_always(Fault::Delay {
            target: FaultTarget::Download,
            delay: Duration::from_millis(150),
        });
        let table =
            org_table(&format!("org{i}"), &org, &key, "unused").replace("out = \"unused\"\n", "");
        text.push_str(&table);
        text.push_str(&sources);
        orgs.push(org);
    }
    let config = dir.path().join("sf-ingest.toml");
    std::fs::write(&config, text).unwrap();
    let client = connect(&url).await;

    // Three at once: first come does not mean first served for long.
    let mut collectors: Vec<Option<Collector>> = (0..COLLECTORS)
        .map(|_| Some(Collector::spawn(&config)))
        .collect();
    let share = UNITS.div_ceil(COLLECTORS);
    let converged = wait_for(
        "3 collectors start",
        &client,
        &collectors,
        Duration::from_secs(60),
        |by_slot, others| balanced(by_slot, others, share),
    )
    .await;
    eprintln!("balanced {converged:.1?} after the start");
    for collector in collectors.iter().flatten() {
        collector.wait_for_live_gauge(COLLECTORS);
    }
    // And it stays so: hysteresis, no lease going back and forth. (A collector that claimed
    // one over its share while its count of the others was not up to date yet hands it over
    // after its pass: for a moment that lease is nobody's.)
    let watch = Instant::now();
    while watch.elapsed() < TTL * 2 {
        let (by_slot, others) = distribution(&client, &collectors).await;
        assert!(
            others == 0
                && by_slot
                    .iter()
                    .flatten()
                    .all(|n| n.abs_diff(share) <= SPREAD),
            "unbalanced again: {by_slot:?}, elsewhere {others}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // New files while a collector dies: its rows are delivered once, by whoever takes over.
    for (i, org) in orgs.iter().enumerate() {
        add_new_file(org, 1 + i % 2);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut dead = collectors[0].take().unwrap();
    dead.kill();
    let dead_log = dead.log();
    let two_share = UNITS.div_ceil(COLLECTORS - 1);
    let absorbed = wait_for(
        "collector 0 killed",
        &client,
        &collectors,
        Duration::from_secs(60),
        |by_slot, others| balanced(by_slot, others, two_share),
    )
    .await;
    eprintln!("the dead collector's share absorbed {absorbed:.1?} after the kill");
    for collector in collectors.iter().flatten() {
        collector.wait_for_live_gauge(COLLECTORS - 1);
    }
    // Its leases expire within the TTL of its last renewal (before the kill); each of the
    // others claims at its next poll, an interval later. The margin is for the sampling
    // (every 100 ms) and a busy machine's scheduling.
    let margin = Duration::from_millis(1500);
    assert!(
        absorbed <= TTL + INTERVAL + margin,
        "absorbed after {absorbed:?}, more than the TTL ({TTL:?}) plus one interval \
         ({INTERVAL:?}) plus {margin:?}"
    );

    // A newcomer: the two hand leases over after a pass until each holds its share.
    for (i, org) in orgs.iter().enumerate() {
        add_new_file(org, 3 + i % 2);
    }
    collectors[0] = Some(Collector::spawn(&config));
    let joined = wait_for(
        "collector 0 restarted",
        &client,
        &collectors,
        Duration::from_secs(60),
        |by_slot, others| balanced(by_slot, others, share),
    )
    .await;
    eprintln!("balanced {joined:.1?} after a collector joined");

    // Every row exactly once.
    let want = expected(&orgs, &objects);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = delivered(&client).await;
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "salesforce_events differs from the orgs' rows: got {} (org, source) of {}",
            got.len(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut logs = dead_log;
    for collector in collectors.iter_mut().flatten() {
        assert!(collector.stop(), "{}", collector.log().join("\n"));
        logs.extend(collector.log());
    }
    assert_eq!(delivered(&client).await, want);
    let handed_over = logs
        .iter()
        .filter(|l| l.contains("handing the lease over after a pass"))
        .count();
    assert!(handed_over > 0, "no lease was handed over");
    // A hand-over is a release after a commit: nobody's lease was taken from under a delivery,
    // and no delivery found rows there already (a repeated one would).
    let mut passes = 0;
    for line in &logs {
        assert!(!line.contains("the lease was lost"), "{line}");
        assert!(!line.contains("org failed"), "{line}");
        if line.contains(r#""message":"pass done""#) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let present = v
                .pointer("/fields/already_present")
                .or_else(|| v.get("already_present"))
                .and_then(serde_json::Value::as_u64)
                .unwrap_or_else(|| panic!("no already_present: {line}"));
            assert_eq!(present, 0, "{line}");
            passes += 1;
        }
    }
    assert!(passes > UNITS, "{passes} passes");
    // The heartbeat rows of the stopped collectors are gone; the killed one's has expired.
    let live: i64 = client
        .query_one(
            "SELECT count(*) FROM sfjwt_collectors WHERE expires_at > now()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 0);
}
