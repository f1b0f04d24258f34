//! `--skip-bad-files` for real-time objects: an object page that cannot be read stops the run
//! without it, and with it is skipped, recorded in the checkpoint's `skipped`, while every
//! other row arrives once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::{demo_key, run, sf_ingest_for, stderr};
use salesforce_jwt_mock::{Fault, MockOrg, generate_records};

fn delivered(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            row["EventIdentifier"].as_str().unwrap().to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_login_event_page_fails_the_run_unless_skip_bad_files_skips_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let org = MockOrg::start().await;
    let now = time::OffsetDateTime::now_utc();
    let rows = org
        .add_records(
            "LoginEvent",
            generate_records(
                "LoginEvent",
                now - time::Duration::hours(5),
                now - time::Duration::minutes(1),
                80,
                3,
            ),
        )
        .unwrap();
    let bad = rows[41].clone();
    org.inject_always(Fault::CorruptPage {
        containing: Some(bad["EventIdentifier"].as_str().unwrap().to_string()),
    });
    let out = dir.path().join("events.ndjson");
    let ingest = || {
        let mut cmd = sf_ingest_for(&org, &key);
        cmd.args(["--source", "LoginEvent", "--since", "1d", "--out"])
            .arg(&out);
        cmd
    };

    let output = run(&mut ingest());
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("could not be read"), "{err}");
    assert!(err.contains("--skip-bad-files"), "{err}");

    let output = run(ingest().arg("--skip-bad-files"));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let got = delivered(&out);
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(unique.len(), got.len(), "every row once");
    let expected: BTreeSet<String> = org
        .records("LoginEvent")
        .iter()
        .filter(|r| r["EventDate"] != bad["EventDate"])
        .map(|r| r["EventIdentifier"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(unique, expected, "all but the unreadable row's millisecond");

    let checkpoint: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("events.ndjson.checkpoint.json")).unwrap(),
    )
    .unwrap();
    let skipped = checkpoint["skipped"].as_object().unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    let (name, entry) = skipped.iter().next().unwrap();
    assert!(name.starts_with("LoginEvent EventDate ("), "{name}");
    assert_eq!(entry["event_type"], "LoginEvent");
    assert!(
        entry["error"]
            .as_str()
            .unwrap()
            .contains("could not be read"),
        "{entry}"
    );
}
