//! Combinations that used to lose or mix up data, refused or guarded (issue 21): one output file
//! for several sources with PostgreSQL checkpoints, the demo writing into a real output, a
//! checkpoint going on in another org, secrets in TOML errors and readable files, and bounds.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use common::*;
use salesforce_jwt_mock::MockOrg;

/// A PostgreSQL URL nothing listens at: every test here must be refused before connecting.
const PG: &str = "postgres://sf:s3cret-pw@127.0.0.1:1/security";

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn one_output_file_for_several_sources_with_postgres_state_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    chmod(&key, 0o600);
    let org = MockOrg::start().await;
    let out = dir.path().join("events.ndjson");

    for check in [true, false] {
        let mut cmd = sf_ingest_for(&org, &key);
        cmd.args(["--state", PG, "--out"]).arg(&out).args([
            "--source",
            "LoginEvent",
            "--source",
            "EventLogFile",
        ]);
        if check {
            cmd.arg("--check");
        }
        let output = run(&mut cmd);
        assert_eq!(output.status.code(), Some(2), "--check {check}");
        let err = stderr(&output);
        assert!(
            err.contains("--out: one file cannot take several sources (LoginEvent, EventLogFile)")
                && err.contains("Set --out to the same postgres:// URL as --state")
                && err.contains("one sf-ingest per --source"),
            "{err}"
        );
        assert!(!err.contains("s3cret-pw"), "{err}");
        assert!(!out.exists(), "refused before the output is created");
    }
    // One source per file is fine.
    let output = run(sf_ingest_for(&org, &key)
        .args(["--check", "--state", PG, "--out"])
        .arg(&out)
        .args(["--source", "LoginEvent"]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    // The same in a config file, with the state shared from [defaults].
    let config = dir.path().join("sf-ingest.toml");
    std::fs::write(
        &config,
        format!(
            "[defaults]\nstate = \"{PG}\"\n{}sources = [\"EventLogFile\", \"LoginEvent\"]\n{}",
            org_table("acme", &org, &key, "acme.ndjson"),
            org_table("acme-logins", &org, &key, "logins.ndjson")
        ),
    )
    .unwrap();
    chmod(&config, 0o600);
    for args in [&["--check"][..], &[]] {
        let output = run(sf_ingest().args(args).arg("--config").arg(&config));
        assert_eq!(output.status.code(), Some(2));
        let err = stderr(&output);
        assert!(
            err.contains(r#"org "acme": out: one file cannot take several sources"#)
                && err.contains("give each source its own [[org]] entry"),
            "{err}"
        );
        assert!(!err.contains(r#"org "acme-logins""#), "{err}");
        assert!(!dir.path().join("acme.ndjson").exists());
    }
}

#[test]
fn out_or_state_without_an_org_exits_2_instead_of_writing_demo_rows() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let state = dir.path().join("state.json");
    for (flag, path) in [("--out", &out), ("--state", &state)] {
        let output = run(sf_ingest().arg(flag).arg(path));
        assert_eq!(output.status.code(), Some(2), "{flag}");
        let err = stderr(&output);
        assert!(
            err.contains(&format!("{flag}: no org is configured"))
                && err.contains("SF_AUDIENCE_URL")
                && err.contains("SF_TOKEN_URL")
                && err.contains("--config FILE"),
            "{err}"
        );
        assert!(!err.contains("DEMO"), "{err}");
        assert!(output.stdout.is_empty());
        assert!(!out.exists() && !state.exists());
        assert!(!Path::new(&format!("{}.checkpoint.json", out.display())).exists());
    }
}

#[test]
fn help_names_every_kind_of_source_and_both_formats_and_the_sample_says_ecs_exists() {
    let help = run(sf_ingest().arg("--help"));
    let text = String::from_utf8_lossy(&help.stdout);
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.contains("EventLogFile")
            && first.contains("Real-Time Event Monitoring")
            && first.contains("ECS"),
        "{first}"
    );
    let sample = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sf-ingest.example.toml"),
    )
    .unwrap();
    assert!(!sample.contains("is coming"), "the sample still says so");
}

fn checkpoint_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_records_its_org_and_another_org_is_refused_with_the_output_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    chmod(&key, 0o600);
    let first = MockOrg::builder().org_id("00D00000000AAAA").start().await;
    let other = MockOrg::builder().org_id("00D00000000BBBB").start().await;
    add_files(&first, 6, 5);
    add_files(&other, 4, 5);
    assert_ne!(first.org_id(), other.org_id());
    let out = dir.path().join("events.ndjson");
    let state = dir.path().join("events.ndjson.checkpoint.json");

    let output = run(sf_ingest_for(&first, &key)
        .args(["--since", "7d", "--out"])
        .arg(&out));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(rows_in_output(&out), rows_in_org(&first));
    assert_eq!(checkpoint_json(&state)["org_id"], first.org_id());

    // Another org on the same output and checkpoint, by EventLogFile and by a real-time
    // object alone.
    let before = (std::fs::read(&out).unwrap(), std::fs::read(&state).unwrap());
    for sources in [
        &["--source", "EventLogFile"][..],
        &["--source", "LoginEvent"],
    ] {
        let output = run(sf_ingest_for(&other, &key)
            .args(["--since", "7d", "--out"])
            .arg(&out)
            .args(sources));
        assert_eq!(output.status.code(), Some(1), "{sources:?}");
        let err = stderr(&output);
        assert!(
            err.contains(&first.org_id())
                && err.contains(&other.org_id())
                && err.contains(
                    "Point --state and --out (state and out in a config file) at this org's own"
                ),
            "{err}"
        );
        assert_eq!(
            (std::fs::read(&out).unwrap(), std::fs::read(&state).unwrap()),
            before,
            "{sources:?}: the output and the checkpoint are untouched"
        );
    }

    // A checkpoint written before org ids were recorded adopts the first org it meets, and
    // goes on from its positions.
    let mut old = checkpoint_json(&state);
    old.as_object_mut().unwrap().remove("org_id");
    std::fs::write(&state, serde_json::to_vec(&old).unwrap()).unwrap();
    add_files(&first, 8, 5);
    let output = run(sf_ingest_for(&first, &key)
        .args(["--since", "7d", "--out"])
        .arg(&out));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(rows_in_output(&out), rows_in_org(&first));
    assert_eq!(checkpoint_json(&state)["org_id"], first.org_id());
    let output = run(sf_ingest_for(&other, &key)
        .args(["--since", "7d", "--out"])
        .arg(&out));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(rows_in_output(&out), rows_in_org(&first));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_toml_syntax_error_says_where_without_echoing_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let org = MockOrg::start().await;
    let config = dir.path().join("sf-ingest.toml");
    // Line 4: an unterminated string holding a password.
    std::fs::write(
        &config,
        format!(
            "max_downloads = 4\n\n[defaults]\nstate = \"{PG}\n{}",
            org_table("acme", &org, &key, "acme.ndjson")
        ),
    )
    .unwrap();
    chmod(&config, 0o600);
    let output = run(sf_ingest().arg("--check").arg("--config").arg(&config));
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        !err.contains("s3cret-pw") && !err.contains("127.0.0.1:1"),
        "{err}"
    );
    assert!(err.contains("TOML syntax error at line 4"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn config_and_key_files_readable_by_group_or_others_are_warned_about_by_name_and_mode() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let org = MockOrg::start().await;
    let config = dir.path().join("sf-ingest.toml");
    std::fs::write(&config, org_table("acme", &org, &key, "acme.ndjson")).unwrap();

    chmod(&config, 0o644);
    chmod(&key, 0o640);
    let output = run(sf_ingest().arg("--check").arg("--config").arg(&config));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let err = stderr(&output);
    let warned = |path: &Path, mode: &str| {
        err.lines().any(|l| {
            l.contains("WARN") && l.contains(&path.display().to_string()) && l.contains(mode)
        })
    };
    assert!(warned(&config, "0644"), "{err}");
    assert!(warned(&key, "0640"), "{err}");

    // The key of the SF_* variables too.
    let output = run(sf_ingest_for(&org, &key).arg("--check"));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.lines().any(|l| l.contains("WARN")
            && l.contains(&key.display().to_string())
            && l.contains("0640")),
        "{err}"
    );

    // Owner-only files: no warning.
    chmod(&config, 0o600);
    chmod(&key, 0o400);
    let output = run(sf_ingest().arg("--check").arg("--config").arg(&config));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!stderr(&output).contains("WARN"), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn max_downloads_too_large_is_a_configuration_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    chmod(&key, 0o600);
    let org = MockOrg::start().await;
    let huge = usize::MAX.to_string();
    for value in [huge.as_str(), "4097", "0"] {
        let output = run(sf_ingest_for(&org, &key).args(["--max-downloads", value]));
        assert_eq!(output.status.code(), Some(2), "{value}");
        let err = stderr(&output);
        assert!(
            err.contains(&format!(
                "--max-downloads: {value} is out of range: a number from 1 to 4096"
            )),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }

    let config = dir.path().join("sf-ingest.toml");
    for value in [i64::MAX.to_string(), "-3".to_string()] {
        std::fs::write(
            &config,
            format!(
                "max_downloads = {value}\n{}",
                org_table("acme", &org, &key, "acme.ndjson")
            ),
        )
        .unwrap();
        chmod(&config, 0o600);
        let output = run(sf_ingest().arg("--config").arg(&config));
        assert_eq!(output.status.code(), Some(2), "{value}");
        let err = stderr(&output);
        assert!(
            err.contains(&format!("max_downloads: {value} is out of range")),
            "{err}"
        );
        assert!(!dir.path().join("acme.ndjson").exists());
    }
}

/// The test server's admin URL (`scripts/test`, or `eval "$(scripts/pg-test-cluster start)"`);
/// fails, never skips, without it.
fn admin_url() -> String {
    std::env::var("SFJWT_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "SFJWT_TEST_PG_URL is not set: start the test server first with \
             `eval \"$(scripts/pg-test-cluster start)\"` (or run scripts/test)"
        )
    })
}

