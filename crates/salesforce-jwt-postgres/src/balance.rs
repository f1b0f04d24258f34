//! Sharing the `(org, source)` leases fairly between the collector processes of one database:
//! each live process announces itself with a heartbeat row, counts the others, and holds about
//! its share of the leases.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

use crate::error::PgError;
use crate::lease::expiry;
use crate::store::PgStore;
use crate::worker::PgWorker;

/// The shortest time between heartbeats, whatever the TTL: a heartbeat is a round trip.
const MIN_BEAT_EVERY: Duration = Duration::from_millis(100);

/// How long after another collector's estimated expiry its row is read again.
const EXPIRY_MARGIN: Duration = Duration::from_millis(20);

/// How long a collector's row stays in `sfjwt_collectors` after it expired, for an operator to
/// see which processes died lately; older rows are deleted by the next heartbeat of anyone.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// A collector's fair share of `units` `(org, source)` leases when `live` collectors (itself
/// included) share them: `ceil(units / live)`. Rounding up makes the shares add up to at least
/// `units`, so every lease has a taker; with `live` 0 (nobody heartbeats yet) the share is
/// every unit.
///
/// ```
/// use salesforce_jwt_postgres::fair_share;
///
/// assert_eq!(fair_share(24, 3), 8);
/// assert_eq!(fair_share(25, 3), 9);
/// assert_eq!(fair_share(24, 0), 24);
/// ```
pub fn fair_share(units: usize, live: usize) -> usize {
    units.div_ceil(live.max(1))
}

/// The live collectors of a database as one heartbeat found them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LiveCollectors {
    /// Every live collector's name, this one's included, sorted.
    pub collectors: Vec<String>,
    /// When the first of the others expires unless it heartbeats again, by the caller's clock
    /// (counted from before the heartbeat was sent, so never later than the database's).
    pub next_expiry: Option<OffsetDateTime>,
}

