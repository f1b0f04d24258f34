//! Fenced checkpoints and the `salesforce_events` table.

use std::sync::Arc;
use std::time::Duration;

use bytes_json::RawJson;
use deadpool_postgres::Pool;
use salesforce_jwt::clock::Clock;
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use crate::connect::PgTarget;
use crate::error::PgError;
use crate::lease::{Lease, LeaseTimeouts, expiry};
use crate::schema;

/// One collected row bound for `salesforce_events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// The row's deterministic id (the same whenever the same row is collected again).
    pub event_id: String,
    /// The row as one JSON object, exactly as the NDJSON format writes it.
    pub record: Vec<u8>,
}

/// What one delivery ([`PgStore::deliver`], or a file through [`PgSink`](crate::PgSink))
/// committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Delivered {
    /// Rows handed over.
    pub rows: u64,
    /// Of those, rows whose `event_id` `salesforce_events` already held for the `(org, source)`
    /// (delivered before, by another file, or earlier in the same one): counted as delivered,
    /// not inserted again.
    pub already_present: u64,
}

/// Checkpoints, leases and collected rows in one PostgreSQL database, shared by any number of
/// collector processes.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// Claims, renewals and releases, apart from `pool`: a renewal must not wait behind commits
    /// that hold every connection of `pool`, or a busy process would lose its leases.
    lease_pool: Pool,
    /// Connections for transactions that receive a file's rows while it downloads. Apart from
    /// `pool` so that lease claims and renewals never wait for a connection behind them: those
    /// transactions last as long as their file.
    rows_pool: Pool,
    target: PgTarget,
    clock: Arc<dyn Clock>,
    holder: String,
    timeouts: LeaseTimeouts,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

/// Connections for commits and reads.
const POOL_SIZE: usize = 8;
/// Connections for claims, renewals and releases: each is one short transaction.
const LEASE_POOL_SIZE: usize = 2;

impl PgStore {
    /// Connects to `target`, brings the schema up to date, and acts as `holder` (a name unique
    /// to this process, such as [`process_holder_id`](crate::process_holder_id), shown to other
    /// processes in lease errors), with the default [`LeaseTimeouts`].
    pub async fn connect(
        target: &PgTarget,
        clock: Arc<dyn Clock>,
        holder: impl Into<String>,
    ) -> Result<PgStore, PgError> {
        Self::connect_with(target, clock, holder, LeaseTimeouts::default()).await
    }

    /// [`connect`](Self::connect) with other timeouts.
    pub async fn connect_with(
        target: &PgTarget,
        clock: Arc<dyn Clock>,
        holder: impl Into<String>,
        timeouts: LeaseTimeouts,
    ) -> Result<PgStore, PgError> {
        if let Some(warning) = target.unverified_warning() {
            tracing::warn!("{warning}");
        }
        let store = PgStore {
            pool: target.pool(POOL_SIZE, timeouts.keepalive_idle)?,
            // No statement timeout here: a renewal may wait for this process's own commit,
            // which holds the lease row, and must not fail for it.
            lease_pool: target.pool(LEASE_POOL_SIZE, timeouts.keepalive_idle)?,
            rows_pool: target.pool(ROWS_CONNECTIONS, timeouts.keepalive_idle)?,
            target: target.clone(),
            clock,
            holder: holder.into(),
            timeouts,
        };
        let mut client = store.client("connecting").await?;
        schema::migrate(&mut client).await?;
        Ok(store)
    }

