//! The command line: conventional flags, configuration errors (exit 2, every one named at
//! once), the output formats, the sources not yet available, and the demo.

mod common;

use common::*;
use salesforce_jwt_mock::MockOrg;

#[test]
fn help_and_version_exit_0() {
    let help = run(sf_ingest().arg("--help"));
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("Usage: sf-ingest")
            && text.contains("--config")
            && text.contains("Exit codes"),
        "{text}"
    );

    let version = run(sf_ingest().arg("--version"));
    assert_eq!(version.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("sf-ingest {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(
        run(sf_ingest().arg("--no-such-flag")).status.code(),
        Some(2)
    );
    // --out and --state belong to the one org of the SF_* variables; with a file each org has its own.
    let both = run(sf_ingest().args(["--config", "x.toml", "--out", "o.ndjson"]));
    assert_eq!(both.status.code(), Some(2));
    let missing = run(sf_ingest().args(["--config", "/nonexistent/sf-ingest.toml"]));
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("cannot read the config file /nonexistent/sf-ingest.toml"));
}

#[tokio::test(flavor = "multi_thread")]
async fn config_errors_exit_2_naming_every_org_and_field_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let org = MockOrg::start().await;
    let mut text = org_table("acme-prod", &org, &key, "acme.ndjson")
        .replace("token_url = \"http://", "token_url = \"ftp://")
        .replace("username = ", "usernme = ");
    text.push_str("interval = \"weekly\"\n");
    text.push_str(
        &org_table("acme-uat", &org, &key, "uat.ndjson")
            .replace(
                &format!("client_key_path = \"{}\"", key.display()),
                "client_key_env = \"SF_INGEST_TEST_UNSET_KEY\"",
            )
            .replace("out = \"uat.ndjson\"", "out = \"acme.ndjson\""),
    );
    let config = dir.path().join("sf-ingest.toml");
    std::fs::write(&config, format!("[defaults]\nsince = \"soon\"\n{text}")).unwrap();

    let output = run(sf_ingest()
        .arg("--config")
        .arg(&config)
        .env_remove("SF_INGEST_TEST_UNSET_KEY"));
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    for expected in [
        r#"org "acme-prod": usernme: unknown key"#,
        r#"org "acme-prod": username: is required"#,
        r#"org "acme-prod": token_url: "ftp://"#,
        r#"org "acme-prod": interval: "weekly" is not an interval"#,
        r#"org "acme-prod": since: "soon" is not a duration"#,
        r#"org "acme-uat": client_key_env: the environment variable SF_INGEST_TEST_UNSET_KEY is not set"#,
        r#"org "acme-uat": out: "#,
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    // The unset key variable is one problem, not also a missing key.
    assert!(
        !err.contains("client_key_path (or client_key_env)"),
        "{err}"
    );
}

#[test]
fn the_ecs_format_writes_one_ecs_document_per_row_and_an_unknown_format_exits_2() {
    let output = run(sf_ingest().args(["--format", "ecs", "-q"]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut ids = std::collections::HashSet::new();
    for line in stdout.lines() {
        let doc: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(doc["event"]["module"], "salesforce", "{line}");
        assert!(doc["ecs"]["version"].is_string(), "{line}");
        assert!(doc["@timestamp"].as_str().unwrap().ends_with('Z'), "{line}");
        assert!(
            ids.insert(doc["event"]["id"].as_str().unwrap().to_string()),
            "{line}"
        );
    }
    assert!(
        ids.len() > 100,
        "the demo org has hundreds of rows, got {}",
        ids.len()
    );

    let output = run(sf_ingest().args(["--format", "ecs", "--namespace", "eu_prod", "-q"]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in stdout.lines() {
        let doc: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(doc["data_stream"]["type"], "logs", "{line}");
        assert_eq!(doc["data_stream"]["namespace"], "eu_prod", "{line}");
        assert_eq!(
            doc["data_stream"]["dataset"], doc["event"]["dataset"],
            "{line}"
        );
    }
    let output = run(sf_ingest().args(["--format", "ecs", "--namespace", "EU-prod"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output)
            .contains("--namespace: data stream namespace \"EU-prod\" has upper-case letters"),
        "{}",
        stderr(&output)
    );

    let output = run(sf_ingest().args(["--format", "xml"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--format: unknown output format \"xml\": use one of ndjson, ecs"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_format_and_other_sources_are_refused_in_a_config_file_too() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let org = MockOrg::start().await;
    let mut text = org_table("acme", &org, &key, "acme.ndjson");
    text.push_str("format = \"xml\"\nsources = [\"EventLogFile\", \"LoginEventStream\"]\n");
    let config = dir.path().join("sf-ingest.toml");
    std::fs::write(&config, text).unwrap();

    let output = run(sf_ingest().arg("--config").arg(&config));
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains(r#"org "acme": format: unknown output format "xml""#),
        "{err}"
    );
    assert!(
        err.contains(r#"org "acme": sources: source "LoginEventStream" is not available"#),
        "{err}"
    );
    assert!(
        !dir.path().join("acme.ndjson").exists(),
        "nothing runs with a config error"
    );
}

#[test]
fn the_sf_variables_configure_one_org_and_their_problems_name_the_variables() {
    let output = run(sf_ingest()
        .env("SF_AUDIENCE_URL", "https://login.salesforce.com")
        .env("SF_TOKEN_URL", "not a url"));
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    for var in [
        "SF_CLIENT_KEY_PATH",
        "SF_USERNAME",
        "SF_CLIENT_ID",
        "SF_INSTANCE_URL",
        "SF_TOKEN_URL",
    ] {
        assert!(
            err.lines().any(|l| l.trim_start().starts_with(var)),
            "missing {var} in:\n{err}"
        );
    }
    assert!(!err.contains("DEMO"), "{err}");
}

#[test]
fn with_neither_variables_nor_config_the_demo_runs_and_says_so() {
    let output = run(&mut sf_ingest());
    assert_eq!(output.status.code(), Some(0));
    assert!(stderr(&output).contains("DEMO: neither SF_* variables nor --config are set"));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows.len() > 300, "{} rows", rows.len());
    assert!(
        rows.iter()
            .all(|r| r["EventLogFileId"].is_string() && r["EventType"].is_string())
    );
}

#[test]
fn quiet_keeps_warnings_and_drops_information() {
    let normal = run(&mut sf_ingest());
    assert!(stderr(&normal).contains(" INFO "), "{}", stderr(&normal));
    let quiet = run(sf_ingest().arg("-q"));
    assert_eq!(quiet.status.code(), Some(0));
    let err = stderr(&quiet);
    assert!(err.contains("DEMO") && !err.contains(" INFO "), "{err}");
    let verbose = run(sf_ingest().arg("-v"));
    assert!(stderr(&verbose).contains("DEBUG"), "{}", stderr(&verbose));
}
