//! Fenced checkpoints and the `salesforce_events` table.

use std::sync::Arc;
use std::time::Duration;

use bytes_json::RawJson;
use deadpool_postgres::Pool;
use salesforce_jwt::clock::Clock;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use crate::connect::PgTarget;
use crate::error::PgError;
use crate::lease::{Lease, expiry};
use crate::schema;

/// One collected row bound for `salesforce_events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// The row's deterministic id (the same whenever the same row is collected again).
    pub event_id: String,
    /// The row as one JSON object, exactly as the NDJSON format writes it.
    pub record: Vec<u8>,
}

/// Checkpoints, leases and collected rows in one PostgreSQL database, shared by any number of
/// collector processes.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    target: PgTarget,
    clock: Arc<dyn Clock>,
    holder: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `target`, brings the schema up to date, and acts as `holder` (a name unique
    /// to this process, such as `hostname:pid`, shown to other processes in lease errors).
    pub async fn connect(
        target: &PgTarget,
        clock: Arc<dyn Clock>,
        holder: impl Into<String>,
    ) -> Result<PgStore, PgError> {
        let store = PgStore {
            pool: target.pool(8)?,
            target: target.clone(),
            clock,
            holder: holder.into(),
        };
        let mut client = store.client("connecting").await?;
        schema::migrate(&mut client).await?;
        Ok(store)
    }

    /// This process's holder name.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    async fn client(&self, context: &str) -> Result<deadpool_postgres::Object, PgError> {
        self.pool
            .get()
            .await
            .map_err(|e| PgError::pool(context, e, &self.target.to_string()))
    }

    /// Claims `(org, source)` for `ttl`. Succeeds when nobody holds it, the holder's lease
    /// expired, or the holder is this store's holder name (a collection of this process that
    /// failed and starts over); each time the fencing token grows, so the previous holder's
    /// writes are refused from now on. Otherwise [`PgError::LeaseBusy`].
    pub async fn claim(&self, org: &str, source: &str, ttl: Duration) -> Result<Lease, PgError> {
        let now = self.clock.now();
        let expires_at = expiry(now, ttl);
        let client = self.client("claiming a lease").await?;
        let row = client
            .query_opt(
                "INSERT INTO sfjwt_leases AS l (org, source, holder, fencing_token, expires_at)
                 VALUES ($1, $2, $3, 1, $5)
                 ON CONFLICT (org, source) DO UPDATE
                   SET holder = EXCLUDED.holder,
                       fencing_token = l.fencing_token + 1,
                       expires_at = EXCLUDED.expires_at
                   WHERE l.expires_at <= $4 OR l.holder = EXCLUDED.holder
                 RETURNING fencing_token",
                &[&org, &source, &self.holder, &now, &expires_at],
            )
            .await
            .map_err(|e| PgError::statement("claiming a lease", e))?;
        match row {
            Some(row) => {
                let lease = Lease {
                    org: org.to_string(),
                    source: source.to_string(),
                    holder: self.holder.clone(),
                    fencing_token: row.get(0),
                    expires_at,
                };
                tracing::info!(org, source, holder = %self.holder, fencing_token = lease.fencing_token, "lease claimed");
                Ok(lease)
            }
            None => {
                let row = client
                    .query_one(
                        "SELECT holder, expires_at FROM sfjwt_leases WHERE org = $1 AND source = $2",
                        &[&org, &source],
                    )
                    .await
                    .map_err(|e| PgError::statement("reading a lease", e))?;
                Err(PgError::LeaseBusy {
                    org: org.to_string(),
                    source_name: source.to_string(),
                    holder: row.get(0),
                    expires_at: row.get(1),
                })
            }
        }
    }

    /// Extends `lease` to `now + ttl`. [`PgError::LeaseLost`] when another process took it over.
    pub async fn renew(&self, lease: &mut Lease, ttl: Duration) -> Result<(), PgError> {
        let expires_at = expiry(self.clock.now(), ttl);
        let client = self.client("renewing a lease").await?;
        let updated = client
            .execute(
                "UPDATE sfjwt_leases SET expires_at = $4
                 WHERE org = $1 AND source = $2 AND fencing_token = $3",
                &[&lease.org, &lease.source, &lease.fencing_token, &expires_at],
            )
            .await
            .map_err(|e| PgError::statement("renewing a lease", e))?;
        if updated == 0 {
            return Err(self.lost(&client, lease).await);
        }
        lease.expires_at = expires_at;
        tracing::debug!(org = %lease.org, source = %lease.source, fencing_token = lease.fencing_token, "lease renewed");
        Ok(())
    }

    /// Gives `lease` up so another process can claim it at once (a clean shutdown).
    pub async fn release(&self, lease: Lease) -> Result<(), PgError> {
        let client = self.client("releasing a lease").await?;
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
    /// The lease row is locked (`FOR SHARE`) for the transaction, so a takeover waits until the
    /// commit is done and every later write of this holder sees the new token.
    pub async fn commit<T: Serialize>(
        &self,
        lease: &Lease,
        events: &[EventRow],
        checkpoint: &T,
    ) -> Result<(), PgError> {
        let checkpoint = serde_json::to_value(checkpoint).map_err(|e| PgError::Checkpoint {
            org: lease.org.clone(),
            source_name: lease.source.clone(),
            message: format!("cannot be encoded: {e}"),
        })?;
        let mut client = self.client("committing collected rows").await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| PgError::statement("starting a commit", e))?;
        let token: Option<i64> = tx
            .query_opt(
                "SELECT fencing_token FROM sfjwt_leases WHERE org = $1 AND source = $2 FOR SHARE",
                &[&lease.org, &lease.source],
            )
            .await
            .map_err(|e| PgError::statement("checking the lease", e))?
            .map(|row| row.get(0));
        if token != Some(lease.fencing_token) {
            drop(tx);
            return Err(self.lost(&client, lease).await);
        }
        if !events.is_empty() {
            insert_events(&tx, lease, events).await?;
        }
        tx.execute(
            "INSERT INTO sfjwt_checkpoints (org, source, fencing_token, checkpoint, updated_at)
             VALUES ($1, $2, $3, $4, now())
             ON CONFLICT (org, source) DO UPDATE
               SET fencing_token = EXCLUDED.fencing_token,
                   checkpoint = EXCLUDED.checkpoint,
                   updated_at = now()",
            &[&lease.org, &lease.source, &lease.fencing_token, &checkpoint],
        )
        .await
        .map_err(|e| PgError::statement("writing the checkpoint", e))?;
        tx.commit()
            .await
            .map_err(|e| PgError::statement("committing collected rows", e))
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
