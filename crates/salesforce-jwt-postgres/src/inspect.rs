//! Reading the stored checkpoints and leases without writing anything: no schema migration, a
//! read-only transaction, no lease taken. For tools that show where collection stands while
//! collectors run.

use time::OffsetDateTime;

use crate::connect::PgTarget;
use crate::error::PgError;

/// One `(org, source)` as stored: its checkpoint and its lease, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCheckpoint {
    /// The org's name.
    pub org: String,
    /// The source's name (`EventLogFile`, `LoginEvent`...).
    pub source: String,
    /// The checkpoint as stored (the collector's JSON).
    pub checkpoint: serde_json::Value,
    /// When it was last written.
    pub updated_at: OffsetDateTime,
    /// Who holds or last held its lease.
    pub lease_holder: Option<String>,
    /// When that lease expires unless renewed; `None` when it was released (or never taken).
    pub lease_expires_at: Option<OffsetDateTime>,
}

/// Every stored checkpoint, ordered by org and source, read in a `READ ONLY` transaction from
/// one connection. A database the collectors never used (no tables yet) has none.
pub async fn stored_checkpoints(target: &PgTarget) -> Result<Vec<StoredCheckpoint>, PgError> {
    let pool = target.pool(1, crate::LeaseTimeouts::default().keepalive_idle)?;
    let mut client = pool
        .get()
        .await
        .map_err(|e| PgError::pool("reading checkpoints", e, &target.to_string()))?;
    let tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .map_err(|e| PgError::statement("starting a read-only transaction", e))?;
    let rows = tx
        .query(
            "SELECT c.org, c.source, c.checkpoint, c.updated_at, l.holder, l.expires_at
             FROM sfjwt_checkpoints c
             LEFT JOIN sfjwt_leases l ON l.org = c.org AND l.source = c.source
             ORDER BY c.org, c.source",
            &[],
        )
        .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(PgError::statement("reading checkpoints", e)),
    };
    let read = |e: tokio_postgres::Error| PgError::statement("reading checkpoints", e);
    let mut stored = Vec::with_capacity(rows.len());
    for row in &rows {
        stored.push(StoredCheckpoint {
            org: row.try_get(0).map_err(read)?,
            source: row.try_get(1).map_err(read)?,
            checkpoint: row.try_get(2).map_err(read)?,
            updated_at: row.try_get(3).map_err(read)?,
            lease_holder: row.try_get(4).map_err(read)?,
            // A released lease expires at '-infinity', which no OffsetDateTime holds.
            lease_expires_at: row.try_get::<_, Option<OffsetDateTime>>(5).ok().flatten(),
        });
    }
    Ok(stored)
}
