//! End-to-end ingestion benchmark, stage by stage: what each stage of `ingest --out FILE` costs,
//! what the whole costs, and how far that is from the floor (receiving and gunzipping the same
//! bytes over loopback), all measured in one run.
//!
//! ```sh
//! cargo bench --bench ingest                       # also: cargo run --release --example ingest_bench
//! cargo run --release --example ingest_bench -- --files 50 --rows 20000 --concurrency 4
//! cargo run --release --example ingest_bench -- --no-gzip --only e2e
//! cargo run --release --example ingest_bench -- --only e2e,e2e-ecs --repeat 5
//! ```
//!
//! A copy of this program started with `--serve-mock` holds a `MockOrg` with `--files` daily
//! files (default 200) of `--rows` rows each (default 5,000), cycling through Login, Logout, API,
//! URI, ApexExecution and Report, every download compressed ahead (Salesforce serves stored
//! files; compressing on request would time the double). The mock runs in that second process
//! so that the peak RSS reported is the collector's, not the mock's hundreds of MB of CSV.
//!
//! The stages (`--only NAME[,NAME]` picks some; end to end runs first, so that no earlier stage's
//! freed heap counts in its peak RSS):
//!
//! - `floor`: every file downloaded with a plain reqwest client asking for gzip, inflated with
//!   flate2 and thrown away, `--concurrency` tasks at once: the wire and inflate, nothing of ours.
//!   Its note gives the longest wait for a response's headers: a cost of the double, which
//!   was most of a second for one very large file until the mock's front door sent stored
//!   bodies without copying them; a wait here again means the mock got in the way.
//! - `download`: the same through [`JwtBearerClient::download_log_file`] (inflate, length
//!   check), `--concurrency` tasks at once.
//! - `decode`: `download_concurrently` read as the collector reads it, in file order, rows
//!   decoded in the download tasks, counted and dropped.
//! - `stages`: one file at a time, each stage timed on its own over the same bytes (the CSV is
//!   downloaded first, untimed): `decode` (CSV to typed rows, fed in the chunks the network
//!   delivered), `encode` NDJSON and `encode-ecs` (rows to lines in memory), `write` (the NDJSON
//!   lines handed to an `NdjsonFileSink` in 1 MiB pieces, a commit per file).
//! - `e2e`: one `Collector` pass into an `NdjsonFileSink` (checkpoint in a
//!   `FileCheckpointStore`): what `ingest --out FILE` does. `e2e-ecs`: the same with
//!   `--format ecs`. Both check that the output has exactly one line per row. `--repeat N`
//!   runs them N times in turn and gives ECS's share of NDJSON's throughput as the median of
//!   the N pairs: on a shared 2-core machine one pair alone moves by a tenth. Read peak RSS
//!   from the first pair: later runs start with the heap the earlier ones freed.
//!
//! For each: seconds, MB/s of CSV, the collector process's CPU seconds, and its peak RSS
//! (`VmHWM`, reset before each stage through `/proc/self/clear_refs`). The last lines give
//! end to end as a share of the floor, ECS's share of NDJSON's throughput end to end (issue
//! 22's measure), and each encoder's cost per row.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use salesforce_jwt::collect::{Collector, CollectorOptions, FileCheckpointStore, Row, Sink, Unit};
use salesforce_jwt::event_log_file::{EventLogFile, EventLogFileQuery, LogFileDecoder, LogRecord};
use salesforce_jwt::format::OutputFormat;
use salesforce_jwt::sink::{NdjsonFileSink, NdjsonSink};
use salesforce_jwt::{Bytes, JwtBearerClient, JwtBearerConfig};
use salesforce_jwt_mock::{DEMO_PRIVATE_KEY_PEM, Interval, MockLogFile, MockOrg};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

const EVENT_TYPES: &[&str] = &["Login", "Logout", "API", "URI", "ApexExecution", "Report"];
/// The child-process flag: serve the mock org, print its coordinates, exit when stdin closes.
const SERVE_FLAG: &str = "--serve-mock";
const STAGES: &[&str] = &["floor", "download", "decode", "stages", "e2e", "e2e-ecs"];
/// The write stage's piece size: about what a decoded segment hands the sink at once.
const WRITE_SIZE: usize = 1 << 20;