    /// This process's holder name.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The clock that dates claims and renewals ([`Lease::valid_until`]).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    async fn client(&self, context: &str) -> Result<deadpool_postgres::Object, PgError> {
        self.pool
            .get()
            .await
            .map_err(|e| PgError::pool(context, e, &self.target.to_string()))
    }

    pub(crate) async fn lease_client(
        &self,
        context: &str,
    ) -> Result<deadpool_postgres::Object, PgError> {
        self.lease_pool
            .get()
            .await
            .map_err(|e| PgError::pool(context, e, &self.target.to_string()))
    }

    /// Claims `(org, source)` for `ttl`. Succeeds when nobody holds it, the holder's lease
    /// expired by the database's clock (`now()`), or the holder is this store's holder name (a
    /// collection of this process that failed and starts over); each time the fencing token
    /// grows past every token issued before for `(org, source)`, so the previous holder's writes
    /// are refused from now on. Otherwise [`PgError::LeaseBusy`], also when a commit of the
    /// holder keeps the lease locked for longer than [`LeaseTimeouts::claim_lock`].
    pub async fn claim(&self, org: &str, source: &str, ttl: Duration) -> Result<Lease, PgError> {
        let sent_at = self.clock.now();
        let mut client = self.lease_client("claiming a lease").await?;
        let claimed = self.try_claim(&mut client, org, source, ttl).await;
        let (token, expires_at) = match claimed {
            Ok(Ok(claimed)) => claimed,
            Ok(Err(busy)) => return Err(busy),
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                // A commit of the holder is running (or its host vanished mid-commit and the
                // server has not ended its session yet): busy, try again later.
                return Err(self.busy(&client, org, source).await);
            }
            Err(e) => return Err(PgError::statement("claiming a lease", e)),
        };
        let lease = Lease {
            org: org.to_string(),
            source: source.to_string(),
            holder: self.holder.clone(),
            fencing_token: token,
            expires_at,
            valid_until: expiry(sent_at, ttl),
        };
        tracing::info!(org, source, holder = %self.holder, fencing_token = lease.fencing_token, "lease claimed");
        Ok(lease)
    }

    /// The claim's transaction: `Ok(Err(busy))` when a live holder has it.
    async fn try_claim(
        &self,
        client: &mut tokio_postgres::Client,
        org: &str,
        source: &str,
        ttl: Duration,
    ) -> Result<Result<(i64, OffsetDateTime), PgError>, tokio_postgres::Error> {
        let tx = client.transaction().await?;
        tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = {}; SET LOCAL idle_in_transaction_session_timeout = {}",
            millis(self.timeouts.claim_lock),
            millis(self.timeouts.commit_idle)
        ))
        .await?;
        // The fencing row serialises the claims of one (org, source), also when no lease row
        // exists yet; it is never deleted, so its token only grows.
        tx.execute(
            "INSERT INTO sfjwt_fencing (org, source, last_token) VALUES ($1, $2, 0)
             ON CONFLICT (org, source) DO NOTHING",
            &[&org, &source],
        )
        .await?;
        let last: i64 = tx
            .query_one(
                "SELECT last_token FROM sfjwt_fencing WHERE org = $1 AND source = $2 FOR UPDATE",
                &[&org, &source],
            )
            .await?
            .get(0);
        // FOR UPDATE waits (up to lock_timeout) for a commit that holds the row FOR SHARE, so a
        // takeover never happens in the middle of the holder's commit.
        let current = tx
            .query_opt(
                "SELECT holder, fencing_token, expires_at, expires_at > now()
                 FROM sfjwt_leases WHERE org = $1 AND source = $2 FOR UPDATE",
                &[&org, &source],
            )
            .await?;
        let mut highest = last;
        if let Some(row) = current {
            let holder: String = row.get(0);
            let live: bool = row.get(3);
            if live && holder != self.holder {
                return Ok(Err(PgError::LeaseBusy {
                    org: org.to_string(),
                    source_name: source.to_string(),
                    holder,
                    expires_at: row.get(2),
                }));
            }
            highest = highest.max(row.get(1));
        }
        // A checkpoint written by a token that the fencing table does not know (a row restored
        // from a backup) still counts.
        if let Some(row) = tx
            .query_opt(
                "SELECT fencing_token FROM sfjwt_checkpoints WHERE org = $1 AND source = $2",
                &[&org, &source],
            )
            .await?
        {
            highest = highest.max(row.get(0));
        }
        let token = highest.saturating_add(1);
        tx.execute(
            "UPDATE sfjwt_fencing SET last_token = $3 WHERE org = $1 AND source = $2",
            &[&org, &source, &token],
        )
        .await?;
        let expires_at: OffsetDateTime = tx
            .query_one(
                "INSERT INTO sfjwt_leases AS l (org, source, holder, fencing_token, expires_at)
                 VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
                 ON CONFLICT (org, source) DO UPDATE
                   SET holder = EXCLUDED.holder,
                       fencing_token = EXCLUDED.fencing_token,
                       expires_at = EXCLUDED.expires_at
                 RETURNING expires_at",
                &[&org, &source, &self.holder, &token, &ttl.as_secs_f64()],
            )
            .await?
            .get(0);
        tx.commit().await?;
        Ok(Ok((token, expires_at)))
    }

    /// [`PgError::LeaseBusy`] naming whoever the lease row names, read without waiting for its
    /// lock.
    async fn busy(&self, client: &tokio_postgres::Client, org: &str, source: &str) -> PgError {
        let row = client
            .query_opt(
                "SELECT holder, expires_at FROM sfjwt_leases WHERE org = $1 AND source = $2",
                &[&org, &source],
            )
            .await;
        let (holder, expires_at) = match row {
            Ok(Some(row)) => (row.get(0), row.get(1)),
            _ => ("another process".to_string(), self.clock.now()),
        };
        PgError::LeaseBusy {
            org: org.to_string(),
            source_name: source.to_string(),
            holder,
            expires_at,
        }
    }

    /// Extends `lease` to `ttl` from now by the database's clock. [`PgError::LeaseLost`] when
    /// another process took it over.
    pub async fn renew(&self, lease: &mut Lease, ttl: Duration) -> Result<(), PgError> {
        let sent_at = self.clock.now();
        let client = self.lease_client("renewing a lease").await?;
        let row = client
            .query_opt(
                "UPDATE sfjwt_leases SET expires_at = now() + make_interval(secs => $4)
                 WHERE org = $1 AND source = $2 AND fencing_token = $3
                 RETURNING expires_at",
                &[
                    &lease.org,
                    &lease.source,
                    &lease.fencing_token,
                    &ttl.as_secs_f64(),
                ],
            )
            .await
            .map_err(|e| PgError::statement("renewing a lease", e))?;
        let Some(row) = row else {
            return Err(self.lost(&client, lease).await);
        };
        lease.expires_at = row.get(0);
        lease.valid_until = expiry(sent_at, ttl);
        tracing::debug!(org = %lease.org, source = %lease.source, fencing_token = lease.fencing_token, "lease renewed");
        Ok(())
    }

    /// Gives `lease` up so another process can claim it at once (a clean shutdown).
    pub async fn release(&self, lease: Lease) -> Result<(), PgError> {
        let client = self.lease_client("releasing a lease").await?;
        client
            .execute(
                "UPDATE sfjwt_leases SET expires_at = '-infinity'
                 WHERE org = $1 AND source = $2 AND fencing_token = $3",
                &[&lease.org, &lease.source, &lease.fencing_token],
            )
            .await
            .map_err(|e| PgError::statement("releasing a lease", e))?;
        tracing::info!(org = %lease.org, source = %lease.source, "lease released");
        Ok(())
    }

    async fn lost(&self, client: &tokio_postgres::Client, lease: &Lease) -> PgError {
        let current = client
            .query_opt(
                "SELECT holder, fencing_token FROM sfjwt_leases WHERE org = $1 AND source = $2",
                &[&lease.org, &lease.source],
            )
            .await;
        let (holder, current) = match current {
            Ok(Some(row)) => (row.get(0), row.get(1)),
            _ => ("nobody".to_string(), 0),
        };
        tracing::warn!(org = %lease.org, source = %lease.source, %holder, "lease lost to another process");
        PgError::LeaseLost {
            org: lease.org.clone(),
            source_name: lease.source.clone(),
            holder,
            current,
            mine: Some(lease.fencing_token),
        }
    }

    /// The checkpoint stored for `(org, source)`, if any.
    pub async fn load_checkpoint<T: DeserializeOwned>(
        &self,
        org: &str,
        source: &str,
    ) -> Result<Option<T>, PgError> {
        let client = self.client("loading a checkpoint").await?;
        let row = client
            .query_opt(
                "SELECT checkpoint FROM sfjwt_checkpoints WHERE org = $1 AND source = $2",
                &[&org, &source],
            )
            .await
            .map_err(|e| PgError::statement("loading a checkpoint", e))?;
        let Some(row) = row else { return Ok(None) };
        let value: serde_json::Value = row.get(0);
        serde_json::from_value(value)
            .map(Some)
            .map_err(|e| PgError::Checkpoint {
                org: org.to_string(),
                source_name: source.to_string(),
                message: e.to_string(),
            })
    }

    /// Writes `checkpoint` for the lease's `(org, source)`, refused unless the lease is still
    /// the current one.
    pub async fn save_checkpoint<T: Serialize>(
        &self,
        lease: &Lease,
        checkpoint: &T,
    ) -> Result<(), PgError> {
        self.commit(lease, &[], checkpoint).await
    }

    /// In one transaction: checks the lease's fencing token, inserts `events` into
    /// `salesforce_events`, and writes `checkpoint`. Either all of it is durable or none.
    ///
    /// Strict: a row whose `event_id` the table already holds fails the whole transaction with
    /// [`PgError::DuplicateEvent`]. [`deliver`](Self::deliver) (what the sink uses) counts such
    /// rows as delivered instead.
    ///
    /// The lease row is locked (`FOR SHARE`) for the transaction, so a takeover waits until the
    /// commit is done and every later write of this holder sees the new token.
    pub async fn commit<T: Serialize>(
        &self,
        lease: &Lease,
        events: &[EventRow],
        checkpoint: &T,
    ) -> Result<(), PgError> {
        let checkpoint = encode_checkpoint(lease, checkpoint)?;
        let mut client = self.client("committing collected rows").await?;
        let done = self
            .commit_on(&mut client, lease, events, &checkpoint)
            .await;
        if done.is_err() {
            // A failed commit may leave the connection mid-protocol (a cancelled COPY): a new
            // one for the next commit rather than a doubtful one back in the pool.
            drop(deadpool_postgres::Object::take(client));
        }
        done
    }

    /// Bounds the rest of `tx` and checks the fence: whether `lease` is still this process's.
    /// From here `tx` holds the lease row (FOR SHARE) until it ends, so the server must end it,
    /// and free the row, when the client stops sending in the middle (its host vanished, the
    /// process was suspended) or a statement runs too long: another process can then take the
    /// lease over. `rows` sizes the statement timeout.
    async fn bound_and_fence(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        lease: &Lease,
        rows: usize,
        context: &'static str,
    ) -> Result<bool, PgError> {
        tx.batch_execute(&format!(
            "SET LOCAL statement_timeout = {}; SET LOCAL idle_in_transaction_session_timeout = {}",
            millis(self.timeouts.commit_statement_for(rows)),
            millis(self.timeouts.commit_idle)
        ))
        .await
        .map_err(|e| PgError::statement(context, e))?;
        let token: Option<i64> = tx
            .query_opt(
                "SELECT fencing_token FROM sfjwt_leases WHERE org = $1 AND source = $2 FOR SHARE",
                &[&lease.org, &lease.source],
            )
            .await
            .map_err(|e| PgError::statement("checking the lease", e))?
            .map(|row| row.get(0));
        Ok(token == Some(lease.fencing_token))
    }

    async fn commit_on(
        &self,
        client: &mut deadpool_postgres::Object,
        lease: &Lease,
        events: &[EventRow],
        checkpoint: &serde_json::Value,
    ) -> Result<(), PgError> {
        let tx = client
            .transaction()
            .await
            .map_err(|e| PgError::statement("starting a commit", e))?;
        let held = self
            .bound_and_fence(&tx, lease, events.len(), "starting a commit")
            .await?;
        if !held {
            drop(tx);
            return Err(self.lost(client, lease).await);
        }
        if !events.is_empty() {
            insert_events(&tx, lease, events).await?;
        }
        write_checkpoint(&tx, lease, checkpoint).await?;
        tx.commit()
            .await
            .map_err(|e| PgError::statement("committing collected rows", e))
    }

    /// In one transaction: inserts `events` into `salesforce_events`, skipping (and counting)
    /// those whose `event_id` the table already holds for the lease's `(org, source)`, checks
    /// the lease's fencing token and writes `checkpoint`. Either all of it is durable or none.
    ///
    /// Each record must be JSON that `jsonb` takes: escape U+0000 first
    /// ([`escape_nul`](crate::escape_nul)). [`PgSink`](crate::PgSink) takes the same
    /// transaction, receiving a file's rows while they download rather than from memory.
    pub async fn deliver<T: Serialize>(
        &self,
        lease: &Lease,
        events: Vec<EventRow>,
        checkpoint: &T,
    ) -> Result<Delivered, PgError> {
        let checkpoint = encode_checkpoint(lease, checkpoint)?;
        let (sender, receiver) = tokio::sync::mpsc::channel(2);
        // Room for both: the channel is new and holds two.
        let _ = sender.try_send(Incoming::Rows(events));
        let _ = sender.try_send(Incoming::Commit {
            lease: lease.clone(),
            checkpoint,
        });
        self.receive(receiver).await
    }

    /// Opens a transaction that receives rows as they come (see [`RowsTransaction`]). Call it
    /// on the runtime of this store's connections (a [`PgWorker`](crate::PgWorker) job).
    pub(crate) fn open_rows(&self) -> RowsTransaction {
        let (sender, receiver) = tokio::sync::mpsc::channel(BATCHES_AHEAD);
        let (outcome, outcome_receiver) = tokio::sync::oneshot::channel();
        let store = self.clone();
        tokio::spawn(async move {
            let _ = outcome.send(store.receive(receiver).await);
        });
        RowsTransaction {
            sender,
            outcome: outcome_receiver,
        }
    }

    /// The transaction of [`deliver`](Self::deliver) and [`RowsTransaction`]: rows arrive in
    /// batches and are copied into a temporary table; at `Commit` they go into
    /// `salesforce_events` (`ON CONFLICT DO NOTHING`) after the fencing check, then the
    /// checkpoint. A channel closed before `Commit` rolls everything back.
    ///
    /// Why a temporary table rather than straight into `salesforce_events`: nothing touches the
    /// shared table (or its unique index) before the fencing check, so a holder that was taken
    /// over mid-file never makes the new holder wait on its uncommitted rows, and no deadlock
    /// between the two is possible. The lease row is locked only at the end, so renewals of the
    /// lease do not wait for a file to download.
    async fn receive(
        &self,
        mut incoming: tokio::sync::mpsc::Receiver<Incoming>,
    ) -> Result<Delivered, PgError> {
        let mut client =
            self.rows_pool.get().await.map_err(|e| {
                PgError::pool("committing collected rows", e, &self.target.to_string())
            })?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| PgError::statement("starting a commit", e))?;
        let mut writer = None;
        let mut rows = 0u64;
        let (lease, checkpoint) = loop {
            match incoming.recv().await {
                Some(Incoming::Rows(events)) => {
                    if events.is_empty() {
                        continue;
                    }
                    if writer.is_none() {
                        writer = Some(Box::pin(start_copy(&tx).await?));
                    }
                    if let Some(writer) = writer.as_mut() {
                        for event in &events {
                            let n = i64::try_from(rows).unwrap_or(i64::MAX);
                            writer
                                .as_mut()
                                .write(&[&n, &event.event_id, &RawJson(&event.record)])
                                .await
                                .map_err(|e| PgError::statement("receiving collected rows", e))?;
                            rows += 1;
                        }
                    }
                }
                Some(Incoming::Commit { lease, checkpoint }) => break (lease, checkpoint),
                None => {
                    return Err(PgError::Worker {
                        message: "the rows' transaction was abandoned (rolled back)".into(),
                    });
                }
            }
        };
        if let Some(mut writer) = writer {
            writer
                .as_mut()
                .finish()
                .await
                .map_err(|e| PgError::statement("receiving collected rows", e))?;
        }
        let rows_count = usize::try_from(rows).unwrap_or(usize::MAX);
        let held = self
            .bound_and_fence(&tx, &lease, rows_count, "committing collected rows")
            .await?;
        if !held {
            drop(tx);
            return Err(self.lost(&client, &lease).await);
        }
        let inserted = if rows > 0 {
            tx.execute(
                "INSERT INTO salesforce_events (org, source, event_id, record)
                 SELECT $1, $2, event_id, record FROM sfjwt_incoming ORDER BY n
                 ON CONFLICT (org, source, event_id) DO NOTHING",
                &[&lease.org, &lease.source],
            )
            .await
            .map_err(|e| PgError::statement("inserting events", e))?
        } else {
            0
        };
        write_checkpoint(&tx, &lease, &checkpoint).await?;
        tx.commit()
            .await
            .map_err(|e| PgError::statement("committing collected rows", e))?;
        Ok(Delivered {
            rows,
            already_present: rows.saturating_sub(inserted),
        })
    }

    /// How many rows `salesforce_events` holds for `(org, source)`.
    pub async fn event_count(&self, org: &str, source: &str) -> Result<u64, PgError> {
        let client = self.client("counting events").await?;
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM salesforce_events WHERE org = $1 AND source = $2",
                &[&org, &source],
            )
            .await
            .map_err(|e| PgError::statement("counting events", e))?
            .get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// A duration as PostgreSQL's integer milliseconds, within what the settings accept (0 would
