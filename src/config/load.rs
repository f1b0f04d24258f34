//! Loading a configuration: the `SF_*` environment variables, and the private key read from
//! its file or PEM text.

use std::path::PathBuf;

use super::{FieldNames, JwtBearerConfig, KeySource};
use crate::error::{Error, KeyError};
use crate::key::SigningKey;

/// The names of the environment variables [`JwtBearerConfig::from_env`] reads.
pub const ENV_VARS: [&str; 8] = [
    "SF_AUDIENCE_URL",
    "SF_CLIENT_KEY_PATH",
    "SF_CLIENT_KEY_PEM",
    "SF_USERNAME",
    "SF_CLIENT_ID",
    "SF_INSTANCE_URL",
    "SF_TOKEN_URL",
    "SF_API_VERSION",
];

impl JwtBearerConfig {
    /// Reads the configuration from the environment:
    ///
    /// | variable | field |
    /// |---|---|
    /// | `SF_AUDIENCE_URL` | JWT audience URL |
    /// | `SF_CLIENT_KEY_PATH` or `SF_CLIENT_KEY_PEM` | the private key, as a file path or the PEM itself |
    /// | `SF_USERNAME` | the integration user's username |
    /// | `SF_CLIENT_ID` | the app's consumer key |
    /// | `SF_INSTANCE_URL` | the org's instance (My Domain) URL |
    /// | `SF_TOKEN_URL` | the token endpoint, or its host |
    /// | `SF_API_VERSION` | optional, default [`DEFAULT_API_VERSION`](super::DEFAULT_API_VERSION) |
    ///
    /// Every missing or invalid variable is reported in the one error.
    pub fn from_env() -> Result<JwtBearerConfig, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup` (for tests, or a
    /// secret store with the same names).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<JwtBearerConfig, Error> {
        let names = FieldNames::ENV;
        JwtBearerConfig::builder()
            .names(names)
            .settings_from(&lookup)
            .client_key_from(
                lookup(names.client_key_path)
                    .filter(|v| !v.trim().is_empty())
                    .map(PathBuf::from),
                lookup(names.client_key_pem).map(Ok),
            )
            .build()
    }
}

/// The signing key from its source, read and parsed now, so that a bad key fails at startup
/// rather than at the first token request.
pub(super) fn read_key(
    source: Option<KeySource>,
    field: &str,
    problem: &mut impl FnMut(&str, String),
) -> Option<SigningKey> {
    match source {
        Some(KeySource::Parsed(k)) => Some(k),
        Some(KeySource::Path(p)) => key_or_problem(SigningKey::from_pem_file(&p), field, problem),
        Some(KeySource::Pem(pem)) => key_or_problem(SigningKey::from_pem(pem), field, problem),
        Some(KeySource::Conflicting | KeySource::PemUnavailable) => None,
        None => {
            problem(field, "is required: the RSA private key whose certificate was uploaded to the External Client App".into());
            None
        }
    }
}

fn key_or_problem(
    key: Result<SigningKey, KeyError>,
    field: &str,
    problem: &mut impl FnMut(&str, String),
) -> Option<SigningKey> {
    match key {
        Ok(k) => Some(k),
        Err(e) => {
            problem(field, e.to_string());
            None
        }
    }
}
