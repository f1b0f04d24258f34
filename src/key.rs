//! The client's RSA private key, read once from PEM.
//!
//! Accepts PKCS#1 (`BEGIN RSA PRIVATE KEY`) and PKCS#8 (`BEGIN PRIVATE KEY`), with CRLF line ends,
//! surrounding whitespace, literal `\n` sequences (a PEM pasted into an environment variable) or
//! its line breaks lost altogether. Everything else gets its own [`KeyError`] that says what the
//! file is and what to give instead.
//!
//! ```
//! use salesforce_jwt::SigningKey;
//!
//! let pem = std::fs::read("tests/fixtures/test_rsa_pkcs8.pem").unwrap();
//! let key = SigningKey::from_pem(&pem)?;
//! // Debug output never shows the key.
//! assert!(!format!("{key:?}").contains("PRIVATE"));
//! let error = SigningKey::from_pem("-----BEGIN PUBLIC KEY-----").unwrap_err();
//! assert!(error.to_string().contains("public key"), "{error}");
//! # Ok::<(), salesforce_jwt::KeyError>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};

use crate::error::KeyError;

/// DER encoding of the rsaEncryption object identifier (1.2.840.113549.1.1.1), which a PKCS#8
/// RSA key carries in its AlgorithmIdentifier.
const RSA_ENCRYPTION_OID: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
/// id-ecPublicKey (1.2.840.10045.2.1).
const EC_PUBLIC_KEY_OID: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// id-Ed25519 (1.3.101.112).
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// An RSA private key ready to sign RS256 assertions.
///
/// Its Debug output names where the key came from and nothing of the key itself.
#[derive(Clone)]
pub struct SigningKey {
    encoding: Arc<EncodingKey>,
    origin: Arc<str>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("origin", &self.origin)
            .field("key", &"** redacted **")
            .finish()
    }
}

impl SigningKey {
    /// Reads a PEM key file.
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<SigningKey, KeyError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| KeyError::Unreadable {
            path: PathBuf::from(path),
            source: Arc::new(source),
        })?;
        Self::parse(&bytes, &format!("file {}", path.display()))
    }

    /// Parses PEM text held in memory (for example from a secret manager).
    pub fn from_pem(pem: impl AsRef<[u8]>) -> Result<SigningKey, KeyError> {
        Self::parse(pem.as_ref(), "the in-memory PEM")
    }

    /// Where the key came from, for messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    fn parse(bytes: &[u8], origin: &str) -> Result<SigningKey, KeyError> {
        let origin_owned = || origin.to_string();
        let malformed = |reason: &str| KeyError::Malformed {
            origin: origin.to_string(),
            reason: reason.to_string(),
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(KeyError::Empty {
                origin: origin_owned(),
            });
        }
        // DER starts with a SEQUENCE tag (0x30, also the digit '0') and holds bytes no text has.
        if bytes.first() == Some(&0x30) && bytes.iter().any(|b| !b.is_ascii()) {
            return Err(malformed(
                "it looks like binary DER; convert it with `openssl pkey -inform DER -in key.der \
                 -out key.pem`",
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| malformed("it is not text"))?;
        // Environment variables and JSON secrets often carry the PEM with literal "\n".
        let text = text.replace("\\r\\n", "\n").replace("\\n", "\n");
        let blocks = pem_blocks(&text);
        if blocks.is_empty() {
            return Err(malformed("no `-----BEGIN ...-----` line was found"));
        }
        // A bundle may hold a certificate next to the key: the private key wins.
        let block = blocks
            .iter()
            .find(|b| b.label.contains("PRIVATE KEY"))
            .unwrap_or(&blocks[0]);
        if !plausible_label(&block.label) {
            return Err(malformed(
                "its `-----BEGIN ...-----` line is damaged: the label must be followed by five \
                 dashes, like `-----BEGIN PRIVATE KEY-----`",
            ));
        }
        match block.label.as_str() {
            "RSA PRIVATE KEY" if block.encrypted_header => Err(KeyError::Encrypted {
                origin: origin_owned(),
            }),
            "ENCRYPTED PRIVATE KEY" => Err(KeyError::Encrypted {
                origin: origin_owned(),
            }),
            "PUBLIC KEY" | "RSA PUBLIC KEY" => Err(KeyError::PublicKey {
                origin: origin_owned(),
            }),
            "CERTIFICATE" | "TRUSTED CERTIFICATE" | "X509 CERTIFICATE" => {
                Err(KeyError::Certificate {
                    origin: origin_owned(),
                })
            }
            "EC PRIVATE KEY" => Err(not_rsa(origin, "an EC key")),
            "DSA PRIVATE KEY" => Err(not_rsa(origin, "a DSA key")),
            "OPENSSH PRIVATE KEY" => Err(KeyError::Malformed {
                origin: origin_owned(),
                reason: "it is in OpenSSH format; convert an RSA one with `ssh-keygen -p -m PEM \
                         -f key` (this rewrites the file in place), or create a new RSA key"
                    .to_string(),
            }),
            "RSA PRIVATE KEY" | "PRIVATE KEY" => {
                let der = base64::engine::general_purpose::STANDARD
                    .decode(&block.body)
                    .map_err(|_| malformed("its base64 body is damaged"))?;
                check_structure(&block.label, &der, origin)?;
                let canonical = to_pem(&block.label, &block.body);
                let encoding = EncodingKey::from_rsa_pem(canonical.as_bytes())
                    .map_err(|e| malformed(&format!("it is not a valid RSA key ({e})")))?;
                // Sign once now so that a damaged key fails when the client is built, not at
                // the first token request.
                jsonwebtoken::crypto::sign(b"probe", &encoding, Algorithm::RS256)
                    .map_err(|e| malformed(&format!("it cannot sign ({e})")))?;
                Ok(SigningKey {
                    encoding: Arc::new(encoding),
                    origin: Arc::from(origin),
                })
            }
            other => Err(malformed(&format!("it holds a `{other}` block"))),
        }
    }
}

