//! Connection mistakes give errors that say what to fix, and never show the password.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{TlsServer, admin_password, admin_url, clock, host_port};
use salesforce_jwt_postgres::{PgError, PgStore, PgTarget, SslMode};

async fn connect(url: &str) -> Result<PgStore, PgError> {
    PgStore::connect(&PgTarget::parse(url)?, Arc::new(clock()), "host").await
}

/// Connects with exactly the environment variables `vars` (none of the test process's), so
/// that a developer's own PGPASSWORD or ~/.postgresql/root.crt cannot change the outcome.
async fn connect_env(url: &str, vars: &[(&str, &str)]) -> Result<PgStore, PgError> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let env = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    PgStore::connect(
        &PgTarget::parse_with_env(url, &env)?,
        Arc::new(clock()),
        "host",
    )
    .await
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

#[tokio::test]
async fn tls_require_and_prefer_work_against_a_hostssl_only_server_and_disable_is_refused() {
    let server = TlsServer::start();
    let empty = tempfile_dir("tls-modes");
    let home = [("HOME", empty.to_str().unwrap())];
    for params in ["sslmode=require", "sslmode=prefer", ""] {
        // The server admits TLS connections only: getting in proves TLS was used.
        connect_env(&server.url("127.0.0.1", params), &home)
            .await
            .unwrap_or_else(|e| panic!("{params}: {e}"));
    }
    let err = connect_env(&server.url("127.0.0.1", "sslmode=disable"), &home)
        .await
        .unwrap_err();
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
    assert!(
        text.contains("only over TLS") && text.contains("sslmode=verify-full"),
        "{text}"
    );
    assert!(!text.contains(&server.password), "{text}");
    // require against a server without TLS (the main test server) says so.
    let err = connect_env(&format!("{}?sslmode=require", admin_url()), &home)
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("does not offer TLS"), "{err}");
}

#[tokio::test]
async fn tls_certificates_are_checked_as_libpq_checks_them() {
    let server = TlsServer::start();
    let empty = tempfile_dir("tls-verify");
    let home = [("HOME", empty.to_str().unwrap())];
    let ca = server.ca_file.to_str().unwrap();
    let other = server.other_ca_file.to_str().unwrap();
    // verify-full: the right CA and the certificate's host name.
    connect_env(
        &server.url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        &home,
    )
    .await
    .unwrap();
    // verify-ca: the chain only; the certificate is for localhost, not 127.0.0.1.
    connect_env(
        &server.url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}")),
        &home,
    )
    .await
    .unwrap();
    // The same from the environment, as libpq reads it.
    connect_env(
        &server.url("localhost", ""),
        &[
            ("HOME", empty.to_str().unwrap()),
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", ca),
        ],
    )
    .await
    .unwrap();
    // verify-full with a CA that did not sign the server's certificate.
    let text = refused(
        &server,
        &home,
        server.url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={other}"),
        ),
    )
    .await;
    assert!(
        text.contains("sslrootcert") && text.contains("certificate"),
        "{text}"
    );
    // verify-full with the right CA but another host name than the certificate's.
    let text = refused(
        &server,
        &home,
        server.url(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
    )
    .await;
    assert!(
        text.contains("host name") && text.contains("verify-ca"),
        "{text}"
    );
    // require with a root certificate checks the chain, as verify-ca (libpq's rule).
    let text = refused(
        &server,
        &home,
        server.url("127.0.0.1", &format!("sslmode=require&sslrootcert={other}")),
    )
    .await;
    assert!(text.contains("sslrootcert"), "{text}");
    // verify-full without any CA: says what to give.
    let err = connect_env(&server.url("localhost", "sslmode=verify-full"), &home)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PgError::InvalidUrl { .. }) && err.to_string().contains("sslrootcert"),
        "{err}"
    );
}

