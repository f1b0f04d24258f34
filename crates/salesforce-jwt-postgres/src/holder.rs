//! Holding one `(org, source)` lease for as long as a collection runs: claiming it (again and
//! again while another process holds it), renewing it on schedule in the background, and
//! saying when it was lost, so the caller stops at once.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

use crate::balance::{Balancer, ShareSlot};
use crate::collect::PgCheckpointStore;
use crate::error::PgError;
use crate::lease::Lease;
use crate::worker::PgWorker;

/// The shortest time between renewals, whatever the TTL: a renewal is a round trip.
const MIN_RENEW_EVERY: Duration = Duration::from_millis(100);

/// Claims and holds the lease of one `(org, source)` through a [`PgWorker`].
///
/// [`acquire`](Self::acquire) claims until the lease is this process's; the [`HeldLease`] it
/// returns renews it every third of the TTL in the background, hands out the fenced
/// [`PgCheckpointStore`] to collect with, and reports the loss
/// ([`HeldLease::lost`]) when another process took the lease over or renewals failed until it
/// ran out. Every wait (between claims, between renewals) is on the store's
/// [`Clock`](salesforce_jwt::clock::Clock).
///
/// ```no_run
/// # async fn example(worker: salesforce_jwt_postgres::PgWorker) -> Result<(), salesforce_jwt_postgres::PgError> {
/// use std::time::Duration;
/// use salesforce_jwt_postgres::{DEFAULT_LEASE_TTL, LeaseHolder};
///
/// let holder = LeaseHolder::new(worker, "acme-prod", "EventLogFile", DEFAULT_LEASE_TTL);
/// // Claim every 5 s (at most every TTL / 2) while another process holds it.
/// let on_busy = |_busy: &salesforce_jwt_postgres::LeaseBusy| Some(Duration::from_secs(5));
/// if let Some(held) = holder.acquire(on_busy, std::future::pending()).await? {
///     // A `CheckpointStore` whose writes carry the lease's fencing token.
///     let store = held.store();
///     let collected = tokio::select! {
///         () = async move { /* collect with `store` */ drop(store) } => true,
///         loss = held.lost() => {
///             eprintln!("stopped: {loss}");
///             false
///         }
///     };
///     if collected {
///         held.release().await?;
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LeaseHolder {
    worker: PgWorker,
    org: String,
    source: String,
    ttl: Duration,
    balancer: Option<Balancer>,
}

/// Why a claim was refused: a live holder has the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseBusy {
    /// Who holds it.
    pub holder: String,
    /// When its lease expires unless renewed, by the database's clock.
    pub expires_at: OffsetDateTime,
}

/// What one [`LeaseHolder::claim`] got.
#[derive(Debug)]
pub enum Claim {
    /// The lease is this process's, renewed in the background from now on.
    Held(HeldLease),
    /// Another process holds it.
    Busy(LeaseBusy),
}

/// Why a [`HeldLease`] ended before it was released.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseLoss {
    /// Another process holds it now: a renewal was refused ([`PgError::LeaseLost`]'s text).
    TakenOver {
        /// The refusal, naming the new holder.
        reason: String,
    },
    /// Renewals failed (PostgreSQL could not be reached) until the lease ran out by this
    /// process's clock, or renewing stopped: another process may have it now.
    RanOut {
        /// The last renewal's error.
        reason: String,
    },
}

impl fmt::Display for LeaseLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaseLoss::TakenOver { reason } => f.write_str(reason),
            LeaseLoss::RanOut { reason } => {
                write!(
                    f,
                    "the lease ran out while it could not be renewed: {reason}"
                )
            }
        }
    }
}

impl LeaseHolder {
    /// Holds `(org, source)` for `ttl` at a time, as `worker`'s holder name.
    pub fn new(
        worker: PgWorker,
        org: impl Into<String>,
        source: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        LeaseHolder {
            worker,
            org: org.into(),
            source: source.into(),
            ttl,
            balancer: None,
        }
    }

    /// Holds the lease as one of `balancer`'s: [`acquire`](Self::acquire) claims only while
    /// this process holds fewer leases than its share, and the [`HeldLease`] says when it is
    /// one too many ([`HeldLease::hand_over_due`]).
    pub fn balanced(mut self, balancer: Balancer) -> Self {
        self.balancer = Some(balancer);
        self
    }

    /// The org's name.
    pub fn org(&self) -> &str {
        &self.org
    }