fn not_rsa(origin: &str, kind: &str) -> KeyError {
    KeyError::NotRsa {
        origin: origin.to_string(),
        kind: kind.to_string(),
    }
}

/// One DER element: (tag, content, what follows).
fn der_element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // Long form: the low bits say how many length bytes follow; keys need at most 2.
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 2 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// Checks the key's outline before the RSA parser sees it, so that a damaged body, a PKCS#1 key
/// under a PKCS#8 label (or the reverse) and a key of another algorithm each get their own
/// message. PKCS#1 is `SEQUENCE { INTEGER version, INTEGER n, ... }`; PKCS#8 is
/// `SEQUENCE { INTEGER version, SEQUENCE { OID algorithm, ... }, OCTET STRING key }`.
fn check_structure(label: &str, der: &[u8], origin: &str) -> Result<(), KeyError> {
    let malformed = |reason: String| KeyError::Malformed {
        origin: origin.to_string(),
        reason,
    };
    let damaged = || {
        malformed(
            "its body is damaged (truncated, or bytes changed in copying): the base64 decodes, \
             but not to a key; copy the whole file again"
                .to_string(),
        )
    };
    let (tag, content, trailing) = der_element(der).ok_or_else(damaged)?;
    if tag != 0x30 || !trailing.is_empty() {
        return Err(damaged());
    }
    let (version_tag, _, rest) = der_element(content).ok_or_else(damaged)?;
    if version_tag != 0x02 {
        return Err(damaged());
    }
    let (second_tag, algorithm, _) = der_element(rest).ok_or_else(damaged)?;
    let relabel = |holds: &str, other: &str| {
        malformed(format!(
            "it is labelled `{label}` but holds a {holds} key: change its BEGIN and END lines \
             to `-----BEGIN {other}-----` and `-----END {other}-----`"
        ))
    };
    match (label, second_tag) {
        ("PRIVATE KEY", 0x02) => Err(relabel("PKCS#1 (RSA PRIVATE KEY)", "RSA PRIVATE KEY")),
        ("RSA PRIVATE KEY", 0x30) => Err(relabel("PKCS#8 (PRIVATE KEY)", "PRIVATE KEY")),
        ("RSA PRIVATE KEY", 0x02) => Ok(()),
        ("PRIVATE KEY", 0x30) => {
            let (oid_tag, oid, _) = der_element(algorithm).ok_or_else(damaged)?;
            if oid_tag != 0x06 || oid.is_empty() {
                return Err(damaged());
            }
            let is = |known: &[u8]| known.get(2..) == Some(oid);
            if is(RSA_ENCRYPTION_OID) {
                Ok(())
            } else if is(EC_PUBLIC_KEY_OID) {
                Err(not_rsa(origin, "an EC key"))
            } else if is(ED25519_OID) {
                Err(not_rsa(origin, "an Ed25519 key"))
            } else {
                Err(not_rsa(origin, "a key of another algorithm"))
            }
        }
        _ => Err(damaged()),
    }
}

/// RFC 7468 labels are short runs of capitals, digits, spaces and hyphens. Anything else means
/// the BEGIN line lost some of its dashes and the label search ran on into the key material,
/// which must never be echoed in an error message.
fn plausible_label(label: &str) -> bool {
    label.len() <= 40
        && label
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ' || b == b'-')
}

struct PemBlock {
    label: String,
    body: String,
    encrypted_header: bool,
}

/// Finds `-----BEGIN X-----` ... `-----END X-----` blocks without relying on line breaks, so a PEM
/// whose newlines were lost or turned into spaces still parses.
fn pem_blocks(text: &str) -> Vec<PemBlock> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = after[..label_end].trim().to_string();
        let content_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = content_start.find(&end_marker) else {
            // No END line: treat everything after BEGIN as the body and let base64 decide.
            blocks.push(block_from(label, content_start));
            break;
        };
        blocks.push(block_from(label, &content_start[..end]));
        rest = &content_start[end + end_marker.len()..];
    }
    blocks
}

fn block_from(label: String, content: &str) -> PemBlock {
    let encrypted_header = content.contains("Proc-Type:") && content.contains("ENCRYPTED");
    let body = content
        .lines()
        .filter(|line| !line.contains(':'))
        .flat_map(|line| line.split_whitespace())
        .collect::<String>();
    PemBlock {
        label,
        body,
        encrypted_header,
    }
}

fn to_pem(label: &str, body: &str) -> String {
    let mut out = format!("-----BEGIN {label}-----\n");
    let bytes = body.as_bytes();
    for chunk in bytes.chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
