//! CSV -> typed records throughput, against plain `csv::ByteRecord` reading of the same bytes.
//!
//! Inputs are generated once (`CsvRowGenerator`, at least 100 MB per event type, with the
//! generator's quoting, `""` escapes, multi-line fields and non-ASCII text) and held in memory,
//! so every variant measures parsing, not I/O. Variants, all over the same bytes:
//!
//! - `csv::ByteRecord (baseline)`: `csv::Reader::read_byte_record` into one reused record;
//! - `LogFileDecoder, typed values`: our decoder fed 64 KiB chunks, as a network delivers them,
//!   and every typed value of every row read (`LogRecord::values`, matched on): what a sink
//!   does;
//! - `LogFileDecoder, decode only`: the same without typed access, for context.
//!
//! After criterion's groups (and only under `cargo bench`) the bench times 7 more rounds of the
//! three variants itself and prints the median typed / baseline throughput ratio: the design
//! goal is at least 0.5.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use salesforce_jwt::event_log_file::{FieldValue, LogFileDecoder, LogRecord};
use salesforce_jwt_mock::{Interval, MockLogFile};
use time::macros::datetime;

/// Each input is at least this large.
const TARGET_BYTES: usize = 100 * 1024 * 1024;
/// The chunk size a network read typically hands over.
const CHUNK: usize = 64 * 1024;
/// Rounds (one pass of each variant) for the printed ratio; medians are reported.
const RATIO_PASSES: usize = 7;

struct Input {
    event_type: &'static str,
    body: Vec<u8>,
    field_names: String,
    field_types: String,
    rows: usize,
}

/// Generates rows of `event_type` until the body reaches `TARGET_BYTES`.
fn generate(event_type: &'static str) -> Input {
    let started = Instant::now();
    // More rows than will be taken: the loop stops at the size target. The period (one day)
    // only spreads the timestamps.
    let mut generator = MockLogFile::builder(event_type)
        .interval(Interval::Daily)
        .log_date(datetime!(2025-06-01 00:00 UTC))
        .rows(usize::MAX / 2)
        .seed(42)
        .csv_generator();
    let field_names = generator.field_names();
    let field_types = generator.field_types();
    let mut body = Vec::with_capacity(TARGET_BYTES + 64 * 1024);
    let mut rows = 0usize;
    // Header first, then rows until the target; bounded by the target size.
    body.extend_from_slice(&generator.next().unwrap());
    while body.len() < TARGET_BYTES {
        body.extend_from_slice(&generator.next().unwrap());
        rows += 1;
    }
    eprintln!(
        "records bench input {event_type}: {:.1} MB ({:.1} MiB), {rows} rows, {} columns, \
         generated in {:.1} s",
        body.len() as f64 / 1e6,
        body.len() as f64 / (1024.0 * 1024.0),
        field_names.split(',').count(),
        started.elapsed().as_secs_f64()
    );
    Input {
        event_type,
        body,
        field_names,
        field_types,
        rows,
    }
}

/// Baseline: the `csv` crate's fastest owned-buffer API. Returns the number of data rows.
fn baseline(input: &Input) -> usize {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(input.body.as_slice());
    let mut record = csv::ByteRecord::new();
    let mut rows = 0;
    while reader.read_byte_record(&mut record).unwrap() {
        black_box(&record);
        rows += 1;
    }
    rows
}

fn decoder(input: &Input) -> LogFileDecoder {
    LogFileDecoder::new(
        "0AT000000000001AAA",
        Some(&input.field_names),
        Some(&input.field_types),
    )
}

/// Reads a typed value the way a consumer does (a serializer, a filter): by matching on it and
/// using its payload. Every payload is read, so none of the parsing can be optimized away.
#[inline]
fn touch(name: &str, value: FieldValue<'_>) -> u64 {
    let payload = match value {
        FieldValue::String(s) | FieldValue::Id(s) => s.len() as u64,
        FieldValue::Integer(i) => i as u64,
        FieldValue::Float(f) => f.to_bits(),
        FieldValue::Boolean(b) => u64::from(b),
        FieldValue::DateTime(t) => u64::from(t.nanosecond()) ^ t.year() as u64,
        FieldValue::Ip(IpAddr::V4(ip)) => u64::from(ip.to_bits()),
        FieldValue::Ip(IpAddr::V6(ip)) => ip.to_bits() as u64,
    };
    (name.len() as u64).wrapping_add(payload)
}

