//! PEM key parsing: the forms admins really hand over are accepted and sign verifiable
//! assertions; everything else gets its own error saying what the file is and what to do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{fixture, fixture_path, start_time, verify_signature};
use jsonwebtoken::Algorithm;
use proptest::prelude::*;
use salesforce_jwt::assertion::{self, Claims};
use salesforce_jwt::{KeyError, SigningKey};

/// Signs an assertion with `key` and checks it against the fixture's public key.
fn assert_signs_verifiably(key: &SigningKey) {
    let claims = Claims::new(
        "client",
        "user@example.com",
        "https://login.salesforce.com",
        start_time(),
        Duration::from_secs(180),
    );
    let jwt = assertion::sign(&claims, key).unwrap();
    let (alg, payload) =
        verify_signature(jwt.expose_secret()).unwrap_or_else(|e| panic!("{}: {e}", key.origin()));
    assert_eq!(alg, Algorithm::RS256);
    assert_eq!(payload["iss"], "client");
    assert_eq!(payload["sub"], "user@example.com");
    assert_eq!(payload["aud"], "https://login.salesforce.com");
    assert_eq!(payload["exp"], start_time().unix_timestamp() + 180);
}

fn parse(pem: &str) -> SigningKey {
    SigningKey::from_pem(pem).unwrap_or_else(|e| panic!("refused: {e}\n{pem}"))
}

fn key_error(pem: impl AsRef<[u8]>) -> KeyError {
    match SigningKey::from_pem(pem) {
        Err(e) => e,
        Ok(key) => panic!("accepted: {key:?}"),
    }
}

fn file_error(name: &str) -> KeyError {
    match SigningKey::from_pem_file(fixture_path(name)) {
        Err(e) => e,
        Ok(key) => panic!("{name} accepted: {key:?}"),
    }
}

const RSA_KEYS: [&str; 2] = ["test_rsa_pkcs1.pem", "test_rsa_pkcs8.pem"];

#[test]
fn pkcs1_and_pkcs8_files_sign_verifiable_assertions() {
    for name in RSA_KEYS {
        let key = SigningKey::from_pem_file(fixture_path(name)).unwrap();
        assert!(key.origin().contains(name), "{}", key.origin());
        assert_signs_verifiably(&key);
    }
}

#[test]
fn the_wrong_key_does_not_verify() {
    // The check in the helpers can fail: an unrelated key's signature is refused.
    let key = SigningKey::from_pem_file(fixture_path("other_rsa_pkcs1.pem")).unwrap();
    let claims = Claims::new("c", "u", "a", start_time(), Duration::from_secs(60));
    let jwt = assertion::sign(&claims, &key).unwrap();
    assert!(verify_signature(jwt.expose_secret()).is_err());
}

#[test]
fn mangled_but_intact_pems_are_accepted() {
    for name in RSA_KEYS {
        let pem = fixture(name);
        let variants = [
            ("CRLF", pem.replace('\n', "\r\n")),
            ("surrounding whitespace", format!("\n\n  \t{pem}\n\n   \n")),
            ("single line", pem.replace('\n', "")),
            ("spaces for newlines", pem.replace('\n', " ")),
            ("literal \\n", pem.replace('\n', "\\n")),
            ("literal \\r\\n", pem.replace('\n', "\\r\\n")),
            ("no trailing newline", pem.trim_end().to_string()),
            (
                "indented lines",
                pem.lines().map(|l| format!("    {l}\n")).collect(),
            ),
        ];
        for (what, variant) in variants {
            assert_ne!(variant, pem, "{what}");
            let key = SigningKey::from_pem(&variant)
                .unwrap_or_else(|e| panic!("{name}, {what}: refused: {e}"));
            assert_signs_verifiably(&key);
        }
    }
}

