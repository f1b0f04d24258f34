//! Many sf-ingest processes sharing orgs through PostgreSQL state: every row of every org ends
//! in salesforce_events exactly once, whatever is killed or restarted meanwhile.
//!
//! Needs the test server (`scripts/test`, or `eval "$(scripts/pg-test-cluster start)"`); fails,
//! never skips, without it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{add_files, demo_key, org_table, rows_in_org, sf_ingest};
use salesforce_jwt_mock::MockOrg;

const ORGS: usize = 5;
const COLLECTORS: usize = 3;
/// A bound on the wait for the next log line, so that a hang fails instead of blocking CI.
const QUIET_LIMIT: Duration = Duration::from_secs(120);

fn admin_url() -> String {
    std::env::var("SFJWT_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "SFJWT_TEST_PG_URL is not set: start the test server first with \
             `eval \"$(scripts/pg-test-cluster start)\"` (or run scripts/test)"
        )
    })
}

fn password_of(url: &str) -> String {
    let userinfo = url.split("://").nth(1).unwrap().split('@').next().unwrap();
    userinfo.split(':').nth(1).unwrap().to_string()
}

async fn fresh_database(admin: &str, hint: &str) -> String {
    let name = format!("t_{hint}_{}", std::process::id());
    let (client, connection) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
}

/// Every org's rows in salesforce_events, as `rows_in_org` gives them: REQUEST_ID by
/// EventLogFileId, in insertion order.
async fn rows_in_table(url: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut rows: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for row in client
        .query(
            "SELECT org, record->>'EventLogFileId', record->>'REQUEST_ID', event_id, source
             FROM salesforce_events ORDER BY id",
            &[],
        )
        .await
        .unwrap()
    {
        let source: String = row.get(4);
        assert_eq!(source, "EventLogFile");
        let event_id: String = row.get(3);
        assert!(!event_id.is_empty());
        rows.entry(row.get(0))
            .or_default()
            .entry(row.get(1))
            .or_default()
            .push(row.get(2));
    }
    rows
}

/// A small xorshift generator: the kills are random, and the seed is printed so a failure can be
/// replayed with SFJWT_TEST_SEED.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("SFJWT_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("random seed (SFJWT_TEST_SEED): {seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Three `sf-ingest --follow` processes on one config; their log lines arrive on one channel
/// tagged with the process's slot and generation (a restarted process is a new generation).
struct Collectors {
    config: PathBuf,
    children: Vec<(Child, u32)>,
    tx: mpsc::Sender<(usize, u32, String)>,
    rx: mpsc::Receiver<(usize, u32, String)>,
    log: Vec<String>,
}

impl Collectors {
    fn start(config: &Path) -> Collectors {
        let (tx, rx) = mpsc::channel();
        let mut c = Collectors {
            config: config.to_path_buf(),
            children: Vec::new(),
            tx,
            rx,
            log: Vec::new(),
        };
        for slot in 0..COLLECTORS {
            let child = c.spawn(slot, 0);
            c.children.push((child, 0));
        }
        c
    }

