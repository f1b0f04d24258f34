//! End-to-end ingestion benchmark: one `Collector` pass over a large mock org into an NDJSON
//! file, with throughput and peak memory.
//!
//! ```sh
//! cargo run --release --example ingest_bench
//! cargo run --release --example ingest_bench -- --no-gzip
//! cargo run --release --example ingest_bench -- --format ecs
//! ```
//!
//! The program starts a copy of itself that holds a `MockOrg` with `--files` daily files
//! (default 200) of `--rows` rows each (default 5,000), cycling through Login, Logout, API, URI,
//! ApexExecution and Report. The mock runs in that second process so that the peak RSS reported
//! for the collector is the collector's, not the mock's hundreds of MB of CSV. The collector then
//! runs one pass (query, `--concurrency` downloads at once, default 4, typed rows, NDJSON written
//! and fsynced per file with `NdjsonFileSink`, checkpoint in a `FileCheckpointStore`), all in a
//! temporary directory, and the program reports files, rows, MB of CSV, seconds, rows/s, MB/s,
//! both processes' CPU time and peak RSS, and checks that the output has exactly one line per
//! row.
//!
//! The mock serves every request from one thread (wiremock) and gzips each download in full
//! before sending it, so it is usually the bottleneck: compare its CPU time with the wall time.
//! `--no-gzip` builds the client without gzip support, so the mock sends the CSV as is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use salesforce_jwt::event_log::{
    Collector, CollectorOptions, EventLogFileQuery, FileCheckpointStore, NdjsonFileSink,
};
use salesforce_jwt::format::OutputFormat;
use salesforce_jwt::{JwtBearerClient, JwtBearerConfig};
use salesforce_jwt_mock::{DEMO_PRIVATE_KEY_PEM, Interval, MockLogFile, MockOrg};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

const EVENT_TYPES: &[&str] = &["Login", "Logout", "API", "URI", "ApexExecution", "Report"];
/// The child-process flag: serve the mock org, print its coordinates, exit when stdin closes.
const SERVE_FLAG: &str = "--serve-mock";

struct Options {
    files: usize,
    rows: usize,
    concurrency: usize,
    gzip: bool,
    format: OutputFormat,
}

fn parse_args(args: &[String]) -> Options {
    let mut o = Options {
        files: 200,
        rows: 5_000,
        concurrency: 4,
        gzip: true,
        format: OutputFormat::Ndjson,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut number = || -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{arg} needs a number"))
        };
        match arg.as_str() {
            "--files" => o.files = number(),
            "--rows" => o.rows = number(),
            "--concurrency" => o.concurrency = number(),
            "--no-gzip" => o.gzip = false,
            "--format" => {
                o.format = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("--format needs ndjson or ecs"))
            }
            other => panic!(
                "unknown argument {other:?}; use --files N, --rows N, --concurrency N, --no-gzip, \
                 --format ndjson|ecs"
            ),
        }
    }
    o
}

/// What the mock process tells the benchmark.
#[derive(Debug, Serialize, Deserialize)]
struct MockInfo {
    instance_url: String,
    token_url: String,
    audience: String,
    client_id: String,
    username: String,
    files: usize,
    rows: u64,
    bytes: u64,
    setup_secs: f64,
}

/// The child process: builds the org, prints `MockInfo` as one JSON line, serves until stdin
/// closes (the benchmark closes it when done, or dies and the kernel closes it).
async fn serve_mock(o: &Options) {
    let started = Instant::now();
    let org = MockOrg::builder().start().await;
    let now = OffsetDateTime::now_utc();
    let today = now.replace_time(time::Time::MIDNIGHT);
    for n in 0..o.files {
        let (day, kind) = (n / EVENT_TYPES.len(), n % EVENT_TYPES.len());
        // Daily files from two days back: each is created the next morning, before now.
        let log_date = today - time::Duration::days(2 + day as i64);
        let created = log_date
            + time::Duration::days(1)
            + time::Duration::hours(2)
            + time::Duration::minutes(7 * kind as i64);
        org.add_file(
            MockLogFile::builder(EVENT_TYPES[kind])
                .interval(Interval::Daily)
                .log_date(log_date)
                .sequence(0)
                .created_date(created)
                .rows(o.rows)
                .seed(n as u64)
                .build(),
        );
    }
    let files = org.files();
    let info = MockInfo {
        instance_url: org.instance_url(),
        token_url: org.token_url(),
        audience: org.audience().to_owned(),
        client_id: org.client_id().to_owned(),
        username: org.username().to_owned(),
        files: files.len(),
        rows: files.iter().map(|f| f.row_count as u64).sum(),
        bytes: files.iter().map(|f| f.length).sum(),
        setup_secs: started.elapsed().as_secs_f64(),
    };
    println!("{}", serde_json::to_string(&info).unwrap());
    tokio::task::spawn_blocking(|| {
        let mut rest = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut rest);
    })
    .await
    .unwrap();
    drop(org);
}

