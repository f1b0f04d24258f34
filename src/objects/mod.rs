//! Real-Time Event Monitoring storage objects (`LoginEvent`, `ApiEvent`, `FileEventStore`...),
//! the threat-detection stores (`ApiAnomalyEventStore`...) and `SetupAuditTrail`, queried over
//! the REST API and collected exactly once.
//!
//! - [`EventObject`]: the catalogue, with each object's [`ObjectKind`] (big or standard), which
//!   decides the SOQL it accepts.
//! - [`ObjectRecord`] for any row; [`LoginEvent`], [`LogoutEvent`], [`SetupAuditTrail`] typed.
//! - [`BigObjectQuery`] and [`KeysetQuery`]: SOQL builders that can only emit accepted shapes.
//!
//! This module only reads Salesforce. Collecting the objects exactly once (windows, keysets,
//! overlap and deduplication) is the engine's: [`Collector::with_sources`](crate::collect::Collector::with_sources).
//!
//! Reading these objects needs the Salesforce Shield or Event Monitoring add-on and the View
//! Real-Time Event Monitoring Data permission; storage is switched on per object in Setup >
//! Event Manager.

pub(crate) mod fetch;
mod model;
mod object;
mod query;
mod record;

pub use model::{LoginEvent, LogoutEvent, SetupAuditTrail};
pub use object::{EventObject, ObjectKind, Retention};
pub use query::{BigObjectQuery, FieldSelection, KeysetQuery, KeysetStart, datetime_millis};
pub use record::ObjectRecord;
