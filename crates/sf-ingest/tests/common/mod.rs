//! Shared setup for the binary's tests: org doubles, config files, and running `sf-ingest`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use salesforce_jwt::ENV_VARS;
use salesforce_jwt_mock::{DEMO_PRIVATE_KEY_PEM, Interval, MockLogFile, MockOrg};
use time::OffsetDateTime;

/// `sf-ingest` with no `SF_*` variable, no `RUST_LOG`, and no terminal: what the tests see does
/// not depend on the machine they run on.
pub fn sf_ingest() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sf-ingest"));
    for var in ENV_VARS {
        cmd.env_remove(var);
    }
    cmd.env_remove("RUST_LOG");
    cmd
}

/// `sf-ingest` configured for `org` through the six `SF_*` variables, with `key` as the key file.
pub fn sf_ingest_for(org: &MockOrg, key: &Path) -> Command {
    let mut cmd = sf_ingest();
    cmd.env("SF_AUDIENCE_URL", org.audience())
        .env("SF_CLIENT_KEY_PATH", key)
        .env("SF_USERNAME", org.username())
        .env("SF_CLIENT_ID", org.client_id())
        .env("SF_INSTANCE_URL", org.instance_url())
        .env("SF_TOKEN_URL", org.token_url());
    cmd
}

pub fn run(cmd: &mut Command) -> Output {
    let output = cmd.output().expect("sf-ingest runs");
    eprintln!(
        "--- sf-ingest stderr ---\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The demo key, written to `dir/name`.
pub fn demo_key(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, DEMO_PRIVATE_KEY_PEM).unwrap();
    path
}

/// A throwaway key the org doubles do not accept.
pub fn wrong_key() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/other_rsa_pkcs1.pem")
}

/// An `[[org]]` table reaching `org`, with `key` and `out` (relative to the config file).
pub fn org_table(name: &str, org: &MockOrg, key: &Path, out: &str) -> String {
    format!(
        r#"
[[org]]
name = "{name}"
audience_url = "{audience}"
client_key_path = "{key}"
username = "{username}"
client_id = "{client_id}"
instance_url = "{instance}"
token_url = "{token}"
out = "{out}"
"#,
        audience = org.audience(),
        key = key.display(),
        username = org.username(),
        client_id = org.client_id(),
        instance = org.instance_url(),
        token = org.token_url(),
    )
}

/// `files` hourly Login files of `rows` rows each, every one within the last five days.
pub fn add_files(org: &MockOrg, files: usize, rows: usize) {
    let now = OffsetDateTime::now_utc();
    let this_hour =
        now.replace_time(time::Time::MIDNIGHT) + time::Duration::hours(i64::from(now.hour()));
    for i in 0..files {
        let log_date = this_hour - time::Duration::hours(2 + (i % 100) as i64);
        let sequence = 1 + (i / 100) as i32;
        org.add_file(
            MockLogFile::builder("Login")
                .interval(Interval::Hourly)
                .log_date(log_date)
                .sequence(sequence)
                .created_date(log_date + time::Duration::hours(1))
                .rows(rows)
                .seed(i as u64)
                .build(),
        );
    }
}

/// REQUEST_ID of every row, by EventLogFile Id, as the org holds them.
pub fn rows_in_org(org: &MockOrg) -> BTreeMap<String, Vec<String>> {
    org.files()
        .into_iter()
        .map(|f| {
            let csv = org.csv_of(&f.id).unwrap();
            let mut reader = csv::Reader::from_reader(&csv[..]);
            let column = reader
                .headers()
                .unwrap()
                .iter()
                .position(|h| h == "REQUEST_ID")
                .unwrap();
            let ids = reader
                .records()
                .map(|r| r.unwrap()[column].to_string())
                .collect();
            (f.id, ids)
        })
        .collect()
}

/// REQUEST_ID of every row of an NDJSON output, by EventLogFileId, in output order.
pub fn rows_in_output(path: &Path) -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut rows: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let row: serde_json::Value =
            serde_json::from_str(line).expect("every line is a JSON object");
        rows.entry(row["EventLogFileId"].as_str().unwrap().to_string())
            .or_default()
            .push(row["REQUEST_ID"].as_str().unwrap().to_string());
    }
    rows
}
