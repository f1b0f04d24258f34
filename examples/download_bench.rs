//! Streaming-download benchmark: throughput and peak memory of `log_records` on a huge file.
//!
//! ```sh
//! cargo run --release --example download_bench -- --size-mib 1024
//! cargo run --release --example download_bench -- --size-mib 1024 --identity
//! ```
//!
//! A tiny HTTP/1.1 server on 127.0.0.1 serves one generated EventLogFile of about `--size-mib`
//! MiB (`CsvRowGenerator`, never held in memory), gzip-compressed on the fly (or as is with
//! `--identity`), with chunked transfer encoding. A wiremock token endpoint in the same process
//! hands out the token. The client downloads the file with `JwtBearerClient::log_records`, writes
//! every row as NDJSON to `io::sink()` through `NdjsonSink`, and the program reports MB of CSV,
//! rows, seconds, MB/s, rows/s and the peak RSS of the whole process (`VmHWM`): server, token
//! endpoint and client together, so the client's own figure is at most that.
//!
//! The server generates and compresses on a thread of its own, so on a small machine it competes
//! with the client for CPU: the throughput is a lower bound for the client.
//!
//! Options: `--size-mib N` (default 1024), `--identity`, `--gzip-level 0-9` (default 1, the
//! mock org's level), `--event-type T` (default `API`), `--no-json` (count the rows without
//! writing them: what the download and decoding cost alone).
//!
//! Also reported: the CPU time of the whole process during the download; near twice the wall
//! time means both cores were busy (server included).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::time::Instant;

use futures_util::StreamExt as _;
use salesforce_jwt::collect::{Row, Sink, Unit};
use salesforce_jwt::event_log_file::EventLogFile;
use salesforce_jwt::sink::NdjsonSink;
use salesforce_jwt::{JwtBearerClient, JwtBearerConfig};
use salesforce_jwt_mock::{CsvRowGenerator, DEMO_PRIVATE_KEY_PEM, Interval, MockLogFile};
use serde_json::json;
use time::macros::datetime;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FILE_ID: &str = "0AT000000000001AAA";
const LOG_FILE_PATH: &str = "/services/data/v64.0/sobjects/EventLogFile/0AT000000000001AAA/LogFile";
/// Bytes per chunk the server sends (before chunked framing).
const SERVER_CHUNK: usize = 64 * 1024;
/// Chunks the generator thread may run ahead of the socket: bounds the server's memory.
const SERVER_CHUNKS_AHEAD: usize = 4;
/// Rows generated to estimate the average row size.
const SAMPLE_ROWS: usize = 20_000;

struct Options {
    size_mib: u64,
    identity: bool,
    gzip_level: u32,
    event_type: String,
    json: bool,
}

fn parse_args() -> Options {
    let mut o = Options {
        size_mib: 1024,
        identity: false,
        gzip_level: 1,
        event_type: "API".into(),
        json: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--size-mib" => o.size_mib = value().parse().expect("--size-mib N"),
            "--identity" => o.identity = true,
            "--gzip-level" => o.gzip_level = value().parse().expect("--gzip-level 0-9"),
            "--event-type" => o.event_type = value(),
            "--no-json" => o.json = false,
            other => panic!(
                "unknown argument {other:?}; use --size-mib N, --identity, --gzip-level L, \
                 --event-type T, --no-json"
            ),
        }
    }
    o
}

/// The generated file: deterministic for (event type, rows), so the server can produce it
/// again, identical, from the same arguments.
#[derive(Clone)]
struct FileSpec {
    event_type: String,
    rows: usize,
}

impl FileSpec {
    fn generator(&self) -> CsvRowGenerator {
        MockLogFile::builder(&self.event_type)
            .interval(Interval::Daily)
            .log_date(datetime!(2025-06-01 00:00 UTC))
            .rows(self.rows)
            .seed(7)
            .csv_generator()
    }
}

