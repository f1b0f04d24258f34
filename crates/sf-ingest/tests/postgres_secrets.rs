//! The PostgreSQL password need not be on sf-ingest's command line or in its configuration:
//! `PGPASSWORD` and the password file (`PGPASSFILE`, `~/.pgpass`) are read as libpq reads them,
//! and a URL whose password holds a bare '@' is a usage error that shows none of it.
//!
//! Needs the test server (`scripts/test`, or `eval "$(scripts/pg-test-cluster start)"`).

mod common;

use std::path::Path;

use common::{add_files, demo_key, rows_in_org};
use salesforce_jwt_mock::MockOrg;

fn admin_url() -> String {
    std::env::var("SFJWT_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "SFJWT_TEST_PG_URL is not set: start the test server first with \
             `eval \"$(scripts/pg-test-cluster start)\"` (or run scripts/test)"
        )
    })
}

/// `(password, host, port)` of the admin URL `postgres://postgres:PASSWORD@HOST:PORT/postgres`.
fn parts(url: &str) -> (String, String, String) {
    let rest = url.split("://").nth(1).unwrap();
    let (userinfo, rest) = rest.split_once('@').unwrap();
    let password = userinfo.split_once(':').unwrap().1.to_string();
    let (host, port) = rest.split('/').next().unwrap().split_once(':').unwrap();
    (password, host.to_string(), port.to_string())
}

async fn fresh_database(hint: &str) -> String {
    let admin = admin_url();
    let name = format!("t_{hint}_{}", std::process::id());
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    name
}

async fn rows_in_table(url: &str) -> usize {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let n: i64 = client
        .query_one("SELECT count(*) FROM salesforce_events", &[])
        .await
        .unwrap()
        .get(0);
    n as usize
}

fn run(org: &MockOrg, key: &Path, url: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = common::sf_ingest_for(org, key);
    cmd.env_remove("PGPASSWORD")
        .env_remove("PGPASSFILE")
        .env_remove("PGSSLMODE")
        .env_remove("PGSSLROOTCERT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    common::run(cmd.args([
        "--since",
        "7d",
        "--lease-ttl",
        "10",
        "--state",
        url,
        "--out",
        url,
    ]))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_state_password_comes_from_pgpassword_or_pgpass_instead_of_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let home_s = home.to_str().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let org = MockOrg::start().await;
    add_files(&org, 2, 4);
    let want: usize = rows_in_org(&org).values().map(Vec::len).sum();
    let (password, host, port) = parts(&admin_url());
    let with_password = |db: &str| format!("postgres://postgres:{password}@{host}:{port}/{db}");
    let without = |db: &str| format!("postgres://postgres@{host}:{port}/{db}");

    // PGPASSWORD.
    let db = fresh_database("pgpassword").await;
    let output = run(
        &org,
        &key,
        &without(&db),
        &[("PGPASSWORD", &password), ("HOME", home_s)],
    );
    let stderr = common::stderr(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains(&password), "{stderr}");
    assert_eq!(rows_in_table(&with_password(&db)).await, want);

    // ~/.pgpass, private to its owner.
    let db = fresh_database("pgpass").await;
    let pgpass = home.join(".pgpass");
    std::fs::write(&pgpass, format!("{host}:{port}:*:postgres:{password}\n")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let output = run(&org, &key, &without(&db), &[("HOME", home_s)]);
    let stderr = common::stderr(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains(&password), "{stderr}");
    assert_eq!(rows_in_table(&with_password(&db)).await, want);

    // Neither: the org fails, saying where a password may come from.
    std::fs::remove_file(&pgpass).unwrap();
    let db = fresh_database("nopassword").await;
    let output = run(&org, &key, &without(&db), &[("HOME", home_s)]);
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("PGPASSWORD") && stderr.contains("pgpass"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_url_whose_password_holds_a_bare_at_sign_is_a_usage_error_showing_none_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let org = MockOrg::start().await;
    let (_, host, port) = parts(&admin_url());
    let url = format!("postgres://postgres:Xq7v@Zk9w@{host}:{port}/postgres");
    let output = run(&org, &key, &url, &[]);
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("%40"), "{stderr}");
    for part in ["Xq7v", "Zk9w", "7v@Z"] {
        assert!(!stderr.contains(part), "{part:?} shown: {stderr}");
    }
}
