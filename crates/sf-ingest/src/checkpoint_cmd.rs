//! `sf-ingest checkpoint show|reset`: where each source stands, and rewinding one on purpose.
//!
//! `show` only reads: a file is read without its lock (a running collector keeps it), a
//! database in a `READ ONLY` transaction without migrating its schema. `reset` writes, so it
//! takes what a collector takes (the file's lock, the source's lease) and is refused while a
//! collector holds it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use salesforce_jwt::clock::SystemClock;
use salesforce_jwt::collect::{
    BigObjectState, Checkpoint, CheckpointStore, EVENT_LOG_FILE_ALL_TYPES, EventLogFileState,
    FileCheckpointStore, KeysetState, SourceState,
};
use salesforce_jwt_postgres::{PgError, PgStore, PgTarget};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// How long `reset` holds a PostgreSQL lease: far longer than the few statements it runs.
const RESET_LEASE: Duration = Duration::from_secs(30);

/// `sf-ingest checkpoint ...`.
#[derive(Debug, Subcommand)]
pub enum CheckpointCommand {
    /// Print each source's position as JSON on stdout, by org (PostgreSQL) and source name.
    /// Read-only: needs no SF_* variable, creates and locks nothing, prints no password.
    Show {
        /// The checkpoint file, or postgres://USER:PASSWORD@HOST/DB.
        #[arg(long, value_name = "FILE|postgres://…")]
        state: PathBuf,
    },
    /// Rewind one source to DURATION ago: the next run delivers its rows from then on again.
    /// Refused while a collector holds the checkpoint (its lock, or the source's lease).
    Reset {
        /// The checkpoint file, or postgres://USER:PASSWORD@HOST/DB.
        #[arg(long, value_name = "FILE|postgres://…")]
        state: PathBuf,
        /// The source: EventLogFile, LoginEvent, SetupAuditTrail...
        #[arg(long, value_name = "NAME")]
        source: String,
        /// How far back the source starts again: 36h, 7d.
        #[arg(long, value_name = "DURATION")]
        since: String,
        /// The org, when a postgres:// state holds that source for several.
        #[arg(long, value_name = "NAME")]
        org: Option<String>,
    },
}

/// A refusal or failure: the message, and the exit code (2 usage, 1 anything else).
struct Failed(String, u8);

fn usage(text: impl Into<String>) -> Failed {
    Failed(text.into(), 2)
}

fn failed(text: impl Into<String>) -> Failed {
    Failed(text.into(), 1)
}

/// Runs `command`; errors on stderr, plain text.
pub async fn run(command: &CheckpointCommand) -> ExitCode {
    let done = match command {
        CheckpointCommand::Show { state } => show(state).await,
        CheckpointCommand::Reset {
            state,
            source,
            since,
            org,
        } => reset(state, source, since, org.as_deref()).await,
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failed(text, code)) => {
            eprintln!("sf-ingest checkpoint: {text}");
            ExitCode::from(code)
        }
    }
}

/// `Some(url)` for a `postgres://` state.
fn postgres_url(state: &Path) -> Option<&str> {
    state.to_str().filter(|s| PgTarget::looks_like_url(s))
}

fn target(url: &str) -> Result<PgTarget, Failed> {
    // The parse error never repeats the URL (it may hold a password).
    PgTarget::parse(url).map_err(|e| usage(format!("--state: {e}")))
}

async fn show(state: &Path) -> Result<(), Failed> {
    let shown = match postgres_url(state) {
        Some(url) => show_postgres(&target(url)?).await?,
        None => Value::Object(positions(&read_file(state)?)),
    };
    let text = serde_json::to_string_pretty(&shown)
        .map_err(|e| failed(format!("cannot encode the positions: {e}")))?;
    println!("{text}");
    Ok(())
}

/// The checkpoint file, read without its lock and without creating anything.
fn read_file(path: &Path) -> Result<Checkpoint, Failed> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(usage(format!(
                "--state {}: no checkpoint there (nothing collected yet, or another path: a \
                 run with --out FILE keeps it in FILE.checkpoint.json)",
                path.display()
            )));
        }
        Err(e) => {
            return Err(failed(format!(
                "--state {}: cannot be read ({e}); check its permissions",
                path.display()
            )));
        }
    };
    Checkpoint::from_json(&bytes).map_err(|e| {
        failed(format!(
            "--state {}: not a checkpoint this collector can read: {e}",
            path.display()
        ))
    })
}