/// mean "no limit": at least 1).
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, i32::MAX as u64)
}

/// Connections of [`PgStore`]'s pool for rows' transactions: one per (org, source) writing a
/// file at once in this process. Beyond that a file waits for a connection before its rows go
/// on (lease renewals do not: they have the other pool); bounded so that many orgs in a few
/// processes stay well within the server's `max_connections` (100 by default).
const ROWS_CONNECTIONS: usize = 16;

/// Batches of rows on their way into a rows' transaction, beside the one being copied and the
/// one being filled: the memory a file's rows take is these few batches, whatever its size.
const BATCHES_AHEAD: usize = 2;

/// What a rows' transaction receives.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// More rows.
    Rows(Vec<EventRow>),
    /// No more rows: check the fence, insert them, write the checkpoint, commit.
    Commit {
        lease: Lease,
        checkpoint: serde_json::Value,
    },
}

/// A transaction that receives rows while they download ([`PgStore::open_rows`]), run by a task
/// on the store's runtime; dropped without [`commit`](Self::commit), it rolls back.
#[derive(Debug)]
pub(crate) struct RowsTransaction {
    sender: tokio::sync::mpsc::Sender<Incoming>,
    outcome: tokio::sync::oneshot::Receiver<Result<Delivered, PgError>>,
}