struct Options {
    files: usize,
    rows: usize,
    concurrency: usize,
    gzip: bool,
    only: Vec<String>,
    /// Times each end-to-end stage runs, NDJSON and ECS in turn: the ratio between them moves
    /// by a tenth from run to run on a shared 2-core machine, so it is read as a median.
    repeat: usize,
}

fn parse_args(args: &[String]) -> Options {
    let mut o = Options {
        files: 200,
        rows: 5_000,
        concurrency: 4,
        gzip: true,
        only: STAGES.iter().map(|s| s.to_string()).collect(),
        repeat: 1,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| panic!("{arg} needs a value"))
                .clone()
        };
        match arg.as_str() {
            "--files" => o.files = value().parse().expect("--files takes a number"),
            "--rows" => o.rows = value().parse().expect("--rows takes a number"),
            "--concurrency" => {
                o.concurrency = value().parse().expect("--concurrency takes a number")
            }
            "--no-gzip" => o.gzip = false,
            "--repeat" => {
                o.repeat = value().parse().expect("--repeat takes a number");
                assert!(o.repeat > 0, "--repeat takes a number above 0");
            }
            "--only" => {
                o.only = value().split(',').map(|s| s.trim().to_string()).collect();
                for s in &o.only {
                    assert!(
                        STAGES.contains(&s.as_str()),
                        "unknown stage {s:?}: use {STAGES:?}"
                    );
                }
            }
            // `cargo bench` passes `--bench` (and a filter, which this harness does not use).
            "--bench" => {}
            other if !other.starts_with('-') => {}
            other => panic!(
                "unknown argument {other:?}; use --files N, --rows N, --concurrency N, \
                 --no-gzip, --repeat N, --only {}",
                STAGES.join(",")
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
    gzip_bytes: u64,
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
    org.precompress_downloads();
    let files = org.files();
    let gzip_bytes = files
        .iter()
        .map(|f| gzip_len(&org.csv_of(&f.id).unwrap()))
        .sum();
    let info = MockInfo {
        instance_url: org.instance_url(),
        token_url: org.token_url(),
        audience: org.audience().to_owned(),
        client_id: org.client_id().to_owned(),
        username: org.username().to_owned(),
        files: files.len(),
        rows: files.iter().map(|f| f.row_count as u64).sum(),
        bytes: files.iter().map(|f| f.length).sum(),
        gzip_bytes,
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

/// The size of `csv` gzipped as the mock serves it (fast level), for the report only.
fn gzip_len(csv: &[u8]) -> u64 {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(csv).unwrap();
    encoder.finish().unwrap().len() as u64
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

/// Resets this process's `VmHWM` to its current RSS (Linux: `5` to `clear_refs`), so that each
/// stage reports its own peak.
fn reset_peak_rss() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!("ingest_bench: cannot reset the peak RSS ({e}); peaks are cumulative");
    }
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

/// One line of the report.
struct Measured {
    stage: String,
    secs: f64,
    cpu: Option<f64>,
    peak_mib: Option<f64>,
    note: String,
}

/// A stage's start: wall clock and CPU time, with the peak RSS reset.
struct StageClock {
    cpu: f64,
    start: Instant,
}

impl StageClock {
    fn start() -> Self {
        reset_peak_rss();
        StageClock {
            cpu: cpu_secs("self"),
            start: Instant::now(),
        }
    }

    fn stop(self, name: &str) -> Measured {
        Measured {
            stage: name.to_string(),
            secs: self.start.elapsed().as_secs_f64(),
            cpu: Some(cpu_secs("self") - self.cpu),
            peak_mib: Some(peak_rss_mib("self")),
            note: String::new(),
        }
    }
}

/// Times `work` as one stage: wall seconds, CPU seconds, peak RSS.
async fn stage<T>(name: &str, work: impl Future<Output = T>) -> (Measured, T) {
    let clock = StageClock::start();
    let out = work.await;
    (clock.stop(name), out)
}

/// The floor: the bytes over loopback and inflated by flate2, nothing of ours in the way. Also
/// the longest wait for a response's headers, in seconds: the double's own delay, which every
/// stage pays too.
async fn floor(
    client: &JwtBearerClient,
    files: &[EventLogFile],
    concurrency: usize,
    gzip: bool,
) -> (u64, f64) {
    let token = client.access_token().await.unwrap();
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let longest_wait_us = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let downloads = files.iter().map(|file| {
        let url = client.instance_url_for(&file.log_file).unwrap();
        let raw = raw.clone();
        let token = token.clone();
        let longest_wait_us = longest_wait_us.clone();
        async move {
            let mut request = raw.get(url).bearer_auth(token.expose_secret());
            if gzip {
                request = request.header("Accept-Encoding", "gzip");
            }
            let asked = Instant::now();
            let response = request.send().await.unwrap();
            let waited = asked.elapsed().as_micros() as u64;
            longest_wait_us.fetch_max(waited, std::sync::atomic::Ordering::Relaxed);
            let encoded = response.headers().get("content-encoding").is_some();
            let mut body = response.bytes_stream();
            let mut inflater = flate2::write::GzDecoder::new(Discard(0));
            let mut plain = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.unwrap();
                if encoded {
                    inflater.write_all(&chunk).unwrap();
                } else {
                    plain += chunk.len() as u64;
                }
            }
            if encoded {
                plain = inflater.finish().unwrap().0;
            }
            plain
        }
    });
    let bytes = in_tasks(downloads, concurrency).await;
    let longest = longest_wait_us.load(std::sync::atomic::Ordering::Relaxed);
    (bytes, longest as f64 / 1e6)
}

/// Runs `downloads` as tasks, `concurrency` at once, so that they spread over the runtime's
/// worker threads as the collector's downloads do; the sum of their byte counts.
async fn in_tasks(
    downloads: impl Iterator<Item = impl Future<Output = u64> + Send + 'static>,
    concurrency: usize,
) -> u64 {
    stream::iter(downloads.map(tokio::spawn))
        .buffer_unordered(concurrency)
        .fold(0, |sum, n| async move { sum + n.unwrap() })
        .await
}

/// Counts and drops what is written to it.
struct Discard(u64);

impl std::io::Write for Discard {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The library's download path: gzip inflated, length checked, bytes dropped.
async fn download(client: &JwtBearerClient, files: &[EventLogFile], concurrency: usize) -> u64 {
    let downloads = files.iter().map(|file| {
        let (client, file) = (client.clone(), file.clone());
        async move {
            let body = client.download_log_file(&file).await.unwrap();
            body.try_fold(0u64, |n, chunk| async move { Ok(n + chunk.len() as u64) })
                .await
                .unwrap()
        }
    });
    in_tasks(downloads, concurrency).await
}

/// `download_concurrently`, as the collector reads it (in file order, rows decoded in the
/// download tasks): the rows counted and dropped.
async fn download_and_decode(
    client: &JwtBearerClient,
    files: &[EventLogFile],
    concurrency: usize,
) -> u64 {
    let mut downloads = client.download_concurrently(files.to_vec(), concurrency);
    let mut rows = 0u64;
    while let Some(mut file) = downloads.next().await {
        while let Some(row) = file.next().await {
            row.unwrap();
            rows += 1;
        }
    }
    rows
}

/// Time spent in each of the one-file-at-a-time stages.
#[derive(Default)]
struct StageTimes {
    decode: Duration,
    encode: Duration,
    encode_ecs: Duration,
    write: Duration,
    rows: u64,
    ndjson_bytes: u64,
    ecs_bytes: u64,
}

/// Decode, encode (both formats) and write, one file at a time, each timed on its own.
async fn stages(
    client: &JwtBearerClient,
    files: &[EventLogFile],
    out: &std::path::Path,
) -> StageTimes {
    let mut times = StageTimes::default();
    // The collector's own writer: whole blocks straight to the disk where the filesystem
    // allows it, an fdatasync per commit.
    let mut output = NdjsonFileSink::open(out, None).unwrap();
    for file in files {
        // The CSV as the network delivered it (untimed).
        let chunks: Vec<Bytes> = client
            .download_log_file(file)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();

        let start = Instant::now();
        let mut decoder = LogFileDecoder::for_file(file);
        let mut rows: Vec<LogRecord> = Vec::new();
        for chunk in &chunks {
            decoder.feed(chunk, &mut rows).unwrap();
        }
        decoder.finish(&mut rows).unwrap();
        times.decode += start.elapsed();
        times.rows += rows.len() as u64;
        drop(chunks);

        let mut encoded = Vec::new();
        for (format, time, bytes) in [
            (
                OutputFormat::Ecs,
                &mut times.encode_ecs,
                &mut times.ecs_bytes,
            ),
            (
                OutputFormat::Ndjson,
                &mut times.encode,
                &mut times.ndjson_bytes,
            ),
        ] {
            let start = Instant::now();
            let mut sink =
                NdjsonSink::new(Vec::with_capacity(encoded.capacity())).with_format(format);
            for row in &rows {
                sink.write(Row::LogFile { file, record: row })
                    .await
                    .unwrap();
            }
            encoded = sink.into_inner();
            *time += start.elapsed();
            *bytes += encoded.len() as u64;
        }
        drop(rows);

        let start = Instant::now();
        for piece in encoded.chunks(WRITE_SIZE) {
            output.write_encoded(file, piece).await.unwrap();
        }
        output.commit(&Unit::LogFile(file)).await.unwrap();
        times.write += start.elapsed();
    }
    times
}

/// One collector pass into an `NdjsonFileSink` in `format`, timed from the pass's start to the
/// sink's drop; then checks one line per row (untimed).
async fn end_to_end(
    client: &JwtBearerClient,
    o: &Options,
    info: &MockInfo,
    format: OutputFormat,
    dir: &std::path::Path,
) -> Measured {
    let out_path = dir.join(format!("events.{format}.ndjson"));
    let store = FileCheckpointStore::new(dir.join(format!("events.{format}.checkpoint.json")));
    let mut collector =
        Collector::new(client.clone(), EventLogFileQuery::new(), store, options(o)).unwrap();
    let mut sink = NdjsonFileSink::resume(&out_path, collector.checkpoint())
        .unwrap()
        .with_format(format);
    let clock = StageClock::start();
    let summary = collector
        .run_pass(&mut sink, &mut |_| {}, &AtomicBool::new(false))
        .await
        .unwrap();
    drop(sink);
    let mut measured = clock.stop(&format!("end to end, --format {format}"));
    assert_eq!(summary.files, info.files, "files collected");
    assert_eq!(summary.rows, info.rows, "rows collected");
    assert_eq!(summary.bytes, info.bytes, "CSV bytes collected");
    assert_eq!(
        count_lines(&out_path),
        info.rows,
        "lines written ({format})"
    );
    let bytes = std::fs::metadata(&out_path).unwrap().len();
    std::fs::remove_file(&out_path).unwrap();
    // The next run of the stage (`--repeat`) starts from nothing again.
    std::fs::remove_file(dir.join(format!("events.{format}.checkpoint.json"))).unwrap();
    measured.note = format!("{:.1} MB out, lines = rows", bytes as f64 / 1e6);
    measured
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

fn options(o: &Options) -> CollectorOptions {
    CollectorOptions {
        // Far enough back for every file (the oldest is files / 6 + 2 days old).
        since: Duration::from_secs((o.files as u64 / 6 + 30) * 86_400),
        concurrency: o.concurrency,
        ..CollectorOptions::default()
    }
}

#[tokio::main]
pub async fn main() {
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
    let mb = info.bytes as f64 / 1e6;
    eprintln!(
        "ingest_bench: mock org (pid {child_pid}) holds {} files, {} rows, {mb:.1} MB of CSV \
         ({:.1} MB gzipped); built in {:.1} s",
        info.files,
        info.rows,
        info.gzip_bytes as f64 / 1e6,
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
    let files = {
        let store = FileCheckpointStore::new(dir.path().join("list.checkpoint.json"));
        Collector::new(client.clone(), EventLogFileQuery::new(), store, options(&o))
            .unwrap()
            .pending_files()
            .await
            .unwrap()
    };
    assert_eq!(files.len(), info.files, "files listed");

    let mock_cpu_before = cpu_secs(&child_pid);
    let wanted = |s: &str| o.only.iter().any(|w| w == s);
    let mut report: Vec<Measured> = Vec::new();
    // End to end first: a stage that held whole files leaves freed heap the allocator keeps,
    // which would count in the peak RSS of every stage after it.
    let mut e2e_secs = Vec::new();
    let mut e2e_ecs_secs = Vec::new();
    for run in 1..=o.repeat {
        for (name, format) in [
            ("e2e", OutputFormat::Ndjson),
            ("e2e-ecs", OutputFormat::Ecs),
        ] {
            if wanted(name) {
                let mut m = end_to_end(&client, &o, &info, format, dir.path()).await;
                match format {
                    OutputFormat::Ndjson => e2e_secs.push(m.secs),
                    _ => e2e_ecs_secs.push(m.secs),
                }
                if o.repeat > 1 {
                    m.stage = format!("{} #{run}", m.stage);
                }
                report.push(m);
            }
        }
    }
    if wanted("floor") {
        let (mut m, (bytes, waited)) = stage(
            "floor: loopback + gunzip",
            floor(&client, &files, o.concurrency, o.gzip),
        )
        .await;
        assert_eq!(bytes, info.bytes, "floor bytes");
        m.note = format!("the mock's longest wait before headers {waited:.2} s");
        report.push(m);
    }
    if wanted("download") {
        let (m, bytes) = stage(
            "download + inflate",
            download(&client, &files, o.concurrency),
        )
        .await;
        assert_eq!(bytes, info.bytes, "downloaded bytes");
        report.push(m);
    }
    if wanted("decode") {
        let (m, rows) = stage(
            "download + inflate + decode",
            download_and_decode(&client, &files, o.concurrency),
        )
        .await;
        assert_eq!(rows, info.rows, "rows decoded");
        report.push(m);
    }
    let mut encode_times = None;
    if wanted("stages") {
        let out = dir.path().join("stages.ndjson");
        let (m, t) = stage("(one file at a time)", stages(&client, &files, &out)).await;
        std::fs::remove_file(&out).unwrap();
        assert_eq!(t.rows, info.rows, "rows decoded");
        let part = |stage: &str, d: Duration, note: String| Measured {
            stage: stage.to_string(),
            secs: d.as_secs_f64(),
            cpu: None,
            peak_mib: None,
            note,
        };
        encode_times = Some((t.encode, t.encode_ecs));
        report.push(part("decode", t.decode, String::new()));
        report.push(part(
            "encode NDJSON",
            t.encode,
            format!("{:.1} MB out", t.ndjson_bytes as f64 / 1e6),
        ));
        report.push(part(
            "encode ECS",
            t.encode_ecs,
            format!("{:.1} MB out", t.ecs_bytes as f64 / 1e6),
        ));
        report.push(part(
            "write NDJSON",
            t.write,
            format!(
                "NdjsonFileSink, 1 MiB pieces, a commit per file; peak RSS of these four {:.1} MiB",
                m.peak_mib.unwrap_or(0.0)
            ),
        ));
    }
    let mock_cpu = cpu_secs(&child_pid) - mock_cpu_before;
    drop(child.stdin.take());
    child.wait().unwrap();

    println!(
        "ingest_bench ({}, concurrency {}): {} files, {} rows, {mb:.1} MB of CSV",
        if o.gzip { "gzip" } else { "no gzip" },
        o.concurrency,
        info.files,
        info.rows
    );
    println!(
        "{:<32} {:>8} {:>9} {:>8} {:>10}  note",
        "stage", "secs", "MB/s CSV", "CPU s", "peak MiB"
    );
    for m in &report {
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
        println!(
            "{:<32} {:>8.2} {:>9.1} {:>8} {:>10}  {}",
            m.stage,
            m.secs,
            mb / m.secs,
            opt(m.cpu),
            opt(m.peak_mib),
            m.note
        );
    }
    if let (Some(floor), Some(e2e)) = (
        report.iter().find(|m| m.stage.starts_with("floor")),
        median(&e2e_secs),
    ) {
        println!(
            "end to end (NDJSON) runs at {:.0}% of the floor's speed",
            100.0 * floor.secs / e2e
        );
    }
    // Issue 22's measure of what ECS documents cost: the share of NDJSON's throughput, per
    // pair of runs one after the other.
    let ratios: Vec<f64> = e2e_secs
        .iter()
        .zip(&e2e_ecs_secs)
        .map(|(ndjson, ecs)| ndjson / ecs)
        .collect();
    if let Some(ratio) = median(&ratios) {
        let pairs = if ratios.len() > 1 {
            let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
            format!(" (median of {} pairs: {})", ratios.len(), each.join(", "))
        } else {
            String::new()
        };
        println!("end to end, ECS at {ratio:.2} of NDJSON's throughput{pairs}");
    }
    if let Some(t) = &encode_times {
        let per_row = |d: Duration| d.as_secs_f64() * 1e9 / info.rows as f64;
        println!(
            "encoding alone, per row: NDJSON {:.0} ns, ECS {:.0} ns",
            per_row(t.0),
            per_row(t.1)
        );
    }
    println!("mock process: CPU {mock_cpu:.1} s over all stages");
}
