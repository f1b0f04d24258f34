//! The catalogue of Real-Time Event Monitoring storage objects, threat-detection stores and
//! `SetupAuditTrail`, with the kind of object each one is (which decides how it may be queried).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How an object is stored, which decides the SOQL it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ObjectKind {
    /// A Real-Time Event Monitoring big object (`LoginEvent`, `ApiEvent`, `FileEventStore`...).
    /// Salesforce accepts a filter on `EventDate` alone (or `EventDate` with `EventIdentifier`),
    /// only `ORDER BY EventDate DESC`, and no aggregates: rows are collected in `EventDate`
    /// windows and deduplicated by `EventIdentifier`.
    BigObject,
    /// An ordinary object (the threat-detection `*EventStore` objects, `SetupAuditTrail`): any
    /// filter and order. Rows are collected by a `(CreatedDate, Id)` keyset.
    Standard,
    /// An Event Log Object (`LoginEventLog`, `ApiTotalUsageEventLog`...; API 61.0+, Hyperforce
    /// orgs): queried in `Timestamp` windows of at most 15 days with exactly two `Timestamp`
    /// filters, ordered by `Timestamp, Id`, deduplicated by `Id` (see
    /// [`event_log_objects`](crate::event_log_objects)).
    EventLogObject,
}

impl ObjectKind {
    /// `big object` or `standard object`, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            ObjectKind::BigObject => "big object",
            ObjectKind::Standard => "standard object",
            ObjectKind::EventLogObject => "Event Log Object",
        }
    }
}

/// How long Salesforce keeps an object's rows (Real-Time Event Monitoring Data Storage table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Retention {
    /// About six months.
    SixMonths,
    /// Up to ten years.
    TenYears,
    /// "At least the last 180 days" (`SetupAuditTrail`).
    AtLeast180Days,
    /// Up to 30 days (Event Log Objects).
    ThirtyDays,
    /// Not known to this crate (an object the user named).
    Unknown,
}

impl Retention {
    /// The retention as a duration, when known (a month counted as 30 days, a year as 365).
    pub fn approx(self) -> Option<Duration> {
        const DAY: u64 = 24 * 3600;
        match self {
            Retention::SixMonths => Some(Duration::from_secs(182 * DAY)),
            Retention::TenYears => Some(Duration::from_secs(3650 * DAY)),
            Retention::AtLeast180Days => Some(Duration::from_secs(180 * DAY)),
            Retention::ThirtyDays => Some(Duration::from_secs(30 * DAY)),
            Retention::Unknown => None,
        }
    }
}

/// A queryable object to collect: its API name, kind and retention.
///
/// The catalogue ([`EventObject::catalogue`], [`EventObject::named`]) knows the objects
/// Salesforce documents; any other name is accepted with the kind the caller states
/// ([`EventObject::custom`]), so an object added in a later release needs no new crate version.
///
/// ```
/// use salesforce_jwt::objects::{EventObject, ObjectKind};
///
/// let login = EventObject::named("LoginEvent").unwrap();
/// assert_eq!(login.kind(), ObjectKind::BigObject);
/// let trail = EventObject::named("setupaudittrail").unwrap();
/// assert_eq!(trail.name(), "SetupAuditTrail");
/// let newer = EventObject::custom("My_Store__c", ObjectKind::Standard).unwrap();
/// assert_eq!(newer.kind(), ObjectKind::Standard);
/// let log = EventObject::named("LoginEventLog").unwrap();
/// assert_eq!(log.kind(), ObjectKind::EventLogObject);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventObject {
    name: String,
    kind: ObjectKind,
    retention: Retention,
}

