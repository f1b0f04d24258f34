//! `--state postgres://…`: each (org, source) collected under its own lease, so that any number
//! of sf-ingest processes with the same configuration share the orgs, one collector per
//! (org, source) at a time, and take over a dead one's orgs once its lease expires.
//!
//! The lease itself (claims, renewals, loss) is `salesforce_jwt_postgres::LeaseHolder`'s; here
//! are what an operator sees of it: log lines, metrics and the progress bar.
//!
//! With `--follow`, the processes of one database share its leases fairly
//! (`salesforce_jwt_postgres::Balancer`): each heartbeats, holds at most its share of the
//! (org, source) units it is configured for, and hands a surplus lease over between two passes
//! of that unit, after its commit.

use std::sync::Arc;

use salesforce_jwt::Error;
use salesforce_jwt::clock::SystemClock;
use salesforce_jwt_postgres::{
    Balancer, HeldLease, LeaseBusy, LeaseHolder, LeaseLoss, PgError, PgWorker,
};

use crate::context::{Context, Database};
use crate::plan::{OrgPlan, PgPlan};
use crate::progress::OrgProgress;

/// The name other processes see in lease messages: unique per process, also among containers
/// that share a host name and pid (`INSTANCE@HOST:PID`).
pub fn holder() -> String {
    salesforce_jwt_postgres::process_holder_id().to_string()
}

/// The source whose lease a task of `org` holds (run_all gives each (org, source) of a
/// PostgreSQL org its own task).
pub fn lease_source(org: &OrgPlan) -> String {
    match org.collect.sources.as_slice() {
        [source] => source.to_string(),
        _ => "EventLogFile".to_string(),
    }
}

/// Which database `plan` uses: its password-free Debug text.
pub fn database_key(plan: &PgPlan) -> String {
    format!("{:?}", plan.target)
}

/// This process's worker of `plan`'s database, and with `--follow` its balancer there (joined
/// on first use, for as many units as `context.postgres.units` says).
async fn database(
    context: &Context,
    plan: &PgPlan,
    unit: (String, String),
) -> Result<(PgWorker, Option<Balancer>), Error> {
    let key = database_key(plan);
    let mut databases = context.postgres.databases.lock().await;
    if let Some(db) = databases.iter().find(|db| db.key == key) {
        return Ok((db.worker.clone(), db.balancer.clone()));
    }
    let worker = PgWorker::connect(&plan.target, Arc::new(SystemClock), holder())
        .await
        .map_err(|e| pg_error("connecting to the state database", e))?;
    // One pass per org shares nothing out: each unit is collected by whoever claims it first,
    // and a process that holds back would leave units to processes that may never come.
    let balancer = match context.follow {
        Some(_) => {
            let mut units = context
                .postgres
                .units
                .lock()
                .map(|units| units.get(&key).cloned().unwrap_or_default())
                .unwrap_or_default();
            // Never a share of nothing, whatever run_all counted.
            if !units.contains(&unit) {
                units.push(unit);
            }
            let balancer = Balancer::join(worker.clone(), &units, context.lease_ttl)
                .await
                .map_err(|e| pg_error("announcing this collector (heartbeat)", e))?;
            context.metrics.collectors_live(balancer.live());
            Some(balancer)
        }
        None => None,
    };
    databases.push(Database {
        key,
        worker: worker.clone(),
        balancer: balancer.clone(),
    });
    Ok((worker, balancer))
}

/// Ends this process's membership of every database's collectors (its leases are released
/// already), so that the others take its share over at their next heartbeat.
pub async fn leave(context: &Context) {
    let balancers: Vec<Balancer> = context
        .postgres
        .databases
        .lock()
        .await
        .iter_mut()
        .filter_map(|db| db.balancer.take())
        .collect();
    for balancer in balancers {
        if let Err(e) = balancer.leave().await {
            tracing::warn!(error = %e, "cannot delete this collector's heartbeat row; it expires on its own");
        }
    }
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
    balancer: Option<Balancer>,
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
        let source = lease_source(org);
        let (worker, balancer) =
            database(context, plan, (org.name.clone(), source.clone())).await?;
        let mut holder = LeaseHolder::new(worker, &org.name, source, context.lease_ttl);
        if let Some(balancer) = &balancer {
            holder = holder.balanced(balancer.clone());
        }
        Ok(OrgLease {
            org,
            context,
            holder,
            balancer,
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
        match &self.balancer {
            Some(b) => {
                self.context.metrics.collectors_live(b.live());
                tracing::info!(org = %org, source, fencing_token, ttl_seconds = self.holder.ttl().as_secs(), held = b.held(), share = b.share(), live_collectors = b.live(), "collecting under a lease");
            }
            None => {
                tracing::info!(org = %org, source, fencing_token, ttl_seconds = self.holder.ttl().as_secs(), "collecting under a lease");
            }
        }
        Ok(Some(held))
    }

    /// Whether `held` should go to another collector: this process holds more than its share.
    /// Asked between passes only, after a pass's commit: that is the unit boundary where a
    /// hand-over loses and repeats nothing.
    pub fn hand_over_due(&self, held: &HeldLease) -> bool {
        if let Some(b) = &self.balancer {
            self.context.metrics.collectors_live(b.live());
        }
        held.hand_over_due()
    }

    /// Releases `held` for another collector to claim, after [`hand_over_due`](Self::hand_over_due)
    /// said so; the task then claims again, which waits while this process holds its share.
    pub async fn hand_over(&mut self, held: HeldLease, progress: &mut OrgProgress) {
        progress.metrics().lease(false);
        progress.note("handed over");
        let (share, live) = self
            .balancer
            .as_ref()
            .map_or((0, 0), |b| (b.share(), b.live()));
        tracing::info!(org = %self.org.name, source = self.holder.source(), fencing_token = held.fencing_token(), share, live_collectors = live, "handing the lease over after a pass: this process holds more than its share");
        if let Err(e) = held.release().await {
            tracing::warn!(org = %self.org.name, error = %e, "cannot release the lease; it expires on its own");
        }
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
