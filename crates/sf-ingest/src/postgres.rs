//! `--state postgres://…`: each (org, source) collected under its own lease, so that any number
//! of sf-ingest processes with the same configuration share the orgs, one collector per
//! (org, source) at a time, and take over a dead one's orgs once its lease expires.

use std::sync::Arc;
use std::time::Duration;

use salesforce_jwt::Error;
use salesforce_jwt::clock::SystemClock;
use salesforce_jwt_postgres::{Lease, PgCheckpointStore, PgError, PgWorker};

use crate::plan::{OrgPlan, PgPlan};
use crate::progress::OrgProgress;
use crate::run::Context;
use crate::sink::OutputSink;

/// The workers of this process, one per database (keyed by its password-free Debug text).
pub type Workers = tokio::sync::Mutex<Vec<(String, PgWorker)>>;

/// The name other processes see in lease messages: unique per process, also among containers
/// that share a host name and pid (`INSTANCE@HOST:PID`).
pub fn holder() -> String {
    salesforce_jwt_postgres::process_holder_id().to_string()
}

async fn worker(context: &Context, plan: &PgPlan) -> Result<PgWorker, Error> {
    let key = format!("{:?}", plan.target);
    let mut workers = context.postgres.lock().await;
    if let Some((_, w)) = workers.iter().find(|(k, _)| *k == key) {
        return Ok(w.clone());
    }
    let w = PgWorker::connect(&plan.target, Arc::new(SystemClock), holder())
        .await
        .map_err(|e| pg_error("connecting to the state database", e))?;
    workers.push((key, w.clone()));
    Ok(w)
}

pub fn pg_error(context: &str, e: PgError) -> Error {
    let retryable = e.is_retryable();
    Error::checkpoint_store(context.to_string(), e, retryable)
}

/// Collects `source` of `org` whenever this process holds its lease; `Ok` on a stop request, or
/// after one pass without `--follow` (a lease held elsewhere counts as done: that process
/// collects it).
pub async fn collect(
    org: &OrgPlan,
    plan: &PgPlan,
    context: &Context,
    progress: &mut OrgProgress,
    failures: &mut u32,
) -> Result<(), Error> {
    // run_all gives each (org, source) of a PostgreSQL org its own task.
    let source_name = match org.collect.sources.as_slice() {
        [source] => source.to_string(),
        _ => "EventLogFile".to_string(),
    };
    let source = source_name.as_str();
    let ttl = context.lease_ttl;
    let worker = worker(context, plan).await?;
    let mut seen: Option<String> = None;
    loop {
        let lease = loop {
            let (o, s) = (org.name.clone(), source.to_string());
            match worker
                .run(move |store| async move { store.claim(&o, &s, ttl).await })
                .await
            {
                Ok(lease) => break lease,
                Err(PgError::LeaseBusy {
                    holder, expires_at, ..
                }) => {
                    progress.metrics().lease(false);
                    progress.note(&format!("held by {holder}"));
                    // Once per holder at info: a poll every few seconds would drown the log.
                    if seen.as_deref() == Some(holder.as_str()) {
                        tracing::debug!(org = %org.name, source, %holder, %expires_at, "another process collects this org; skipping it this round");
                    } else {
                        tracing::info!(org = %org.name, source, %holder, %expires_at, "another process collects this org; skipping it this round");
                        seen = Some(holder);
                    }
                    *failures = 0;
                    let Some(every) = context.follow else {
                        return Ok(());
                    };
                    // Often enough to take over soon after the holder's lease runs out.
                    if context.stop.sleep(every.min(ttl / 2)).await {
                        return Ok(());
                    }
                }
                Err(e) => return Err(pg_error("claiming the lease", e)),
            }
        };
        if let Some(previous) = seen.take() {
            tracing::info!(org = %org.name, source, %previous, fencing_token = lease.fencing_token, "took the org over: the previous holder's lease expired or was released");
        }
        progress.metrics().lease(true);
        progress.note(&format!("lease {}", lease.fencing_token));
        tracing::info!(org = %org.name, source, fencing_token = lease.fencing_token, ttl_seconds = ttl.as_secs(), "collecting under a lease");
        let (lost_tx, mut lost) = tokio::sync::watch::channel(None::<String>);
        let renewer = tokio::spawn(renew(worker.clone(), lease.clone(), ttl, lost_tx));
        // The renewal stops with this collection, however it ends.
        let _renewal = AbortOnDrop(renewer);
        let passed = tokio::select! {
            r = passes(org, plan, context, progress, failures, &worker, lease.clone()) => Some(r),
            // At once: the fence already refuses this holder's writes; whatever it was doing is
            // dropped uncommitted, and the new holder delivers it.
            _ = lost.wait_for(Option::is_some) => None,
        };
        let outcome = match passed {
            Some(r) => r,
            None => {
                // Not a failure of the org: another process has it now. Back to claiming, which
                // skips it while that process holds it.
                progress.note("lease lost");
                progress.metrics().lease(false);
                let why = lost.borrow().clone().unwrap_or_default();
                tracing::warn!(org = %org.name, source, reason = %why, "stopped collecting: the lease was lost");
                drop(_renewal);
                continue;
            }
        };
        // Released below, or left to expire after a failure: either way no longer held here.
        progress.metrics().lease(false);
        if outcome.is_ok() {
            // A clean stop hands the org over at once instead of after the TTL.
            let released = worker
                .run(move |store| async move { store.release(lease).await })
                .await;
            if let Err(e) = released {
                tracing::warn!(org = %org.name, error = %e, "cannot release the lease; it expires on its own");
            }
        }
        return outcome;
    }
}

