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
//!
//! ```
//! use salesforce_jwt::objects::{BigObjectQuery, EventObject, ObjectKind};
//! use salesforce_jwt::time::macros::datetime;
//!
//! let login = EventObject::named("LoginEvent").unwrap();
//! assert_eq!(login.kind(), ObjectKind::BigObject);
//! // Big objects take an EventDate window, newest first: the only shape they accept.
//! let soql = BigObjectQuery::new(&login)?
//!     .window(datetime!(2025-06-10 11:00 UTC), datetime!(2025-06-10 12:00 UTC))
//!     .to_soql()?;
//! assert!(soql.contains("ORDER BY EventDate DESC"), "{soql}");
//! # Ok::<(), salesforce_jwt::Error>(())
//! ```

pub(crate) mod event_log_catalogue;
pub(crate) mod fetch;
mod model;
mod object;
mod query;
mod record;

pub use model::{LoginEvent, LogoutEvent, SetupAuditTrail};
pub use object::{EventObject, ObjectKind, Retention};
pub use query::{BigObjectQuery, FieldSelection, KeysetQuery, KeysetStart, datetime_millis};
pub use record::ObjectRecord;