/// The objects Salesforce documents, with their kind and retention.
const CATALOGUE: &[(&str, ObjectKind, Retention)] = &[
    ("LoginEvent", ObjectKind::BigObject, Retention::TenYears),
    ("LogoutEvent", ObjectKind::BigObject, Retention::SixMonths),
    ("LoginAsEvent", ObjectKind::BigObject, Retention::SixMonths),
    ("ApiEvent", ObjectKind::BigObject, Retention::SixMonths),
    ("ReportEvent", ObjectKind::BigObject, Retention::SixMonths),
    ("UriEvent", ObjectKind::BigObject, Retention::SixMonths),
    (
        "LightningUriEvent",
        ObjectKind::BigObject,
        Retention::SixMonths,
    ),
    ("ListViewEvent", ObjectKind::BigObject, Retention::SixMonths),
    (
        "BulkApiResultEventStore",
        ObjectKind::BigObject,
        Retention::SixMonths,
    ),
    (
        "FileEventStore",
        ObjectKind::BigObject,
        Retention::SixMonths,
    ),
    (
        "PermissionSetEventStore",
        ObjectKind::BigObject,
        Retention::SixMonths,
    ),
    (
        "IdentityProviderEventStore",
        ObjectKind::BigObject,
        Retention::SixMonths,
    ),
    (
        "IdentityVerificationEvent",
        ObjectKind::BigObject,
        Retention::TenYears,
    ),
    (
        "ApiAnomalyEventStore",
        ObjectKind::Standard,
        Retention::SixMonths,
    ),
    (
        "CredentialStuffingEventStore",
        ObjectKind::Standard,
        Retention::SixMonths,
    ),
    (
        "ReportAnomalyEventStore",
        ObjectKind::Standard,
        Retention::SixMonths,
    ),
    (
        "SessionHijackingEventStore",
        ObjectKind::Standard,
        Retention::SixMonths,
    ),
    (
        "SetupAuditTrail",
        ObjectKind::Standard,
        Retention::AtLeast180Days,
    ),
];

impl EventObject {
    /// Every real-time object of the catalogue, big objects first, then the standard ones
    /// (the threat-detection stores and SetupAuditTrail). The Event Log Objects, which
    /// [`named`](Self::named) also knows, are listed by
    /// [`event_log_objects::catalogue`](crate::event_log_objects::catalogue) (or
    /// [`with_event_log_objects`](Self::with_event_log_objects)).
    pub fn catalogue() -> Vec<EventObject> {
        CATALOGUE
            .iter()
            .map(|(name, kind, retention)| EventObject {
                name: (*name).to_string(),
                kind: *kind,
                retention: *retention,
            })
            .collect()
    }

    /// [`catalogue`](Self::catalogue) followed by every Event Log Object.
    pub fn with_event_log_objects() -> Vec<EventObject> {
        let mut all = Self::catalogue();
        all.extend(
            crate::objects::event_log_catalogue::catalogue().map(|name| EventObject {
                name: name.to_string(),
                kind: ObjectKind::EventLogObject,
                retention: Retention::ThirtyDays,
            }),
        );
        all
    }

    /// The catalogue's object of that name (case-insensitive, as Salesforce's names are), or
    /// `None` for a name it does not know: use [`custom`](Self::custom) for those.
    pub fn named(name: &str) -> Option<EventObject> {
        Self::with_event_log_objects()
            .into_iter()
            .find(|o| o.name.eq_ignore_ascii_case(name.trim()))
    }

    /// An object the catalogue does not know, of the kind the caller states. A catalogue name
    /// keeps the catalogue's retention but takes the stated kind (the platform then decides:
    /// a big object queried as a standard one is refused with `BIG_OBJECT_UNSUPPORTED_OPERATION`).
    ///
    /// The name must be a Salesforce API name (letters, digits and underscores, starting with a
    /// letter), since it goes into SOQL as it is.
    pub fn custom(name: &str, kind: ObjectKind) -> Result<EventObject, crate::Error> {
        let name = name.trim();
        if !is_api_name(name) {
            return Err(crate::Error::InvalidArgument(format!(
                "object name {name:?} is not a Salesforce API name: use letters, digits and \
                 underscores, starting with a letter (for example LoginEvent or My_Event__b)"
            )));
        }
        // The object's own name, which is also its checkpoint key (`EventLogFile`).
        if name.eq_ignore_ascii_case("EventLogFile") {
            // Its files are downloaded, not queried as rows, and its checkpoint key is taken.
            return Err(crate::Error::InvalidArgument(
                "EventLogFile is not a real-time object: collect it with the Collector \
                 (Collector::with_sources takes it beside the objects)"
                    .to_string(),
            ));
        }
        let retention = Self::named(name).map_or(Retention::Unknown, |o| o.retention);
        Ok(EventObject {
            name: name.to_string(),
            kind,
            retention,
        })
    }

