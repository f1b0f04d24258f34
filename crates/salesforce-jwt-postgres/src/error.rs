//! Errors of the PostgreSQL store, each saying what to fix; none carries the password.

use std::fmt;

/// What went wrong talking to PostgreSQL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The connection string cannot be used.
    #[error("the PostgreSQL connection string is invalid: {message}")]
    InvalidUrl {
        /// What is wrong with it (never the password).
        message: String,
    },
    /// The server could not be reached or refused the login.
    #[error("cannot connect to PostgreSQL at {target}: {cause}. {hint}")]
    Connect {
        /// Host, port, database and user (never the password).
        target: String,
        /// The server's or the network's words.
        cause: Cause,
        /// What to check.
        hint: &'static str,
        /// Whether trying again later can help (a server that is down or restarting).
        retryable: bool,
    },
    /// A statement failed.
    #[error("PostgreSQL failed while {context}: {cause}")]
    Statement {
        /// What the store was doing.
        context: String,
        /// The server's words.
        cause: Cause,
        /// Whether trying again can help (connection lost, serialization failure).
        retryable: bool,
    },
    /// Another process holds the lease, or took it over since this one claimed it.
    #[error(
        "the lease on org {org:?} source {source_name:?} is held by {holder:?} (fencing token {current}); this process's token {mine:?} is no longer valid, so it must stop writing"
    )]
    LeaseLost {
        /// The org's name.
        org: String,
        /// The source's name.
        source_name: String,
        /// Who holds it now.
        holder: String,
        /// Its fencing token.
        current: i64,
        /// The token this process had, if any.
        mine: Option<i64>,
    },
    /// The lease is held by a live holder; try again after it expires.
    #[error(
        "org {org:?} source {source_name:?} is being collected by {holder:?} until {expires_at}"
    )]
    LeaseBusy {
        /// The org's name.
        org: String,
        /// The source's name.
        source_name: String,
        /// Who holds it.
        holder: String,
        /// When its lease expires unless renewed.
        expires_at: time::OffsetDateTime,
    },
    /// A stored checkpoint cannot be decoded.
    #[error(
        "the stored checkpoint of org {org:?} source {source_name:?} cannot be read: {message}"
    )]
    Checkpoint {
        /// The org's name.
        org: String,
        /// The source's name.
        source_name: String,
        /// Why.
        message: String,
    },
    /// Two rows with the same `(org, source, event_id)`: the exactly-once protocol was broken
    /// somewhere, and hiding it would hide a bug.
    #[error(
        "event {event_id:?} of org {org:?} source {source_name:?} is already in salesforce_events: a row was delivered twice. This is a bug; please report it"
    )]
    DuplicateEvent {
        /// The org's name.
        org: String,
        /// The source's name.
        source_name: String,
        /// The duplicated id.
        event_id: String,
    },
    /// The thread that runs the store's statements is gone.
    #[error("the PostgreSQL worker cannot run: {message}")]
    Worker {
        /// Why.
        message: String,
    },
    /// The database holds a newer schema than this program knows.
    #[error(
        "the database schema is version {found}, newer than this program's {supported}: upgrade sf-ingest"
    )]
    SchemaTooNew {
        /// The version found.
        found: i32,
        /// The newest this program knows.
        supported: i32,
    },
}

