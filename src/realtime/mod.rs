//! Real-Time Event Monitoring storage objects (`LoginEvent`, `ApiEvent`, `FileEventStore`...),
//! the threat-detection stores (`ApiAnomalyEventStore`...) and `SetupAuditTrail`, queried over
//! the REST API and collected exactly once.
//!
//! - [`EventObject`]: the catalogue, with each object's [`ObjectKind`] (big or standard), which
//!   decides the SOQL it accepts.
//! - [`ObjectRecord`] for any row; [`LoginEvent`], [`LogoutEvent`], [`SetupAuditTrail`] typed.
//! - [`BigObjectQuery`] and [`KeysetQuery`]: SOQL builders that can only emit accepted shapes.
//! - [`ObjectCollector`]: windows, keysets, overlap and deduplication, delivering into an
//!   [`ObjectSink`] and saving each source's position in the same
//!   [`Checkpoint`](crate::event_log::Checkpoint) as EventLogFile's, under the object's API
//!   name ([`BigObjectState`] or [`KeysetState`]).
//!
//! Reading these objects needs the Salesforce Shield or Event Monitoring add-on and the View
//! Real-Time Event Monitoring Data permission; storage is switched on per object in Setup >
//! Event Manager.

pub(crate) mod collector;
mod fetch;
mod model;
mod object;
mod options;
mod query;
mod record;
mod sink;
mod state;

pub use collector::ObjectCollector;
pub use model::{LoginEvent, LogoutEvent, SetupAuditTrail};
pub use object::{EventObject, ObjectKind, Retention};
pub use options::{ObjectCollectorOptions, ObjectPassSummary, ObjectSummary};
pub use query::{BigObjectQuery, FieldSelection, KeysetQuery, KeysetStart, datetime_millis};
pub use record::ObjectRecord;
pub use sink::{Batch, NdjsonObjectRow, ObjectSink};
pub use state::{BigObjectState, KeysetPosition, KeysetState, QuietWatch, SkippedWindow};