impl RowsTransaction {
    /// Hands `rows` over, waiting while [`BATCHES_AHEAD`] batches wait already. An error is the
    /// transaction's: it has ended and holds nothing.
    pub(crate) async fn send(&mut self, rows: Vec<EventRow>) -> Result<(), PgError> {
        if self.sender.send(Incoming::Rows(rows)).await.is_ok() {
            return Ok(());
        }
        Err(self.failure().await)
    }

    /// Ends the rows and commits them with `checkpoint`.
    pub(crate) async fn commit(
        mut self,
        lease: Lease,
        checkpoint: serde_json::Value,
    ) -> Result<Delivered, PgError> {
        let _ = self
            .sender
            .send(Incoming::Commit { lease, checkpoint })
            .await;
        match (&mut self.outcome).await {
            Ok(outcome) => outcome,
            Err(_) => Err(gone()),
        }
    }

    /// Why the transaction ended before its commit.
    async fn failure(&mut self) -> PgError {
        match (&mut self.outcome).await {
            Ok(Err(e)) => e,
            Ok(Ok(_)) | Err(_) => gone(),
        }
    }
}

fn gone() -> PgError {
    PgError::Worker {
        message: "the task receiving the rows ended (the process is shutting down)".into(),
    }
}

pub(crate) fn encode_checkpoint<T: Serialize>(
    lease: &Lease,
    checkpoint: &T,
) -> Result<serde_json::Value, PgError> {
    serde_json::to_value(checkpoint).map_err(|e| PgError::Checkpoint {
        org: lease.org.clone(),
        source_name: lease.source.clone(),
        message: format!("cannot be encoded: {e}"),
    })
}

