//! Event Log Objects (`LoginEventLog`, `ApiTotalUsageEventLog`, `RestApiEventLog`...): much of
//! the log-file data as standard objects queried with SOQL, on Hyperforce orgs from API 61.0.
//!
//! - [`catalogue`] and [`fields`]: the objects Salesforce documents, with the fields the
//!   object reference lists where this crate knows them. Each is also an
//!   [`EventObject`](crate::objects::EventObject) of kind
//!   [`ObjectKind::EventLogObject`](crate::objects::ObjectKind::EventLogObject), which is how
//!   the collector takes them.
//! - [`EventLogObjectQuery`]: a SOQL builder that can only emit the shape the platform accepts:
//!   `WHERE Timestamp > a AND Timestamp <= b` (exactly two `Timestamp` filters, a window of at
//!   most [`MAX_WINDOW`]), `ORDER BY Timestamp ASC, Id ASC`; no `!=`, `OFFSET`, `HAVING` or
//!   relationship fields.
//!
//! The platform's rules: "You can query up to 15 days of data at a time using the Timestamp
//! filter"; "When there are 3 or more Timestamp filters in the WHERE clause, we block the
//! execution of the query"; "!= isn't supported"; relationship queries, HAVING and OFFSET are
//! not supported; a missing bound silently means 15 days in its direction (so an open-ended
//! `Timestamp > since` would read only 15 days). Rows are retained for 30 days
//! ([`RETENTION`]) and become queryable 25-45 minutes after their `Timestamp`
//! ([`PUBLICATION_DELAY`]). Reading them needs the View Event Log Object Data permission (or
//! the Event Monitoring User permission set) and Shield or the Event Monitoring add-on.
//!
//! This module only reads Salesforce; collecting the objects exactly once (windows, overlap,
//! deduplication by `Id`) is the engine's:
//! [`Collector::with_sources`](crate::collect::Collector::with_sources).
//!
//! ```
//! use salesforce_jwt::event_log_objects::EventLogObjectQuery;
//! use salesforce_jwt::objects::{EventObject, ObjectKind};
//! use salesforce_jwt::time::macros::datetime;
//!
//! let login = EventObject::named("LoginEventLog").unwrap();
//! assert_eq!(login.kind(), ObjectKind::EventLogObject);
//! let soql = EventLogObjectQuery::new(&login)?
//!     .window(datetime!(2025-06-10 11:00 UTC), datetime!(2025-06-10 12:00 UTC))
//!     .to_soql()?;
//! assert_eq!(
//!     soql,
//!     "SELECT FIELDS(STANDARD) FROM LoginEventLog WHERE Timestamp > 2025-06-10T11:00:00.000Z \
//!      AND Timestamp <= 2025-06-10T12:00:00.000Z ORDER BY Timestamp ASC, Id ASC"
//! );
//! # Ok::<(), salesforce_jwt::Error>(())
//! ```

mod query;

pub use crate::objects::event_log_catalogue::{
    MIN_API_VERSION, PUBLICATION_DELAY, RETENTION, catalogue, check_api_version, fields,
};
pub use query::{EventLogObjectQuery, MAX_WINDOW};