async fn show_postgres(target: &PgTarget) -> Result<Value, Failed> {
    let stored = salesforce_jwt_postgres::stored_checkpoints(target)
        .await
        .map_err(|e| failed(format!("--state {target}: {e}")))?;
    let mut orgs = Map::new();
    for row in stored {
        let checkpoint: Checkpoint = serde_json::from_value(row.checkpoint).map_err(|e| {
            failed(format!(
                "the checkpoint of org {:?}, source {:?} cannot be read: {e}",
                row.org, row.source
            ))
        })?;
        let Value::Object(sources) = orgs
            .entry(row.org.clone())
            .or_insert_with(|| Value::Object(Map::new()))
        else {
            continue;
        };
        for (name, mut entry) in positions(&checkpoint) {
            if name == row.source
                && let Value::Object(fields) = &mut entry
            {
                let lease = match (row.lease_holder.as_ref(), row.lease_expires_at) {
                    (Some(holder), Some(expires_at)) => json!({
                        "holder": holder,
                        "expires_at": rfc3339(expires_at),
                    }),
                    _ => Value::Null,
                };
                fields.insert("lease".into(), lease);
                fields.insert("updated_at".into(), rfc3339(row.updated_at));
            }
            sources.insert(name, entry);
        }
    }
    Ok(Value::Object(orgs))
}

fn rfc3339(t: OffsetDateTime) -> Value {
    t.format(&Rfc3339).map_or(Value::Null, Value::String)
}

/// One entry per source, by the source's name, positions as RFC 3339 times (`null`: nothing
/// collected yet). EventLogFile collected type by type is one entry with its types inside.
fn positions(checkpoint: &Checkpoint) -> Map<String, Value> {
    let mut entries = Map::new();
    let mut event_types: BTreeMap<String, &EventLogFileState> = BTreeMap::new();
    let mut all_types: Option<&EventLogFileState> = None;
    for (key, state) in &checkpoint.sources {
        match state {
            SourceState::EventLogFile(s) => match key.strip_prefix(EVENT_LOG_FILE_ALL_TYPES) {
                Some("") => all_types = Some(s),
                Some(rest) if rest.starts_with('/') => {
                    event_types.insert(rest[1..].to_string(), s);
                }
                // A version-1 position not yet adopted by a run: shown under its own key.
                _ => {
                    entries.insert(key.clone(), event_log_file_entry(s));
                }
            },
            SourceState::BigObject(s) => {
                entries.insert(
                    key.clone(),
                    json!({ "kind": "BigObject", "position": s.watermark.map_or(Value::Null, rfc3339) }),
                );
            }
            SourceState::Keyset(s) => {
                let position = s.last.as_ref().map(|l| l.created_date).or(s.scanned_to);
                entries.insert(
                    key.clone(),
                    json!({ "kind": "Keyset", "position": position.map_or(Value::Null, rfc3339) }),
                );
            }
            SourceState::EventLogObject(s) => {
                entries.insert(
                    key.clone(),
                    json!({ "kind": "EventLogObject", "position": s.watermark.map_or(Value::Null, rfc3339) }),
                );
            }
            _ => {
                entries.insert(key.clone(), json!({ "kind": "unknown", "position": null }));
            }
        }
    }
    if let Some(s) = all_types {
        entries.insert(EVENT_LOG_FILE_ALL_TYPES.into(), event_log_file_entry(s));
    } else if !event_types.is_empty() {
        // Where the next pass starts: the earliest of the types (none if one has not begun).
        let position = event_types
            .values()
            .map(|s| s.cursor.as_ref().map(|c| c.created_date))
            .collect::<Option<Vec<_>>>()
            .and_then(|all| all.into_iter().min());
        let since = event_types.values().map(|s| s.log_date_floor).min();
        let types: Map<String, Value> = event_types
            .iter()
            .map(|(t, s)| (t.clone(), event_log_file_entry(s)))
            .collect();
        entries.insert(
            EVENT_LOG_FILE_ALL_TYPES.into(),
            json!({
                "kind": "EventLogFile",
                "position": position.map_or(Value::Null, rfc3339),
                "since": since.map_or(Value::Null, rfc3339),
                "event_types": types,
            }),
        );
    }
    entries
}