async fn write_checkpoint(
    tx: &tokio_postgres::Transaction<'_>,
    lease: &Lease,
    checkpoint: &serde_json::Value,
) -> Result<(), PgError> {
    tx.execute(
        "INSERT INTO sfjwt_checkpoints (org, source, fencing_token, checkpoint, updated_at)
         VALUES ($1, $2, $3, $4, now())
         ON CONFLICT (org, source) DO UPDATE
           SET fencing_token = EXCLUDED.fencing_token,
               checkpoint = EXCLUDED.checkpoint,
               updated_at = now()",
        &[&lease.org, &lease.source, &lease.fencing_token, checkpoint],
    )
    .await
    .map_err(|e| PgError::statement("writing the checkpoint", e))?;
    Ok(())
}

/// Starts a binary COPY into this session's `sfjwt_incoming`, created on the session's first
/// use. `ON COMMIT DELETE ROWS`: each transaction starts with it empty (a rolled-back one leaves
/// nothing either). The notice that it exists already is not worth a log line. `n` numbers the
/// rows: a heap scan of a table emptied and filled again need not return them in the order
/// they came (it did not, in a test), and `id` must follow the file's order.
async fn start_copy(tx: &tokio_postgres::Transaction<'_>) -> Result<BinaryCopyInWriter, PgError> {
    tx.batch_execute(
        "SET LOCAL client_min_messages = warning;
         CREATE TEMPORARY TABLE IF NOT EXISTS sfjwt_incoming (
             n        bigint NOT NULL,
             event_id text   NOT NULL,
             record   jsonb  NOT NULL
         ) ON COMMIT DELETE ROWS",
    )
    .await
    .map_err(|e| PgError::statement("preparing to receive collected rows", e))?;
    let sink = tx
        .copy_in("COPY sfjwt_incoming (n, event_id, record) FROM STDIN BINARY")
        .await
        .map_err(|e| PgError::statement("starting to receive collected rows", e))?;
    Ok(BinaryCopyInWriter::new(
        sink,
        &[Type::INT8, Type::TEXT, Type::JSONB],
    ))
}