/// `VmHWM` (peak RSS) of a process, in MiB.
fn peak_rss_mib(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib as f64 / 1024.0
}

/// CPU seconds (user + system) a process has used.
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (in parentheses, may hold spaces): state is the first;
    // utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on Linux.
    ticks as f64 / 100.0
}

fn count_lines(path: &std::path::Path) -> u64 {
    let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(path).unwrap());
    let mut lines = 0u64;
    loop {
        let buf = reader.fill_buf().unwrap();
        if buf.is_empty() {
            return lines;
        }
        lines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        let n = buf.len();
        reader.consume(n);
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(SERVE_FLAG) {
        serve_mock(&parse_args(&args[1..])).await;
        return;
    }
    let o = parse_args(&args);

    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg(SERVE_FLAG)
        .args([
            "--files",
            &o.files.to_string(),
            "--rows",
            &o.rows.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let child_pid = child.id().to_string();
    let mut first_line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    let info: MockInfo = serde_json::from_str(&first_line).expect("the mock process's info");
    let mock_cpu_before = cpu_secs(&child_pid);
    eprintln!(
        "ingest_bench: mock org (pid {child_pid}) holds {} files, {} rows, {:.1} MB of CSV; built \
         in {:.1} s",
        info.files,
        info.rows,
        info.bytes as f64 / 1e6,
        info.setup_secs
    );

    let config = JwtBearerConfig::builder()
        .audience_url(&info.audience)
        .client_key_pem(DEMO_PRIVATE_KEY_PEM)
        .username(&info.username)
        .client_id(&info.client_id)
        .instance_url(&info.instance_url)
        .token_url(&info.token_url)
        .build()
        .unwrap();
    let client = if o.gzip {
        JwtBearerClient::new(config).unwrap()
    } else {
        // Without gzip support reqwest sends no Accept-Encoding, and the mock sends CSV as is.
        JwtBearerClient::builder(config)
            .http_client_builder(reqwest::Client::builder().no_gzip())
            .build()
            .unwrap()
    };

    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("events.ndjson");
    let store = FileCheckpointStore::new(dir.path().join("events.checkpoint.json"));
    let options = CollectorOptions {
        // Far enough back for every file (the oldest is files / 6 + 2 days old).
        since: Duration::from_secs((o.files as u64 / 6 + 30) * 86_400),
        concurrency: o.concurrency,
        ..CollectorOptions::default()
    };
    let mut collector = Collector::new(client, EventLogFileQuery::new(), store, options).unwrap();
    let mut sink = NdjsonFileSink::resume(&out_path, collector.checkpoint())
        .unwrap()
        .with_format(o.format);

    let cpu_before = cpu_secs("self");
    let start = Instant::now();
    let summary = collector
        .run_pass(&mut sink, &mut |_| {}, &AtomicBool::new(false))
        .await
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_secs("self") - cpu_before;
    let mock_cpu = cpu_secs(&child_pid) - mock_cpu_before;
    let mock_peak = peak_rss_mib(&child_pid);
    let peak = peak_rss_mib("self");
    drop(sink);

    // Closing its stdin ends the mock process.
    drop(child.stdin.take());
    child.wait().unwrap();

    let lines = count_lines(&out_path);
    let out_bytes = std::fs::metadata(&out_path).unwrap().len();
    assert_eq!(summary.files, info.files, "files collected");
    assert_eq!(summary.rows, info.rows, "rows collected");
    assert_eq!(summary.bytes, info.bytes, "CSV bytes collected");
    assert_eq!(lines, info.rows, "NDJSON lines written");
    let mb = summary.bytes as f64 / 1e6;
    println!(
        "ingest_bench ({}, {}, concurrency {}): {} files, {} rows, {mb:.1} MB of CSV in {secs:.2} s: \
         {:.0} rows/s, {:.1} MB/s of CSV; {:.1} MB of NDJSON, {lines} lines (= rows); collector \
         process: CPU {cpu:.1} s, peak RSS (VmHWM) {peak:.1} MiB; mock process: CPU {mock_cpu:.1} \
         s during the pass, peak RSS {mock_peak:.1} MiB",
        if o.gzip { "gzip" } else { "no gzip" },
        o.format,
        o.concurrency,
        summary.files,
        summary.rows,
        summary.rows as f64 / secs,
        mb / secs,
        out_bytes as f64 / 1e6,
    );
}
