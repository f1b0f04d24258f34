//! Where the database is: a parsed connection string that never prints its password.

use std::fmt;
use std::str::FromStr as _;
use std::time::Duration;

use std::path::{Path, PathBuf};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::config::Host;

use crate::error::PgError;
use crate::passfile;
use crate::tls::{self, Check, MakeRustls, RootCert, SslMode, check_for};

/// A PostgreSQL connection string (`postgres://user:password@host:port/database?sslmode=…` or
/// the `key=value` form), checked when parsed. Display and Debug show host, port, database and
/// user, never the password.
///
/// As in libpq: the password may come from the string, else `PGPASSWORD`, else the password
/// file (`PGPASSFILE`, else `~/.pgpass`); `sslmode` (disable, prefer, require, verify-ca,
/// verify-full; default `PGSSLMODE`, else prefer) and `sslrootcert` (a PEM file, or `system`;
/// default `PGSSLROOTCERT`, else `~/.postgresql/root.crt` when it exists) mean what they mean
/// there, `require` with a root certificate included.
#[derive(Clone)]
pub struct PgTarget {
    config: tokio_postgres::Config,
    ssl_mode: SslMode,
    root_cert: Option<RootCert>,
}

const EXPECTED: &str = "expected postgres://USER:PASSWORD@HOST:PORT/DATABASE";

impl PgTarget {
    /// Parses `url`, with libpq's environment variables (`PGPASSWORD`, `PGPASSFILE`,
    /// `PGSSLMODE`, `PGSSLROOTCERT`, `HOME`) from the process's environment. The error names
    /// what is wrong without repeating the string (it may hold a password).
    pub fn parse(url: &str) -> Result<PgTarget, PgError> {
        Self::parse_with_env(url, &|name| std::env::var(name).ok())
    }