/// Picks a row count giving a little over `target` bytes, then measures the exact size with a dry pass
/// over the generator (CPU, no memory): `LogFileLength` must be exact.
fn plan(event_type: &str, target: u64) -> (FileSpec, u64) {
    let sample = MockLogFile::builder(event_type)
        .interval(Interval::Daily)
        .log_date(datetime!(2025-06-01 00:00 UTC))
        .rows(SAMPLE_ROWS)
        .seed(7)
        .csv_generator();
    let sample_bytes: usize = sample.map(|chunk| chunk.len()).sum();
    // 0.5% more rows than the estimate, so the file is at least `target` bytes.
    let rows = (target as f64 * 1.005 / (sample_bytes as f64 / SAMPLE_ROWS as f64)).ceil() as usize;
    let spec = FileSpec {
        event_type: event_type.into(),
        rows,
    };
    let bytes = spec.generator().map(|chunk| chunk.len() as u64).sum();
    (spec, bytes)
}

/// Generates the file and sends it as HTTP chunked-encoding frames, gzip-compressed when
/// `gzip` is set. Runs on its own thread; `blocking_send` waits while the socket is behind.
fn produce(spec: &FileSpec, gzip: Option<flate2::Compression>, tx: &mpsc::Sender<Vec<u8>>) {
    let frame = |data: &[u8]| {
        let mut out = Vec::with_capacity(data.len() + 16);
        write!(out, "{:x}\r\n", data.len()).unwrap();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        out
    };
    let mut pending = Vec::with_capacity(SERVER_CHUNK * 2);
    match gzip {
        Some(level) => {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
            for row in spec.generator() {
                encoder.write_all(&row).unwrap();
                if encoder.get_ref().len() >= SERVER_CHUNK {
                    let data = std::mem::take(encoder.get_mut());
                    if tx.blocking_send(frame(&data)).is_err() {
                        return;
                    }
                }
            }
            let rest = encoder.finish().unwrap();
            if !rest.is_empty() && tx.blocking_send(frame(&rest)).is_err() {
                return;
            }
        }
        None => {
            for row in spec.generator() {
                pending.extend_from_slice(&row);
                if pending.len() >= SERVER_CHUNK {
                    if tx.blocking_send(frame(&pending)).is_err() {
                        return;
                    }
                    pending.clear();
                }
            }
            if !pending.is_empty() && tx.blocking_send(frame(&pending)).is_err() {
                return;
            }
        }
    }
    let _ = tx.blocking_send(b"0\r\n\r\n".to_vec());
}

/// Reads one request head (up to the blank line). Returns it as text, or None on EOF.
async fn read_head(socket: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 || head.len() > 64 * 1024 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// One connection: serves the log file at LOG_FILE_PATH, 404 for anything else; then closes.
async fn serve(mut socket: TcpStream, spec: FileSpec, force_identity: bool, level: u32) {
    let Some(head) = read_head(&mut socket).await else {
        return;
    };
    let request_line = head.lines().next().unwrap_or_default();
    if !request_line.starts_with(&format!("GET {LOG_FILE_PATH} ")) {
        eprintln!("download_bench server: 404 for {request_line:?}");
        let _ = socket
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    }
    let client_takes_gzip = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("accept-encoding:") && l.contains("gzip")
    });
    let gzip = (!force_identity && client_takes_gzip).then(|| flate2::Compression::new(level));
    let mut response = String::from(
        "HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n",
    );
    if gzip.is_some() {
        response.push_str("Content-Encoding: gzip\r\n");
    }
    response.push_str("\r\n");
    if socket.write_all(response.as_bytes()).await.is_err() {
        return;
    }
    let (tx, mut rx) = mpsc::channel(SERVER_CHUNKS_AHEAD);
    let producer = std::thread::spawn(move || produce(&spec, gzip, &tx));
    let mut sent = 0u64;
    while let Some(frame) = rx.recv().await {
        sent += frame.len() as u64;
        if socket.write_all(&frame).await.is_err() {
            break;
        }
    }
    // Dropping the receiver ends the producer if the client went away early.
    drop(rx);
    producer.join().unwrap();
    let _ = socket.shutdown().await;
    eprintln!(
        "download_bench server: sent {:.1} MB on the wire ({})",
        sent as f64 / 1e6,
        if gzip.is_some() { "gzip" } else { "identity" }
    );
}

/// CPU seconds (user + system) this process has used so far.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the file, 12 and 13 after the name and state.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // The kernel's USER_HZ is 100 on Linux.
    ticks as f64 / 100.0
}