/// The `CreatedDate` of the newest file collected, and the first `LogDate` collected.
fn event_log_file_entry(s: &EventLogFileState) -> Value {
    json!({
        "kind": "EventLogFile",
        "position": s.cursor.as_ref().map_or(Value::Null, |c| rfc3339(c.created_date)),
        "since": rfc3339(s.log_date_floor),
    })
}

async fn reset(state: &Path, source: &str, since: &str, org: Option<&str>) -> Result<(), Failed> {
    let back = crate::options::parse_duration(since).map_err(|e| usage(format!("--since: {e}")))?;
    let now = OffsetDateTime::now_utc();
    let to = time::Duration::try_from(back)
        .ok()
        .and_then(|d| now.checked_sub(d))
        .ok_or_else(|| usage(format!("--since: {since:?} is too long")))?;
    let rewound = match postgres_url(state) {
        Some(url) => reset_postgres(&target(url)?, org, source, to).await?,
        None => {
            if org.is_some() {
                return Err(usage(
                    "--org: a checkpoint file holds one org; --org is for postgres:// state",
                ));
            }
            reset_file(state, source, to)?
        }
    };
    eprintln!(
        "sf-ingest checkpoint: {source} rewound to {}: the next run delivers its rows from there \
         on AGAIN, including rows delivered before (duplicates downstream unless deduplicated \
         by event id)",
        rfc3339(rewound)
            .as_str()
            .map_or_else(|| rewound.to_string(), str::to_string)
    );
    Ok(())
}

fn reset_file(path: &Path, source: &str, to: OffsetDateTime) -> Result<OffsetDateTime, Failed> {
    if !path.exists() {
        return Err(usage(format!(
            "--state {}: no checkpoint there, nothing to rewind",
            path.display()
        )));
    }
    let mut store = FileCheckpointStore::new(path);
    // The collector's own lock: refused while one runs, and none starts until this is saved.
    store
        .acquire()
        .map_err(|e| failed(format!("refused: {e}")))?;
    let mut checkpoint = store
        .load()
        .map_err(|e| failed(e.to_string()))?
        .ok_or_else(|| usage(format!("--state {}: empty checkpoint", path.display())))?;
    let rewound = rewind(&mut checkpoint, source, to)?;
    store.save(&checkpoint).map_err(|e| failed(e.to_string()))?;
    Ok(rewound)
}

async fn reset_postgres(
    target: &PgTarget,
    org: Option<&str>,
    source: &str,
    to: OffsetDateTime,
) -> Result<OffsetDateTime, Failed> {
    let org = match org {
        Some(org) => org.to_string(),
        None => {
            let stored = salesforce_jwt_postgres::stored_checkpoints(target)
                .await
                .map_err(|e| failed(format!("--state {target}: {e}")))?;
            let orgs: Vec<String> = stored
                .into_iter()
                .filter(|s| s.source == source)
                .map(|s| s.org)
                .collect();
            match orgs.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(usage(format!(
                        "--source: no org has a checkpoint for {source} in {target}"
                    )));
                }
                _ => {
                    return Err(usage(format!(
                        "--org: several orgs have a checkpoint for {source} ({}): name one",
                        orgs.join(", ")
                    )));
                }
            }
        }
    };
    let holder = format!(
        "sf-ingest checkpoint reset on {}",
        crate::postgres::holder()
    );
    let store = PgStore::connect(target, Arc::new(SystemClock), holder)
        .await
        .map_err(|e| failed(format!("--state {target}: {e}")))?;
    let lease = match store.claim(&org, source, RESET_LEASE).await {
        Ok(lease) => lease,
        Err(PgError::LeaseBusy {
            holder, expires_at, ..
        }) => {
            return Err(failed(format!(
                "refused: {holder} collects org {org:?}, source {source} (its lease runs until \
                 {}); stop that collector first, or wait until its lease expires",
                rfc3339(expires_at)
                    .as_str()
                    .map_or_else(|| expires_at.to_string(), str::to_string)
            )));
        }
        Err(e) => return Err(failed(format!("claiming the lease: {e}"))),
    };
    let outcome = async {
        let mut checkpoint: Checkpoint = store
            .load_checkpoint(&org, source)
            .await
            .map_err(|e| failed(e.to_string()))?
            .ok_or_else(|| {
                usage(format!(
                    "--source: org {org:?} has no checkpoint for {source}, nothing to rewind"
                ))
            })?;
        if checkpoint.output.as_deref() == Some(salesforce_jwt_postgres::PG_OUTPUT) {
            // Its unique key holds each row once, and a row delivered again is refused as a
            // bug: the next run would fail on the first row it had already.
            return Err(failed(format!(
                "refused: org {org:?} writes {source}'s rows to salesforce_events, whose unique \
                 key keeps each row once: rows delivered again would stop the next run. Only a \
                 source with an output file can be rewound"
            )));
        }
        let rewound = rewind(&mut checkpoint, source, to)?;
        store
            .save_checkpoint(&lease, &checkpoint)
            .await
            .map_err(|e| failed(e.to_string()))?;
        Ok(rewound)
    }
    .await;
    // Released whatever happened, so a collector can take the source at once.
    if let Err(e) = store.release(lease).await {
        tracing::warn!(error = %e, "cannot release the lease; it expires on its own");
    }
    outcome
}