    /// [`parse`](Self::parse) with the environment variables looked up by `env`.
    pub fn parse_with_env(
        url: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<PgTarget, PgError> {
        let invalid = |message: String| PgError::InvalidUrl { message };
        let (rest, tls_params) = if Self::looks_like_url(url) {
            check_userinfo(url)?;
            strip_url_params(url)
        } else {
            strip_keyword_params(url).map_err(|m| invalid(m.into()))?
        };
        let mut config = tokio_postgres::Config::from_str(&rest).map_err(|e| {
            // tokio-postgres's parse errors name the bad key or the URL part, not its value.
            invalid(format!("{e}; {EXPECTED}"))
        })?;
        if config.get_hosts().is_empty() {
            return Err(invalid(format!("it names no host; {EXPECTED}")));
        }
        if config.get_user().is_none() {
            return Err(invalid(format!("it names no user; {EXPECTED}")));
        }
        let mode = match tls_params.ssl_mode.or_else(|| env("PGSSLMODE")) {
            Some(m) => SslMode::parse(&m).map_err(invalid)?,
            None => SslMode::Prefer,
        };
        let root_cert = match tls_params
            .root_cert
            .or_else(|| env("PGSSLROOTCERT"))
            .filter(|r| !r.is_empty())
        {
            Some(r) if r == "system" => Some(RootCert::System),
            Some(r) => Some(RootCert::File(PathBuf::from(r))),
            None => env("HOME")
                .map(|home| Path::new(&home).join(".postgresql").join("root.crt"))
                .filter(|p| p.is_file())
                .map(RootCert::File),
        };
        if root_cert == Some(RootCert::System) && mode != SslMode::VerifyFull {
            // As libpq: the system's roots vouch for any name they signed, so only the host
            // name check makes them mean anything.
            return Err(invalid(format!(
                "sslrootcert=system needs sslmode=verify-full (not {})",
                mode.as_str()
            )));
        }
        config.ssl_mode(match mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        if config.get_password().is_none() {
            if let Some(password) = env("PGPASSWORD").filter(|p| !p.is_empty()) {
                config.password(password);
            } else if let Some(file) = passfile::location(env) {
                let host = match config.get_hosts().first() {
                    Some(Host::Tcp(h)) => h.clone(),
                    // libpq matches a socket connection as "localhost".
                    _ => "localhost".to_string(),
                };
                let user = config.get_user().unwrap_or_default().to_string();
                let lookup = passfile::Lookup {
                    host: &host,
                    port: config.get_ports().first().copied().unwrap_or(5432),
                    database: config.get_dbname().unwrap_or(&user),
                    user: &user,
                };
                if let Some(password) = passfile::password(&file, &lookup) {
                    config.password(password);
                }
            }
        }
        Ok(PgTarget {
            config,
            ssl_mode: mode,
            root_cert,
        })
    }

    /// The `sslmode` in force.
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl_mode
    }

    /// A warning when connections to this target are not verified (`disable`, `prefer`, or
    /// `require` without root certificates) and it is not on this host: someone on the network
    /// path could read or change what is sent (or, without TLS, the password exchange). `None`
    /// for a verified or loopback connection.
    pub fn unverified_warning(&self) -> Option<String> {
        if check_for(self.ssl_mode, self.root_cert.as_ref()) != Check::Nothing {
            return None;
        }
        let remote = self
            .config
            .get_hosts()
            .iter()
            .enumerate()
            .find(|(i, host)| {
                let addr = self.config.get_hostaddrs().get(*i).copied();
                !is_loopback(host, addr)
            })?
            .0;
        let host = match &self.config.get_hosts()[remote] {
            Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            Host::Unix(p) => p.display().to_string(),
        };
        Some(format!(
            "the connection to PostgreSQL at {host} is not verified (sslmode={}): anyone on the              network path can read or alter it. Set sslmode=verify-full and sslrootcert=CA-FILE              in the connection string",
            self.ssl_mode.as_str()
        ))
    }

    /// Whether `s` looks like a PostgreSQL connection string rather than a file path.
    pub fn looks_like_url(s: &str) -> bool {
        s.starts_with("postgres://") || s.starts_with("postgresql://")
    }

    /// A connection pool of at most `max_size` connections, with TCP keepalives after
    /// `keepalive_idle` on both ends.
    /// Connections are made lazily, so this does not touch the network.
    pub(crate) fn pool(&self, max_size: usize, keepalive_idle: Duration) -> Result<Pool, PgError> {
        let config = self.session_config(keepalive_idle);
        let tls = MakeRustls {
            config: tls::client_config(
                check_for(self.ssl_mode, self.root_cert.as_ref()),
                self.root_cert.as_ref(),
            )?,
        };
        let manager = Manager::from_config(
            config,
            tls,
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
    pub(crate) fn session_config(&self, keepalive_idle: Duration) -> tokio_postgres::Config {
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
        write!(f, "PgTarget({self}, sslmode={})", self.ssl_mode.as_str())
    }
}

fn is_loopback(host: &Host, hostaddr: Option<std::net::IpAddr>) -> bool {
    if let Some(addr) = hostaddr {
        return addr.is_loopback();
    }
    match host {
        Host::Tcp(h) => {
            h.eq_ignore_ascii_case("localhost")
                || h.trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|a| a.is_loopback())
        }
        #[cfg(unix)]
        Host::Unix(_) => true,
    }
}

/// Refuses a URL whose user name or password holds an unencoded `@`: the URL would be split at
/// the wrong `@`, and part of the password would become the host name and show up in messages.
/// The error says nothing about where, so no part of the password is shown.
fn check_userinfo(url: &str) -> Result<(), PgError> {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    // The URL is split at its first '@' (tokio-postgres and libpq alike); a second one in the
    // host or database part means the password (or user name) had one of its own.
    let Some((_, rest)) = after_scheme.split_once('@') else {
        return Ok(());
    };
    let before_query = rest.split('?').next().unwrap_or(rest);
    if before_query.contains('@') {
        return Err(PgError::InvalidUrl {
            message: "its user name or password holds an unencoded '@': write '@' as %40 there \
                      (percent-encode the user name and password), or leave the password out of \
                      the URL and set PGPASSWORD or a line in ~/.pgpass"
                .into(),
        });
    }
    Ok(())
}

/// `sslmode` and `sslrootcert`, taken out of the string before tokio-postgres (which knows
/// only some of libpq's `sslmode` values, and no `sslrootcert`) parses the rest.
#[derive(Debug, Default)]
struct TlsParams {
    ssl_mode: Option<String>,
    root_cert: Option<String>,
}

fn strip_url_params(url: &str) -> (String, TlsParams) {
    let mut params = TlsParams::default();
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), params);
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => params.ssl_mode = Some(percent_decode(value)),
            "sslrootcert" => params.root_cert = Some(percent_decode(value)),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, params)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let (h, l) = (hex(h).unwrap_or(0), hex(l).unwrap_or(0));
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `key=value` form: the pairs, values unquoted, then the string rebuilt without the TLS
/// keys (values quoted, so that spaces and quotes survive).
fn strip_keyword_params(s: &str) -> Result<(String, TlsParams), &'static str> {
    let mut params = TlsParams::default();
    let mut kept = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(
                "a keyword has no '=value'; expected key=value pairs (host=… user=… \
                        dbname=…) or postgres://USER:PASSWORD@HOST:PORT/DATABASE",
            );
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err("a quoted value is not closed"),
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err("a quoted value is not closed"),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(next) = chars.next() {
                        value.push(next);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        match key.as_str() {
            "sslmode" => params.ssl_mode = Some(value),
            "sslrootcert" => params.root_cert = Some(value),
            _ => kept.push(format!(
                "{key}='{}'",
                value.replace('\\', "\\\\").replace('\'', "\\'")
            )),
        }
    }
    Ok((kept.join(" "), params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_session_has_keepalives_on_both_ends() {
        let target = PgTarget::parse_with_env(
            "postgres://u:p@db.example/siem?options=-c%20search_path%3Dsf",
            &|_| None,
        )
        .unwrap();
        let config = target.session_config(Duration::from_secs(10));
        assert!(config.get_keepalives());
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(10));
        assert_eq!(
            config.get_keepalives_interval(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(config.get_keepalives_retries(), Some(2));
        let options = config.get_options().unwrap();
        for setting in [
            "-c search_path=sf",
            "-c tcp_keepalives_idle=10",
            "-c tcp_keepalives_interval=5",
            "-c tcp_keepalives_count=2",
        ] {
            assert!(options.contains(setting), "{options}");
        }
    }
}
