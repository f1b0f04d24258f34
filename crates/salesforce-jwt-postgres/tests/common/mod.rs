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

/// Ends the lease of `(org, source)` now by the database's clock (which judges expiry), as if
/// its TTL had passed there.
pub async fn expire_lease(url: &str, org: &str, source: &str) {
    raw(url)
        .await
        .execute(
            "UPDATE sfjwt_leases SET expires_at = now() - interval '1 second'
             WHERE org = $1 AND source = $2",
            &[&org, &source],
        )
        .await
        .unwrap();
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

/// A second, small PostgreSQL server for the TLS tests: `ssl = on` with a server certificate
/// for `localhost` signed by a throwaway test CA made here, and a pg_hba.conf with `hostssl`
/// lines only, so that a plaintext connection is refused. Made from the binaries and as the
/// owner that `scripts/pg-test-cluster` exports; stopped and removed on drop.
pub struct TlsServer {
    pub port: u16,
    pub password: String,
    /// The PEM file of the CA that signed the server's certificate.
    pub ca_file: std::path::PathBuf,
    /// The PEM file of another CA, which signed nothing of this server.
    pub other_ca_file: std::path::PathBuf,
    dir: std::path::PathBuf,
    bin: String,
    owner: String,
}

fn run_as_owner(owner: &str, program: &str, args: &[&str]) -> std::process::Output {
    // PostgreSQL refuses to run as root: as root, run it as the cluster's owner.
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap();
    let output = if is_root {
        std::process::Command::new("runuser")
            .args(["-u", owner, "--", program])
            .args(args)
            .output()
    } else {
        std::process::Command::new(program).args(args).output()
    }
    .unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

impl TlsServer {
    pub fn start() -> TlsServer {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: start the test server first (scripts/pg-test-cluster start)"
                )
            })
        };
        let (bin, owner, parent) = (
            var("SFJWT_TEST_PG_BIN"),
            var("SFJWT_TEST_PG_OWNER"),
            var("SFJWT_TEST_PG_DIR"),
        );
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::path::Path::new(&parent).join(format!(
            "tls-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir(&dir).unwrap();

        let ca = |name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            let key = KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            (cert.pem(), Issuer::new(params, key))
        };
        let (ca_pem, issuer) = ca("salesforce-jwt test CA");
        let (other_pem, _) = ca("another test CA");
        let server_key = KeyPair::generate().unwrap();
        let mut server_params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        server_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
        let ca_file = dir.join("ca.pem");
        let other_ca_file = dir.join("other-ca.pem");
        std::fs::write(&ca_file, ca_pem).unwrap();
        std::fs::write(&other_ca_file, other_pem).unwrap();
        std::fs::write(dir.join("server.crt"), server_cert.pem()).unwrap();
        let key_file = dir.join("server.key");
        std::fs::write(&key_file, server_key.serialize_pem()).unwrap();
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let password: String = format!("tls{:016x}", rand_u64());
        std::fs::write(dir.join("pwfile"), format!("{password}\n")).unwrap();
        let status = std::process::Command::new("chown")
            .args(["-R", &owner])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success() || owner_is_me(&owner));

        let data = dir.join("data");
        let (data_s, dir_s) = (
            data.to_str().unwrap().to_string(),
            dir.to_str().unwrap().to_string(),
        );
        run_as_owner(
            &owner,
            &format!("{bin}/initdb"),
            &[
                "-D",
                &data_s,
                "-U",
                "postgres",
                &format!("--pwfile={dir_s}/pwfile"),
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        );
        // Only hostssl lines: a plaintext connection has no line that admits it.
        run_as_owner(
            &owner,
            "sh",
            &[
                "-c",
                &format!(
                    "printf 'hostssl all all 127.0.0.1/32 scram-sha-256\\nhostssl all all ::1/128 scram-sha-256\\n' > {data_s}/pg_hba.conf"
                ),
            ],
        );
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let server = TlsServer {
            port,
            password,
            ca_file,
            other_ca_file,
            dir,
            bin: bin.clone(),
            owner: owner.clone(),
        };
        run_as_owner(
            &owner,
            &format!("{bin}/pg_ctl"),
            &[
                "-D",
                &data_s,
                "-l",
                &format!("{dir_s}/server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                &format!(
                    "-p {port} -k {dir_s} -c listen_addresses=127.0.0.1 -c fsync=off \
                     -c ssl=on -c ssl_cert_file={dir_s}/server.crt -c ssl_key_file={dir_s}/server.key"
                ),
                "start",
            ],
        );
        server
    }

    /// A URL for this server with `host` and `params` (`sslmode=…&…`), reaching 127.0.0.1
    /// whatever `host` says.
    pub fn url(&self, host: &str, params: &str) -> String {
        format!(
            "postgres://postgres:{}@{host}:{}/postgres?hostaddr=127.0.0.1&{params}",
            self.password, self.port
        )
    }
}

fn owner_is_me(owner: &str) -> bool {
    std::process::Command::new("id")
        .arg("-un")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == owner)
        .unwrap_or(false)
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = std::process::Command::new(if owner_is_me(&self.owner) {
            format!("{}/pg_ctl", self.bin)
        } else {
            "runuser".to_string()
        })
        .args(if owner_is_me(&self.owner) {
            vec![]
        } else {
            vec![
                "-u".to_string(),
                self.owner.clone(),
                "--".to_string(),
                format!("{}/pg_ctl", self.bin),
            ]
        })
        .args([
            "-D",
            data.to_str().unwrap(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ])
        .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A clock whose sleeps end only when the test moves it past their end, so that heartbeats
/// and lease renewals run exactly when the test says, never on their own.
#[derive(Debug, Clone)]
pub struct SteppedClock {
    now: Arc<tokio::sync::watch::Sender<time::OffsetDateTime>>,
}

impl SteppedClock {
    pub fn new() -> Self {
        SteppedClock {
            now: Arc::new(tokio::sync::watch::Sender::new(
                datetime!(2025-06-10 12:00 UTC),
            )),
        }
    }

    pub fn advance(&self, by: std::time::Duration) {
        self.now.send_modify(|now| *now += by);
    }
}

impl salesforce_jwt::clock::Clock for SteppedClock {
    fn now(&self) -> time::OffsetDateTime {
        *self.now.borrow()
    }

    fn sleep(&self, duration: std::time::Duration) -> salesforce_jwt::clock::Sleep {
        let until = self.now() + duration;
        let mut now = self.now.subscribe();
        Box::pin(async move {
            let _ = now.wait_for(|now| *now >= until).await;
        })
    }
}
