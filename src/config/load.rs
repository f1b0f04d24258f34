//! Loading a configuration: the `SF_*` environment variables, and the private key read from
//! its file or PEM text.

use super::{FieldNames, JwtBearerConfig, KeySource};
use crate::error::{ConfigProblem, Error, KeyError};
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
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut b = JwtBearerConfig::builder().field_names(FieldNames::ENV);
        b.audience = get("SF_AUDIENCE_URL");
        b.username = get("SF_USERNAME");
        b.client_id = get("SF_CLIENT_ID");
        b.instance_url = get("SF_INSTANCE_URL");
        b.token_url = get("SF_TOKEN_URL");
        b.api_version = get("SF_API_VERSION");
        match (get("SF_CLIENT_KEY_PATH"), get("SF_CLIENT_KEY_PEM")) {
            (Some(path), None) => b.key = Some(KeySource::Path(path.into())),
            (None, Some(pem)) => {
                b.names.key = "SF_CLIENT_KEY_PEM";
                b.key = Some(KeySource::Pem(pem));
            }
            (None, None) => b.names.key = "SF_CLIENT_KEY_PATH (or SF_CLIENT_KEY_PEM)",
            (Some(_), Some(_)) => {
                b.key = Some(KeySource::Conflicting);
                b.extra_problems.push(ConfigProblem {
                    field: "SF_CLIENT_KEY_PATH".into(),
                    problem: "both SF_CLIENT_KEY_PATH and SF_CLIENT_KEY_PEM are set; set only one"
                        .into(),
                });
            }
        }
        b.build()
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
        Some(KeySource::Conflicting) => None,
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