/// Ours: 64 KiB chunks in, rows out, every typed value touched. Returns the number of rows.
fn typed_records(input: &Input) -> usize {
    let mut decoder = decoder(input);
    let mut out: Vec<LogRecord> = Vec::with_capacity(1024);
    let mut rows = 0;
    let mut consume = |out: &mut Vec<LogRecord>| {
        for record in out.drain(..) {
            let mut sum = 0u64;
            for (name, value) in record.values() {
                sum = sum.wrapping_add(touch(name, value));
            }
            black_box(sum);
            rows += 1;
        }
    };
    for chunk in input.body.chunks(CHUNK) {
        decoder.feed(chunk, &mut out).unwrap();
        consume(&mut out);
    }
    decoder.finish(&mut out).unwrap();
    consume(&mut out);
    rows
}

/// Ours without typed access: splitting into `LogRecord`s only.
fn decode_only(input: &Input) -> usize {
    let mut decoder = decoder(input);
    let mut out: Vec<LogRecord> = Vec::with_capacity(1024);
    let mut rows = 0;
    for chunk in input.body.chunks(CHUNK) {
        decoder.feed(chunk, &mut out).unwrap();
        rows += out.len();
        for record in out.drain(..) {
            black_box(record);
        }
    }
    decoder.finish(&mut out).unwrap();
    rows + out.len()
}

fn bench_input(c: &mut Criterion, input: &Input) {
    // Every variant must see every row, or the comparison means nothing.
    assert_eq!(baseline(input), input.rows);
    assert_eq!(typed_records(input), input.rows);
    assert_eq!(decode_only(input), input.rows);

    let mut group = c.benchmark_group(format!("records {}", input.event_type));
    // A pass takes 0.1-0.4 s: flat sampling (the same iteration count per sample) keeps 10
    // samples within the measurement time, where linear sampling would need 55 passes.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(12));
    group.throughput(Throughput::Bytes(input.body.len() as u64));
    group.bench_function("csv::ByteRecord (baseline)", |b| {
        b.iter(|| black_box(baseline(input)))
    });
    group.bench_function("LogFileDecoder, typed values", |b| {
        b.iter(|| black_box(typed_records(input)))
    });
    group.bench_function("LogFileDecoder, decode only", |b| {
        b.iter(|| black_box(decode_only(input)))
    });
    group.finish();
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Times `RATIO_PASSES` rounds of baseline, typed and decode-only passes and prints the median
/// throughputs and the median of each round's ratio. Rounds run the variants back to back, so a
/// slow spell of this (virtual) machine hits a round's variants alike rather than one variant.
fn print_ratio(input: &Input) {
    let mb = input.body.len() as f64 / 1e6;
    let time = |f: &dyn Fn(&Input) -> usize| {
        let start = Instant::now();
        black_box(f(input));
        mb / start.elapsed().as_secs_f64()
    };
    let (mut base, mut ours, mut decode) = (Vec::new(), Vec::new(), Vec::new());
    let (mut typed_ratio, mut decode_ratio) = (Vec::new(), Vec::new());
    for _ in 0..RATIO_PASSES {
        let b = time(&baseline);
        let t = time(&typed_records);
        let d = time(&decode_only);
        base.push(b);
        ours.push(t);
        decode.push(d);
        typed_ratio.push(t / b);
        decode_ratio.push(d / b);
    }
    println!(
        "{}: csv::ByteRecord {:.0} MB/s, typed records {:.0} MB/s, decode only {:.0} MB/s \
         (medians of {RATIO_PASSES} rounds over {mb:.1} MB)",
        input.event_type,
        median(base),
        median(ours),
        median(decode)
    );
    println!(
        "{}: typed records / csv::ByteRecord throughput ratio: {:.2} (goal >= 0.50); decode \
         only / csv::ByteRecord: {:.2}",
        input.event_type,
        median(typed_ratio),
        median(decode_ratio)
    );
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let inputs = [generate("API"), generate("URI")];
    for input in &inputs {
        bench_input(&mut criterion, input);
    }
    criterion.final_summary();
    // `cargo bench` passes --bench; `cargo test --benches` runs each benchmark once and
    // should not spend time on the extra passes.
    if std::env::args().any(|a| a == "--bench") {
        for input in &inputs {
            print_ratio(input);
        }
    }
}
