//! Configuration and key errors: each problem names its field and its fix.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// One or more configuration problems, each naming its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Every problem found, in field order.
    pub problems: Vec<ConfigProblem>,
}

/// A single configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The field, as the caller named it: a builder method (`token_url`) or an environment
    /// variable (`SF_TOKEN_URL`).
    pub field: String,
    /// What is wrong and how to fix it.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(
                f,
                "invalid Salesforce JWT configuration: {}: {}",
                one.field, one.problem
            ),
            many => {
                write!(
                    f,
                    "invalid Salesforce JWT configuration ({} problems):",
                    many.len()
                )?;
                for p in many {
                    write!(f, "\n  - {}: {}", p.field, p.problem)?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Why a private key could not be used. `origin` names where the key came from (a file path or
/// "the in-memory PEM").
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file could not be read.
    #[error(
        "cannot read the client key file {}: {source}. Check the path (SF_CLIENT_KEY_PATH) and \
         that this process may read it",
        path.display()
    )]
    Unreadable {
        /// The path that was tried.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The key is empty.
    #[error("the client key from {origin} is empty: it must hold a PEM RSA private key")]
    Empty {
        /// Where the key came from.
        origin: String,
    },
    /// A public key was given where the private key belongs.
    #[error(
        "the client key from {origin} is a public key. Give the RSA private key whose \
         certificate was uploaded to the External Client App (a PEM starting with \
         `-----BEGIN PRIVATE KEY-----` or `-----BEGIN RSA PRIVATE KEY-----`)"
    )]
    PublicKey {
        /// Where the key came from.
        origin: String,
    },
    /// A certificate was given where the private key belongs.
    #[error(
        "the client key from {origin} is a certificate. The certificate is what you upload to the \
         External Client App; this setting needs the RSA private key it was made from"
    )]
    Certificate {
        /// Where the key came from.
        origin: String,
    },
    /// The key is encrypted with a passphrase.
    #[error(
        "the client key from {origin} is encrypted. Decrypt it once with \
         `openssl pkcs8 -in encrypted.pem -out key.pem` (PKCS#8) or \
         `openssl rsa -in encrypted.pem -out key.pem` (PKCS#1) and keep the result where only \
         this service can read it"
    )]
    Encrypted {
        /// Where the key came from.
        origin: String,
    },
    /// The key is not an RSA key.
    #[error(
        "the client key from {origin} is {kind}, not an RSA key. Salesforce's JWT bearer flow \
         only accepts RS256: create an RSA key (`openssl genrsa -out key.pem 2048`), upload a \
         certificate made from it to the External Client App, and use that key"
    )]
    NotRsa {
        /// Where the key came from.
        origin: String,
        /// What it is instead.
        kind: String,
    },
    /// The content is not a usable PEM private key.
    #[error(
        "the client key from {origin} is not a PEM RSA private key: {reason}. Expected a file \
         starting with `-----BEGIN PRIVATE KEY-----` or `-----BEGIN RSA PRIVATE KEY-----`"
    )]
    Malformed {
        /// Where the key came from.
        origin: String,
        /// What is wrong.
        reason: String,
    },
}
