//! # salesforce-jwt
//!
//! Salesforce OAuth 2.0 JWT bearer authentication and exactly-once collection of Event
//! Monitoring logs (`EventLogFile`), for services that feed a SIEM.
//!
//! From the six fields a Salesforce administrator hands over (JWT audience URL, client key,
//! username, client ID, instance URL, token URL) the crate builds and signs assertions,
//! exchanges them for access tokens, caches and refreshes them (one request however many tasks
//! ask at once), and makes authorized requests that survive expired sessions.
//!
//! ```no_run
//! # async fn run() -> Result<(), salesforce_jwt::Error> {
//! use salesforce_jwt::{JwtBearerClient, JwtBearerConfig};
//!
//! // SF_AUDIENCE_URL, SF_CLIENT_KEY_PATH, SF_USERNAME, SF_CLIENT_ID, SF_INSTANCE_URL, SF_TOKEN_URL
//! let config = JwtBearerConfig::from_env()?;
//! let client = JwtBearerClient::new(config)?;
//! let token = client.access_token().await?;
//! println!("authenticated to org {}", token.org_id().unwrap_or("?"));
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![deny(clippy::await_holding_lock)]

pub mod assertion;
mod client;
pub mod clock;
pub mod collect;
mod config;
pub mod datetime;
mod error;
#[deprecated(
    since = "0.1.0",
    note = "the EventLogFile source is salesforce_jwt::event_log_file, the engine salesforce_jwt::collect, the NDJSON sinks salesforce_jwt::sink"
)]
pub mod event_log;
pub mod event_log_file;
pub mod format;
pub mod key;
pub mod objects;
mod query;
#[deprecated(
    since = "0.1.0",
    note = "the objects source is salesforce_jwt::objects, their collection salesforce_jwt::collect"
)]
pub mod realtime;
mod retry;
pub mod sink;
pub mod soql;
mod token;
mod token_cache;

pub use client::{InstanceRequest, JwtBearerClient, JwtBearerClientBuilder};
pub use config::{
    DEFAULT_API_VERSION, ENV_VARS, JwtBearerConfig, JwtBearerConfigBuilder, RetryPolicy,
};
pub use error::{
    ApiError, ApiUsage, ConfigError, ConfigProblem, Error, KeyError, OAuthError, OAuthErrorKind,
};
pub use key::SigningKey;
pub use query::QueryOptions;
pub use token::AccessToken;

// The types of other crates that this crate's API makes users name, so that they need not add
// (and keep in step) those crates themselves. The crates too, for everything else in them.
pub use bytes::{self, Bytes};
pub use futures_util::{Stream, StreamExt, TryStreamExt};
pub use reqwest::header::{HeaderName, HeaderValue};
pub use reqwest::{self, ClientBuilder, Method, Response, StatusCode};
pub use time::{self, OffsetDateTime};
pub use url::{self, Url};

/// The README's Rust examples, compiled and run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