/// Moves `source` back to `to` (EventLogFile: to the start of `to`'s UTC day, as a first run
/// does); returns where it starts now. Refused for a source the checkpoint does not have, and
/// for a position later than the current one (that would skip rows, not deliver them again).
fn rewind(
    checkpoint: &mut Checkpoint,
    source: &str,
    to: OffsetDateTime,
) -> Result<OffsetDateTime, Failed> {
    let known: Vec<String> = positions(checkpoint).keys().cloned().collect();
    let mut touched = false;
    let mut at = to;
    for (key, state) in checkpoint.sources.iter_mut() {
        let ours = key == source
            || (source == EVENT_LOG_FILE_ALL_TYPES
                && key.starts_with(EVENT_LOG_FILE_ALL_TYPES)
                && matches!(state, SourceState::EventLogFile(_)));
        if !ours {
            continue;
        }
        touched = true;
        match state {
            SourceState::EventLogFile(s) => {
                at = to.replace_time(time::Time::MIDNIGHT);
                if s.cursor.as_ref().is_some_and(|c| c.created_date < at) {
                    return Err(later(source, key));
                }
                *s = EventLogFileState::new(s.interval, at);
            }
            SourceState::BigObject(s) => {
                if s.watermark.is_some_and(|w| w < to) {
                    return Err(later(source, key));
                }
                *s = BigObjectState {
                    watermark: Some(to),
                    ..BigObjectState::default()
                };
            }
            SourceState::Keyset(s) => {
                let position = s.last.as_ref().map(|l| l.created_date).or(s.scanned_to);
                if position.is_some_and(|p| p < to) {
                    return Err(later(source, key));
                }
                *s = KeysetState {
                    scanned_to: Some(to),
                    ..KeysetState::default()
                };
            }
            SourceState::EventLogObject(s) => {
                if s.watermark.is_some_and(|w| w < to) {
                    return Err(later(source, key));
                }
                *s = salesforce_jwt::collect::EventLogObjectState {
                    watermark: Some(to),
                    ..Default::default()
                };
            }
            _ => {
                return Err(failed(format!(
                    "{source}: this version cannot rewind that kind of source"
                )));
            }
        }
    }
    if touched {
        Ok(at)
    } else {
        Err(usage(format!(
            "--source: the checkpoint has no source {source:?}; it has {}",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )))
    }
}