/// A name for a set of `(org, source)` units, the same whatever their order or repetitions:
/// collectors configured for the same units share them; any other set is another group.
pub fn unit_set_id(units: &[(String, String)]) -> String {
    let set: std::collections::BTreeSet<&(String, String)> = units.iter().collect();
    let mut text = Vec::new();
    for (org, source) in set {
        // NUL cannot occur in either name (PostgreSQL text refuses it): an unambiguous separator.
        text.extend_from_slice(org.as_bytes());
        text.push(0);
        text.extend_from_slice(source.as_bytes());
        text.push(0);
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &text);
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl PgStore {
    /// Announces `collector` as live for `ttl` from now by the database's clock (an upsert of its
    /// `sfjwt_collectors` row, which also says which set of units it collects, `unit_set` (see
    /// [`unit_set_id`]), and how many), and reads which collectors of the same set are live:
    /// those whose last heartbeat is less than their TTL old. Rows expired for a day are
    /// deleted on the way.
    ///
    /// Collectors of another set do not count: a process configured for other orgs (or a
    /// different mix) cannot take over this one's units, so counting it would leave some of
    /// them to nobody.
    pub async fn heartbeat(
        &self,
        collector: &str,
        unit_set: &str,
        units: usize,
        ttl: Duration,
    ) -> Result<LiveCollectors, PgError> {
        let sent_at = self.clock().now();
        let client = self.lease_client("sending a heartbeat").await?;
        let units = i32::try_from(units).unwrap_or(i32::MAX);
        client
            .execute(
                "INSERT INTO sfjwt_collectors AS c
                   (collector, unit_set, units, last_seen, expires_at)
                 VALUES ($1, $2, $3, now(), now() + make_interval(secs => $4))
                 ON CONFLICT (collector) DO UPDATE
                   SET unit_set = EXCLUDED.unit_set,
                       units = EXCLUDED.units,
                       last_seen = EXCLUDED.last_seen,
                       expires_at = EXCLUDED.expires_at",
                &[&collector, &unit_set, &units, &ttl.as_secs_f64()],
            )
            .await
            .map_err(|e| PgError::statement("sending a heartbeat", e))?;
        client
            .execute(
                "DELETE FROM sfjwt_collectors
                 WHERE expires_at < now() - make_interval(secs => $1)",
                &[&FORGET_AFTER.as_secs_f64()],
            )
            .await
            .map_err(|e| PgError::statement("forgetting long-dead collectors", e))?;
        let rows = client
            .query(
                "SELECT collector, extract(epoch FROM expires_at - now())::float8
                 FROM sfjwt_collectors WHERE expires_at > now() AND unit_set = $1
                 ORDER BY collector",
                &[&unit_set],
            )
            .await
            .map_err(|e| PgError::statement("counting live collectors", e))?;
        let mut collectors = Vec::with_capacity(rows.len());
        let mut next_expiry: Option<OffsetDateTime> = None;
        for row in rows {
            let name: String = row.get(0);
            if name != collector {
                let left = Duration::try_from_secs_f64(row.get::<_, f64>(1)).unwrap_or_default();
                let at = expiry(sent_at, left);
                next_expiry = Some(next_expiry.map_or(at, |n| n.min(at)));
            }
            collectors.push(name);
        }
        if !collectors.iter().any(|c| c == collector) {
            // Another process deleted the row in between (an operator clearing the table): it
            // is there again at the next heartbeat, and this process is live either way.
            collectors.push(collector.to_string());
            collectors.sort();
        }
        Ok(LiveCollectors {
            collectors,
            next_expiry,
        })
    }

    /// Deletes `collector`'s heartbeat row: the others count one collector fewer at their next
    /// heartbeat instead of after its TTL (a clean shutdown).
    pub async fn leave(&self, collector: &str) -> Result<(), PgError> {
        let client = self.lease_client("leaving the collectors").await?;
        client
            .execute(
                "DELETE FROM sfjwt_collectors WHERE collector = $1",
                &[&collector],
            )
            .await
            .map_err(|e| PgError::statement("leaving the collectors", e))?;
        Ok(())
    }
}

/// What the heartbeat task and the process's leases share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct View {
    /// Live collectors, this one included (at least 1).
    live: usize,
    /// Leases this process holds (or is claiming) through the [`Balancer`].
    held: usize,
}

#[derive(Debug)]
struct Inner {
    worker: PgWorker,
    collector: String,
    unit_set: String,
    units: usize,
    ttl: Duration,
    view: watch::Sender<View>,
    beats: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut beats) = self.beats.lock()
            && let Some(task) = beats.take()
        {
            task.abort();
        }
    }
}

/// This process's membership of the collectors sharing one database's leases: those configured
/// for the same `(org, source)` units.
///
/// [`join`](Self::join) announces the process and keeps announcing it (a heartbeat every third
/// of the TTL, on the store's [`Clock`](salesforce_jwt::clock::Clock), and again whenever
/// another collector's heartbeat is due to run out, so a dead one stops counting as soon as
/// its row expires). Each process holds at most its [`share`](Self::share) of the
/// [`units`](Self::units) it collects: a [`LeaseHolder`](crate::LeaseHolder) made
/// [`balanced`](crate::LeaseHolder::balanced) waits instead of claiming a free lease while
/// the process holds its share (so a newcomer finds free ones), and a
/// [`HeldLease`](crate::HeldLease) says when it is one too many
/// ([`hand_over_due`](crate::HeldLease::hand_over_due)), for the caller to release it at its
/// next safe point. Shares only ever ask a process above its share to give leases up, never
/// one at its share: no lease goes back and forth.
///
/// Clones share the membership; it ends when the last clone is dropped (its row then expires)
/// or at [`leave`](Self::leave).
///
/// ```no_run
/// # async fn example(worker: salesforce_jwt_postgres::PgWorker) -> Result<(), salesforce_jwt_postgres::PgError> {
/// use salesforce_jwt_postgres::{Balancer, DEFAULT_LEASE_TTL, LeaseHolder};
///
/// // The (org, source) units this process collects.
/// let units = [("acme-prod", "EventLogFile"), ("acme-prod", "LoginEvent")]
///     .map(|(org, source)| (org.to_string(), source.to_string()));
/// let balancer = Balancer::join(worker.clone(), &units, DEFAULT_LEASE_TTL).await?;
/// let holder = LeaseHolder::new(worker, "acme-prod", "EventLogFile", DEFAULT_LEASE_TTL)
///     .balanced(balancer.clone());
/// println!("{} live collectors, a share of {}", balancer.live(), balancer.share());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Balancer {
    inner: Arc<Inner>,
}