    /// The API name, `LoginEvent`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Big object or standard object.
    pub fn kind(&self) -> ObjectKind {
        self.kind
    }

    /// How long Salesforce keeps the rows.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// The Setup step that turns storage on for this object: a big object with storage off
    /// answers every query with zero rows, indistinguishable from a quiet org.
    pub fn storage_hint(&self) -> String {
        match self.kind {
            ObjectKind::BigObject => format!(
                "if {name} should have rows, check that storage is enabled: Setup > Event \
                 Manager, enable storage for {name} (needs Customize Application and View \
                 Real-Time Event Monitoring Data), and that the integration user has View \
                 Real-Time Event Monitoring Data",
                name = self.name
            ),
            ObjectKind::Standard => format!(
                "if {name} should have rows, check that the integration user can see it (View \
                 Real-Time Event Monitoring Data for threat-detection stores, View Setup and \
                 Configuration for SetupAuditTrail) and, for threat-detection stores, that \
                 storage is enabled in Setup > Event Manager",
                name = self.name
            ),
            ObjectKind::EventLogObject => format!(
                "if {name} should have rows, check that the org is on Hyperforce (Event Log \
                 Objects exist nowhere else, nor in Government Cloud), has Shield or the Event \
                 Monitoring add-on, and that the integration user has View Event Log Object \
                 Data (or the Event Monitoring User permission set)",
                name = self.name
            ),
        }
    }
}

impl fmt::Display for EventObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// A Salesforce API name: what may go into SOQL unquoted as an object or field name.
/// Relationship paths (`CreatedBy.Username`) are API names joined by dots.
pub(crate) fn is_api_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            let mut chars = part.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_kinds_and_names() {
        let all = EventObject::catalogue();
        assert_eq!(all.len(), 18);
        let logs = crate::objects::event_log_catalogue::catalogue().count();
        assert_eq!(
            EventObject::with_event_log_objects()
                .iter()
                .filter(|o| o.kind() == ObjectKind::EventLogObject)
                .count(),
            logs
        );
        assert_eq!(
            EventObject::named("apitotalusageeventlog").map(|o| (o.kind(), o.retention())),
            Some((ObjectKind::EventLogObject, Retention::ThirtyDays))
        );
        assert_eq!(
            all.iter()
                .filter(|o| o.kind() == ObjectKind::BigObject)
                .count(),
            13
        );
        assert_eq!(
            EventObject::named("ApiAnomalyEventStore").map(|o| o.kind()),
            Some(ObjectKind::Standard)
        );
        assert_eq!(
            EventObject::named("LoginEvent").map(|o| o.retention()),
            Some(Retention::TenYears)
        );
        assert!(EventObject::named("LoginEventStream").is_none());
        assert!(EventObject::custom("Bad Name", ObjectKind::Standard).is_err());
        assert!(EventObject::custom("x;DELETE", ObjectKind::Standard).is_err());
        // Its checkpoint key belongs to the EventLogFile collector.
        let taken = EventObject::custom("EventLogFile", ObjectKind::Standard).unwrap_err();
        assert!(
            taken.to_string().contains("Collector::with_sources"),
            "{taken}"
        );
        assert!(is_api_name("CreatedBy.Username"));
        assert!(!is_api_name("CreatedBy..Username"));
    }
}
