//! The full ingestion: every EventLogFile row of the org and any Real-Time Event Monitoring
//! objects and SetupAuditTrail, exactly once, as NDJSON into one output.
//!
//! ```sh
//! cargo run --example ingest                      # demo: embedded mock org, rows to stdout
//! cargo run --example ingest -- --source LoginEvent --source SetupAuditTrail
//! cargo run --example ingest -- --out events.ndjson --state events.checkpoint.json --since 7d
//! ```
//!
//! With the six `SF_*` variables set it collects from that org; with none set it starts an
//! embedded mock org with demo data and says so on stderr. Options:
//!
//! | option | meaning |
//! |---|---|
//! | `--out FILE` | NDJSON output (default stdout); with a file, rows are exactly-once across kills |
//! | `--state FILE` | checkpoint (default `FILE.checkpoint.json` beside `--out`, else in memory); refused with another `--out` than its own |
//! | `--source NAME` | a source (repeatable; default `EventLogFile`): `EventLogFile`, any catalogue object (`LoginEvent`, `ApiEvent`, `SetupAuditTrail`, `ApiAnomalyEventStore`...), or your own as `NAME:big` / `NAME:standard`; a source added later starts from `--since`, one left out keeps its position |
//! | `--event-type T` | only this EventLogFile type (repeatable), e.g. `Login`; a type added later starts from `--since` |
//! | `--interval daily\|hourly\|all` | which files (default all) |
//! | `--since DURATION` | how far back a first run starts: `36h`, `7d` (default `1d`; `7d` against the demo org) |
//! | `--concurrency N` | files downloaded at once (default 4) |
//! | `--follow SECONDS` | keep polling every SECONDS; without it, one pass |
//! | `--skip-bad-files` | record a file that cannot be collected (malformed, truncated for good, gone) in the checkpoint and go on, instead of stopping |
//!
//! Test-only: in demo mode, `INGEST_DEMO_FAULTS=cut=4,503=2` makes the first demo file's
//! downloads fail first (four cut-off bodies, two 503s) with short backoffs, to show the run
//! still delivers every row once (tests/examples.rs). It has no effect against a real org.
//!
//! In demo mode the mock org also holds three days of rows of every real-time object.
//!
//! Ctrl-C stops after the current file, window or batch with the checkpoint consistent (exit code 130); a second
//! Ctrl-C exits at once, which is safe too: the next run cuts the output back.