    fn spawn(&self, slot: usize, generation: u32) -> Child {
        let mut child = sf_ingest()
            .args([
                "--log-format",
                "json",
                "-v",
                "--follow",
                "1",
                "--lease-ttl",
                "3",
                "--config",
            ])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send((slot, generation, line)).is_err() {
                    break;
                }
            }
        });
        child
    }

    /// The next log line of any process.
    fn next(&mut self) -> (usize, u32, String) {
        match self.rx.recv_timeout(QUIET_LIMIT) {
            Ok((slot, generation, line)) => {
                self.log.push(format!("[{slot}.{generation}] {line}"));
                (slot, generation, line)
            }
            Err(_) => panic!(
                "no log line for {QUIET_LIMIT:?}; the last ones:\n{}",
                self.tail()
            ),
        }
    }

    fn tail(&self) -> String {
        let from = self.log.len().saturating_sub(80);
        self.log[from..].join("\n")
    }

    /// SIGKILL, then a new process in the same slot.
    fn kill_and_restart(&mut self, slot: usize) {
        let (child, generation) = &mut self.children[slot];
        child.kill().unwrap();
        child.wait().unwrap();
        *generation += 1;
        let generation = *generation;
        let replacement = self.spawn(slot, generation);
        self.children[slot].0 = replacement;
    }

    /// SIGTERM to all; each must exit cleanly.
    fn stop(&mut self) {
        // A process restarted a moment ago may not listen for signals yet: wait until each has
        // logged its start (which comes after it installs its handlers).
        let mut started = [false; COLLECTORS];
        for line in &self.log {
            if line.contains("starting") {
                for (slot, (_, generation)) in self.children.iter().enumerate() {
                    started[slot] |= line.starts_with(&format!("[{slot}.{generation}]"));
                }
            }
        }
        while started.iter().any(|s| !s) {
            let (slot, generation, line) = self.next();
            if generation == self.children[slot].1 && line.contains("starting") {
                started[slot] = true;
            }
        }
        for (child, _) in &self.children {
            let pid = i32::try_from(child.id()).unwrap();
            // SAFETY: kill(2) on our own child's pid, which has not been waited for yet.
            assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        }
        // Bounded, so that a process that ignores SIGTERM fails the test with its log.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut statuses = Vec::new();
        for slot in 0..self.children.len() {
            loop {
                if let Some(status) = self.children[slot].0.try_wait().unwrap() {
                    statuses.push(status);
                    break;
                }
                if std::time::Instant::now() > deadline {
                    while let Ok((slot, generation, line)) = self.rx.try_recv() {
                        self.log.push(format!("[{slot}.{generation}] {line}"));
                    }
                    panic!("process {slot} did not exit on SIGTERM:\n{}", self.tail());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // The readers end with the processes; keep their last lines.
        while let Ok((slot, generation, line)) = self.rx.recv_timeout(Duration::from_millis(200)) {
            self.log.push(format!("[{slot}.{generation}] {line}"));
        }
        assert!(
            statuses.iter().all(|s| s.success()),
            "{statuses:?}\n{}",
            self.tail()
        );
    }
}

/// Five orgs with files, and a config whose [defaults] put state and rows in `url`.
async fn orgs_and_config(
    dir: &Path,
    url: &str,
) -> (Vec<MockOrg>, PathBuf, BTreeMap<String, usize>) {
    let key = demo_key(dir, "demo.key");
    let mut orgs = Vec::new();
    let mut text = format!("[defaults]\nsince = \"7d\"\nstate = \"{url}\"\nout = \"{url}\"\n");
    let mut totals = BTreeMap::new();
    for i in 0..ORGS {
        let org = MockOrg::start().await;
        add_files(&org, 8 + i * 2, 25);
        let name = format!("org{i}");
        totals.insert(
            name.clone(),
            rows_in_org(&org).values().map(Vec::len).sum::<usize>(),
        );
        // Per-org tables name no out or state: both come from [defaults].
        let table = org_table(&name, &org, &key, "unused").replace("out = \"unused\"\n", "");
        text.push_str(&table);
        orgs.push(org);
    }
    let config = dir.join("sf-ingest.toml");
    std::fs::write(&config, text).unwrap();
    (orgs, config, totals)
}

/// Whether `line` reports a pass of `org` that left all `total` rows delivered.
/// The `org` field of a JSON log line.
fn org_of(line: &str) -> Option<String> {
    let (_, rest) = line.split_once(r#""org":""#)?;
    rest.split_once('"').map(|(org, _)| org.to_string())
}

fn org_done(line: &str, totals: &BTreeMap<String, usize>) -> Option<String> {
    if !line.contains(r#""message":"pass done""#) {
        return None;
    }
    totals.iter().find_map(|(name, total)| {
        (line.contains(&format!(r#""org":"{name}""#))
            && line.contains(&format!(r#""rows_delivered_in_all":{total}"#)))
        .then(|| name.clone())
    })
}

async fn assert_exactly_once(url: &str, orgs: &[MockOrg], log: &[String]) {
    let table = rows_in_table(url).await;
    for (i, org) in orgs.iter().enumerate() {
        let name = format!("org{i}");
        assert_eq!(
            table.get(&name).cloned().unwrap_or_default(),
            rows_in_org(org),
            "org {name}: salesforce_events differs from the org's rows"
        );
    }
    let password = password_of(url);
    assert!(
        !log.iter().any(|l| l.contains(&password)),
        "a log line shows the database password"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn three_collectors_killed_at_random_deliver_every_row_of_five_orgs_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(&admin_url(), "kills").await;
    let (orgs, config, totals) = orgs_and_config(dir.path(), &url).await;
    let mut rng = Rng::new();
    let mut collectors = Collectors::start(&config);

    let mut kills = 6;
    // The victim and how many more of its log lines to wait for before killing it.
    let mut victim = (rng.below(COLLECTORS as u64) as usize, 3 + rng.below(40));
    let mut done: BTreeMap<String, bool> = BTreeMap::new();
    let (mut claimed, mut skipped, mut took_over) = (false, false, false);
    // The slot that last claimed a lease: every other kill is aimed there, so that leases are
    // certainly left behind by a dead holder and taken over.
    let mut holder = 0;
    while kills > 0 || done.len() < ORGS {
        let (slot, generation, line) = collectors.next();
        if line.contains("collecting under a lease") {
            claimed = true;
            holder = slot;
        }
        skipped |= line.contains("skipping it this round");
        took_over |= line.contains("took the org over");
        if let Some(org) = org_done(&line, &totals) {
            done.insert(org, true);
        }
        if kills > 0 && slot == victim.0 && generation == collectors.children[slot].1 {
            victim.1 = victim.1.saturating_sub(1);
            if victim.1 == 0 {
                collectors.kill_and_restart(slot);
                kills -= 1;
                let slot = if kills % 2 == 0 {
                    holder
                } else {
                    rng.below(COLLECTORS as u64) as usize
                };
                victim = (slot, 3 + rng.below(40));
            }
        }
    }
    collectors.stop();
    assert!(claimed && skipped && took_over, "{}", collectors.tail());
    assert_exactly_once(&url, &orgs, &collectors.log).await;
}

/// A private PostgreSQL server (never the shared one: restarting that would disturb every other
/// test), stopped and removed when dropped.
struct PrivateCluster {
    env: BTreeMap<String, String>,
}

impl PrivateCluster {
    fn start() -> PrivateCluster {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-test-cluster");
        let output = Command::new(&script).arg("start").output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let env = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
            .collect();
        PrivateCluster { env }
    }

    fn url(&self) -> &str {
        &self.env["SFJWT_TEST_PG_URL"]
    }

    fn pg_ctl(&self, args: &[&str]) {
        let bin = Path::new(&self.env["SFJWT_TEST_PG_BIN"]).join("pg_ctl");
        let mut cmd = if unsafe { libc::geteuid() } == 0 {
            let mut c = Command::new("runuser");
            c.args(["-u", &self.env["SFJWT_TEST_PG_OWNER"], "--"])
                .arg(bin);
            c
        } else {
            Command::new(bin)
        };
        let status = cmd
            .args(["-D", &self.env["SFJWT_TEST_PG_DATA"], "-m", "fast", "-w"])
            .args(args)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl {args:?} failed");
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-test-cluster");
        let _ = Command::new(script)
            .arg("stop")
            .envs(&self.env)
            .stdout(Stdio::null())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_restarted_mid_run_the_collectors_go_on_without_loss_or_repetition() {
    let cluster = PrivateCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(cluster.url(), "restart").await;
    let (orgs, config, totals) = orgs_and_config(dir.path(), &url).await;
    let mut collectors = Collectors::start(&config);

    // Restart once some files are in, while the others are still being collected.
    let mut files_done = 0;
    let mut restarted = false;
    let mut done: BTreeMap<String, bool> = BTreeMap::new();
    let mut failed_and_retried = false;
    while !restarted || done.len() < ORGS {
        let (_, _, line) = collectors.next();
        if line.contains("EventLogFile done") {
            files_done += 1;
        }
        if !restarted && files_done == 10 {
            cluster.pg_ctl(&["restart"]);
            restarted = true;
        }
        failed_and_retried |= restarted && line.contains("tried again later");
        if let Some(org) = org_done(&line, &totals)
            && restarted
        {
            done.insert(org, true);
        }
    }
    collectors.stop();
    let trouble: Vec<&String> = collectors
        .log
        .iter()
        .filter(|l| l.contains(r#""level":"WARN""#) || l.contains(r#""level":"ERROR""#))
        .collect();
    eprintln!("warnings and errors:\n{trouble:#?}");
    // The restart was noticed (a failed statement or renewal), and got over.
    assert!(
        failed_and_retried || !trouble.is_empty(),
        "{}",
        collectors.tail()
    );
    assert_exactly_once(&url, &orgs, &collectors.log).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_or_a_missing_database_fails_the_org_naming_the_fix_never_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let org = MockOrg::start().await;
    add_files(&org, 1, 3);
    let admin = admin_url();
    let password = password_of(&admin);
    let wrong = admin.replace(&format!(":{password}@"), ":not-the-Pw-42@");
    let missing = format!("{}/no_such_db_here", admin.rsplit_once('/').unwrap().0);
    for (url, fix) in [
        (wrong, "Check the user name and password"),
        (missing, "create it (createdb NAME)"),
    ] {
        let config = dir.path().join("sf-ingest.toml");
        std::fs::write(
            &config,
            format!(
                "[defaults]\nsince = \"7d\"\nstate = \"{url}\"\nout = \"{url}\"\n{}",
                org_table("acme", &org, &key, "x").replace("out = \"x\"\n", "")
            ),
        )
        .unwrap();
        let output = common::run(sf_ingest().arg("--config").arg(&config));
        let stderr = common::stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(fix), "{stderr}");
        assert!(
            !stderr.contains(&password) && !stderr.contains("not-the-Pw-42"),
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_state_with_a_file_output_delivers_once_and_a_second_run_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let url = fresh_database(&admin_url(), "file_out").await;
    let org = MockOrg::start().await;
    add_files(&org, 4, 6);
    let config = dir.path().join("sf-ingest.toml");
    std::fs::write(
        &config,
        format!(
            "[defaults]\nsince = \"7d\"\nstate = \"{url}\"\n{}",
            org_table("acme", &org, &key, "acme.ndjson")
        ),
    )
    .unwrap();
    for _ in 0..2 {
        let output = common::run(sf_ingest().arg("--config").arg(&config));
        assert!(output.status.success(), "{}", common::stderr(&output));
        assert_eq!(
            common::rows_in_output(&dir.path().join("acme.ndjson")),
            rows_in_org(&org)
        );
    }
    // The checkpoint is in PostgreSQL, not beside the file.
    assert!(!dir.path().join("acme.ndjson.checkpoint.json").exists());
    assert!(rows_in_table(&url).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_collector_that_was_taken_over_stops_and_writes_nothing_behind_the_new_holder() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(&admin_url(), "pause").await;
    let (orgs, config, totals) = orgs_and_config(dir.path(), &url).await;
    let mut collectors = Collectors::start(&config);
    let signal = |c: &Collectors, slot: usize, sig: i32| {
        let pid = i32::try_from(c.children[slot].0.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid, which has not been waited for yet.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    };
    // Pause the first holder once it has delivered a file (SIGSTOP: a GC pause, a suspended
    // VM), until another process has taken an org over from it: from it by name (`host:pid`),
    // since on a loaded machine a live holder can miss a renewal too, and resuming the paused
    // one on that takeover could let it renew before anyone took its own org.
    //
    // Only a takeover of an org the paused process still held counts. The pause lands some
    // time after the line that asked for it: by then the process may have ended that pass and
    // handed the org over (it holds more than its share), and the first takeover from it is of
    // the org it gave up. Resuming on that one let it renew its other leases before they ran
    // out, so nothing was taken from it and the test waited for a notice that never came. Its
    // hand-over line is written before the release, so it is on its pipe before any takeover.
    let mut handed_over: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    let mut paused = None;
    let mut resumed = false;
    let mut noticed = false;
    let mut done: BTreeMap<String, bool> = BTreeMap::new();
    // Lines keep coming (`--follow 1`), so `next`'s quiet limit alone would not end a run
    // whose condition never comes true: fail with the log instead of hanging CI.
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    while !noticed || done.len() < ORGS {
        assert!(
            std::time::Instant::now() < deadline,
            "paused {paused:?}, resumed {resumed}, noticed {noticed}, done {done:?}; the last lines:\n{}",
            collectors.tail()
        );
        let (slot, _, line) = collectors.next();
        if let Some(org) = org_of(&line) {
            let given_up = handed_over.entry(slot).or_default();
            if line.contains("handing the lease over") {
                given_up.insert(org);
            } else if line.contains("collecting under a lease") {
                given_up.remove(&org);
            }
        }
        if paused.is_none() && line.contains("EventLogFile done") {
            signal(&collectors, slot, libc::SIGSTOP);
            paused = Some(slot);
        }
        if let Some(p) = paused
            && !resumed
            && slot != p
            && line.contains("took the org over")
            && line.contains(&format!(r#":{}""#, collectors.children[p].0.id()))
            && org_of(&line).is_some_and(|org| {
                !handed_over
                    .get(&p)
                    .is_some_and(|given_up| given_up.contains(&org))
            })
        {
            signal(&collectors, p, libc::SIGCONT);
            resumed = true;
        }
        // The paused process finds out from its next renewal or its next commit, and stops.
        noticed |= resumed
            && Some(slot) == paused
            && (line.contains("lease taken over") || line.contains("no longer valid"));
        if let Some(org) = org_done(&line, &totals)
            && resumed
        {
            done.insert(org, true);
        }
    }
    collectors.stop();
    assert_exactly_once(&url, &orgs, &collectors.log).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn state_and_out_on_the_command_line_put_one_orgs_rows_in_salesforce_events() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let url = fresh_database(&admin_url(), "cli").await;
    let org = MockOrg::start().await;
    add_files(&org, 3, 5);
    let output = common::run(common::sf_ingest_for(&org, &key).args([
        "--since",
        "7d",
        "--lease-ttl",
        "10",
        "--state",
        &url,
        "--out",
        &url,
    ]));
    let stderr = common::stderr(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains(&password_of(&url)), "{stderr}");
    let table = rows_in_table(&url).await;
    let [(_, rows)] = &table.into_iter().collect::<Vec<_>>()[..] else {
        panic!("one org")
    };
    assert_eq!(*rows, rows_in_org(&org));
}

#[tokio::test(flavor = "multi_thread")]
async fn real_time_sources_each_get_their_own_lease_and_every_row_once_in_salesforce_events() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let url = fresh_database(&admin_url(), "sources").await;
    let org = MockOrg::start().await;
    add_files(&org, 2, 4);
    let now = time::OffsetDateTime::now_utc();
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for object in ["LoginEvent", "SetupAuditTrail"] {
        let rows = salesforce_jwt_mock::generate_records(
            object,
            now - time::Duration::hours(20),
            now - time::Duration::minutes(10),
            25,
            3,
        );
        for row in org.add_records(object, rows).unwrap() {
            let id = salesforce_jwt::format::event_id::object_event_id(object, &row);
            expected.entry(object.to_string()).or_default().push(id);
        }
    }
    let run = || {
        common::run(
            common::sf_ingest_for(&org, &key)
                .args([
                    "--since",
                    "7d",
                    "--lease-ttl",
                    "10",
                    "--state",
                    &url,
                    "--out",
                    &url,
                ])
                .args(["--source", "EventLogFile", "--source", "LoginEvent"])
                .args(["--source", "SetupAuditTrail"]),
        )
    };
    for _ in 0..2 {
        // The second run adds nothing: every source goes on from its own checkpoint row.
        let output = run();
        let stderr = common::stderr(&output);
        assert!(output.status.success(), "{stderr}");
        assert!(!stderr.contains(&password_of(&url)), "{stderr}");
    }
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut stored: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in client
        .query(
            "SELECT source, event_id, record->>'SObjectType' FROM salesforce_events
             WHERE source <> 'EventLogFile' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
    {
        let source: String = row.get(0);
        let sobject: String = row.get(2);
        assert_eq!(source, sobject, "a row is stored under its own source");
        stored.entry(source).or_default().push(row.get(1));
    }
    for ids in expected.values_mut().chain(stored.values_mut()) {
        ids.sort();
    }
    assert_eq!(stored, expected, "every real-time row exactly once");
    let elf: i64 = client
        .query_one(
            "SELECT count(*) FROM salesforce_events WHERE source = 'EventLogFile'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let elf_expected: usize = rows_in_org(&org).values().map(Vec::len).sum();
    assert_eq!(elf as usize, elf_expected);
    let mut leases: Vec<String> = client
        .query("SELECT source FROM sfjwt_leases", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    leases.sort();
    assert_eq!(leases, ["EventLogFile", "LoginEvent", "SetupAuditTrail"]);
}

/// A config collecting EventLogFile of `org` as "acme" into `acme.ndjson` and its LoginEvent as
/// "acme-rt" into `rt.ndjson` (one file per task), with the checkpoints in `url`.
async fn acme_with_login_events(dir: &Path, url: &str) -> (MockOrg, PathBuf) {
    let key = demo_key(dir, "demo.key");
    let org = MockOrg::start().await;
    add_files(&org, 3, 5);
    let now = time::OffsetDateTime::now_utc();
    let rows = salesforce_jwt_mock::generate_records(
        "LoginEvent",
        now - time::Duration::days(2),
        now - time::Duration::minutes(10),
        30,
        3,
    );
    org.add_records("LoginEvent", rows).unwrap();
    let config = dir.join("sf-ingest.toml");
    std::fs::write(
        &config,
        format!(
            "[defaults]\nsince = \"7d\"\nstate = \"{url}\"\n{}{}sources = [\"LoginEvent\"]\n",
            org_table("acme", &org, &key, "acme.ndjson"),
            org_table("acme-rt", &org, &key, "rt.ndjson"),
        ),
    )
    .unwrap();
    (org, config)
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_show_which_process_holds_each_sources_lease() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(&admin_url(), "metrics").await;
    let (_org, config) = acme_with_login_events(dir.path(), &url).await;
    let spawn = || {
        common::Running::spawn(sf_ingest().arg("--config").arg(&config).args([
            "--follow",
            "60",
            "--metrics-addr",
            "127.0.0.1:0",
        ]))
    };
    let holder = spawn();
    let holder_addr = holder.metrics_addr();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while holder.count("pass done") < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", holder.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let other = spawn();
    let other_addr = other.metrics_addr();
    other.wait_for("another process collects this org");
    while other.count("another process collects this org") < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", other.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    for (addr, held) in [(&holder_addr, 1.0), (&other_addr, 0.0)] {
        let (status, body) = common::http_get(addr, "/metrics");
        assert_eq!(status, 200);
        println!("{body}");
        let scrape = common::parse_metrics(&body);
        assert_eq!(scrape.types["sf_ingest_lease_held"], "gauge");
        for (org, source) in [("acme", "EventLogFile"), ("acme-rt", "LoginEvent")] {
            assert_eq!(
                scrape.value("sf_ingest_lease_held", &[("org", org), ("source", source)]),
                Some(held),
                "{source} at {addr}"
            );
        }
        assert_eq!(scrape.of("sf_ingest_lease_held").len(), 2);
    }
    let (_, body) = common::http_get(&holder_addr, "/metrics");
    let scrape = common::parse_metrics(&body);
    let rows = common::rows_in_output(&dir.path().join("acme.ndjson"));
    assert_eq!(
        scrape.value(
            "sf_ingest_rows_total",
            &[("org", "acme"), ("source", "EventLogFile")]
        ),
        Some(rows.values().map(Vec::len).sum::<usize>() as f64)
    );
    assert!(other.stop().success());
    assert!(holder.stop().success());
}

/// The state tables as text, to tell whether anything wrote to them.
async fn state_tables(url: &str) -> Vec<String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut rows = Vec::new();
    for query in [
        "SELECT org || source || fencing_token || checkpoint::text || updated_at::text FROM sfjwt_checkpoints ORDER BY 1",
        "SELECT org || source || holder || fencing_token || expires_at::text FROM sfjwt_leases ORDER BY 1",
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    ] {
        match client.query(query, &[]).await {
            Ok(result) => rows.extend(result.iter().map(|r| r.get::<_, String>(0))),
            Err(e) => rows.push(format!("{query}: {e}")),
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoint_show_and_reset_on_postgres_state_read_only_and_refused_under_a_lease() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(&admin_url(), "ckpt").await;
    let password = password_of(&url);
    let (org, config) = acme_with_login_events(dir.path(), &url).await;
    let show = || {
        let output = common::run(sf_ingest().args(["checkpoint", "show", "--state", &url]));
        assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
        let stdout = String::from_utf8(output.stdout.clone()).unwrap();
        assert!(!stdout.contains(&password) && !common::stderr(&output).contains(&password));
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()
    };

    // A database no collector used: nothing to show, and no table created.
    let before = state_tables(&url).await;
    assert_eq!(show(), serde_json::json!({}));
    assert_eq!(state_tables(&url).await, before);

    let output = common::run(sf_ingest().arg("--config").arg(&config));
    assert!(output.status.success(), "{}", common::stderr(&output));
    let out = dir.path().join("rt.ndjson");
    let login_rows = |path: &Path| {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| l.contains(r#""SObjectType":"LoginEvent""#))
            .count()
    };
    assert_eq!(login_rows(&out), 30);

    let before = state_tables(&url).await;
    let shown = show();
    assert_eq!(
        state_tables(&url).await,
        before,
        "show wrote to the database"
    );
    assert_eq!(
        shown.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["acme", "acme-rt"]
    );
    let mut acme = shown["acme"].as_object().unwrap().clone();
    assert_eq!(acme.keys().collect::<Vec<_>>(), ["EventLogFile"]);
    let rt = shown["acme-rt"].as_object().unwrap();
    assert_eq!(rt.keys().collect::<Vec<_>>(), ["LoginEvent"]);
    acme.insert("LoginEvent".into(), rt["LoginEvent"].clone());
    let newest = org.files().iter().map(|f| f.created_date).max().unwrap();
    let elf = &acme["EventLogFile"];
    assert_eq!(
        elf["position"],
        newest
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    );
    // Released at the end of the run.
    assert_eq!(elf["lease"], serde_json::Value::Null);
    assert_eq!(acme["LoginEvent"]["kind"], "BigObject");
    for entry in acme.values() {
        let mut keys: Vec<&str> = entry
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        let expected: &[&str] = if entry["kind"] == "EventLogFile" {
            &["kind", "lease", "position", "since", "updated_at"]
        } else {
            &["kind", "lease", "position", "updated_at"]
        };
        assert_eq!(keys, expected, "{entry}");
    }

    let reset = || {
        common::run(sf_ingest().args([
            "checkpoint",
            "reset",
            "--source",
            "LoginEvent",
            "--since",
            "7d",
            "--state",
            &url,
        ]))
    };
    // A collector holds LoginEvent's lease: refused, naming the holder.
    let collector = common::Running::spawn(
        sf_ingest()
            .arg("--config")
            .arg(&config)
            .args(["--follow", "60"]),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while collector.count("pass done") < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", collector.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let held = show();
    assert!(
        held["acme-rt"]["LoginEvent"]["lease"]["holder"]
            .as_str()
            .is_some_and(|h| h.ends_with(&format!(":{}", collector.child.id()))),
        "{held}"
    );
    let refused = reset();
    assert_eq!(refused.status.code(), Some(1));
    let err = common::stderr(&refused);
    assert!(
        err.contains("refused") && err.contains(&format!(":{} collects", collector.child.id())),
        "{err}"
    );
    assert!(!err.contains(&password), "{err}");
    assert!(collector.stop().success());
    assert_eq!(login_rows(&out), 30);

    // Rewound: said so, and the next run delivers LoginEvent's rows again.
    let rewound = reset();
    assert_eq!(
        rewound.status.code(),
        Some(0),
        "{}",
        common::stderr(&rewound)
    );
    let err = common::stderr(&rewound);
    assert!(
        err.contains("LoginEvent rewound to") && err.contains("AGAIN"),
        "{err}"
    );
    assert!(!err.contains(&password), "{err}");
    let output = common::run(sf_ingest().arg("--config").arg(&config));
    assert!(output.status.success(), "{}", common::stderr(&output));
    assert_eq!(login_rows(&out), 60);
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoint_reset_refuses_a_source_whose_rows_go_to_salesforce_events() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let url = fresh_database(&admin_url(), "reset_pg_out").await;
    let org = MockOrg::start().await;
    add_files(&org, 2, 5);
    let output = common::run(
        common::sf_ingest_for(&org, &key).args(["--since", "7d", "--state", &url, "--out", &url]),
    );
    assert!(output.status.success(), "{}", common::stderr(&output));
    let before = state_tables(&url).await;
    let refused = common::run(sf_ingest().args([
        "checkpoint",
        "reset",
        "--source",
        "EventLogFile",
        "--since",
        "7d",
        "--state",
        &url,
    ]));
    assert_eq!(refused.status.code(), Some(1));
    let err = common::stderr(&refused);
    assert!(
        err.contains("refused") && err.contains("salesforce_events, whose unique key"),
        "{err}"
    );
    assert!(!err.contains(&password_of(&url)), "{err}");
    // Nothing moved; the lease the reset took was released (its token counted).
    let after = state_tables(&url).await;
    assert_eq!(after[0], before[0], "the checkpoint changed");
}
