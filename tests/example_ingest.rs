//! `cargo run --example ingest` with no configuration: the demo mode runs to completion, prints
//! rows, and a second run with the same output delivers nothing new.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

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
    let mut command = Command::new(example("ingest"));
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
