//! The schema, created and upgraded by the store itself.

use crate::error::PgError;

/// The newest schema version this crate writes.
pub const SCHEMA_VERSION: i32 = 3;

/// An arbitrary constant naming the advisory lock that serialises migrations between processes
/// starting at the same time.
const MIGRATION_LOCK: i64 = 0x5346_4a57_5047_0001;

/// Each entry upgrades the schema from the version before it; applied in order, each in the
/// transaction that records it, so a crash mid-migration leaves the previous version intact.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        r#"
CREATE TABLE sfjwt_leases (
    org            text        NOT NULL,
    source         text        NOT NULL,
    holder         text        NOT NULL,
    fencing_token  bigint      NOT NULL,
    expires_at     timestamptz NOT NULL,
    PRIMARY KEY (org, source)
);
CREATE TABLE sfjwt_checkpoints (
    org            text        NOT NULL,
    source         text        NOT NULL,
    fencing_token  bigint      NOT NULL,
    checkpoint     jsonb       NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org, source)
);
CREATE TABLE salesforce_events (
    id             bigserial   PRIMARY KEY,
    org            text        NOT NULL,
    source         text        NOT NULL,
    event_id       text        NOT NULL,
    record         jsonb       NOT NULL,
    collected_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org, source, event_id)
);
"#,
    ),
    // The highest fencing token ever issued per (org, source), kept apart from the lease row so
    // that deleting a lease row (an operator clearing a stuck lease) cannot make a token be
    // issued twice. Seeded from the highest token a lease or a checkpoint carries.
    (
        2,
        r#"
CREATE TABLE sfjwt_fencing (
    org            text        NOT NULL,
    source         text        NOT NULL,
    last_token     bigint      NOT NULL,
    PRIMARY KEY (org, source)
);
INSERT INTO sfjwt_fencing (org, source, last_token)
SELECT org, source, max(fencing_token)
FROM (
    SELECT org, source, fencing_token FROM sfjwt_leases
    UNION ALL
    SELECT org, source, fencing_token FROM sfjwt_checkpoints
) AS issued
GROUP BY org, source;
"#,
    ),
    // One row per live collector process, upserted by its heartbeat: how many share the leases,
    // so that each takes about its share. `expires_at` is the collector's own TTL from its last
    // heartbeat, by the database's clock, as for leases. `unit_set` names the set of
    // (org, source) units it collects: only collectors of the same set share them out.
    (
        3,
        r#"
CREATE TABLE sfjwt_collectors (
    collector      text        PRIMARY KEY,
    unit_set       text        NOT NULL,
    units          integer     NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now(),
    last_seen      timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL
);
"#,
    ),
];

/// Brings the schema to [`SCHEMA_VERSION`]; a no-op when it is there already.
pub(crate) async fn migrate(client: &mut tokio_postgres::Client) -> Result<(), PgError> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| PgError::statement("starting the schema migration", e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| PgError::statement("waiting for other processes' migrations", e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS sfjwt_schema_version (
            version    integer     PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(|e| PgError::statement("creating the schema version table", e))?;
    let current: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM sfjwt_schema_version",
            &[],
        )
        .await
        .map_err(|e| PgError::statement("reading the schema version", e))?
        .get(0);
    if current > SCHEMA_VERSION {
        return Err(PgError::SchemaTooNew {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql)
            .await
            .map_err(|e| PgError::statement(format!("applying schema version {version}"), e))?;
        tx.execute(
            "INSERT INTO sfjwt_schema_version (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(|e| PgError::statement("recording the schema version", e))?;
        tracing::info!(version, "PostgreSQL schema migrated");
    }
    tx.commit()
        .await
        .map_err(|e| PgError::statement("committing the schema migration", e))
}
