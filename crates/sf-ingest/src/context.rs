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
    /// Download slots across all orgs (`max_downloads`). Each EventLogFile download takes one
    /// while the file downloads and is written (see `Collector::with_download_slots`), so the
    /// downloads in flight never exceed the total however many orgs there are, and an org whose
    /// pass only queries (listings, object windows) holds none. The semaphore is fair (first
    /// come, first served), so no org's files wait behind another's for ever.
    pub downloads: Arc<Semaphore>,
    /// Spaces the new collectors' token requests (see `TokenPacer`).
    pub tokens: crate::pacer::TokenPacer,
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