    /// The source's name.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// How long a claim or renewal holds the lease.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Claims the lease once ([`PgStore::claim`](crate::PgStore::claim)). A lease claimed
    /// here counts among the [`balanced`](Self::balanced) holder's leases whatever its share;
    /// [`acquire`](Self::acquire) is the one that keeps to the share.
    pub async fn claim(&self) -> Result<Claim, PgError> {
        let slot = self.balancer.as_ref().map(Balancer::count);
        self.claim_counted(slot).await
    }

    /// Claims the lease once, counted in `slot` if it is taken.
    async fn claim_counted(&self, slot: Option<ShareSlot>) -> Result<Claim, PgError> {
        let (org, source, ttl) = (self.org.clone(), self.source.clone(), self.ttl);
        let claimed = self
            .worker
            .run(move |store| async move { store.claim(&org, &source, ttl).await })
            .await;
        match claimed {
            Ok(lease) => Ok(Claim::Held(HeldLease::start(
                self.worker.clone(),
                lease,
                ttl,
                slot,
            ))),
            Err(PgError::LeaseBusy {
                holder, expires_at, ..
            }) => Ok(Claim::Busy(LeaseBusy { holder, expires_at })),
            Err(e) => Err(e),
        }
    }

    /// Claims until the lease is this process's. Each refusal goes to `on_busy`, which says
    /// how long to wait before the next claim, or `None` to give up (`Ok(None)`). The wait is
    /// at most half the TTL, so the lease is taken over soon after its holder stops renewing
    /// it. `stop` ends a wait early (`Ok(None)`); a claim in flight is never cut off, so a
    /// lease is never claimed behind the caller's back.
    ///
    /// A [`balanced`](Self::balanced) holder does not claim while its process holds its share:
    /// it waits (without a claim, so `on_busy` is not called) until the share grows or another
    /// of the process's leases ends, so that a collector with fewer leases gets this one.
    pub async fn acquire(
        &self,
        mut on_busy: impl FnMut(&LeaseBusy) -> Option<Duration>,
        stop: impl Future<Output = ()>,
    ) -> Result<Option<HeldLease>, PgError> {
        let clock = Arc::clone(self.worker.store().clock());
        tokio::pin!(stop);
        loop {
            let slot = match &self.balancer {
                None => None,
                Some(balancer) => {
                    // Subscribed before the attempt, so a change right after it still wakes
                    // the wait below.
                    let mut changes = balancer.subscribe();
                    changes.borrow_and_update();
                    match balancer.reserve() {
                        Some(slot) => Some(slot),
                        None => {
                            tracing::debug!(org = %self.org, source = %self.source, share = balancer.share(), "this process holds its share of the leases; waiting");
                            tokio::select! {
                                biased;
                                () = &mut stop => return Ok(None),
                                _ = changes.changed() => {}
                                // A bound, in case a change is missed somehow.
                                () = clock.sleep(self.ttl / 2) => {}
                            }
                            continue;
                        }
                    }
                }
            };
            let busy = match self.claim_counted(slot).await? {
                Claim::Held(held) => return Ok(Some(held)),
                Claim::Busy(busy) => busy,
            };
            let Some(wait) = on_busy(&busy) else {
                return Ok(None);
            };
            tokio::select! {
                // A stop request wins over a wait that is over too.
                biased;
                () = &mut stop => return Ok(None),
                () = clock.sleep(wait.min(self.ttl / 2)) => {}
            }
        }
    }
}

/// What the renewal task shares with the [`HeldLease`].
#[derive(Debug, Clone)]
struct State {
    /// The lease as last claimed or renewed.
    lease: Lease,
    loss: Option<LeaseLoss>,
}

/// A lease this process holds, renewed in the background until it is released, lost, or
/// dropped (dropping stops the renewals and leaves the lease to expire).
#[derive(Debug)]
pub struct HeldLease {
    worker: PgWorker,
    ttl: Duration,
    /// The lease as claimed: its fencing token is what the store's writes carry.
    claimed: Lease,
    state: watch::Receiver<State>,
    renewal: tokio::task::JoinHandle<()>,
    /// Its place among the balancer's leases, given back when the lease ends.
    slot: Option<ShareSlot>,
}

impl HeldLease {
    /// Starts renewing `lease` on the caller's runtime.
    fn start(worker: PgWorker, lease: Lease, ttl: Duration, slot: Option<ShareSlot>) -> Self {
        let (tx, state) = watch::channel(State {
            lease: lease.clone(),
            loss: None,
        });
        let renewal = tokio::spawn(renew(worker.clone(), lease.clone(), ttl, tx));
        HeldLease {
            worker,
            ttl,
            claimed: lease,
            state,
            renewal,
            slot,
        }
    }