/// COPY in binary form: one round trip for a file's rows, far cheaper than row-wise INSERTs.
async fn insert_events(
    tx: &tokio_postgres::Transaction<'_>,
    lease: &Lease,
    events: &[EventRow],
) -> Result<(), PgError> {
    let sink = tx
        .copy_in("COPY salesforce_events (org, source, event_id, record) FROM STDIN BINARY")
        .await
        .map_err(|e| PgError::statement("starting to insert events", e))?;
    let writer = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::TEXT, Type::TEXT, Type::JSONB]);
    let mut writer = std::pin::pin!(writer);
    for event in events {
        writer
            .as_mut()
            .write(&[
                &lease.org,
                &lease.source,
                &event.event_id,
                &RawJson(&event.record),
            ])
            .await
            .map_err(|e| insert_error(e, lease, events))?;
    }
    writer
        .finish()
        .await
        .map_err(|e| insert_error(e, lease, events))?;
    Ok(())
}

fn insert_error(e: tokio_postgres::Error, lease: &Lease, events: &[EventRow]) -> PgError {
    if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
        // The server names the duplicate key in the detail: `Key (org, source, event_id)=(...)`.
        let detail = e
            .as_db_error()
            .and_then(|d| d.detail())
            .unwrap_or_default()
            .to_string();
        let event_id = events
            .iter()
            .find(|ev| detail.contains(&ev.event_id))
            .map(|ev| ev.event_id.clone())
            .unwrap_or(detail);
        return PgError::DuplicateEvent {
            org: lease.org.clone(),
            source_name: lease.source.clone(),
            event_id,
        };
    }
    PgError::statement("inserting events", e)
}

mod bytes_json {
    //! JSON text handed to PostgreSQL as `jsonb` without parsing it into a tree first.

    use std::error::Error;

    use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

    #[derive(Debug)]
    pub(crate) struct RawJson<'a>(pub(crate) &'a [u8]);

    impl ToSql for RawJson<'_> {
        fn to_sql(
            &self,
            ty: &Type,
            out: &mut bytes::BytesMut,
        ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
            // jsonb's binary format is a version byte (1) followed by the JSON text.
            if *ty == Type::JSONB {
                out.extend_from_slice(&[1]);
            }
            out.extend_from_slice(self.0);
            Ok(IsNull::No)
        }

        fn accepts(ty: &Type) -> bool {
            *ty == Type::JSONB || *ty == Type::JSON
        }

        to_sql_checked!();
    }
}