async fn pg_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_checkpoint_records_its_org_and_refuses_another_leaving_the_rows_as_they_were() {
    let admin = admin_url();
    let name = format!("t_orgid_{}", std::process::id());
    pg_client(&admin)
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);

    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    chmod(&key, 0o600);
    let first = MockOrg::builder().org_id("00D00000000PgAa").start().await;
    let other = MockOrg::builder().org_id("00D00000000PgBb").start().await;
    add_files(&first, 5, 4);
    add_files(&other, 3, 4);
    let config = dir.path().join("sf-ingest.toml");
    // The same org name, so the same checkpoint rows, for the other org's credentials.
    let write_config = |org: &MockOrg| {
        std::fs::write(
            &config,
            format!(
                "[defaults]\nsince = \"7d\"\nstate = \"{url}\"\nout = \"{url}\"\n{}",
                org_table("acme", org, &key, "unused.ndjson")
                    .replace("out = \"unused.ndjson\"\n", "")
            ),
        )
        .unwrap();
        chmod(&config, 0o600);
    };
    let rows = || async {
        let client = pg_client(&url).await;
        let count: i64 = client
            .query_one("SELECT count(*) FROM salesforce_events", &[])
            .await
            .unwrap()
            .get(0);
        let org_id: Option<String> = client
            .query_one("SELECT checkpoint->>'org_id' FROM sfjwt_checkpoints", &[])
            .await
            .unwrap()
            .get(0);
        (count, org_id)
    };

    write_config(&first);
    let output = run(sf_ingest().arg("--config").arg(&config));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let before = rows().await;
    assert_eq!(before, (5 * 4, Some(first.org_id())));

    write_config(&other);
    let output = run(sf_ingest().arg("--config").arg(&config));
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains(&first.org_id()) && err.contains(&other.org_id()),
        "{err}"
    );
    assert_eq!(rows().await, before);
}

