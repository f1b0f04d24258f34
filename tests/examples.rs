//! The example programs, run as a user runs them: `ingest` in demo mode (no configuration), and
//! `check_setup` and `list_event_logs` against a mock org configured through `SF_*` variables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use salesforce_jwt_mock::{DEMO_PRIVATE_KEY_PEM, MockOrg};

/// `cargo test` builds the examples next to the test binaries: target/<profile>/examples.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} was not built; `cargo test` builds examples (run it without target filters)",
        path.display()
    );
    path
}

fn demo_command() -> Command {
    demo_command_for("ingest")
}

/// The example `name` with every `SF_*` variable of this process removed.
fn demo_command_for(name: &str) -> Command {
    let mut command = Command::new(example(name));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SF_") {
            command.env_remove(name);
        }
    }
    command
}

#[test]
fn demo_mode_prints_rows_to_stdout() {
    let output = demo_command().output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stderr: {stderr}");
    assert!(stderr.contains("embedded mock Salesforce org"), "{stderr}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON"))
        .collect();
    assert!(rows.len() > 50, "only {} rows", rows.len());
    for row in &rows {
        for key in [
            "EventLogFileId",
            "EventType",
            "LogDate",
            "Interval",
            "Sequence",
            "EVENT_TYPE",
        ] {
            assert!(row.get(key).is_some(), "{key} missing in {row}");
        }
    }
    let types: std::collections::BTreeSet<&str> = rows
        .iter()
        .map(|r| r["EventType"].as_str().unwrap())
        .collect();
    for t in ["Login", "Logout", "API", "URI", "ApexExecution", "Report"] {
        assert!(types.contains(t), "no {t} rows: {types:?}");
    }
}

#[test]
fn demo_mode_with_an_output_file_is_exactly_once_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let run = || {
        let output = demo_command()
            .arg("--out")
            .arg(&out)
            .arg("--event-type")
            .arg("Login")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::read_to_string(&out).unwrap()
    };
    let first = run();
    assert!(first.lines().count() > 0);
    assert!(
        first.lines().all(|l| l.contains("\"EventType\":\"Login\"")),
        "only Login rows"
    );
    assert!(dir.path().join("events.ndjson.checkpoint.json").exists());
    let second = run();
    assert_eq!(first, second, "the second run delivered nothing new");
}

#[test]
fn demo_mode_rides_out_a_burst_of_faults_on_one_file_with_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, faults: Option<&str>| {
        let out = dir.path().join(name);
        let mut command = demo_command();
        command.arg("--out").arg(&out);
        if let Some(faults) = faults {
            command.env("INGEST_DEMO_FAULTS", faults);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        (std::fs::read_to_string(&out).unwrap(), stderr)
    };
    // The demo data follows the wall clock's hour: a run next to a fault-free one is compared
    // again if an hour boundary fell between them.
    for _ in 0..2 {
        let (faulted, stderr) = run("faulted.ndjson", Some("cut=4,503=2"));
        let (clean, _) = run("clean.ndjson", None);
        assert_eq!(
            stderr.matches("downloading it again").count(),
            4,
            "each cut-off body cost the file one attempt: {stderr}"
        );
        let unique: std::collections::HashSet<&str> = faulted.lines().collect();
        assert_eq!(
            unique.len(),
            faulted.lines().count(),
            "a row was delivered twice"
        );
        if faulted == clean {
            return;
        }
        std::fs::remove_file(dir.path().join("faulted.ndjson")).unwrap();
        std::fs::remove_file(dir.path().join("faulted.ndjson.checkpoint.json")).unwrap();
        std::fs::remove_file(dir.path().join("clean.ndjson")).unwrap();
        std::fs::remove_file(dir.path().join("clean.ndjson.checkpoint.json")).unwrap();
    }
    panic!("the faulted run's rows differ from a clean run's");
}

#[test]
fn a_state_reused_with_another_output_is_refused_and_that_file_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("shared.checkpoint.json");
    let run = |out: &std::path::Path| {
        demo_command()
            .arg("--out")
            .arg(out)
            .arg("--state")
            .arg(&state)
            .output()
            .unwrap()
    };
    let first = run(&dir.path().join("a.ndjson"));
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // Another file, longer than the checkpoint's position: cutting it back would destroy it.
    let other = dir.path().join("b.ndjson");
    let precious = "{\"keep\":true}\n".repeat(100_000);
    std::fs::write(&other, &precious).unwrap();
    let second = run(&other);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success());
    assert!(
        stderr.contains("belongs to another output") && stderr.contains("a.ndjson"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&other).unwrap(), precious);
}