impl Balancer {
    /// Sends the first heartbeat as `worker`'s holder name, collecting the `(org, source)`
    /// `units` (their leases held for `ttl` each), and keeps sending them in the background (on
    /// the caller's runtime). Only collectors of the same set of units count each other.
    pub async fn join(
        worker: PgWorker,
        units: &[(String, String)],
        ttl: Duration,
    ) -> Result<Balancer, PgError> {
        let collector = worker.store().holder().to_string();
        let unit_set = unit_set_id(units);
        let units = units
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let first = beat(&worker, &collector, &unit_set, units, ttl).await?;
        let (view, _) = watch::channel(View {
            live: first.collectors.len().max(1),
            held: 0,
        });
        let inner = Arc::new(Inner {
            worker,
            collector,
            unit_set,
            units,
            ttl,
            view,
            beats: std::sync::Mutex::new(None),
        });
        tracing::info!(collector = %inner.collector, live = first.collectors.len(), units, share = fair_share(units, first.collectors.len()), "joined the collectors");
        let task = tokio::spawn(heartbeats(Arc::downgrade(&inner), first.next_expiry));
        if let Ok(mut beats) = inner.beats.lock() {
            *beats = Some(task);
        }
        Ok(Balancer { inner })
    }

    /// This collector's name (its holder name, as lease rows show it).
    pub fn collector(&self) -> &str {
        &self.inner.collector
    }

    /// How many `(org, source)` units this process collects (each counted once).
    pub fn units(&self) -> usize {
        self.inner.units
    }

    /// How many collectors are live, this one included, as the last heartbeat found.
    pub fn live(&self) -> usize {
        self.inner.view.borrow().live
    }

    /// How many leases this process should hold at most: [`fair_share`] of its units.
    pub fn share(&self) -> usize {
        fair_share(self.inner.units, self.live())
    }

    /// How many leases this process holds (or is claiming) through this balancer.
    pub fn held(&self) -> usize {
        self.inner.view.borrow().held
    }

    /// Notified on every change of [`live`](Self::live) or [`held`](Self::held).
    pub(crate) fn subscribe(&self) -> watch::Receiver<View> {
        self.inner.view.subscribe()
    }

    /// One more lease counted, if this process holds fewer than its share.
    pub(crate) fn reserve(&self) -> Option<ShareSlot> {
        let units = self.inner.units;
        let reserved = self.inner.view.send_if_modified(|v| {
            if v.held < fair_share(units, v.live) {
                v.held += 1;
                true
            } else {
                false
            }
        });
        reserved.then(|| self.slot())
    }

    /// One more lease counted, whatever the share.
    pub(crate) fn count(&self) -> ShareSlot {
        self.inner.view.send_modify(|v| v.held += 1);
        self.slot()
    }

    fn slot(&self) -> ShareSlot {
        ShareSlot {
            balancer: self.clone(),
            counted: AtomicBool::new(true),
        }
    }

