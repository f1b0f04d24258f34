//! A fresh database per test on the PostgreSQL server the test setup started
//! (`scripts/pg-test-cluster start` exports `SFJWT_TEST_PG_URL`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use salesforce_jwt::clock::ManualClock;
use salesforce_jwt_postgres::{PgStore, PgTarget};
use time::macros::datetime;

/// The admin URL of the test server. Absent means the setup did not run: that is a failure,
/// never a skip, or a green run could hide untested code.
pub fn admin_url() -> String {
    std::env::var("SFJWT_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "SFJWT_TEST_PG_URL is not set: start the test server first with \
             `eval \"$(scripts/pg-test-cluster start)\"` (or run scripts/test)"
        )
    })
}

/// The admin password, to check that no output ever shows it.
pub fn admin_password() -> String {
    let url = admin_url();
    let after_scheme = url.split("://").nth(1).unwrap();
    let userinfo = after_scheme.split('@').next().unwrap();
    userinfo.split(':').nth(1).unwrap().to_string()
}

/// A new, empty database; returns its URL.
pub async fn fresh_database(name_hint: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "t_{}_{}_{}",
        name_hint,
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let admin = admin_url();
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let base = admin.rsplit_once('/').unwrap().0;
    format!("{base}/{name}")
}

pub fn clock() -> ManualClock {
    ManualClock::new(datetime!(2025-06-10 12:00 UTC))
}

pub async fn store(url: &str, clock: &ManualClock, holder: &str) -> PgStore {
    PgStore::connect(
        &PgTarget::parse(url).unwrap(),
        Arc::new(clock.clone()),
        holder,
    )
    .await
    .unwrap()
}

pub async fn store_with(
    url: &str,
    clock: &ManualClock,
    holder: &str,
    timeouts: salesforce_jwt_postgres::LeaseTimeouts,
) -> PgStore {
    PgStore::connect_with(
        &PgTarget::parse(url).unwrap(),
        Arc::new(clock.clone()),
        holder,
        timeouts,
    )
    .await
    .unwrap()
}

/// A plain connection of the test's own (no store), for what an operator or another client does.
pub async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// `host:port` of a `postgres://user:password@host:port/db` URL.
pub fn host_port(url: &str) -> String {
    let after_at = url.rsplit_once('@').unwrap().1;
    after_at.split('/').next().unwrap().to_string()
}

/// A TCP proxy in front of the test server that, once armed, stops forwarding in both
/// directions on the connection that sends `trigger`, without closing anything: to the server,
/// its client vanished in the middle of whatever it was doing (no FIN, no RST), as a host that
/// lost power or its network does.
pub struct FreezingProxy {
    /// `host:port` to connect to instead of the server.
    pub addr: String,
    armed: Arc<std::sync::atomic::AtomicBool>,
    frozen: Arc<std::sync::atomic::AtomicBool>,
}

impl FreezingProxy {
    pub async fn start(upstream: String, trigger: &'static [u8]) -> FreezingProxy {
        use std::sync::atomic::AtomicBool;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let armed = Arc::new(AtomicBool::new(false));
        let frozen = Arc::new(AtomicBool::new(false));
        let (armed2, frozen2) = (armed.clone(), frozen.clone());
        tokio::spawn(async move {
            loop {
                let (client, _) = listener.accept().await.unwrap();
                let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let this_frozen = Arc::new(AtomicBool::new(false));
                let (armed, frozen, tf) = (armed2.clone(), frozen2.clone(), this_frozen.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if !tf.load(Ordering::SeqCst)
                            && armed.load(Ordering::SeqCst)
                            && buf[..n].windows(trigger.len()).any(|w| w == trigger)
                        {
                            tf.store(true, Ordering::SeqCst);
                            frozen.store(true, Ordering::SeqCst);
                        }
                        if tf.load(Ordering::SeqCst) {
                            // Keep reading so the client's writes do not fail; drop it all.
                            continue;
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match sr.read(&mut buf).await {
                            Ok(0) | Err(_) => {
                                // Hold the client's side open: a vanished host sends no FIN.
                                std::future::pending::<()>().await;
                                return;
                            }
                            Ok(n) => n,
                        };
                        if this_frozen.load(Ordering::SeqCst) {
                            continue;
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FreezingProxy {
            addr,
            armed,
            frozen,
        }
    }

    /// From now on, the next connection that sends the trigger freezes.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    pub fn frozen(&self) -> bool {
        self.frozen.load(Ordering::SeqCst)
    }
}
