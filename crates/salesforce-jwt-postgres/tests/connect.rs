//! Connection mistakes give errors that say what to fix, and never show the password.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{admin_password, admin_url, clock};
use salesforce_jwt_postgres::{PgError, PgStore, PgTarget};

async fn connect(url: &str) -> Result<PgStore, PgError> {
    PgStore::connect(&PgTarget::parse(url)?, Arc::new(clock()), "host").await
}

#[tokio::test]
async fn a_wrong_password_names_the_fix_and_not_the_password() {
    let url = admin_url();
    let wrong = url.replace(&admin_password(), "Wr0ngSecretValue");
    let err = connect(&wrong).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            PgError::Connect {
                retryable: false,
                ..
            }
        ),
        "{text}"
    );
    assert!(text.contains("password"), "{text}");
    assert!(!text.contains("Wr0ngSecretValue"), "{text}");
    assert!(!format!("{err:?}").contains("Wr0ngSecretValue"));
}

#[tokio::test]
async fn a_missing_database_says_to_create_it() {
    let url = admin_url();
    let base = url.rsplit_once('/').unwrap().0;
    let err = connect(&format!("{base}/no_such_db")).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("does not exist") && text.contains("createdb"),
        "{text}"
    );
    assert!(!text.contains(&admin_password()), "{text}");
}

#[tokio::test]
async fn a_server_that_is_not_there_is_retryable() {
    // Port 1 on loopback: nothing listens there.
    let err = connect("postgres://u:SecretPw1@127.0.0.1:1/db")
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    assert!(!err.to_string().contains("SecretPw1"), "{err}");
}

#[test]
fn a_malformed_url_is_refused_without_echoing_it() {
    for bad in [
        "postgres://user:SecretPw1@host:notaport/db",
        "postgres://:SecretPw1@/db",
    ] {
        let err = PgTarget::parse(bad).unwrap_err();
        assert!(matches!(err, PgError::InvalidUrl { .. }), "{bad}: {err}");
        assert!(!err.to_string().contains("SecretPw1"), "{err}");
    }
}

#[test]
fn display_and_debug_never_show_the_password() {
    let target = PgTarget::parse("postgres://collector:SecretPw1@db.example:5433/siem").unwrap();
    assert_eq!(
        target.to_string(),
        "postgres://collector@db.example:5433/siem"
    );
    assert!(!format!("{target:?}").contains("SecretPw1"));
}
