//! `--state postgres://…`: each (org, source) collected under its own lease, so that any number
//! of sf-ingest processes with the same configuration share the orgs, one collector per
//! (org, source) at a time, and take over a dead one's orgs once its lease expires.
//!
//! The lease itself (claims, renewals, loss) is `salesforce_jwt_postgres::LeaseHolder`'s; here
//! are what an operator sees of it: log lines, metrics and the progress bar.

use std::sync::Arc;

use salesforce_jwt::Error;
use salesforce_jwt::clock::SystemClock;
use salesforce_jwt_postgres::{HeldLease, LeaseBusy, LeaseHolder, LeaseLoss, PgError, PgWorker};

use crate::context::Context;
use crate::plan::{OrgPlan, PgPlan};
use crate::progress::OrgProgress;

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

/// The lease of one (org, source) task, as the operator sees it.
pub struct OrgLease<'a> {
    org: &'a OrgPlan,
    context: &'a Context,
    holder: LeaseHolder,
    /// The holder last seen holding it, logged at info once and not again while it holds it.
    seen: Option<String>,
}

impl<'a> OrgLease<'a> {
    /// The lease of `org`'s one source (run_all gives each (org, source) of a PostgreSQL org
    /// its own task), in `plan`'s database.
    pub async fn new(
        org: &'a OrgPlan,
        plan: &PgPlan,
        context: &'a Context,
    ) -> Result<OrgLease<'a>, Error> {
        let source = match org.collect.sources.as_slice() {
            [source] => source.to_string(),
            _ => "EventLogFile".to_string(),
        };
        let worker = worker(context, plan).await?;
        Ok(OrgLease {
            org,
            context,
            holder: LeaseHolder::new(worker, &org.name, source, context.lease_ttl),
            seen: None,
        })
    }

    /// Claims until this process holds the lease; `None` on a stop request, or when another
    /// process holds it and there is no `--follow` (that process collects it).
    pub async fn acquire(
        &mut self,
        progress: &mut OrgProgress,
        failures: &mut u32,
    ) -> Result<Option<HeldLease>, Error> {
        let (org, source) = (&self.org.name, self.holder.source());
        let seen = &mut self.seen;
        let on_busy = |busy: &LeaseBusy| {
            let LeaseBusy { holder, expires_at } = busy;
            progress.metrics().lease(false);
            progress.note(&format!("held by {holder}"));
            // Once per holder at info: a poll every few seconds would drown the log.
            if seen.as_deref() == Some(holder.as_str()) {
                tracing::debug!(org = %org, source, %holder, %expires_at, "another process collects this org; skipping it this round");
            } else {
                tracing::info!(org = %org, source, %holder, %expires_at, "another process collects this org; skipping it this round");
                *seen = Some(holder.clone());
            }
            *failures = 0;
            self.context.follow
        };
        let held = self
            .holder
            .acquire(on_busy, self.context.stop.wait())
            .await
            .map_err(|e| pg_error("claiming the lease", e))?;
        let Some(held) = held else {
            return Ok(None);
        };
        let fencing_token = held.fencing_token();
        if let Some(previous) = self.seen.take() {
            tracing::info!(org = %org, source, %previous, fencing_token, "took the org over: the previous holder's lease expired or was released");
        }
        progress.metrics().lease(true);
        progress.note(&format!("lease {fencing_token}"));
        tracing::info!(org = %org, source, fencing_token, ttl_seconds = self.holder.ttl().as_secs(), "collecting under a lease");
        Ok(Some(held))
    }

    /// After collecting under `held`: the outcome to return (the lease released when it is
    /// `Ok`, left to expire after a failure), or `None` when the lease was lost and the task
    /// claims again.
    pub async fn end(
        &mut self,
        held: HeldLease,
        passed: Result<Result<(), Error>, LeaseLoss>,
        progress: &mut OrgProgress,
    ) -> Option<Result<(), Error>> {
        // Released below, lost, or left to expire after a failure: no longer held here.
        progress.metrics().lease(false);
        let outcome = match passed {
            Ok(outcome) => outcome,
            Err(why) => {
                // Not a failure of the org: another process has it now. Back to claiming,
                // which skips it while that process holds it.
                progress.note("lease lost");
                tracing::warn!(org = %self.org.name, source = self.holder.source(), reason = %why, "stopped collecting: the lease was lost");
                return None;
            }
        };
        if outcome.is_ok() {
            // A clean stop hands the org over at once instead of after the TTL.
            if let Err(e) = held.release().await {
                tracing::warn!(org = %self.org.name, error = %e, "cannot release the lease; it expires on its own");
            }
        }
        Some(outcome)
    }
}