impl PgError {
    /// Whether the same call may succeed later (the server restarting, a dropped connection).
    pub fn is_retryable(&self) -> bool {
        match self {
            PgError::Connect { retryable, .. } | PgError::Statement { retryable, .. } => *retryable,
            PgError::LeaseBusy { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn statement(context: impl Into<String>, e: tokio_postgres::Error) -> PgError {
        let retryable = is_transient(&e);
        PgError::Statement {
            context: context.into(),
            cause: Cause::of(&e),
            retryable,
        }
    }

    pub(crate) fn pool(
        context: impl Into<String>,
        e: deadpool_postgres::PoolError,
        target: &str,
    ) -> PgError {
        match e {
            deadpool_postgres::PoolError::Backend(e) => {
                let (hint, retryable) = connect_hint(&e);
                PgError::Connect {
                    target: target.to_string(),
                    cause: Cause::of(&e),
                    hint,
                    retryable,
                }
            }
            other => PgError::Statement {
                context: context.into(),
                cause: Cause(other.to_string()),
                retryable: true,
            },
        }
    }
}

/// The cause of a failure as text: the server's message with its SQLSTATE, or the client's
/// error chain. tokio-postgres's own Display says only "db error" for server errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause(pub String);

impl Cause {
    pub(crate) fn of(e: &tokio_postgres::Error) -> Cause {
        if let Some(db) = e.as_db_error() {
            return Cause(format!("{} (SQLSTATE {})", db.message(), db.code().code()));
        }
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        Cause(text)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Failures a retry can mend: the connection broke, the server is shutting down or starting,
/// a serialization conflict, a statement or lock wait that ran into its timeout (a commit stuck
/// behind another client's lock).
fn is_transient(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    match e.code() {
        Some(code) => {
            *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::QUERY_CANCELED
                || *code == SqlState::LOCK_NOT_AVAILABLE
                || *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
                || code.code().starts_with("08")
        }
        None => e.is_closed() || std::error::Error::source(e).is_some(),
    }
}

/// The rustls error behind a failed TLS handshake, if that is what failed.
fn tls_failure(e: &tokio_postgres::Error) -> Option<&rustls::Error> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(tls) = s.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        source = s.source();
    }
    None
}

fn connect_hint(e: &tokio_postgres::Error) -> (&'static str, bool) {
    use rustls::CertificateError;
    use tokio_postgres::error::SqlState;
    if let Some(tls) = tls_failure(e) {
        return match tls {
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => (
                "The server's certificate is not for the host name in the connection string \
                 (sslmode=verify-full checks it): connect by a name the certificate holds, or \
                 use sslmode=verify-ca to check the CA only",
                false,
            ),
            rustls::Error::InvalidCertificate(_) => (
                "The server's certificate was not accepted: check that sslrootcert names the PEM \
                 file of the CA that signed the server's certificate, and that it is valid now",
                false,
            ),
            _ => (
                "The TLS handshake failed: check sslmode and sslrootcert in the connection \
                 string and the server's ssl settings",
                false,
            ),
        };
    }
    if let Some(db) = e.as_db_error()
        && *db.code() == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        && db.message().contains("no pg_hba.conf entry")
    {
        return if db.message().contains("no encryption") {
            (
                "The server accepts this connection only over TLS: set sslmode=verify-full and \
                 sslrootcert=CA-FILE (or at least sslmode=require) in the connection string",
                false,
            )
        } else {
            (
                "The server's pg_hba.conf has no line for this host, user and database: ask its \
                 administrator to add one",
                false,
            )
        };
    }
    if e.as_db_error().is_none() && Cause::of(e).0.contains("password missing") {
        return (
            "The server asks for a password and none was given: put it in the connection \
             string, in PGPASSWORD, or in a line of the password file (PGPASSFILE or \
             ~/.pgpass, which is ignored unless only its owner can read it: chmod 0600)",
            false,
        );
    }
    if e.as_db_error().is_none() && Cause::of(e).0.contains("does not support TLS") {
        return (
            "The server does not offer TLS: turn ssl on in its postgresql.conf, or set a \
             weaker sslmode (prefer, disable) in the connection string",
            false,
        );
    }
    match e.code() {
        Some(c)
            if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            (
                "Check the user name and password in the connection string",
                false,
            )
        }
        Some(c) if *c == SqlState::INVALID_CATALOG_NAME => (
            "The database does not exist: create it (createdb NAME) or fix the database name in the connection string",
            false,
        ),
        Some(c) if *c == SqlState::CANNOT_CONNECT_NOW => (
            "The server is starting or shutting down; it will be tried again",
            true,
        ),
        Some(_) => ("Check the connection string and the server's log", false),
        None => (
            "Check that the server runs and that host and port are right; it will be tried again",
            true,
        ),
    }
}