#[test]
fn sslmode_is_read_as_libpq_reads_it_and_unverified_remote_connections_are_flagged() {
    let none = |_: &str| None;
    let parse = |url: &str| PgTarget::parse_with_env(url, &none).unwrap();
    assert_eq!(
        parse("postgres://u:p@db.example/siem").ssl_mode(),
        SslMode::Prefer
    );
    for (mode, expected) in [
        ("disable", SslMode::Disable),
        ("prefer", SslMode::Prefer),
        ("require", SslMode::Require),
        ("verify-ca", SslMode::VerifyCa),
        ("verify-full", SslMode::VerifyFull),
    ] {
        let url = format!("postgres://u:p@db.example/siem?sslmode={mode}&sslrootcert=/ca.pem");
        assert_eq!(parse(&url).ssl_mode(), expected);
        let kv =
            format!("host=db.example user=u password='p w' sslmode={mode} sslrootcert='/ca.pem'");
        assert_eq!(parse(&kv).ssl_mode(), expected);
    }
    let err =
        PgTarget::parse_with_env("postgres://u:p@h/db?sslmode=verify-any", &none).unwrap_err();
    assert!(err.to_string().contains("verify-full"), "{err}");
    // Unverified and not on this host: a warning that says what to set.
    for url in [
        "postgres://u:p@db.example/siem",
        "postgres://u:p@db.example/siem?sslmode=disable",
        "postgres://u:p@10.1.2.3/siem?sslmode=require",
    ] {
        let warning = parse(url)
            .unverified_warning()
            .unwrap_or_else(|| panic!("{url}"));
        assert!(
            warning.contains("verify-full") && warning.contains("sslrootcert"),
            "{warning}"
        );
        assert!(!warning.contains(":p@"), "{warning}");
    }
    for url in [
        "postgres://u:p@127.0.0.1/siem?sslmode=disable",
        "postgres://u:p@localhost/siem",
        "postgres://u:p@[::1]/siem?sslmode=require",
        "postgres://u:p@db.example/siem?sslmode=verify-full&sslrootcert=/ca.pem",
        "postgres://u:p@db.example/siem?sslmode=verify-ca&sslrootcert=/ca.pem",
        // require with a root certificate is verify-ca.
        "postgres://u:p@db.example/siem?sslmode=require&sslrootcert=/ca.pem",
    ] {
        assert_eq!(parse(url).unverified_warning(), None, "{url}");
    }
}

#[tokio::test]
async fn the_password_can_come_from_pgpassword_or_the_password_file() {
    let admin = admin_url();
    let password = admin_password();
    let hp = host_port(&admin);
    let (host, port) = hp.split_once(':').unwrap();
    let no_password = format!("postgres://postgres@{hp}/postgres");
    let dir = tempfile_dir("pgpass");
    let dir_s = dir.to_str().unwrap();
    // PGPASSWORD.
    connect_env(&no_password, &[("PGPASSWORD", &password), ("HOME", dir_s)])
        .await
        .unwrap();
    // The URL's password wins over PGPASSWORD, as in libpq.
    connect_env(
        &admin,
        &[("PGPASSWORD", "Wr0ngSecretValue"), ("HOME", dir_s)],
    )
    .await
    .unwrap();
    // ~/.pgpass: the first matching line, after one for another port and a comment.
    let pgpass = dir.join(".pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "# comment\n{host}:1:*:postgres:Wr0ngSecretValue\n{host}:{port}:*:postgres:{password}\n*:*:*:*:Wr0ngSecretValue\n"
        ),
    )
    .unwrap();
    set_mode(&pgpass, 0o600);
    connect_env(&no_password, &[("HOME", dir_s)]).await.unwrap();
    // PGPASSFILE names another file.
    let named = dir.join("named-passfile");
    std::fs::write(&named, format!("*:{port}:postgres:postgres:{password}\n")).unwrap();
    set_mode(&named, 0o600);
    connect_env(
        &no_password,
        &[
            ("PGPASSFILE", named.to_str().unwrap()),
            ("HOME", "/nonexistent"),
        ],
    )
    .await
    .unwrap();
    // A password file that group or others can read is ignored, as libpq ignores it.
    set_mode(&pgpass, 0o644);
    let err = connect_env(&no_password, &[("HOME", dir_s)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PgError::Connect {
                retryable: false,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("PGPASSWORD") && err.to_string().contains("0600"),
        "{err}"
    );
    assert!(!err.to_string().contains(&password), "{err}");
}

#[test]
fn a_password_with_an_unencoded_at_sign_is_refused_without_showing_any_of_it() {
    for url in [
        "postgres://collector:Sec@ret99@db.example:5432/siem",
        "postgres://collector:Sec@ret/99@db.example:5432/siem",
        "postgres://collector:Sec?re@t99@db.example:5432/siem",
    ] {
        let err = PgTarget::parse(url).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(matches!(err, PgError::InvalidUrl { .. }), "{url}: {text}");
        assert!(text.contains("%40"), "{text}");
        for part in ["Sec", "ret", "99@", "t99", "re@"] {
            assert!(!text.contains(part), "{part:?} shown: {text}");
        }
    }
    // Encoded, it is fine, and an '@' in a query value is no password's.
    let target = PgTarget::parse(
        "postgres://collector:Sec%40ret99@db.example:5432/siem?application_name=me@host",
    )
    .unwrap();
    assert_eq!(
        target.to_string(),
        "postgres://collector@db.example:5432/siem"
    );
}

/// Connects to `url`, which must fail for good; the error's text.
async fn refused(server: &TlsServer, env: &[(&str, &str)], url: String) -> String {
    let err = connect_env(&url, env).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(!err.to_string().contains(&server.password), "{err}");
    err.to_string()
}

fn tempfile_dir(hint: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sfjwt-{hint}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
