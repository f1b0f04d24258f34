//! Collecting every org at once: one task per org, a shared bound on downloads, token requests
//! spaced out, and an org's failure confined to that org.

use std::sync::Arc;
use std::time::Duration;

use salesforce_jwt::collect::{
    CheckpointStore, Collector, CollectorOptions, FileCheckpointStore, MemoryCheckpointStore,
    ObjectCollectorOptions,
};
use salesforce_jwt::event_log_file::EventLogFileQuery;
use salesforce_jwt::{Error, JwtBearerClient};
use salesforce_jwt_postgres::PgSink;

use crate::context::Context;
use crate::plan::OrgPlan;
use crate::progress::OrgProgress;
use crate::sink::OutputSink;
use crate::source::Source;

/// The longest wait before a failed org is tried again in `--follow` mode.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(3600);

/// Collects every org; `true` when none failed.
pub async fn run_all(orgs: Vec<OrgPlan>, context: Arc<Context>) -> bool {
    // Each database's balancer shares out this process's tasks there, counted before any
    // starts (the first to connect joins with the count).
    if let Ok(mut units) = context.postgres.units.lock() {
        for org in &orgs {
            if let Some(plan) = &org.postgres {
                let sources = match org.collect.sources.as_slice() {
                    [_, _, ..] => org.collect.sources.iter().map(|s| s.to_string()).collect(),
                    _ => vec![crate::postgres::lease_source(org)],
                };
                units
                    .entry(crate::postgres::database_key(plan))
                    .or_default()
                    .extend(sources.into_iter().map(|s| (org.name.clone(), s)));
            }
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    for org in orgs {
        match &org.postgres {
            // In PostgreSQL each (org, source) has its own lease and checkpoint row, so that
            // several processes can share an org's sources: each is its own task.
            Some(_) if org.collect.sources.len() > 1 => {
                for source in org.collect.sources.clone() {
                    let mut one = org.clone();
                    one.collect.sources = vec![source];
                    tasks.spawn(run_org(one, Arc::clone(&context)));
                }
            }
            _ => {
                tasks.spawn(run_org(org, Arc::clone(&context)));
            }
        }
    }
    let mut failed = Vec::new();
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(name)) => failed.push(name),
            Err(e) => {
                tracing::error!(error = %e, "an org's task ended abnormally");
                failed.push("?".to_string());
            }
        }
    }
    crate::postgres::leave(&context).await;
    if !failed.is_empty() {
        failed.sort();
        tracing::error!(orgs = ?failed, "{} org(s) failed; the others completed", failed.len());
    }
    failed.is_empty()
}

/// One org, pass after pass. A failure is logged with the org's name; with `--follow` the org is
/// tried again later (the wait doubles with each failure in a row, up to an hour), from a
/// fresh collector and sink, the way a restart would.
async fn run_org(org: OrgPlan, context: Arc<Context>) -> Result<(), String> {
    // Log lines name the org as configured; a PostgreSQL org's per-source tasks say their
    // source in the lease lines.
    let mut progress = context.display.org(&org.name, context.metrics.org(&org));
    // Without a state file the checkpoint must still survive a retry within this run.
    let memory = MemoryCheckpointStore::new();
    let mut failures: u32 = 0;
    loop {
        let error = match collect(&org, &context, &memory, &mut progress, &mut failures).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        progress.failed();
        progress.metrics().failed(&error);
        failures += 1;
        let Some(every) = context.follow else {
            tracing::error!(org = %org.name, error = %crate::flags::Shown(&error), "org failed");
            return Err(org.name);
        };
        let wait = every
            .saturating_mul(1 << (failures - 1).min(16))
            .min(MAX_RETRY_WAIT.max(every));
        tracing::error!(
            org = %org.name,
            error = %crate::flags::Shown(&error),
            retry_in_seconds = wait.as_secs(),
            "org failed; the other orgs go on and this one is tried again later"
        );
        if context.stop.sleep(wait).await {
            return Ok(());
        }
    }
}

