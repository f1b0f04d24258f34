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

/// One sample of a metrics scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A scrape parsed by [`parse_metrics`]: the samples, and each family's TYPE and HELP.
#[derive(Debug, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    pub types: BTreeMap<String, String>,
    pub helps: BTreeMap<String, String>,
}

impl Scrape {
    /// The samples of `name`.
    pub fn of(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }

    /// The value of `name` with exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A strict parser of the Prometheus text format (0.0.4): every line is `# HELP`, `# TYPE` or a
/// sample; every sample's family has a HELP and a TYPE before its first sample; a family's
/// samples are contiguous; no (name, labels) twice; label values escaped as the format says.
/// Any deviation fails with the line.
pub fn parse_metrics(text: &str) -> Scrape {
    let mut scrape = Scrape::default();
    let mut finished: std::collections::BTreeSet<String> = Default::default();
    let mut current: Option<String> = None;
    let mut seen: std::collections::BTreeSet<(String, Vec<(String, String)>)> = Default::default();
    assert!(text.is_empty() || text.ends_with('\n'), "no final newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let (keyword, rest) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad comment: {line:?}"));
            let (name, value) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad {keyword}: {line:?}"));
            assert!(is_metric_name(name), "bad name: {line:?}");
            let map = match keyword {
                "HELP" => &mut scrape.helps,
                "TYPE" => {
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&value),
                        "bad type: {line:?}"
                    );
                    &mut scrape.types
                }
                _ => panic!("unknown comment: {line:?}"),
            };
            assert!(
                !finished.contains(name),
                "family {name} declared after its samples: {line:?}"
            );
            assert!(
                map.insert(name.to_string(), value.to_string()).is_none(),
                "repeated: {line:?}"
            );
            continue;
        }
        assert!(!line.starts_with('#'), "bad comment: {line:?}");
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let name = &line[..name_end];
        assert!(is_metric_name(name), "bad name: {line:?}");
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let end = loop {
                let Some(&(i, c)) = chars.peek() else {
                    panic!("unclosed labels: {line:?}")
                };
                if c == '}' {
                    break i + 1;
                }
                let start = i;
                while chars.peek().is_some_and(|&(_, c)| c != '=') {
                    chars.next();
                }
                let eq = chars
                    .next()
                    .unwrap_or_else(|| panic!("label without '=': {line:?}"))
                    .0;
                let label = &body[start..eq];
                assert!(
                    is_metric_name(label) && !label.contains(':'),
                    "bad label name: {line:?}"
                );
                assert_eq!(
                    chars.next().map(|(_, c)| c),
                    Some('"'),
                    "unquoted label: {line:?}"
                );
                let mut value = String::new();
                loop {
                    match chars.next().map(|(_, c)| c) {
                        Some('"') => break,
                        Some('\\') => match chars.next().map(|(_, c)| c) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            _ => panic!("bad escape: {line:?}"),
                        },
                        Some('\n') | None => panic!("unterminated label value: {line:?}"),
                        Some(c) => value.push(c),
                    }
                }
                assert!(
                    labels.insert(label.to_string(), value).is_none(),
                    "repeated label: {line:?}"
                );
                match chars.peek().map(|&(_, c)| c) {
                    Some(',') => {
                        chars.next();
                    }
                    Some('}') => {}
                    _ => panic!("bad label list: {line:?}"),
                }
            };
            rest = &body[end..];
        }
        let fields: Vec<&str> = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no space before the value: {line:?}"))
            .split(' ')
            .collect();
        assert!(matches!(fields.len(), 1 | 2), "bad value: {line:?}");
        let value: f64 = match fields[0] {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line:?}")),
        };
        if let Some(ts) = fields.get(1) {
            ts.parse::<i64>()
                .unwrap_or_else(|_| panic!("bad timestamp: {line:?}"));
        }
        // Counters and gauges: the family is the sample's own name.
        let family = name.to_string();
        assert!(
            scrape.types.contains_key(&family),
            "no TYPE for {name}: {line:?}"
        );
        assert!(
            scrape.helps.contains_key(&family),
            "no HELP for {name}: {line:?}"
        );
        if current.as_deref() != Some(name) {
            assert!(
                !finished.contains(name),
                "samples of {name} are not together"
            );
            if let Some(previous) = current.replace(name.to_string()) {
                finished.insert(previous);
            }
        }
        let key = (
            name.to_string(),
            labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        );
        assert!(seen.insert(key), "repeated series: {line:?}");
        scrape.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    scrape
}

/// `GET path` from `addr` over plain HTTP/1.1: the status code and the body.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// A running `sf-ingest` whose stderr is collected line by line.
pub struct Running {
    pub child: std::process::Child,
    pub lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Running {
    /// Spawns `cmd` with stderr piped.
    pub fn spawn(cmd: &mut Command) -> Running {
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = std::sync::Arc::clone(&lines);
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Running { child, lines }
    }

    /// Waits (up to a minute) for a log line holding `text`, and returns it.
    pub fn wait_for(&self, text: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Some(line) = self.lines.lock().unwrap().iter().find(|l| l.contains(text)) {
                return line.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no line with {text:?} in:\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// How many log lines hold `text`.
    pub fn count(&self, text: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }

    /// The address the metrics endpoint bound, from its log line.
    pub fn metrics_addr(&self) -> String {
        let line = self.wait_for("serving metrics");
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("address="))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string()
    }

    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let status = self.child.wait().unwrap();
        eprintln!("--- sf-ingest stderr ---\n{}", self.log());
        status
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
