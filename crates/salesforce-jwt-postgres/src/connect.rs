//! Where the database is: a parsed connection string that never prints its password.

use std::fmt;
use std::str::FromStr as _;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::config::Host;

use crate::error::PgError;

/// A PostgreSQL connection string (`postgres://user:password@host:port/database` or the
/// `key=value` form), checked when parsed. Display and Debug show host, port, database and user,
/// never the password.
#[derive(Clone)]
pub struct PgTarget {
    config: tokio_postgres::Config,
}

impl PgTarget {
    /// Parses `url`. The error names what is wrong without repeating the string (it may hold
    /// a password).
    pub fn parse(url: &str) -> Result<PgTarget, PgError> {
        let config = tokio_postgres::Config::from_str(url).map_err(|e| PgError::InvalidUrl {
            // tokio-postgres's parse errors name the bad key or the URL part, not its value.
            message: format!("{e}; expected postgres://USER:PASSWORD@HOST:PORT/DATABASE"),
        })?;
        if config.get_hosts().is_empty() {
            return Err(PgError::InvalidUrl {
                message: "it names no host; expected postgres://USER:PASSWORD@HOST:PORT/DATABASE"
                    .into(),
            });
        }
        if config.get_user().is_none() {
            return Err(PgError::InvalidUrl {
                message: "it names no user; expected postgres://USER:PASSWORD@HOST:PORT/DATABASE"
                    .into(),
            });
        }
        Ok(PgTarget { config })
    }

    /// Whether `s` looks like a PostgreSQL connection string rather than a file path.
    pub fn looks_like_url(s: &str) -> bool {
        s.starts_with("postgres://") || s.starts_with("postgresql://")
    }

    /// A connection pool of at most `max_size` connections, with TCP keepalives after
    /// `keepalive_idle` on both ends and, if given, a `statement_timeout` for every statement.
    /// Connections are made lazily, so this does not touch the network.
    pub(crate) fn pool(
        &self,
        max_size: usize,
        keepalive_idle: Duration,
        statement_timeout: Option<Duration>,
    ) -> Result<Pool, PgError> {
        let config = self.session_config(keepalive_idle, statement_timeout);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // A server restart kills every connection: check each before handing it out.
                recycling_method: RecyclingMethod::Verified,
            },
        );
        Pool::builder(manager)
            .max_size(max_size.max(1))
            .build()
            .map_err(|e| PgError::InvalidUrl {
                message: format!("cannot build a connection pool: {e}"),
            })
    }
}

impl PgTarget {
    /// The configuration each connection is made with: the URL's, plus a connect timeout, TCP
    /// keepalives and the session settings. Keepalives on the client notice a server that
    /// vanished; on the server (`tcp_keepalives_*`, set per session) they end the session of a
    /// client that vanished, which frees the locks of a commit it was in the middle of.
    pub(crate) fn session_config(
        &self,
        keepalive_idle: Duration,
        statement_timeout: Option<Duration>,
    ) -> tokio_postgres::Config {
        let mut config = self.config.clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let idle = keepalive_idle.max(Duration::from_secs(1));
        let interval = (idle / 2).max(Duration::from_secs(1));
        config.keepalives(true);
        config.keepalives_idle(idle);
        config.keepalives_interval(interval);
        config.keepalives_retries(2);
        let mut options = config.get_options().unwrap_or_default().to_string();
        for (name, value) in [
            ("tcp_keepalives_idle", idle.as_secs()),
            ("tcp_keepalives_interval", interval.as_secs()),
            ("tcp_keepalives_count", 2),
        ] {
            options.push_str(&format!(" -c {name}={value}"));
        }
        if let Some(t) = statement_timeout {
            options.push_str(&format!(
                " -c statement_timeout={}",
                crate::store::millis(t)
            ));
        }
        config.options(options.trim_start());
        config.application_name("salesforce-jwt");
        config
    }
}

impl fmt::Display for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "?".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        write!(
            f,
            "postgres://{}@{}:{}/{}",
            self.config.get_user().unwrap_or("?"),
            host,
            port,
            self.config
                .get_dbname()
                .or(self.config.get_user())
                .unwrap_or("?")
        )
    }
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgTarget({self})")
    }
}