/// Passes until done (one pass, or a stop request with `--follow`) or an error.
async fn collect(
    org: &OrgPlan,
    context: &Context,
    memory: &MemoryCheckpointStore,
    progress: &mut OrgProgress,
    failures: &mut u32,
) -> Result<(), Error> {
    if let Some(plan) = &org.postgres {
        let mut lease = crate::postgres::OrgLease::new(org, plan, context).await?;
        while let Some(held) = lease.acquire(progress, failures).await? {
            let store = held.store();
            let rows = plan.rows.then(|| store.sink());
            let hand_over = || lease.hand_over_due(&held);
            let passed = tokio::select! {
                r = passes(org, store, rows, context, progress, failures, Some(&hand_over)) => Ok(r),
                // At once: the fence already refuses this holder's writes; whatever it was
                // doing is dropped uncommitted, and the new holder delivers it.
                loss = held.lost() => Err(loss),
            };
            let passed = match passed {
                Ok(Ok(Ended::HandOver)) => {
                    lease.hand_over(held, progress).await;
                    continue;
                }
                Ok(outcome) => Ok(outcome.map(|_| ())),
                Err(loss) => Err(loss),
            };
            if let Some(outcome) = lease.end(held, passed, progress).await {
                return outcome;
            }
        }
        return Ok(());
    }
    // Sync: the collector is borrowed across awaits inside a task that may move between threads.
    let store: Box<dyn CheckpointStore + Sync> = match &org.state {
        Some(path) => Box::new(FileCheckpointStore::new(path)),
        None => Box::new(memory.clone()),
    };
    passes(org, store, None, context, progress, failures, None)
        .await
        .map(|_| ())
}

/// Why passes ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// One pass done without `--follow`, or a stop request.
    Done,
    /// The lease should go to another collector (`hand_over` said so after a pass).
    HandOver,
}

/// Asked after each pass (a unit boundary: its rows and checkpoint are committed): whether to
/// stop here and hand the (org, source) over.
pub type HandOver<'a> = Option<&'a (dyn Fn() -> bool + Sync)>;

/// Passes over `store` until done or an error, into `rows` (`salesforce_events` of the
/// store's database) or else the org's output.
async fn passes<S: CheckpointStore>(
    org: &OrgPlan,
    store: S,
    rows: Option<PgSink>,
    context: &Context,
    progress: &mut OrgProgress,
    failures: &mut u32,
    hand_over: HandOver<'_>,
) -> Result<Ended, Error> {
    // Every source of the org in one collector: one checkpoint, one output, one position.
    // (Collector::new loads the checkpoint on this runtime's thread; a PostgreSQL store waits
    // for its worker's thread, see PgWorker.)
    let mut collector = collector_for(org, store, progress.metrics())?
        .with_download_slots(Arc::clone(&context.downloads));
    // The new client's token, in its turn; a token that cannot be had is left to the pass (or
    // the ECS options) to report.
    tokio::select! {
        () = context.tokens.turn() => {
            let _ = collector.client().access_token().await;
        }
        () = context.stop.wait() => return Ok(Ended::Done),
    }
    let mut sink = match rows {
        Some(rows) => OutputSink::Postgres(rows),
        None => OutputSink::open(
            org.out.as_deref(),
            collector.checkpoint(),
            org.collect.format,
            ecs_options(org, &collector).await,
            org.elasticsearch.as_ref(),
        )?,
    };
    pass_loop(
        &mut collector,
        &mut sink,
        org,
        context,
        progress,
        failures,
        hand_over,
    )
    .await
}