/// Peak and current resident set size of this process, in KiB (`VmHWM`, `VmRSS`).
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[tokio::main]
async fn main() {
    let o = parse_args();
    let target = o.size_mib * 1024 * 1024;
    let started = Instant::now();
    let (spec, csv_bytes) = plan(&o.event_type, target);
    eprintln!(
        "download_bench: {} file of {} rows, {csv_bytes} bytes ({:.1} MiB), sized by a dry pass \
         in {:.1} s",
        spec.event_type,
        spec.rows,
        csv_bytes as f64 / (1024.0 * 1024.0),
        started.elapsed().as_secs_f64()
    );

    // The log file server: loopback only, one connection at a time is all a download needs.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let instance_url = format!("http://{}", listener.local_addr().unwrap());
    let server_spec = spec.clone();
    let (identity, level) = (o.identity, o.gzip_level);
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve(socket, server_spec.clone(), identity, level));
        }
    });

    // The token endpoint.
    let tokens = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "00DXX0000000001AAA!AR.download-bench",
            "instance_url": instance_url,
            "id": "https://login.salesforce.com/id/00DXX0000000001AAA/005XX0000000001AAA",
            "token_type": "Bearer",
            "issued_at": "1700000000000",
            "scope": "api",
        })))
        .mount(&tokens)
        .await;

    let config = JwtBearerConfig::builder()
        .audience_url("https://login.salesforce.com")
        .client_key_pem(DEMO_PRIVATE_KEY_PEM)
        .username("integration@example.com")
        .client_id("3MVG9DownloadBench")
        .instance_url(&instance_url)
        .token_url(tokens.uri())
        .build()
        .unwrap();
    let client = JwtBearerClient::new(config).unwrap();
    client.access_token().await.unwrap();

    let generator = spec.generator();
    let file: EventLogFile = serde_json::from_value(json!({
        "Id": FILE_ID,
        "EventType": spec.event_type,
        "LogDate": "2025-06-01T00:00:00.000+0000",
        "CreatedDate": "2025-06-02T03:00:00.000+0000",
        "Interval": "Daily",
        "Sequence": 0,
        "LogFileLength": csv_bytes as f64,
        "LogFile": LOG_FILE_PATH,
        "LogFileFieldNames": generator.field_names(),
        "LogFileFieldTypes": generator.field_types(),
    }))
    .unwrap();
    drop(generator);

    let (hwm_before, rss_before) = rss_kib();
    let mut sink = NdjsonSink::new(std::io::sink());
    let cpu_start = cpu_secs();
    let start = Instant::now();
    let mut records = client.log_records(&file).await.unwrap();
    let mut rows = 0u64;
    while let Some(row) = records.next().await {
        let row = row.unwrap();
        if o.json {
            sink.write(Row::LogFile {
                file: &file,
                record: &row,
            })
            .await
            .unwrap();
        }
        rows += 1;
    }
    sink.commit(&Unit::LogFile(&file)).await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu_start;
    let received = records.bytes_received();
    drop(records);
    let (hwm, rss) = rss_kib();

    assert_eq!(
        received, csv_bytes,
        "decoded bytes differ from LogFileLength"
    );
    assert_eq!(
        rows, spec.rows as u64,
        "row count differs from the generated file"
    );
    let mb = csv_bytes as f64 / 1e6;
    println!(
        "download_bench {} ({}{}{}): {mb:.1} MB of CSV ({:.1} MiB), {rows} rows in {secs:.2} s \
         (process CPU {cpu:.1} s): {:.1} MB/s, {:.0} rows/s; peak RSS (VmHWM) {:.1} MiB (RSS \
         before the download {:.1} MiB, peak before it {:.1} MiB, RSS after {:.1} MiB)",
        spec.event_type,
        if o.identity { "identity" } else { "gzip" },
        if o.identity {
            String::new()
        } else {
            format!(" level {}", o.gzip_level)
        },
        if o.json {
            ", NDJSON to io::sink"
        } else {
            ", rows counted, no JSON"
        },
        csv_bytes as f64 / (1024.0 * 1024.0),
        mb / secs,
        rows as f64 / secs,
        hwm as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        hwm_before as f64 / 1024.0,
        rss as f64 / 1024.0,
    );
}