async fn passes(
    org: &OrgPlan,
    plan: &PgPlan,
    context: &Context,
    progress: &mut OrgProgress,
    failures: &mut u32,
    worker: &PgWorker,
    lease: Lease,
) -> Result<(), Error> {
    let store =
        PgCheckpointStore::new(worker.clone(), &lease.org, &lease.source, context.lease_ttl)
            .with_lease(lease);
    let pg_sink = store.sink();
    // Collector::new loads the checkpoint on this runtime's thread; the store waits for the
    // worker's thread (see PgWorker).
    let mut collector = crate::run::collector_for(org, store, progress.metrics())?;
    let mut sink = if plan.rows {
        OutputSink::Postgres(pg_sink)
    } else {
        OutputSink::open(
            org.out.as_deref(),
            collector.checkpoint(),
            org.collect.format,
            crate::run::ecs_options(org, &collector).await,
            org.elasticsearch.as_ref(),
        )?
    };
    crate::run::pass_loop(&mut collector, &mut sink, org, context, progress, failures).await
}

/// Renews `lease` a third of the TTL before it runs out, for as long as the collection runs.
/// Sends why on `lost` when another process took it over, or when renewals failed (the
/// database unreachable) until the lease ran out by this process's clock.
async fn renew(
    worker: PgWorker,
    mut lease: Lease,
    ttl: Duration,
    lost: tokio::sync::watch::Sender<Option<String>>,
) {
    let every = (ttl / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let current = lease.clone();
        let renewed = worker
            .run(move |store| async move {
                let mut lease = current;
                store.renew(&mut lease, ttl).await.map(|()| lease)
            })
            .await;
        match renewed {
            // The store logs each renewal at debug level.
            Ok(next) => lease = next,
            Err(e @ PgError::LeaseLost { .. }) => {
                tracing::warn!(org = %lease.org, source = %lease.source, error = %e, "lease taken over; stopping this collection");
                let _ = lost.send(Some(e.to_string()));
                return;
            }
            Err(e) => {
                let now = time::OffsetDateTime::now_utc();
                if !lease.is_live(now) {
                    tracing::warn!(org = %lease.org, source = %lease.source, error = %e, "lease ran out while PostgreSQL could not be reached; stopping this collection");
                    let _ = lost.send(Some(format!(
                        "the lease ran out while it could not be renewed: {e}"
                    )));
                    return;
                }
                tracing::warn!(org = %lease.org, source = %lease.source, error = %e, "cannot renew the lease; trying again");
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