/// The org's ECS options, with `organization.id` for object documents (Elastic's integration
/// writes the org's Id there) when documents are ECS: the Id comes with the access token, which
/// the pass asks for anyway (cached, so no extra request). A token that cannot be had now is
/// left to the pass to report.
pub async fn ecs_options<S: CheckpointStore>(
    org: &OrgPlan,
    collector: &Collector<S>,
) -> salesforce_jwt::format::ecs::EcsOptions {
    let options = org.ecs_options();
    if org.collect.format != crate::format::OutputFormat::Ecs && org.elasticsearch.is_none() {
        return options;
    }
    match collector.client().access_token().await {
        Ok(token) => match token.org_id() {
            Some(id) => options.with_organization_id(id),
            None => options,
        },
        Err(_) => options,
    }
}

/// The widest `EventDate` window of a big object: a window with few rows doubles the next one,
/// up to a day.
pub const MAX_OBJECT_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// A collector of every source `org` names, over `store`, counting into `metrics`.
pub fn collector_for<S: CheckpointStore>(
    org: &OrgPlan,
    store: S,
    metrics: &crate::metrics::OrgMetrics,
) -> Result<Collector<S>, Error> {
    let mut event_log_file = false;
    let mut objects = Vec::new();
    for source in &org.collect.sources {
        match source {
            Source::EventLogFile => event_log_file = true,
            Source::Object(object) => objects.push(object.clone()),
        }
    }
    let client = JwtBearerClient::builder(org.jwt.clone())
        .api_budget(org.collect.api_budget)
        .build()?;
    metrics.client(&client);
    let query = EventLogFileQuery::new()
        .event_types(org.collect.event_types.iter().cloned())
        .interval(org.collect.interval);
    let options = CollectorOptions {
        since: org.collect.since,
        concurrency: org.collect.concurrency,
        skip_failed_files: org.collect.skip_bad_files,
        ..CollectorOptions::default()
    };
    let object_options = ObjectCollectorOptions {
        since: org.collect.since,
        skip_unreadable_pages: org.collect.skip_bad_files,
        // A quiet big object (LoginEvent of a small org) costs a handful of queries a week
        // instead of one per hour; after a busy window the next is narrower again, down to
        // the hour it starts at.
        max_window: MAX_OBJECT_WINDOW,
        ..ObjectCollectorOptions::default()
    };
    Collector::with_sources(
        client,
        event_log_file.then_some(query),
        objects,
        store,
        options,
        object_options,
    )
    .map(|collector| collector.with_figures(metrics.figures()))
}

/// Pass after pass into `sink` until done (one pass, or a stop request with `--follow`) or an
/// error. A pass holds no download slot of its own: each file's download takes one (see
/// [`Context::downloads`]), so an org that only queries never keeps another from downloading.
pub async fn pass_loop<S: CheckpointStore>(
    collector: &mut Collector<S>,
    sink: &mut OutputSink,
    org: &OrgPlan,
    context: &Context,
    progress: &mut OrgProgress,
    failures: &mut u32,
    hand_over: HandOver<'_>,
) -> Result<Ended, Error> {
    let mut budget = crate::budget::Pause::default();
    loop {
        if context.stop.requested() {
            return Ok(Ended::Done);
        }
        let present_before = sink.already_present();
        let summary = collector
            .run_pass(sink, &mut |p| progress.update(p), context.stop.flag())
            .await?;
        *failures = 0;
        budget.after_pass(&org.name, &summary, collector.client());
        let already_present = sink
            .already_present()
            .map(|n| n - present_before.unwrap_or(0));
        progress.pass_done(
            &summary,
            collector.checkpoint().rows_delivered,
            already_present,
        );
        if context.stop.requested() {
            return Ok(Ended::Done);
        }
        let Some(every) = context.follow else {
            return Ok(Ended::Done);
        };
        if hand_over.is_some_and(|due| due()) {
            return Ok(Ended::HandOver);
        }
        if context.stop.sleep(every).await {
            return Ok(Ended::Done);
        }
        // Still a unit boundary: the share may have changed during the wait.
        if hand_over.is_some_and(|due| due()) {
            return Ok(Ended::HandOver);
        }
    }
}
