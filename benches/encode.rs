//! Row encoding throughput: decoded log-file rows to NDJSON and ECS lines, in MB/s of the CSV
//! they came from.
//!
//! Inputs are generated once (`CsvRowGenerator`, about 20 MB of CSV per event type), decoded
//! once and held in memory as `LogRecord`s, so every variant measures encoding only. Variants:
//!
//! - `serde_json NdjsonRow` / `serde_json EcsRow`: the `Serialize` impls through
//!   `serde_json::to_writer`, the reference the sinks must match byte for byte;
//! - `NdjsonSink ndjson` / `NdjsonSink ecs`: what the sinks do per row (encode, then copy the
//!   line into the writer, here a `Vec`).
//!
//! Under `cargo bench` the bench also times 7 rounds of the variants back to back and prints
//! the medians.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use salesforce_jwt::collect::{Row, Sink};
use salesforce_jwt::event_log_file::{
    EventLogFile, Interval as SfInterval, LogFileDecoder, LogRecord,
};
use salesforce_jwt::format::OutputFormat;
use salesforce_jwt::format::ecs::{EcsOptions, EcsRow};
use salesforce_jwt::sink::{NdjsonRow, NdjsonSink};
use salesforce_jwt_mock::{Interval, MockLogFile};
use time::macros::datetime;

const TARGET_BYTES: usize = 20 * 1024 * 1024;
const ROUNDS: usize = 7;

struct Input {
    event_type: &'static str,
    csv_bytes: usize,
    file: EventLogFile,
    rows: Vec<LogRecord>,
}

fn generate(event_type: &'static str) -> Input {
    let log_date = datetime!(2025-06-01 00:00 UTC);
    let mut generator = MockLogFile::builder(event_type)
        .interval(Interval::Daily)
        .log_date(log_date)
        .rows(usize::MAX / 2)
        .seed(42)
        .csv_generator();
    let file = EventLogFile {
        id: "0AT000000000042AAA".into(),
        event_type: event_type.into(),
        log_date,
        created_date: log_date,
        interval: Some(SfInterval::Daily),
        sequence: 0,
        log_file_length: 0,
        log_file: "/services/data/v64.0/sobjects/EventLogFile/0AT000000000042AAA/LogFile".into(),
        api_version: Some(64.0),
        log_file_content_type: Some("CSV".into()),
        log_file_field_names: Some(generator.field_names()),
        log_file_field_types: Some(generator.field_types()),
    };
    let mut body = Vec::with_capacity(TARGET_BYTES + 64 * 1024);
    while body.len() < TARGET_BYTES {
        body.extend_from_slice(&generator.next().unwrap());
    }
    let mut decoder = LogFileDecoder::for_file(&file);
    let mut rows = Vec::new();
    decoder.feed(&body, &mut rows).unwrap();
    decoder.finish(&mut rows).unwrap();
    eprintln!(
        "encode bench input {event_type}: {:.1} MB of CSV, {} rows",
        body.len() as f64 / 1e6,
        rows.len()
    );
    Input {
        event_type,
        csv_bytes: body.len(),
        file,
        rows,
    }
}

fn reference(input: &Input, format: OutputFormat) -> usize {
    let mut out = Vec::with_capacity(4096);
    let mut total = 0;
    for row in &input.rows {
        out.clear();
        let file = &input.file;
        match format {
            OutputFormat::Ecs => serde_json::to_writer(
                &mut out,
                &EcsRow {
                    file,
                    row,
                    options: &EcsOptions::default(),
                },
            )
            .unwrap(),
            _ => serde_json::to_writer(&mut out, &NdjsonRow { file, row }).unwrap(),
        }
        out.push(b'\n');
        total += out.len();
    }
    total
}

fn through_sink(input: &Input, format: OutputFormat, runtime: &tokio::runtime::Runtime) -> usize {
    // One output reused by every pass, as a BufWriter's buffer is: a fresh one would measure
    // page faults.
    thread_local! {
        static OUT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    OUT.with_borrow_mut(|out| {
        out.clear();
        let mut sink = NdjsonSink::new(&mut *out).with_format(format);
        runtime.block_on(async {
            for row in &input.rows {
                sink.write(Row::LogFile {
                    file: &input.file,
                    record: row,
                })
                .await
                .unwrap();
            }
        });
        out.len()
    })
}

type Variant = (&'static str, fn(&Input, &tokio::runtime::Runtime) -> usize);

const VARIANTS: &[Variant] = &[
    ("serde_json NdjsonRow", |i, _| {
        reference(i, OutputFormat::Ndjson)
    }),
    ("NdjsonSink ndjson", |i, r| {
        through_sink(i, OutputFormat::Ndjson, r)
    }),
    ("serde_json EcsRow", |i, _| reference(i, OutputFormat::Ecs)),
    ("NdjsonSink ecs", |i, r| {
        through_sink(i, OutputFormat::Ecs, r)
    }),
];

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut criterion = Criterion::default().configure_from_args();
    let inputs = [generate("URI"), generate("Login"), generate("API")];
    // `ENCODE_PROFILE=<variant name>` runs that variant alone for a while, for `perf record`.
    if let Ok(name) = std::env::var("ENCODE_PROFILE") {
        let &(_, f) = VARIANTS
            .iter()
            .find(|(n, _)| *n == name)
            .expect("a variant name");
        for _ in 0..10 {
            for input in &inputs {
                black_box(f(input, &runtime));
            }
        }
        return;
    }
    for input in &inputs {
        // The sinks must write exactly what the reference does.
        assert_eq!(
            reference(input, OutputFormat::Ndjson),
            through_sink(input, OutputFormat::Ndjson, &runtime)
        );
        assert_eq!(
            reference(input, OutputFormat::Ecs),
            through_sink(input, OutputFormat::Ecs, &runtime)
        );
        let mut group = criterion.benchmark_group(format!("encode {}", input.event_type));
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(10);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(6));
        group.throughput(Throughput::Bytes(input.csv_bytes as u64));
        for &(name, f) in VARIANTS {
            group.bench_function(name, |b| b.iter(|| black_box(f(input, &runtime))));
        }
        group.finish();
    }
    criterion.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        for input in &inputs {
            let mb = input.csv_bytes as f64 / 1e6;
            let mut samples = vec![Vec::new(); VARIANTS.len()];
            for _ in 0..ROUNDS {
                for (i, &(_, f)) in VARIANTS.iter().enumerate() {
                    let start = Instant::now();
                    black_box(f(input, &runtime));
                    samples[i].push(mb / start.elapsed().as_secs_f64());
                }
            }
            let medians: Vec<String> = VARIANTS
                .iter()
                .zip(samples)
                .map(|(&(name, _), mut s)| {
                    s.sort_by(f64::total_cmp);
                    format!("{name} {:.0} MB/s", s[s.len() / 2])
                })
                .collect();
            println!(
                "{} (MB/s of CSV, medians of {ROUNDS} rounds): {}",
                input.event_type,
                medians.join(", ")
            );
        }
    }
}