#[test]
fn bad_arguments_exit_with_usage() {
    let output = demo_command()
        .arg("--interval")
        .arg("weekly")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--interval") && stderr.contains("usage:"),
        "{stderr}"
    );
}

/// The six variables pointing at `org`, as an administrator would hand them over.
fn sf_env(org: &MockOrg, username: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SF_AUDIENCE_URL", org.audience().to_string()),
        ("SF_CLIENT_KEY_PEM", DEMO_PRIVATE_KEY_PEM.to_string()),
        ("SF_USERNAME", username.to_string()),
        ("SF_CLIENT_ID", org.client_id().to_string()),
        ("SF_INSTANCE_URL", org.instance_url()),
        ("SF_TOKEN_URL", org.token_url()),
    ]
}

async fn run_against(
    org: &MockOrg,
    name: &str,
    username: &str,
    args: &[&str],
) -> (Option<i32>, String, String) {
    let mut command = tokio::process::Command::from(demo_command_for(name));
    command.envs(sf_env(org, username)).args(args);
    let output = command.output().await.unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn check_setup_reports_a_working_setup_without_the_token() {
    let org = MockOrg::start().await;
    org.add_demo_data(time::OffsetDateTime::now_utc());
    let (code, stdout, stderr) = run_against(&org, "check_setup", org.username(), &[]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("authentication  ok"), "{stdout}");
    assert!(stdout.contains("org ID        00D"), "{stdout}");
    assert!(stdout.contains("user ID       005"), "{stdout}");
    assert!(
        stdout.contains("API version   64.0 (the org serves 62.0 to 66.0)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("EventLogFile    readable (31 files visible)"),
        "{stdout}"
    );
    // Mock tokens look like Salesforce's, `00D...!AR...`.
    assert!(
        !stdout.contains("!AR") && !stderr.contains("!AR"),
        "the token leaked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_setup_prints_the_api_usage_from_the_last_response() {
    let org = MockOrg::start().await;
    org.add_demo_data(time::OffsetDateTime::now_utc());
    org.set_api_usage(1230);
    let (code, stdout, stderr) = run_against(&org, "check_setup", org.username(), &[]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    // Every request check_setup sent counted; the last answer reported the total.
    let used = org.api_usage();
    assert!(used > 1230, "{used}");
    assert!(
        stdout.contains(&format!("API usage: {used}/15000 (8%)")),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_setup_names_the_missing_permission() {
    let org = MockOrg::builder().event_log_access(false).start().await;
    let (code, stdout, stderr) = run_against(&org, "check_setup", org.username(), &[]).await;
    assert_ne!(code, Some(0));
    assert!(stdout.contains("authentication  ok"), "{stdout}");
    assert!(stderr.contains("View Event Log Files"), "{stderr}");

    let org = MockOrg::builder().api_enabled(false).start().await;
    let (code, _, stderr) = run_against(&org, "check_setup", org.username(), &[]).await;
    assert_ne!(code, Some(0));
    assert!(stderr.contains("API Enabled"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_setup_tells_apart_why_event_log_objects_cannot_be_read() {
    use salesforce_jwt_mock::EventLogObjectAccess;
    let org = MockOrg::start().await;
    let (code, stdout, stderr) = run_against(&org, "check_setup", org.username(), &[]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Event Log Objects readable (LoginEventLog)"),
        "{stdout}"
    );

    let org = MockOrg::builder()
        .event_log_object_access(EventLogObjectAccess::NotHyperforce)
        .start()
        .await;
    let (code, stdout, stderr) = run_against(&org, "check_setup", org.username(), &[]).await;
    assert_eq!(
        code,
        Some(0),
        "EventLogFile alone still works: {stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("Event Log Objects NOT available (INVALID_TYPE)")
            && stdout.contains("Hyperforce"),
        "{stdout}"
    );

    let org = MockOrg::builder()
        .event_log_object_access(EventLogObjectAccess::MissingPermission)
        .start()
        .await;
    let (code, stdout, stderr) = run_against(&org, "check_setup", org.username(), &[]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Event Log Objects NOT readable (INSUFFICIENT_ACCESS)")
            && stdout.contains("View Event Log Object Data")
            && !stdout.contains("Hyperforce"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_setup_names_the_newest_api_version_when_the_org_lacks_the_configured_one() {
    let org = MockOrg::start().await;
    let mut command = tokio::process::Command::from(demo_command_for("check_setup"));
    command
        .envs(sf_env(&org, org.username()))
        .env("SF_API_VERSION", "70.0");
    let output = command.output().await.unwrap();
    assert_ne!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("70.0 is not served"), "{stderr}");
    assert!(stderr.contains("the newest is 66.0"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_setup_explains_an_unapproved_user() {
    let org = MockOrg::start().await;
    let (code, stdout, stderr) =
        run_against(&org, "check_setup", "someone.else@example.com", &[]).await;
    assert_ne!(code, Some(0));
    assert!(!stdout.contains("authentication  ok"));
    assert!(stderr.contains("pre-authorized"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_setup_reports_every_missing_variable_at_once() {
    let output = tokio::process::Command::from(demo_command_for("check_setup"))
        .env("SF_USERNAME", "integration@example.com")
        .output()
        .await
        .unwrap();
    assert_ne!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for name in [
        "SF_AUDIENCE_URL",
        "SF_CLIENT_KEY_PATH",
        "SF_CLIENT_ID",
        "SF_INSTANCE_URL",
        "SF_TOKEN_URL",
    ] {
        assert!(stderr.contains(name), "{name} not named: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn list_event_logs_prints_one_line_per_file() {
    let org = MockOrg::start().await;
    let ids = org.add_demo_data(time::OffsetDateTime::now_utc());
    let (code, stdout, stderr) =
        run_against(&org, "list_event_logs", org.username(), &["--days", "7"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(lines.len(), ids.len(), "{stdout}");
    for id in &ids {
        assert!(stdout.contains(id.as_str()), "{id} not listed");
    }
    assert!(
        lines.iter().any(|l| l.contains("Hourly")) && lines.iter().any(|l| l.contains("Daily"))
    );
    let (code, _, stderr) =
        run_against(&org, "list_event_logs", org.username(), &["--days", "x"]).await;
    assert_eq!(code, Some(2), "{stderr}");
}

/// A mock org with 16 hourly files of 1500 rows: big enough that a run reports progress in the
/// middle of files. Returns the org and each file's row count.
async fn big_org() -> (MockOrg, std::collections::BTreeMap<String, usize>) {
    use salesforce_jwt_mock::{Interval, MockLogFile};
    let org = MockOrg::start().await;
    let now = time::OffsetDateTime::now_utc();
    let mut expected = std::collections::BTreeMap::new();
    for i in 0..16u64 {
        let log_date =
            now.replace_time(time::Time::MIDNIGHT) - time::Duration::hours(20 - i as i64);
        let id = org.add_file(
            MockLogFile::builder(["API", "URI", "Login", "Report"][i as usize % 4])
                .interval(Interval::Hourly)
                .log_date(log_date)
                .sequence(1)
                .created_date(log_date + time::Duration::hours(4))
                .rows(1500)
                .seed(i)
                .build(),
        );
        expected.insert(id, 1500usize);
    }
    (org, expected)
}

/// `ingest --out out` against `org`, logging its progress to a piped stderr.
fn spawn_ingest(org: &MockOrg, out: &std::path::Path) -> tokio::process::Child {
    let mut command = tokio::process::Command::from(demo_command_for("ingest"));
    command
        .envs(sf_env(org, org.username()))
        .env("RUST_LOG", "ingest=debug")
        .args(["--since", "3d", "--concurrency", "2", "--out"])
        .arg(out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    command.spawn().unwrap()
}

/// Reads the child's stderr until its `nth` progress report from the middle of a file.
async fn wait_for_mid_file_progress(child: &mut tokio::process::Child, nth: usize) {
    use tokio::io::AsyncBufReadExt as _;
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = 0;
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.contains("progress") && line.contains("mid_file=true") {
            seen += 1;
            if seen == nth {
                // Keep draining so the child never blocks on a full pipe.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                return;
            }
        }
    }
    panic!("the run ended before {nth} mid-file progress reports");
}

/// Every line whole JSON, no line twice; rows counted per EventLogFileId.
fn rows_per_file(out: &std::path::Path) -> std::collections::BTreeMap<String, usize> {
    let text = std::fs::read_to_string(out).unwrap();
    let mut per_file = std::collections::BTreeMap::new();
    let mut unique = std::collections::HashSet::new();
    for line in text.lines() {
        let row: serde_json::Value = serde_json::from_str(line).expect("no torn line survives");
        *per_file
            .entry(row["EventLogFileId"].as_str().unwrap().to_string())
            .or_insert(0usize) += 1;
        assert!(
            unique.insert(line.to_string()),
            "a row was written twice: {line}"
        );
    }
    per_file
}

/// SIGKILL in the middle of a file, three times, then a run to the end: the output holds every
/// row exactly once. The kills are driven by the child's own progress log (reported every 1024
/// rows, so the torn file has already spilled out of the 256 KiB write buffer), not by timing.
#[tokio::test(flavor = "multi_thread")]
async fn ingest_killed_with_sigkill_and_restarted_writes_every_row_exactly_once() {
    let (org, expected) = big_org().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    // Mid-file reports 1 (the first file of the first run, before any file was confirmed), 3
    // and 3 of 16 files: every kill lands well before the end.
    for kill_after in [1, 3, 3] {
        let mut child = spawn_ingest(&org, &out);
        wait_for_mid_file_progress(&mut child, kill_after).await;
        child.start_kill().unwrap();
        let status = child.wait().await.unwrap();
        assert!(
            !status.success(),
            "the run ended before the kill: {status:?}"
        );
    }
    let status = spawn_ingest(&org, &out).wait().await.unwrap();
    assert!(status.success());
    assert_eq!(rows_per_file(&out), expected);
}

/// Ctrl-C (SIGINT) in the middle of a file: the file is finished, the run exits with 130, and
/// the output ends exactly where the checkpoint says.
#[tokio::test(flavor = "multi_thread")]
async fn ingest_interrupted_with_sigint_stops_after_the_file_with_exit_code_130() {
    let (org, expected) = big_org().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let mut child = spawn_ingest(&org, &out);
    wait_for_mid_file_progress(&mut child, 2).await;
    let pid = child.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), Some(130));

    let partial = rows_per_file(&out);
    assert!(partial.len() < expected.len(), "stopped early");
    assert!(
        partial.values().all(|&rows| rows == 1500),
        "only whole files: {partial:?}"
    );
    let checkpoint: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("events.ndjson.checkpoint.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        checkpoint["sink_position"].as_u64(),
        Some(std::fs::metadata(&out).unwrap().len())
    );

    let status = spawn_ingest(&org, &out).wait().await.unwrap();
    assert!(status.success());
    assert_eq!(rows_per_file(&out), expected);
}

/// `count` rows of `object` in the last two days (all older than a minute, so queryable now).
fn add_object_rows(org: &MockOrg, object: &str, count: usize, seed: u64) {
    let now = time::OffsetDateTime::now_utc();
    let rows = salesforce_jwt_mock::generate_records(
        object,
        now - time::Duration::days(2),
        now - time::Duration::minutes(1),
        count,
        seed,
    );
    org.add_records(object, rows).unwrap();
}

/// The key of each row of an org's real-time object: EventIdentifier, or Id on SetupAuditTrail.
fn object_keys_in_org(org: &MockOrg, object: &str) -> std::collections::BTreeSet<String> {
    let field = if object == "SetupAuditTrail" {
        "Id"
    } else {
        "EventIdentifier"
    };
    org.records(object)
        .iter()
        .map(|r| r[field].as_str().unwrap().to_string())
        .collect()
}

/// Every line whole JSON, no line twice; EventLogFile rows counted per file, object rows keyed
/// per SObjectType (every key once).
#[allow(clippy::type_complexity)]
fn rows_per_source(
    out: &std::path::Path,
) -> (
    std::collections::BTreeMap<String, usize>,
    std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) {
    let text = std::fs::read_to_string(out).unwrap();
    let mut files = std::collections::BTreeMap::new();
    let mut objects: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        std::collections::BTreeMap::new();
    let mut unique = std::collections::HashSet::new();
    for line in text.lines() {
        let row: serde_json::Value = serde_json::from_str(line).expect("no torn line survives");
        assert!(
            unique.insert(line.to_string()),
            "a row was written twice: {line}"
        );
        if let Some(id) = row["EventLogFileId"].as_str() {
            *files.entry(id.to_string()).or_insert(0usize) += 1;
            continue;
        }
        let object = row["SObjectType"]
            .as_str()
            .expect("SObjectType")
            .to_string();
        let key = if object == "SetupAuditTrail" {
            row["Id"].as_str()
        } else {
            row["EventIdentifier"].as_str()
        };
        assert!(
            objects
                .entry(object)
                .or_default()
                .insert(key.unwrap().to_string()),
            "a row was delivered twice: {line}"
        );
    }
    (files, objects)
}

/// The checkpoint beside `out`, as JSON.
fn checkpoint_of(out: &std::path::Path) -> serde_json::Value {
    let mut name = out.as_os_str().to_os_string();
    name.push(".checkpoint.json");
    serde_json::from_slice(&std::fs::read(name).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_adds_a_source_from_since_and_keeps_the_positions_of_the_others() {
    let org = MockOrg::start().await;
    org.add_demo_data(time::OffsetDateTime::now_utc());
    add_object_rows(&org, "LoginEvent", 60, 1);
    add_object_rows(&org, "SetupAuditTrail", 40, 2);
    // Older than --since: a source added later must not reach them.
    let now = time::OffsetDateTime::now_utc();
    let old = salesforce_jwt_mock::generate_records(
        "SetupAuditTrail",
        now - time::Duration::days(6),
        now - time::Duration::days(5),
        15,
        3,
    );
    let old: std::collections::BTreeSet<String> = org
        .add_records("SetupAuditTrail", old)
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let out_arg = out.to_str().unwrap();
    let common = ["--since", "3d", "--out", out_arg];
    let run = |sources: &'static [&'static str]| {
        let org = &org;
        async move {
            let mut args: Vec<&str> = common.to_vec();
            for s in sources {
                args.extend(["--source", s]);
            }
            let (code, _, stderr) = run_against(org, "ingest", org.username(), &args).await;
            assert_eq!(code, Some(0), "{stderr}");
        }
    };

    run(&["EventLogFile", "LoginEvent"]).await;
    let first = std::fs::read_to_string(&out).unwrap();
    let (files, objects) = rows_per_source(&out);
    assert!(!files.is_empty());
    assert_eq!(objects.keys().collect::<Vec<_>>(), ["LoginEvent"]);
    let checkpoint = checkpoint_of(&out);
    let event_log_file = checkpoint["sources"]["EventLogFile"].clone();
    assert_eq!(checkpoint["sources"]["LoginEvent"]["kind"], "BigObject");
    assert!(checkpoint["sources"].get("SetupAuditTrail").is_none());

    run(&["EventLogFile", "LoginEvent", "SetupAuditTrail"]).await;
    let second = std::fs::read_to_string(&out).unwrap();
    assert!(
        second.starts_with(&first),
        "the first run's rows stay as they were"
    );
    let (files_after, objects) = rows_per_source(&out);
    assert_eq!(files_after, files, "no EventLogFile row again");
    assert_eq!(
        objects["LoginEvent"],
        object_keys_in_org(&org, "LoginEvent")
    );
    let in_since: std::collections::BTreeSet<String> = object_keys_in_org(&org, "SetupAuditTrail")
        .difference(&old)
        .cloned()
        .collect();
    assert_eq!(
        objects["SetupAuditTrail"], in_since,
        "the added source starts from --since"
    );
    let checkpoint = checkpoint_of(&out);
    assert_eq!(
        checkpoint["sources"]["EventLogFile"], event_log_file,
        "nothing new: EventLogFile's position did not move"
    );
    assert_eq!(checkpoint["sources"]["SetupAuditTrail"]["kind"], "Keyset");

    // A source left out keeps its position.
    let saved_trail = checkpoint["sources"]["SetupAuditTrail"].clone();
    run(&["LoginEvent"]).await;
    assert_eq!(std::fs::read_to_string(&out).unwrap(), second);
    let checkpoint = checkpoint_of(&out);
    assert_eq!(checkpoint["sources"]["SetupAuditTrail"], saved_trail);
    assert_eq!(checkpoint["sources"]["EventLogFile"], event_log_file);
}

/// `ingest` with three sources into one output, killed with SIGKILL in the middle of an
/// EventLogFile file and then inside LoginEvent's windows, then run to the end: every row of
/// every source exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn ingest_of_three_sources_killed_with_sigkill_and_restarted_writes_every_row_exactly_once() {
    use tokio::io::AsyncBufReadExt as _;
    let (org, expected) = big_org().await;
    add_object_rows(&org, "LoginEvent", 3000, 4);
    add_object_rows(&org, "SetupAuditTrail", 3000, 5);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let spawn = || {
        let mut command = tokio::process::Command::from(demo_command_for("ingest"));
        command
            .envs(sf_env(&org, org.username()))
            .env("RUST_LOG", "ingest=debug")
            .args(["--since", "3d", "--concurrency", "2"])
            .args(["--source", "EventLogFile", "--source", "LoginEvent"])
            .args(["--source", "SetupAuditTrail", "--out"])
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        command.spawn().unwrap()
    };
    // First mid-file, then at LoginEvent's tenth committed window.
    for marker in ["mid_file=true", "current=Some(\"LoginEvent\")"] {
        let mut child = spawn();
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = 0;
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("progress") && line.contains(marker) {
                seen += 1;
                if seen == 10 {
                    break;
                }
            }
        }
        assert_eq!(seen, 10, "the run ended before the kill");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        child.start_kill().unwrap();
        let status = child.wait().await.unwrap();
        assert!(!status.success(), "the run ended before the kill");
    }
    let status = spawn().wait().await.unwrap();
    assert!(status.success());
    let (files, objects) = rows_per_source(&out);
    assert_eq!(files, expected);
    assert_eq!(
        objects["LoginEvent"],
        object_keys_in_org(&org, "LoginEvent")
    );
    assert_eq!(
        objects["SetupAuditTrail"],
        object_keys_in_org(&org, "SetupAuditTrail")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_setup_tells_a_missing_real_time_permission_from_storage_not_enabled() {
    let org = MockOrg::builder().realtime_access(false).start().await;
    org.add_demo_data(time::OffsetDateTime::now_utc());
    let (code, stdout, stderr) = run_against(&org, "check_setup", org.username(), &[]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Real-time       NOT readable (INVALID_TYPE)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("View Real-Time Event Monitoring Data")
            && stdout.contains("Event Monitoring add-on"),
        "{stdout}"
    );
    assert!(!stdout.contains("Event Manager"), "{stdout}");

    // Access, but nothing stored.
    let org = MockOrg::start().await;
    org.add_demo_data(time::OffsetDateTime::now_utc());
    let (code, stdout, stderr) = run_against(&org, "check_setup", org.username(), &[]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("LoginEvent has no stored rows"), "{stdout}");
    assert!(
        stdout.contains("Setup > Event Manager") && stdout.contains("Enable Storage"),
        "{stdout}"
    );
    assert!(!stdout.contains("View Real-Time"), "{stdout}");

    add_object_rows(&org, "LoginEvent", 3, 6);
    let (code, stdout, _) = run_against(&org, "check_setup", org.username(), &[]).await;
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("Real-time       readable (LoginEvent has stored rows)"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ingest_example_collects_an_event_log_object_once() {
    let org = MockOrg::start().await;
    let now = time::OffsetDateTime::now_utc();
    // Published: more than 45 minutes old.
    let rows = salesforce_jwt_mock::generate_records(
        "LoginEventLog",
        now - time::Duration::hours(3),
        now - time::Duration::hours(1),
        25,
        4,
    );
    org.add_records("LoginEventLog", rows).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let args = ["--source", "LoginEventLog", "--out", out.to_str().unwrap()];
    for _ in 0..2 {
        let (code, _, stderr) = run_against(&org, "ingest", org.username(), &args).await;
        assert_eq!(code, Some(0), "{stderr}");
    }
    let text = std::fs::read_to_string(&out).unwrap();
    let mut ids: Vec<String> = text
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(row["SObjectType"], "LoginEventLog");
            row["Id"].as_str().unwrap().to_string()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 25, "{text}");
    assert_eq!(text.lines().count(), 25, "once over two runs");
}