fn later(source: &str, key: &str) -> Failed {
    usage(format!(
        "--since: {key} is collected up to a time before that; a reset only moves a source back \
         (to skip ahead, collect with a shorter --since from a new --state). Choose a longer \
         --since for {source}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use salesforce_jwt::event_log_file::{Cursor, IntervalFilter};
    use time::macros::datetime;

    fn checkpoint() -> Checkpoint {
        let mut c = Checkpoint::new();
        let mut login = EventLogFileState::new(IntervalFilter::All, datetime!(2026-12-01 0:00 UTC));
        login.cursor = Some(Cursor {
            created_date: datetime!(2026-12-06 10:00 UTC),
            id: "0AT000000000001AAA".into(),
        });
        c.sources.insert(
            "EventLogFile/Login".into(),
            SourceState::EventLogFile(login),
        );
        let api = EventLogFileState::new(IntervalFilter::All, datetime!(2026-12-02 0:00 UTC));
        c.sources
            .insert("EventLogFile/API".into(), SourceState::EventLogFile(api));
        let big = BigObjectState {
            watermark: Some(datetime!(2026-12-06 11:00 UTC)),
            ..BigObjectState::default()
        };
        c.sources
            .insert("LoginEvent".into(), SourceState::BigObject(big));
        c
    }

    #[test]
    fn event_types_are_one_eventlogfile_entry_and_positions_are_rfc3339() {
        let shown = Value::Object(positions(&checkpoint()));
        assert_eq!(
            shown,
            json!({
                "EventLogFile": {
                    "kind": "EventLogFile",
                    // API has not begun: no position for the whole source yet.
                    "position": null,
                    "since": "2026-12-01T00:00:00Z",
                    "event_types": {
                        "API": { "kind": "EventLogFile", "position": null, "since": "2026-12-02T00:00:00Z" },
                        "Login": { "kind": "EventLogFile", "position": "2026-12-06T10:00:00Z", "since": "2026-12-01T00:00:00Z" },
                    },
                },
                "LoginEvent": { "kind": "BigObject", "position": "2026-12-06T11:00:00Z" },
            })
        );
    }

    #[test]
    fn a_reset_rewinds_one_source_and_refuses_to_skip_ahead_or_unknown_sources() {
        let mut c = checkpoint();
        let at = rewind(&mut c, "LoginEvent", datetime!(2026-12-05 08:30 UTC))
            .unwrap_or_else(|f| panic!("{}", f.0));
        assert_eq!(at, datetime!(2026-12-05 08:30 UTC));
        let Some(SourceState::BigObject(s)) = c.sources.get("LoginEvent") else {
            panic!()
        };
        assert_eq!(s.watermark, Some(datetime!(2026-12-05 08:30 UTC)));
        // EventLogFile untouched.
        assert_eq!(
            positions(&c)["EventLogFile"],
            positions(&checkpoint())["EventLogFile"]
        );

        let at = rewind(&mut c, "EventLogFile", datetime!(2026-11-30 08:30 UTC))
            .unwrap_or_else(|f| panic!("{}", f.0));
        assert_eq!(at, datetime!(2026-11-30 0:00 UTC));
        assert_eq!(
            positions(&c)["EventLogFile"]["since"],
            json!("2026-11-30T00:00:00Z")
        );
        assert_eq!(
            positions(&c)["EventLogFile"]["event_types"]["Login"]["position"],
            Value::Null
        );

        let ahead = rewind(&mut c, "LoginEvent", datetime!(2026-12-07 0:00 UTC))
            .err()
            .unwrap();
        assert!(ahead.0.contains("only moves a source back"), "{}", ahead.0);
        let unknown = rewind(&mut c, "ApiEvent", datetime!(2026-12-01 0:00 UTC))
            .err()
            .unwrap();
        assert!(
            unknown.0.contains("EventLogFile, LoginEvent"),
            "{}",
            unknown.0
        );
    }

    #[test]
    fn event_log_objects_are_shown_and_rewound_by_their_watermark() {
        let mut c = Checkpoint::new();
        let mut state = salesforce_jwt::collect::EventLogObjectState {
            watermark: Some(datetime!(2026-12-06 11:00 UTC)),
            ..Default::default()
        };
        state.delivered_in_overlap.insert(
            "0Xe000000000001AAA".into(),
            "2026-12-06T10:30:00.000+0000".into(),
        );
        c.sources
            .insert("LoginEventLog".into(), SourceState::EventLogObject(state));
        assert_eq!(
            positions(&c)["LoginEventLog"],
            json!({ "kind": "EventLogObject", "position": "2026-12-06T11:00:00Z" })
        );
        rewind(&mut c, "LoginEventLog", datetime!(2026-12-05 08:30 UTC))
            .unwrap_or_else(|f| panic!("{}", f.0));
        let Some(SourceState::EventLogObject(s)) = c.sources.get("LoginEventLog") else {
            panic!()
        };
        assert_eq!(s.watermark, Some(datetime!(2026-12-05 08:30 UTC)));
        assert!(s.delivered_in_overlap.is_empty());
    }
}
