//! # salesforce-jwt-postgres
//!
//! PostgreSQL state for many `salesforce-jwt` collectors sharing many orgs:
//!
//! - [`PgStore::connect`] creates or upgrades the schema (versioned, idempotent, safe to run from several
//!   processes at once);
//! - [`Lease`]s with fencing: one holder per `(org, source)` at a time, renewed while it works,
//!   taken over by any other process once it expires; every checkpoint write carries the lease's
//!   fencing token and is refused when a newer holder exists, so a paused or partitioned process
//!   can never move a cursor back or write behind the new holder; a [`LeaseHolder`] claims one,
//!   renews it in the background and says when it was lost;
//! - fenced checkpoints ([`PgStore::load_checkpoint`], [`PgStore::save_checkpoint`]) and the
//!   `salesforce_events` table, written in the same transaction as the checkpoint
//!   ([`PgStore::commit`], [`PgStore::deliver`]), which makes collection exactly-once end to
//!   end; a row already there (Salesforce publishes the same rows in a daily and an hourly
//!   file) counts as delivered, and U+0000, which `jsonb` refuses, is stored escaped
//!   ([`escape_nul`]);
//! - [`PgCheckpointStore`] and [`PgSink`]: the library's `CheckpointStore` and `Sink` over
//!   all of this, for a `Collector`, driven by a [`PgWorker`] thread;
//! - a [`Balancer`]: every live collector process heartbeats a row, counts the live ones and
//!   holds about its [`fair_share`] of the leases, handing the surplus over when one joins and
//!   taking a dead one's share over once its leases expire.
//!
//! Lease expiry is judged by the database's clock (`now()`), the same for every process however
//! their own clocks are set. A holder judges its own lease by its own
//! [`Clock`](salesforce_jwt::clock::Clock) only from below: counted from before each claim or
//! renewal was sent, so it stops before the database lets anyone take over. Either way, the
//! fencing token decides who may write.
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![deny(clippy::await_holding_lock)]

mod balance;
mod collect;
mod connect;
mod error;
mod holder;
mod inspect;
mod lease;
mod nul;
mod passfile;
mod schema;
mod store;
mod tls;
mod worker;

pub use balance::{Balancer, LiveCollectors, fair_share, unit_set_id};
pub use collect::{PG_OUTPUT, PgCheckpointStore, PgSink};
pub use connect::PgTarget;
pub use error::PgError;
pub use holder::{Claim, HeldLease, LeaseBusy, LeaseHolder, LeaseLoss};
pub use inspect::{StoredCheckpoint, stored_checkpoints};
pub use lease::{DEFAULT_LEASE_TTL, Lease, LeaseTimeouts, new_holder_id, process_holder_id};
pub use nul::{NUL_ESCAPED_KEY, escape_nul, unescape_nul};
pub use schema::SCHEMA_VERSION;
pub use store::{Delivered, EventRow, PgStore};
pub use tls::SslMode;
pub use worker::PgWorker;
