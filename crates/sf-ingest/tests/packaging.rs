//! The packaging files: the sample config validates, the systemd unit is sound, the Dockerfile
//! builds the binary as a non-root image.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use salesforce_jwt_mock::DEMO_PRIVATE_KEY_PEM;

fn crate_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn the_sample_config_parses_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sf-ingest.toml");
    std::fs::write(&config, crate_file("sf-ingest.example.toml")).unwrap();
    // The keys it names: a file relative to the config, and a variable holding the PEM.
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    demo_key(&dir.path().join("keys"), "acme-prod.key");

    let output = run(sf_ingest()
        .args(["--check", "--config"])
        .arg(&config)
        .env("ACME_SANDBOX_KEY_PEM", DEMO_PRIVATE_KEY_PEM));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains("the configuration is valid")
            && err.contains("acme-prod")
            && err.contains("acme-sandbox"),
        "{err}"
    );

    // Without the key file the same sample fails, naming the org and the field.
    std::fs::remove_file(dir.path().join("keys/acme-prod.key")).unwrap();
    let output = run(sf_ingest()
        .args(["--check", "--config"])
        .arg(&config)
        .env("ACME_SANDBOX_KEY_PEM", DEMO_PRIVATE_KEY_PEM));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains(r#"org "acme-prod": client_key_path: "#),
        "{}",
        stderr(&output)
    );
}

/// `key=value` lines of the unit, section by section.
fn unit_keys(unit: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
        } else if let Some((key, value)) = line.split_once('=') {
            keys.push((
                section.clone(),
                key.trim().to_string(),
                value.trim().to_string(),
            ));
        } else {
            panic!("not a key=value line in the unit: {line:?}");
        }
    }
    keys
}

#[test]
fn the_systemd_unit_is_hardened_and_verifies() {
    let unit = crate_file("packaging/sf-ingest.service");
    let keys = unit_keys(&unit);
    let has = |section: &str, key: &str, value: &str| {
        keys.iter()
            .any(|(s, k, v)| s == section && k == key && (value.is_empty() || v == value))
    };
    for (section, key, value) in [
        ("Unit", "Description", ""),
        ("Service", "ExecStart", ""),
        ("Service", "User", "sf-ingest"),
        ("Service", "StateDirectory", "sf-ingest"),
        ("Service", "ProtectSystem", "strict"),
        ("Service", "NoNewPrivileges", "yes"),
        ("Service", "ProtectHome", "yes"),
        ("Service", "PrivateTmp", "yes"),
        ("Service", "RestartPreventExitStatus", "2"),
        ("Service", "Type", "notify"),
        ("Service", "NotifyAccess", "main"),
        ("Install", "WantedBy", "multi-user.target"),
    ] {
        assert!(
            has(section, key, value),
            "[{section}] {key}={value} is missing"
        );
    }
    let exec = keys.iter().find(|(_, k, _)| k == "ExecStart").unwrap();
    assert!(
        exec.2.contains("--config") && exec.2.contains("--follow"),
        "{exec:?}"
    );
    // The watchdog: on, and long enough for pings at half of it to be far apart.
    let watchdog = keys
        .iter()
        .find(|(s, k, _)| s == "Service" && k == "WatchdogSec")
        .expect("WatchdogSec");
    let seconds: u64 = watchdog.2.parse().expect("WatchdogSec in seconds");
    assert!((10..=600).contains(&seconds), "{watchdog:?}");
    println!("checked the unit's required keys by parsing it");

    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(o) if o.status.success() => {
            // verify insists that ExecStart's program exists: point it at the binary under test.
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("sf-ingest.service");
            std::fs::write(
                &path,
                unit.replace("/usr/local/bin/sf-ingest", env!("CARGO_BIN_EXE_sf-ingest")),
            )
            .unwrap();
            let verify = Command::new("systemd-analyze")
                .arg("verify")
                .arg(&path)
                .output()
                .unwrap();
            let messages = String::from_utf8_lossy(&verify.stderr);
            assert!(
                verify.status.success(),
                "systemd-analyze verify failed:\n{messages}"
            );
            assert!(
                !messages.contains("sf-ingest.service:"),
                "systemd-analyze verify warns:\n{messages}"
            );
            println!("checked with systemd-analyze verify");
        }
        _ => println!("systemd-analyze is not installed: only the keys were checked"),
    }
}

#[test]
fn the_sysusers_file_creates_the_units_user() {
    let sysusers = crate_file("packaging/sf-ingest.sysusers");
    let line = sysusers
        .lines()
        .find(|l| l.starts_with("u "))
        .expect("a `u` line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[1], "sf-ingest", "{line}");
    assert!(crate_file("packaging/sf-ingest.service").contains("\nUser=sf-ingest\n"));
}

#[test]
fn the_dockerfile_builds_the_binary_and_runs_it_as_a_non_root_user_with_volumes() {
    let dockerfile = crate_file("packaging/Dockerfile");
    assert!(dockerfile.contains("cargo build --release --locked -p sf-ingest"));
    assert_eq!(
        dockerfile.matches("\nFROM ").count() + usize::from(dockerfile.starts_with("FROM ")),
        2,
        "multi-stage"
    );
    let user = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(user.trim() != "root" && user.trim() != "0");
    assert!(dockerfile.contains(r#"VOLUME ["/config", "/state"]"#));
}

#[test]
fn the_image_serves_metrics_and_its_healthcheck_asks_healthz_through_the_binary() {
    let dockerfile = crate_file("packaging/Dockerfile");
    // The instruction, continuation lines joined.
    let joined = dockerfile.replace("\\\n", " ");
    let healthcheck = joined
        .lines()
        .find(|l| l.starts_with("HEALTHCHECK "))
        .expect("a HEALTHCHECK");
    let exec = healthcheck
        .split_once(" CMD ")
        .map(|(_, cmd)| cmd.trim())
        .expect("HEALTHCHECK ... CMD [...]");
    let argv: Vec<String> = serde_json::from_str(exec).expect("CMD in exec form");
    assert_eq!(argv[0], "/usr/local/bin/sf-ingest");
    assert_eq!(argv[1], "healthcheck");
    let url = &argv[2];
    let port = url
        .strip_prefix("http://127.0.0.1:")
        .and_then(|rest| rest.strip_suffix("/healthz"))
        .expect("http://127.0.0.1:PORT/healthz");
    let cmd = joined
        .lines()
        .find_map(|l| l.strip_prefix("CMD "))
        .expect("a CMD");
    let cmd: Vec<String> = serde_json::from_str(cmd).unwrap();
    let addr = cmd
        .iter()
        .skip_while(|a| *a != "--metrics-addr")
        .nth(1)
        .expect("the default command serves metrics");
    assert_eq!(addr, &format!("0.0.0.0:{port}"));
    assert!(dockerfile.contains(&format!("\nEXPOSE {port}\n")));

    // The same command against a real endpoint: 0 while it runs, 1 once it is gone.
    let collector =
        Running::spawn(sf_ingest().args(["--follow", "60", "--metrics-addr", "127.0.0.1:0"]));
    let bound = collector.metrics_addr();
    let check = |addr: &str| {
        run(Command::new(env!("CARGO_BIN_EXE_sf-ingest"))
            .arg(&argv[1])
            .arg(url.replace(&format!("127.0.0.1:{port}"), addr)))
        .status
        .code()
    };
    assert_eq!(check(&bound), Some(0));
    assert!(collector.stop().success());
    assert_eq!(check(&bound), Some(1));
}