    /// Stops the heartbeats and deletes this collector's row, so that the others take over its
    /// share at their next heartbeat rather than after the TTL. Release the leases first.
    pub async fn leave(self) -> Result<(), PgError> {
        if let Ok(mut beats) = self.inner.beats.lock()
            && let Some(task) = beats.take()
        {
            task.abort();
        }
        let collector = self.inner.collector.clone();
        let left = self
            .inner
            .worker
            .run(move |store| async move { store.leave(&collector).await })
            .await;
        tracing::info!(collector = %self.inner.collector, "left the collectors");
        left
    }
}

/// One lease counted in a [`Balancer`]'s held leases, until dropped or handed over.
#[derive(Debug)]
pub(crate) struct ShareSlot {
    balancer: Balancer,
    counted: AtomicBool,
}

impl ShareSlot {
    /// Whether the process holds more than its share, in which case this lease stops counting
    /// at once: of several leases asking together, only as many as the surplus are told to go.
    pub(crate) fn hand_over(&self) -> bool {
        if !self.counted.load(Ordering::SeqCst) {
            return true;
        }
        let units = self.balancer.inner.units;
        let surplus = self.balancer.inner.view.send_if_modified(|v| {
            if v.held > fair_share(units, v.live) {
                v.held -= 1;
                true
            } else {
                false
            }
        });
        if surplus {
            self.counted.store(false, Ordering::SeqCst);
        }
        surplus
    }
}

impl Drop for ShareSlot {
    fn drop(&mut self) {
        if self.counted.swap(false, Ordering::SeqCst) {
            self.balancer
                .inner
                .view
                .send_modify(|v| v.held = v.held.saturating_sub(1));
        }
    }
}

async fn beat(
    worker: &PgWorker,
    collector: &str,
    unit_set: &str,
    units: usize,
    ttl: Duration,
) -> Result<LiveCollectors, PgError> {
    let (collector, unit_set) = (collector.to_string(), unit_set.to_string());
    worker
        .run(move |store| async move { store.heartbeat(&collector, &unit_set, units, ttl).await })
        .await
}

/// Heartbeats every third of the TTL, and when another collector's row is due to expire (to
/// stop counting it then, if it did not heartbeat meanwhile), for as long as the membership
/// lasts. A failed heartbeat is retried at the next; the view stays as it was meanwhile.
async fn heartbeats(inner: std::sync::Weak<Inner>, mut next_expiry: Option<OffsetDateTime>) {
    let Some(first) = inner.upgrade() else { return };
    let clock = Arc::clone(first.worker.store().clock());
    let every = (first.ttl / 3).max(MIN_BEAT_EVERY);
    drop(first);
    let mut next_beat = expiry(clock.now(), every);
    loop {
        // A little after the other's expiry by the database's clock: the estimate is early by
        // the time the heartbeat took to get there.
        let wake = next_expiry.map_or(next_beat, |e| expiry(e, EXPIRY_MARGIN).min(next_beat));
        let wait = Duration::try_from(wake - clock.now()).unwrap_or(Duration::ZERO);
        clock.sleep(wait).await;
        let Some(inner) = inner.upgrade() else { return };
        next_beat = expiry(clock.now(), every);
        match beat(
            &inner.worker,
            &inner.collector,
            &inner.unit_set,
            inner.units,
            inner.ttl,
        )
        .await
        {
            Ok(found) => {
                next_expiry = found.next_expiry;
                let live = found.collectors.len().max(1);
                let changed = inner.view.send_if_modified(|v| {
                    let changed = v.live != live;
                    v.live = live;
                    changed
                });
                if changed {
                    tracing::info!(collector = %inner.collector, live, share = fair_share(inner.units, live), "live collectors changed");
                } else {
                    tracing::debug!(collector = %inner.collector, live, "heartbeat");
                }
            }
            Err(e) => {
                // Keep the last view: the leases are in the same database, so they cannot be
                // renewed or claimed either until it answers again.
                next_expiry = None;
                tracing::warn!(collector = %inner.collector, error = %e, "cannot send the heartbeat; trying again");
            }
        }
    }
}
