//! What every org's task shares.

use std::sync::Arc;
use std::time::Duration;

use salesforce_jwt_postgres::PgWorker;
use tokio::sync::Semaphore;

use crate::progress::Display;
use crate::stop::Stop;

/// The workers of this process, one per database (keyed by its password-free Debug text).
pub type Workers = tokio::sync::Mutex<Vec<(String, PgWorker)>>;

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
