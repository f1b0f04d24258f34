//! The sink's throughput into the Elasticsearch double: documents like sf-ingest's ECS Login
//! documents (about 1 KB each), sent through `EsSink` in 5 MiB gzip requests, then sent again
//! (every item a 409, the restart case).
//!
//! ```text
//! cargo run --release -p salesforce-jwt-elasticsearch --features testing --example es_throughput [DOCS]
//! ```
//!
//! The double runs in the same process (its own thread: gunzip, JSON parsing, mapping checks),
//! so the figure is a floor for the sink: a real cluster does that work elsewhere. Each line
//! also splits the process's CPU time between the sink (every thread but the double's) and the
//! double, and gives the sink's CPU per document: the sink's own cost, whatever the double's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use salesforce_jwt_elasticsearch::testing::EsDouble;
use salesforce_jwt_elasticsearch::{EsConfig, EsSink};

fn document(i: usize) -> Vec<u8> {
    format!(
        r#"{{"@timestamp":"2026-12-04T00:{m:02}:{s:02}.860Z","ecs":{{"version":"8.11.0"}},"event":{{"kind":"event","module":"salesforce","dataset":"salesforce.login","action":"login","id":"{i:032x}","category":["authentication"],"type":["start"],"outcome":"success"}},"organization":{{"id":"00D000000000001"}},"user":{{"id":"0055g00000KlMnOAAV","name":"j.smith{u}@example.com","email":"j.smith{u}@example.com","roles":["Standard"]}},"source":{{"ip":"192.0.2.{ip}"}},"related":{{"ip":["192.0.2.{ip}"]}},"user_agent":{{"original":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"}},"url":{{"original":"/services/oauth2/token"}},"tls":{{"version":"1.2","version_protocol":"tls","cipher":"ECDHE-RSA-AES256-GCM-SHA384"}},"salesforce":{{"event_log_file":{{"id":"0AT000000000001GAA","event_type":"Login","log_date":"2026-12-04T00:00:00.000Z","interval":"Daily","sequence":0}},"login":{{"event_type":"Login","request_id":"R{i:021}","user_id":"0055g00000KlMnO","run_time":{rt},"cpu_time":{ct},"uri":"/services/oauth2/token","login_status":"LOGIN_NO_ERROR","api_type":"N/A","api_version":"N/A","client_ip":"192.0.2.{ip}","browser_type":"Safari","platform_type":"Mac OSX"}}}}}}"#,
        m = i / 60 % 60,
        s = i % 60,
        u = i % 97,
        ip = i % 250,
        rt = i % 5000,
        ct = i % 700,
    )
    .into_bytes()
}

/// CPU seconds (user + system) from a `/proc/.../stat` line, and the command name in it.
fn stat_cpu(stat: &str) -> Option<(String, f64)> {
    let name = stat.get(stat.find('(')? + 1..stat.rfind(')')?)?.to_string();
    // After the name: state is the first field; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 2..)?
        .split_whitespace()
        .collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some((name, ticks as f64 / 100.0))
}

/// CPU seconds of the whole process (exited threads included) and of the double's threads.
fn cpu_split() -> (f64, f64) {
    let read = |path: &std::path::Path| std::fs::read_to_string(path).ok();
    let process = read("/proc/self/stat".as_ref())
        .and_then(|s| stat_cpu(&s))
        .map_or(0.0, |(_, cpu)| cpu);
    let double = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| read(&task.path().join("stat")))
        .filter_map(|s| stat_cpu(&s))
        .filter(|(name, _)| name.starts_with("es-double"))
        .map(|(_, cpu)| cpu)
        .sum();
    (process, double)
}

fn main() {
    let docs: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let double = EsDouble::start().unwrap();
    let config = EsConfig::new(&double.url()).unwrap();
    let build = if cfg!(debug_assertions) {
        "DEBUG build (not representative)"
    } else {
        "release build"
    };
    println!(
        "{build}; {docs} documents; batches of {} bytes, gzip",
        config.max_batch_bytes
    );
    for pass in ["first delivery (201s)", "redelivery (409s)"] {
        let mut sink = EsSink::new(&config).unwrap();
        let (process_before, double_before) = cpu_split();
        let started = Instant::now();
        runtime.block_on(async {
            for i in 0..docs {
                sink.add_document(&document(i)).await.unwrap();
            }
            sink.flush().await.unwrap();
        });
        let secs = started.elapsed().as_secs_f64();
        let (process_after, double_after) = cpu_split();
        let double_cpu = double_after - double_before;
        let sink_cpu = process_after - process_before - double_cpu;
        let stats = sink.stats();
        let mb = stats.document_bytes as f64 / 1e6;
        println!(
            "{pass}: {:.0} docs/s, {:.1} MB/s of documents ({mb:.0} MB in {secs:.2} s, {} requests, created {}, already delivered {})",
            docs as f64 / secs,
            mb / secs,
            stats.requests,
            stats.created,
            stats.already_delivered,
        );
        println!(
            "  CPU: sink {sink_cpu:.2} s ({:.1} µs per document), double {double_cpu:.2} s",
            sink_cpu * 1e6 / docs as f64,
        );
    }
    assert_eq!(double.document_count(), docs);
}
