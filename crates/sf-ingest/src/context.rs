//! What every org's task shares.

use std::sync::Arc;
use std::time::Duration;

use salesforce_jwt_postgres::{Balancer, PgWorker};
use tokio::sync::Semaphore;

use crate::progress::Display;
use crate::stop::Stop;

/// The workers of this process, one per database (keyed by its password-free Debug text).
#[derive(Debug, Default)]
pub struct Workers {
    pub databases: tokio::sync::Mutex<Vec<Database>>,
    /// The (org, source) tasks of this process on each database (by key), set before the tasks
    /// start: the units its balancer shares out.
    pub units: std::sync::Mutex<std::collections::BTreeMap<String, Vec<(String, String)>>>,
}

/// This process's connection to one state database.
#[derive(Debug)]
pub struct Database {
    /// The database's password-free Debug text.
    pub key: String,
    pub worker: PgWorker,
    /// With `--follow`: this process's membership of the collectors sharing the database's
    /// leases, holding its share of them.
    pub balancer: Option<Balancer>,
}

/// What every org's task shares.
#[derive(Debug)]
pub struct Context {
    /// Download slots across all orgs. An org's pass holds `concurrency` of them from its start
    /// to its end, so the downloads in flight never exceed the total however many orgs there
    /// are. The semaphore is fair (first come, first served), so a wide org is not starved by
    /// narrow ones.
    pub downloads: Semaphore,
    pub stop: Stop,
    /// `--follow`: the time between passes; `None` is one pass per org.
    pub follow: Option<Duration>,
    pub display: Display,
    /// `--lease-ttl`, for orgs with PostgreSQL state.
    pub lease_ttl: Duration,
    /// This process's connections to PostgreSQL state databases.
    pub postgres: Workers,
    /// What `--metrics-addr` serves.
    pub metrics: Arc<crate::metrics::Metrics>,
}