use std::io::{BufWriter, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use salesforce_jwt::collect::{
    CheckpointStore, Collector, CollectorOptions, FileCheckpointStore, MemoryCheckpointStore,
    ObjectCollectorOptions, Progress, Sink,
};
use salesforce_jwt::event_log_file::{EventLogFileQuery, EventType, IntervalFilter};
use salesforce_jwt::objects::{EventObject, ObjectKind};
use salesforce_jwt::sink::{NdjsonFileSink, NdjsonSink};
use salesforce_jwt::{ENV_VARS, Error, JwtBearerClient, JwtBearerConfig, RetryPolicy};
use salesforce_jwt_mock::{Fault, FaultTarget, MockOrg, generate_records};

const USAGE: &str = "usage: ingest [--out FILE] [--state FILE] [--source NAME]... [--event-type T]... \
[--interval daily|hourly|all] [--since DURATION] [--concurrency N] [--follow SECONDS] \
[--skip-bad-files]";

struct Options {
    out: Option<PathBuf>,
    state: Option<PathBuf>,
    /// Whether EventLogFile is collected (`--source EventLogFile`, or no `--source`).
    event_log_file: bool,
    objects: Vec<EventObject>,
    event_types: Vec<EventType>,
    interval: IntervalFilter,
    since: Option<Duration>,
    concurrency: usize,
    follow: Option<Duration>,
    skip_bad_files: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Escape codes only where a person reads them, not in captured logs.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(message) => {
            eprintln!("ingest: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(Ended::Done) => ExitCode::SUCCESS,
        // The shell's convention for "ended by SIGINT", so scripts can tell.
        Ok(Ended::Stopped) => ExitCode::from(130),
        Err(e) => {
            eprintln!("ingest: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut o = Options {
        out: None,
        state: None,
        event_log_file: false,
        objects: Vec::new(),
        event_types: Vec::new(),
        interval: IntervalFilter::All,
        since: None,
        concurrency: 4,
        follow: None,
        skip_bad_files: false,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--out" => o.out = Some(value("--out")?.into()),
            "--state" => o.state = Some(value("--state")?.into()),
            "--source" => {
                let name = value("--source")?;
                if name == "EventLogFile" {
                    o.event_log_file = true;
                } else {
                    let object = parse_source(&name)?;
                    if !o.objects.iter().any(|known| known.name() == object.name()) {
                        o.objects.push(object);
                    }
                }
            }
            "--event-type" => o
                .event_types
                .push(EventType::from(value("--event-type")?.as_str())),
            "--interval" => {
                o.interval = match value("--interval")?.to_ascii_lowercase().as_str() {
                    "daily" => IntervalFilter::Daily,
                    "hourly" => IntervalFilter::Hourly,
                    "all" => IntervalFilter::All,
                    "auto" => IntervalFilter::Auto,
                    other => {
                        return Err(format!(
                            "--interval {other:?}: use auto, daily, hourly or all"
                        ));
                    }
                }
            }
            "--since" => o.since = Some(parse_duration(&value("--since")?)?),
            "--concurrency" => {
                let v = value("--concurrency")?;
                o.concurrency = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or(format!("--concurrency {v:?}: a number from 1 to 64"))?;
            }
            "--follow" => {
                let v = value("--follow")?;
                let secs: u64 = v
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or(format!("--follow {v:?}: a number of seconds"))?;
                o.follow = Some(Duration::from_secs(secs));
            }
            "--skip-bad-files" => o.skip_bad_files = true,
            "-h" | "--help" => return Err("help".into()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.objects.is_empty() {
        o.event_log_file = true;
    }
    Ok(o)
}

/// A catalogue object by its API name (Event Log Objects such as `LoginEventLog` included), or
/// one of yours as `NAME:big` / `NAME:standard` / `NAME:eventlog`.
fn parse_source(text: &str) -> Result<EventObject, String> {
    if let Some((name, kind)) = text.split_once(':') {
        let kind = match kind.to_ascii_lowercase().as_str() {
            "big" => ObjectKind::BigObject,
            "standard" => ObjectKind::Standard,
            "eventlog" => ObjectKind::EventLogObject,
            other => {
                return Err(format!(
                    "--source {text:?}: the kind after ':' is {other:?}; use big (queried by \
                     EventDate), standard (queried by CreatedDate and Id) or eventlog (an Event \
                     Log Object, queried by Timestamp)"
                ));
            }
        };
        return EventObject::custom(name, kind).map_err(|e| format!("--source {text:?}: {e}"));
    }
    EventObject::named(text).ok_or_else(|| {
        let known: Vec<String> = EventObject::catalogue()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        format!(
            "--source {text:?} is not EventLogFile nor a known object ({}, or an Event Log \
             Object such as LoginEventLog); name your own object as NAME:big, NAME:standard or \
             NAME:eventlog",
            known.join(", ")
        )
    })
}

/// `90m`, `36h`, `7d`, `2w` (or plain seconds).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("--since {text:?}: write it like 36h or 7d"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "--since {text:?}: the unit must be s, m, h, d or w"
            ));
        }
    };
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or(format!("--since {text:?} is too long"))
}

async fn run(options: Options) -> Result<Ended, Error> {
    // Kept alive for the whole run: dropping it stops the mock server.
    let mut _mock = None;
    let configured = ENV_VARS.iter().any(|v| std::env::var_os(v).is_some());
    // The demo org holds about three days of files; a real first run starts one day back.
    let default_since = Duration::from_secs(if configured { 1 } else { 7 } * 24 * 3600);
    let config = if configured {
        JwtBearerConfig::from_env()?
    } else {
        let org = MockOrg::start().await;
        let files = org.add_demo_data(time::OffsetDateTime::now_utc());
        let faults = demo_faults(files.first())?;
        let now = time::OffsetDateTime::now_utc();
        for (seed, object) in EventObject::catalogue().iter().enumerate() {
            // Written at least a minute ago, so every row is queryable at once.
            let rows = generate_records(
                object.name(),
                now - time::Duration::days(3),
                now - time::Duration::minutes(1),
                40,
                seed as u64,
            );
            org.add_records(object.name(), rows)
                .map_err(|e| Error::Internal(format!("demo data: {e}")))?;
        }
        eprintln!(
            "ingest: no SF_* variables are set, so this run uses an embedded mock Salesforce org \
             with {} demo log files and rows of every real-time object (and --since defaults to 7d). Set SF_AUDIENCE_URL, SF_CLIENT_KEY_PATH, SF_USERNAME, \
             SF_CLIENT_ID, SF_INSTANCE_URL and SF_TOKEN_URL to collect from a real org.",
            files.len()
        );
        let mut builder = org.config_builder();
        if !faults.is_empty() {
            // Short waits so the test stays fast; the attempts are the same as in production.
            builder = builder.retry_policy(RetryPolicy {
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(100),
                ..RetryPolicy::default()
            });
        }
        let config = builder.build()?;
        for fault in faults {
            org.inject(fault);
        }
        _mock = Some(org);
        config
    };
    let client = JwtBearerClient::new(config)?;
    let state = options.state.clone().or_else(|| {
        options.out.as_ref().map(|out| {
            let mut name = out.as_os_str().to_os_string();
            name.push(".checkpoint.json");
            PathBuf::from(name)
        })
    });
    let store: Box<dyn CheckpointStore> = match &state {
        Some(path) => Box::new(FileCheckpointStore::new(path)),
        None => {
            if configured {
                eprintln!(
                    "ingest: no --state or --out file: the checkpoint is kept in memory, so the next run starts again from --since"
                );
            }
            Box::new(MemoryCheckpointStore::new())
        }
    };
    let query = EventLogFileQuery::new()
        .event_types(options.event_types.iter().cloned())
        .interval(options.interval);
    let collector_options = CollectorOptions {
        since: options.since.unwrap_or(default_since),
        concurrency: options.concurrency,
        skip_failed_files: options.skip_bad_files,
        ..CollectorOptions::default()
    };
    let object_options = ObjectCollectorOptions {
        since: collector_options.since,
        ..ObjectCollectorOptions::default()
    };
    let mut collector = Collector::with_sources(
        client,
        options.event_log_file.then_some(query),
        options.objects.clone(),
        store,
        collector_options,
        object_options,
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = Arc::clone(&stop);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "\ningest: interrupted; stopping after the current file (Ctrl-C again to quit now)"
            );
            on_signal.store(true, Ordering::SeqCst);
        }
        // Quitting mid-file is safe: the next run cuts the output back to the checkpoint.
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
    match &options.out {
        Some(path) => {
            let mut sink = NdjsonFileSink::resume(path, collector.checkpoint())?;
            passes(&mut collector, &mut sink, &options, &stop).await
        }
        None => {
            let mut sink = NdjsonSink::new(BufWriter::with_capacity(256 * 1024, std::io::stdout()));
            passes(&mut collector, &mut sink, &options, &stop).await
        }
    }
}

