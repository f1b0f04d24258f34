//! # salesforce-jwt-elasticsearch
//!
//! An exactly-once Elasticsearch/OpenSearch sink for `salesforce-jwt` collectors: [`EsSink`]
//! implements the library's one `Sink` trait (EventLogFile rows, Real-Time Event Monitoring
//! objects, SetupAuditTrail) and sends every row as an ECS document in a `_bulk`
//! `create` action to the data stream `logs-<data_stream.dataset>-<namespace>`, with `_id` =
//! the document's `event.id`.
//!
//! ## Why this is exactly once
//!
//! A `create` of an `_id` that exists is answered `409` and changes nothing, so sending a
//! document twice stores it once. The sink's commit of a file (or real-time window) returns
//! only once every item of it was answered `201` (created) or `409` (already delivered); the
//! collector saves the checkpoint after that. A process killed anywhere before the save
//! delivers the unit again on restart, and whatever had landed is absorbed by the `409`s.
//!
//! Items answered `429` or `5xx` are sent again on their own, with exponential backoff; an item
//! once answered `201` or `409` is never sent again. Whole requests answered `502`/`503`/`504`/
//! `429`, and connections cut before the answer, are sent again whole. A request answered `413`
//! is split in halves. A document refused for good (a `400` such as `mapper_parsing_exception`)
//! fails the commit with its `event.id` and Elasticsearch's reason, so the checkpoint does not
//! pass it, unless a dead-letter file is configured ([`EsConfig::dead_letter`]), where it is
//! written (and synced before the commit returns) instead.
//!
//! Request bodies are gzip-compressed and bounded in bytes ([`EsConfig::max_batch_bytes`], at
//! most [`MAX_REQUEST_BYTES`] uncompressed), so memory stays bounded whatever the file's size.
//!
//! [`index_template`] is the index template for `logs-salesforce.*` that fixes the types of the
//! fields the documents hold, for clusters without Elastic's Salesforce integration;
//! [`EsClient::put_index_template`] installs it.
//!
//! With the feature `testing`, [`testing::EsDouble`] is an Elasticsearch double for tests.
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![deny(clippy::await_holding_lock)]

mod client;
mod config;
mod error;
mod route;
mod sink;
mod template;
#[cfg(feature = "testing")]
pub mod testing;

pub use client::EsClient;
pub use config::{
    Credentials, DEFAULT_BATCH_BYTES, DEFAULT_NAMESPACE, EsConfig, MAX_REQUEST_BYTES, RetryPolicy,
};
pub use error::EsError;
pub use route::data_stream_name;
pub use sink::{EsSink, SinkStats};
pub use template::{INDEX_TEMPLATE_NAME, index_template};
