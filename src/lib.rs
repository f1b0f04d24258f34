//! # salesforce-jwt
//!
//! Salesforce OAuth 2.0 JWT bearer authentication and exactly-once collection of Salesforce's
//! security logs (EventLogFile, the Real-Time Event Monitoring storage objects,
//! SetupAuditTrail), for services that feed a SIEM.
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
//!
//! # The modules
//!
//! Every arrow points down: a source only reads Salesforce, the engine moves rows from the
//! sources into a sink, and a sink only writes.
//!
//! | layer | module | what it holds |
//! |---|---|---|
//! | requests | crate root | [`JwtBearerConfig`], [`JwtBearerClient`] (token cache, authorized requests, [`query`](JwtBearerClient::query) streams, API usage and budget) |
//! | | [`key`], [`assertion`] | the RSA signing key, the signed JWT |
//! | | [`soql`], [`datetime`], [`clock`] | SOQL literals, Salesforce's datetime forms, the time tests move |
//! | sources | [`event_log_file`] | EventLogFile: listing, streaming download, CSV decoding |
//! | | [`objects`] | real-time storage objects, threat-detection stores, SetupAuditTrail: catalogue, SOQL, rows |
//! | engine | [`collect`] | [`Collector`](collect::Collector), the one [`Sink`](collect::Sink) trait, the pass loop, [`Checkpoint`](collect::Checkpoint) and its stores, [`Progress`](collect::Progress) |
//! | outputs | [`sink`] | NDJSON to a file (exactly once) or a stream (at least once) |
//! | | [`format`](mod@format) | NDJSON and ECS encoders over [`format::row`], with deterministic `event.id`s |
//!
//! `event_log` and `realtime` are the former homes of these items, kept one release as
//! deprecated re-exports.
//!
//! Each module's page opens with an example; this one collects a mock org's log file (the org
//! double of the `salesforce-jwt-mock` crate) exactly once:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), salesforce_jwt::Error> {
//! use std::sync::atomic::AtomicBool;
//! use salesforce_jwt::collect::{Collector, CollectorOptions, MemoryCheckpointStore};
//! use salesforce_jwt::event_log_file::EventLogFileQuery;
//! use salesforce_jwt::sink::NdjsonSink;
//! use salesforce_jwt::{JwtBearerClient, OffsetDateTime};
//! use salesforce_jwt_mock::{MockLogFile, MockOrg};
//!
//! let org = MockOrg::start().await;
//! let yesterday = (OffsetDateTime::now_utc() - time::Duration::DAY).replace_time(time::Time::MIDNIGHT);
//! org.add_file(MockLogFile::builder("Login").log_date(yesterday).rows(3).build());
//!
//! let client = JwtBearerClient::new(org.config_builder().build()?)?;
//! let store = MemoryCheckpointStore::new();
//! let mut collector =
//!     Collector::new(client, EventLogFileQuery::new(), store.clone(), CollectorOptions::default())?;
//! let mut sink = NdjsonSink::new(Vec::new());
//! let summary = collector.run_pass(&mut sink, &mut |_| {}, &AtomicBool::new(false)).await?;
//! assert_eq!((summary.files, summary.rows), (1, 3));
//! assert_eq!(String::from_utf8_lossy(&sink.into_inner()).lines().count(), 3);
//!
//! // The checkpoint remembers the file: the next pass delivers nothing again.
//! let summary = collector.run_pass(&mut NdjsonSink::new(Vec::new()), &mut |_| {}, &AtomicBool::new(false)).await?;
//! assert_eq!(summary.rows, 0);
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