/// The output's length, sampled as fast as a thread can until `done` is set: every change a
/// shipper tailing the file could see.
fn sample_lengths(
    path: std::path::PathBuf,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<u64>> {
    std::thread::spawn(move || {
        let mut seen: Vec<u64> = Vec::new();
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if seen.last() != Some(&len) {
                seen.push(len);
            }
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
        seen
    })
}

/// Issue 21 item 4: log shippers tail `--out FILE` and read it again from its start when it
/// shrinks. `sf-ingest --out FILE` killed with SIGKILL in the middle of its files, four times
/// at different points, then run to the end: the file never got shorter at any moment, and it
/// holds every row exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn the_output_only_grows_across_sigkills_and_holds_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    chmod(&key, 0o600);
    let org = MockOrg::start().await;
    add_files(&org, 12, 3_000);
    let out = dir.path().join("events.ndjson");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_lengths(out.clone(), std::sync::Arc::clone(&done));
    let command = || {
        let mut cmd = sf_ingest_for(&org, &key);
        cmd.args(["--since", "7d", "--concurrency", "2", "--out"])
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd
    };
    // Killed at once, then each time as soon as the run appended its first file (its next
    // files are being staged and committed then), so that every kill lands mid-run whatever
    // the machine's speed.
    let mut kills = 0;
    let mut ended = Vec::new();
    for (run, grown_past) in [0u64, 1, 1, 1].into_iter().enumerate() {
        let before = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        let log = dir.path().join(format!("run-{run}.log"));
        let mut child = command()
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let len = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            if let Some(status) = child.try_wait().unwrap() {
                ended.push(format!(
                    "run {run} ended by itself ({status}): {}",
                    std::fs::read_to_string(&log).unwrap()
                ));
                break;
            }
            if std::time::Instant::now() > deadline {
                break;
            }
            if grown_past == 0 || len > before + grown_past {
                child.kill().unwrap();
                kills += 1;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let _ = child.wait();
    }
    assert_eq!(kills, 4, "every kill landed mid-run: {ended:?}");
    let output = run(&mut command());
    assert!(output.status.success(), "{}", stderr(&output));
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let lengths = sampler.join().unwrap();
    if let Some(w) = lengths.windows(2).find(|w| w[1] < w[0]) {
        panic!(
            "the output got shorter, {} -> {} bytes: {lengths:?}",
            w[0], w[1]
        );
    }
    assert_eq!(rows_in_output(&out), rows_in_org(&org));
    let staging: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("staging"))
        .collect();
    assert!(staging.is_empty(), "left after a clean run: {staging:?}");
}
