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