/// The faults `INGEST_DEMO_FAULTS` asks for (test-only, see the module docs), aimed at `file`.
fn demo_faults(file: Option<&String>) -> Result<Vec<Fault>, Error> {
    let Ok(spec) = std::env::var("INGEST_DEMO_FAULTS") else {
        return Ok(Vec::new());
    };
    let Some(id) = file else {
        return Ok(Vec::new());
    };
    let invalid = |part: &str| {
        Error::InvalidArgument(format!(
            "INGEST_DEMO_FAULTS: {part:?} is not cut=N or 503=N (for example cut=4,503=2)"
        ))
    };
    let mut faults = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (kind, count) = part.split_once('=').ok_or_else(|| invalid(part))?;
        let count: usize = count.parse().map_err(|_| invalid(part))?;
        let fault = match kind {
            "cut" => Fault::TruncatedBody,
            "503" => Fault::ServiceUnavailable {
                target: FaultTarget::Download,
                retry_after_secs: None,
            },
            _ => return Err(invalid(part)),
        };
        faults.extend(std::iter::repeat_n(
            Fault::OnFile {
                id: id.clone(),
                fault: Box::new(fault),
            },
            count,
        ));
    }
    Ok(faults)
}

async fn passes<S: CheckpointStore, K: Sink>(
    collector: &mut Collector<S>,
    sink: &mut K,
    options: &Options,
    stop: &AtomicBool,
) -> Result<Ended, Error> {
    let terminal = std::io::stderr().is_terminal();
    loop {
        let mut last_draw = Instant::now() - Duration::from_secs(1);
        let mut progress = |p: &Progress| {
            if terminal
                && (last_draw.elapsed() >= Duration::from_millis(200)
                    || p.files_done == p.files_total)
            {
                last_draw = Instant::now();
                // files_* count files during EventLogFile, objects afterwards.
                eprint!(
                    "\r\x1b[K{}/{} done  rows {}  {:.1} MB/s",
                    p.files_done,
                    p.files_total,
                    p.rows,
                    p.megabytes_per_second()
                );
                let _ = std::io::stderr().flush();
            } else if !terminal {
                tracing::debug!(
                    files_done = p.files_done,
                    files_total = p.files_total,
                    rows = p.rows,
                    // An EventLogFile Id (key prefix 0AT) while a file is under way; an
                    // object's API name while its windows or batches are.
                    mid_file = p.current.as_deref().is_some_and(|c| c.starts_with("0AT")),
                    current = ?p.current,
                    "progress"
                );
            }
        };
        let summary = match collector.run_pass(sink, &mut progress, stop).await {
            Ok(summary) => Some(summary),
            // An outage must not end a long-running collector: the checkpoint is consistent
            // and the next pass resumes where this one stopped.
            Err(e) if options.follow.is_some() && e.is_retryable() => {
                eprintln!("\ningest: pass failed, trying again at the next poll: {e}");
                None
            }
            Err(e) => return Err(e),
        };
        if let Some(summary) = &summary {
            if terminal {
                eprintln!();
            }
            report(summary, collector.checkpoint().rows_delivered);
        }
        if stop.load(Ordering::SeqCst) {
            return Ok(Ended::Stopped);
        }
        let Some(every) = options.follow else {
            return Ok(Ended::Done);
        };
        // Sleep in short steps so Ctrl-C during the wait ends the program promptly.
        let until = Instant::now() + every;
        while Instant::now() < until {
            if stop.load(Ordering::SeqCst) {
                return Ok(Ended::Stopped);
            }
            tokio::time::sleep(Duration::from_millis(200).min(until - Instant::now())).await;
        }
    }
}

/// How a run ended without an error.
enum Ended {
    Done,
    /// Ctrl-C: stopped after a complete file.
    Stopped,
}

fn report(summary: &salesforce_jwt::collect::PassSummary, total_rows: u64) {
    for object in &summary.objects {
        eprintln!(
            "ingest: {}: {} rows in {} windows or batches",
            object.object, object.rows, object.batches
        );
    }
    for (file, error) in &summary.skipped {
        eprintln!(
            "ingest: SKIPPED EventLogFile {} ({}, LogDate {}): {error}",
            file.id, file.event_type, file.log_date
        );
    }
    let mb = summary.bytes as f64 / 1e6;
    let secs = summary.elapsed.as_secs_f64();
    eprintln!(
        "ingest: {} files, {} rows, {:.2} MB of CSV in {:.2} s ({:.1} MB/s, {:.0} rows/s){}; {} rows delivered in all",
        summary.files,
        summary.event_log_file_rows(),
        mb,
        secs,
        if secs > 0.0 { mb / secs } else { 0.0 },
        if secs > 0.0 {
            summary.rows as f64 / secs
        } else {
            0.0
        },
        if summary.stopped {
            ", stopped early"
        } else {
            ""
        },
        total_rows
    );
}