    /// Whether this lease should be handed over: its holder is [`balanced`](LeaseHolder::balanced)
    /// and its process holds more leases than its share (another collector joined). Then it no
    /// longer counts among the process's leases (of several leases asking at once, only the
    /// surplus is told to go), and the caller should [`release`](Self::release) it at its next
    /// safe point: after a commit, never in the middle of a delivery.
    pub fn hand_over_due(&self) -> bool {
        self.slot.as_ref().is_some_and(ShareSlot::hand_over)
    }

    /// The lease as claimed or last renewed.
    pub fn lease(&self) -> Lease {
        self.state.borrow().lease.clone()
    }

    /// Its fencing token, which every write under it carries.
    pub fn fencing_token(&self) -> i64 {
        self.claimed.fencing_token
    }

    /// The checkpoint store of the `(org, source)`, writing under this lease (refused by the
    /// database once another process has taken it over). Make one per collector.
    pub fn store(&self) -> PgCheckpointStore {
        PgCheckpointStore::new(
            self.worker.clone(),
            &self.claimed.org,
            &self.claimed.source,
            self.ttl,
        )
        .with_lease(self.claimed.clone())
    }

    /// Resolves once the lease is lost, with why; never while it is held. Whatever the caller
    /// does under the lease should stop at once then: its writes are refused already.
    pub async fn lost(&self) -> LeaseLoss {
        let mut state = self.state.clone();
        let loss = match state.wait_for(|s| s.loss.is_some()).await {
            Ok(s) => s.loss.clone(),
            Err(_) => None,
        };
        // The renewal task ended without a word (it panicked): nothing renews the lease now.
        loss.unwrap_or_else(|| LeaseLoss::RanOut {
            reason: "renewing stopped".into(),
        })
    }

    /// Gives the lease up, so another process may claim it at once instead of after the TTL.
    pub async fn release(self) -> Result<(), PgError> {
        self.renewal.abort();
        let lease = self.lease();
        self.worker
            .run(move |store| async move { store.release(lease).await })
            .await
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

/// Renews `lease` every third of the TTL for as long as it is held. Sends why on `state` when
/// another process took it over, or when renewals failed (the database unreachable) until the
/// lease ran out by this process's clock.
async fn renew(worker: PgWorker, mut lease: Lease, ttl: Duration, state: watch::Sender<State>) {
    let clock = Arc::clone(worker.store().clock());
    // Two renewals can fail before the lease runs out.
    let every = (ttl / 3).max(MIN_RENEW_EVERY);
    // Counted from when the claim or the last renewal was sent, not from when this task got
    // to run, so a slow start does not eat into the margin.
    let mut next = renew_at(&lease, ttl, every);
    loop {
        let wait = std::time::Duration::try_from(next - clock.now()).unwrap_or(Duration::ZERO);
        clock.sleep(wait).await;
        let current = lease.clone();
        let renewed = worker
            .run(move |store| async move {
                let mut lease = current;
                store.renew(&mut lease, ttl).await.map(|()| lease)
            })
            .await;
        let loss = match renewed {
            // The store logs each renewal at debug level.
            Ok(renewed) => {
                lease = renewed;
                next = renew_at(&lease, ttl, every);
                state.send_modify(|s| s.lease = lease.clone());
                continue;
            }
            Err(e @ PgError::LeaseLost { .. }) => {
                tracing::warn!(org = %lease.org, source = %lease.source, error = %e, "lease taken over; stopping this collection");
                LeaseLoss::TakenOver {
                    reason: e.to_string(),
                }
            }
            Err(e) => {
                if lease.is_live(clock.now()) {
                    next = after(clock.now(), every);
                    tracing::warn!(org = %lease.org, source = %lease.source, error = %e, "cannot renew the lease; trying again");
                    continue;
                }
                tracing::warn!(org = %lease.org, source = %lease.source, error = %e, "lease ran out while PostgreSQL could not be reached; stopping this collection");
                LeaseLoss::RanOut {
                    reason: e.to_string(),
                }
            }
        };
        state.send_modify(|s| s.loss = Some(loss));
        return;
    }
}

/// When to renew `lease`: `every` after the claim or renewal that set it was sent.
fn renew_at(lease: &Lease, ttl: Duration, every: Duration) -> OffsetDateTime {
    time::Duration::try_from(ttl.saturating_sub(every))
        .ok()
        .and_then(|d| lease.valid_until.checked_sub(d))
        .unwrap_or(lease.valid_until)
}

/// `now + by`, saturating.
fn after(now: OffsetDateTime, by: Duration) -> OffsetDateTime {
    time::Duration::try_from(by)
        .ok()
        .and_then(|d| now.checked_add(d))
        .unwrap_or(now)
}