#[test]
fn a_bundle_with_a_certificate_and_the_key_uses_the_key() {
    for name in RSA_KEYS {
        let cert = fixture("test_rsa_cert.pem");
        let key = fixture(name);
        assert_signs_verifiably(&parse(&format!("{cert}{key}")));
        assert_signs_verifiably(&parse(&format!("{key}\n{cert}")));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any re-wrapping of the base64 body (line width, line ends) still parses to the same key.
    #[test]
    fn any_line_wrapping_is_accepted(width in 1usize..=120, crlf in any::<bool>(), pkcs8 in any::<bool>()) {
        let pem = fixture(RSA_KEYS[usize::from(pkcs8)]);
        let lines: Vec<&str> = pem.lines().collect();
        let body: String = lines[1..lines.len() - 1].concat();
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut rewrapped = format!("{}{eol}", lines[0]);
        for chunk in body.as_bytes().chunks(width) {
            rewrapped.push_str(std::str::from_utf8(chunk).unwrap());
            rewrapped.push_str(eol);
        }
        rewrapped.push_str(lines[lines.len() - 1]);
        rewrapped.push_str(eol);
        let key = SigningKey::from_pem(&rewrapped);
        prop_assert!(key.is_ok(), "{:?}", key.err());
        assert_signs_verifiably(&key.unwrap());
    }
}

// ---- errors ----

#[test]
fn a_missing_file_names_its_path() {
    let path = fixture_path("no_such_key.pem");
    let error = SigningKey::from_pem_file(&path).unwrap_err();
    match &error {
        KeyError::Unreadable { path: p, source } => {
            assert_eq!(p, &path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    let text = error.to_string();
    assert!(text.contains(path.to_str().unwrap()), "{text}");
    assert!(text.contains("SF_CLIENT_KEY_PATH"), "{text}");
}

#[test]
fn an_empty_file_or_pem_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.pem");
    std::fs::write(&path, "").unwrap();
    let error = SigningKey::from_pem_file(&path).unwrap_err();
    assert!(
        matches!(&error, KeyError::Empty { origin } if origin.contains("empty.pem")),
        "{error:?}"
    );
    assert!(error.to_string().contains("is empty"), "{error}");

    for blank in ["", " \n\t\r\n "] {
        let error = key_error(blank);
        assert!(matches!(error, KeyError::Empty { .. }), "{error:?}");
    }
}

#[test]
fn a_public_key_is_named_as_such() {
    let error = file_error("test_rsa_public.pem");
    assert!(matches!(error, KeyError::PublicKey { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("is a public key"), "{text}");
    assert!(text.contains("BEGIN PRIVATE KEY"), "{text}");

    // The PKCS#1 public label too.
    let relabelled = fixture("test_rsa_public.pem").replace("PUBLIC KEY", "RSA PUBLIC KEY");
    assert!(matches!(key_error(relabelled), KeyError::PublicKey { .. }));
}

#[test]
fn a_certificate_is_named_as_such() {
    let error = file_error("test_rsa_cert.pem");
    assert!(matches!(error, KeyError::Certificate { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("is a certificate"), "{text}");
    assert!(text.contains("private key it was made from"), "{text}");
}

#[test]
fn encrypted_keys_say_how_to_decrypt() {
    let error = file_error("test_rsa_encrypted_pkcs8.pem");
    assert!(matches!(error, KeyError::Encrypted { .. }), "{error:?}");
    assert!(error.to_string().contains("openssl pkcs8"), "{error}");

    let error = file_error("test_rsa_encrypted_pkcs1.pem");
    assert!(matches!(error, KeyError::Encrypted { .. }), "{error:?}");
    assert!(error.to_string().contains("openssl rsa"), "{error}");

    // Still recognised when pasted on one line.
    let one_line = fixture("test_rsa_encrypted_pkcs1.pem").replace('\n', "\\n");
    assert!(matches!(key_error(one_line), KeyError::Encrypted { .. }));
}

#[test]
fn non_rsa_keys_say_what_they_are() {
    for (name, kind) in [
        ("test_ec.pem", "an EC key"),
        ("test_ed25519_pkcs8.pem", "an Ed25519 key"),
    ] {
        let error = file_error(name);
        match &error {
            KeyError::NotRsa { kind: k, .. } => assert_eq!(k, kind, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        let text = error.to_string();
        assert!(text.contains(kind), "{text}");
        assert!(text.contains("RS256"), "{text}");
        assert!(text.contains("openssl genrsa"), "{text}");
    }
}

#[test]
fn garbage_is_malformed() {
    for garbage in [
        "hello world",
        "MIIEogIBAAKCAQEA0w9dJWqoJTJJnT0npYMcCUXbxPo3pQwZEh4VK3tyeYDgSojJ",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ user@host",
    ] {
        let error = key_error(garbage);
        match &error {
            KeyError::Malformed { reason, .. } => {
                assert!(reason.contains("-----BEGIN"), "{reason}")
            }
            other => panic!("{garbage}: {other:?}"),
        }
    }
    let error = key_error([0xff, 0xfe, 0x00, 0x41]);
    assert!(matches!(error, KeyError::Malformed { .. }), "{error:?}");
    // Binary DER gets the conversion command.
    let error = key_error([0x30, 0x82, 0x04, 0xa2, 0x02, 0x01, 0x00]);
    match &error {
        KeyError::Malformed { reason, .. } => assert!(reason.contains("DER"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // An OpenSSH key gets the conversion command.
    let error = key_error(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    );
    match &error {
        KeyError::Malformed { reason, .. } => assert!(reason.contains("ssh-keygen"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn damaged_base64_is_malformed() {
    for name in RSA_KEYS {
        let pem = fixture(name);
        let lines: Vec<&str> = pem.lines().collect();
        // A character that is not base64 in the body.
        let mut bad = lines.clone();
        let damaged = format!("{}!{}", &lines[3][..10], &lines[3][11..]);
        bad[3] = &damaged;
        let error = key_error(bad.join("\n"));
        match &error {
            KeyError::Malformed { reason, .. } => assert!(reason.contains("base64"), "{reason}"),
            other => panic!("{name}: {other:?}"),
        }
        // A lost character: the length is no longer a multiple of 4.
        let shortened = format!("{}{}", &lines[5][..20], &lines[5][21..]);
        let mut bad = lines.clone();
        bad[5] = &shortened;
        let error = key_error(bad.join("\n"));
        assert!(
            matches!(error, KeyError::Malformed { .. }),
            "{name}: {error:?}"
        );
        // Whole lines lost: valid base64, but the DER is cut off.
        let mut cut = lines.clone();
        cut.drain(4..8);
        let error = key_error(cut.join("\n"));
        match &error {
            KeyError::Malformed { reason, .. } => {
                assert!(reason.contains("its body is damaged"), "{name}: {reason}")
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

fn relabel(pem: &str, from: &str, to: &str) -> String {
    pem.replace(&format!("BEGIN {from}"), &format!("BEGIN {to}"))
        .replace(&format!("END {from}"), &format!("END {to}"))
}

fn body_lines() -> Vec<String> {
    common::private_pem_body_lines()
}

#[test]
fn a_mislabelled_pem_says_so_rather_than_naming_another_algorithm() {
    let cases = [
        (
            relabel(
                &fixture("test_rsa_pkcs1.pem"),
                "RSA PRIVATE KEY",
                "PRIVATE KEY",
            ),
            "labelled `PRIVATE KEY` but holds a PKCS#1",
            "-----BEGIN RSA PRIVATE KEY-----",
        ),
        (
            relabel(
                &fixture("test_rsa_pkcs8.pem"),
                "PRIVATE KEY",
                "RSA PRIVATE KEY",
            ),
            "labelled `RSA PRIVATE KEY` but holds a PKCS#8",
            "-----BEGIN PRIVATE KEY-----",
        ),
    ];
    for (pem, says, fix) in cases {
        let error = key_error(&pem);
        let text = error.to_string();
        assert!(matches!(error, KeyError::Malformed { .. }), "{error:?}");
        assert!(text.contains(says) && text.contains(fix), "{text}");
        assert!(!text.contains("another algorithm"), "{text}");
        for line in body_lines() {
            assert!(!text.contains(&line), "key material in {text}");
        }
    }
}

#[test]
fn a_damaged_body_says_so_rather_than_naming_another_algorithm() {
    let pem = fixture("test_rsa_pkcs8.pem");
    let lines: Vec<&str> = pem.lines().collect();
    // The first body line changed (a copy that mangled the start): still valid base64.
    let altered = format!("AAAA{}", &lines[1][4..]);
    let mut bad = lines.clone();
    bad[1] = &altered;
    // Only the first lines survived a copy.
    let mut cut = lines[..3].to_vec();
    cut.push(lines[lines.len() - 1]);
    for damaged in [bad.join("\n"), cut.join("\n")] {
        let error = key_error(&damaged);
        let text = error.to_string();
        assert!(text.contains("its body is damaged"), "{text}");
        assert!(!text.contains("another algorithm"), "{text}");
    }
}

#[test]
fn origin_names_where_the_key_came_from() {
    let key = SigningKey::from_pem(fixture("test_rsa_pkcs1.pem")).unwrap();
    assert_eq!(key.origin(), "the in-memory PEM");
    let error = key_error(fixture("test_rsa_cert.pem"));
    assert!(error.to_string().contains("the in-memory PEM"), "{error}");
    let error = file_error("test_rsa_cert.pem");
    assert!(error.to_string().contains("test_rsa_cert.pem"), "{error}");
}

#[test]
fn a_damaged_begin_line_is_named_without_echoing_the_body() {
    let pem = fixture("test_rsa_pkcs1.pem");
    for damaged in [
        pem.replacen("KEY-----", "KEY----", 1),
        pem.replacen(
            "-----BEGIN RSA PRIVATE KEY-----",
            "-----BEGIN RSA PRIVATE KEY",
            1,
        ),
        pem.replacen("KEY-----", "KEY----", 1).replace('\n', ""),
    ] {
        let error = key_error(&damaged);
        match &error {
            KeyError::Malformed { reason, .. } => {
                assert!(
                    reason.contains("BEGIN ...-----` line is damaged"),
                    "{reason}"
                );
                assert!(!reason.contains("MIIE"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
