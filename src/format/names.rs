//! Field and data set names: Salesforce's `USER_NAME` / `LoginType` to ECS-style snake_case.

use std::fmt::{self, Write as _};

use serde::{Serialize, Serializer};

/// `USER_NAME` -> `user_name`, `LoginType` -> `login_type`, `UITracking` -> `ui_tracking`,
/// `URI_ID_DERIVED` -> `uri_id_derived`, `BulkApi2` -> `bulk_api2`, `Foo__c` -> `foo__c`.
///
/// An underscore goes before an upper-case letter that follows a lower-case letter or a digit,
/// or that starts a word after a run of capitals (`UITracking`: before the `T`).
pub(crate) fn snake_case(name: &str) -> String {
    SnakeCase(name).to_string()
}

/// [`snake_case`] as a `Display`, so a serializer writes the name without a `String`.
pub(crate) struct SnakeCase<'a>(pub(crate) &'a str);

impl fmt::Display for SnakeCase<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0.as_bytes();
        // Only ASCII bytes are looked at as neighbours, and a UTF-8 continuation byte is never
        // an ASCII letter, so indexing by byte is safe for any name.
        for (i, c) in self.0.char_indices() {
            if c.is_ascii_uppercase() && i > 0 {
                let prev = bytes[i - 1];
                let next_lower = bytes.get(i + 1).is_some_and(u8::is_ascii_lowercase);
                if prev.is_ascii_lowercase()
                    || prev.is_ascii_digit()
                    || (prev.is_ascii_uppercase() && next_lower)
                {
                    f.write_char('_')?;
                }
            }
            f.write_char(c.to_ascii_lowercase())?;
        }
        Ok(())
    }
}

impl Serialize for SnakeCase<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The data set of an EventLogFile `EventType`: the `salesforce.<dataset>` of its documents.
///
/// The Apex types share `apex` (as in Elastic's integration); every other type is its own
/// data set, named in snake_case (`Login` -> `login`, `RestApi` -> `rest_api`, `API` -> `api`).
pub(crate) fn log_file_dataset(event_type: &str) -> String {
    if event_type.starts_with("Apex") || event_type == "ExternalCustomApexCallout" {
        return "apex".to_string();
    }
    snake_case(event_type)
}

/// The Threat Detection storage objects: standard objects with a real `Id`, whose records are
/// detections rather than activity.
pub(crate) const THREAT_DETECTION_STORES: &[&str] = &[
    "ApiAnomalyEventStore",
    "CredentialStuffingEventStore",
    "GuestUserAnomalyEventStore",
    "LoginAnomalyEventStore",
    "ReportAnomalyEventStore",
    "SessionHijackingEventStore",
];

/// Whether `sobject_type` is one of the [`THREAT_DETECTION_STORES`].
pub(crate) fn is_threat_detection(sobject_type: &str) -> bool {
    THREAT_DETECTION_STORES.contains(&sobject_type)
}

/// The data set of a queried object: `LoginEvent` -> `login`, `LogoutEvent` -> `logout`,
/// `SetupAuditTrail` -> `setupaudittrail` (Elastic's name), `ApiAnomalyEventStore` ->
/// `api_anomaly`, `LightningUriEvent` -> `lightning_uri`; otherwise the name in snake_case.
pub(crate) fn object_dataset(sobject_type: &str) -> String {
    if sobject_type == "SetupAuditTrail" {
        return "setupaudittrail".to_string();
    }
    let stem = sobject_type
        .strip_suffix("EventStore")
        .or_else(|| sobject_type.strip_suffix("Event"))
        .filter(|s| !s.is_empty())
        .unwrap_or(sobject_type);
    snake_case(stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_names() {
        for (from, to) in [
            ("USER_NAME", "user_name"),
            ("LoginType", "login_type"),
            ("EventIdentifier", "event_identifier"),
            ("TlsProtocol", "tls_protocol"),
            ("URI_ID_DERIVED", "uri_id_derived"),
            ("UITracking", "ui_tracking"),
            ("API", "api"),
            ("RestApi", "rest_api"),
            ("BulkApi2", "bulk_api2"),
            ("Foo__c", "foo__c"),
            ("SourceIp", "source_ip"),
            ("HTTPMethod", "http_method"),
            ("Id", "id"),
        ] {
            assert_eq!(snake_case(from), to, "{from}");
        }
    }

    #[test]
    fn datasets() {
        assert_eq!(log_file_dataset("Login"), "login");
        assert_eq!(log_file_dataset("ApexCallout"), "apex");
        assert_eq!(log_file_dataset("ApexUnexpectedException"), "apex");
        assert_eq!(log_file_dataset("RestApi"), "rest_api");
        assert_eq!(log_file_dataset("URI"), "uri");
        assert_eq!(object_dataset("LoginEvent"), "login");
        assert_eq!(object_dataset("LogoutEvent"), "logout");
        assert_eq!(object_dataset("LoginAsEvent"), "login_as");
        assert_eq!(object_dataset("SetupAuditTrail"), "setupaudittrail");
        assert_eq!(
            object_dataset("SessionHijackingEventStore"),
            "session_hijacking"
        );
        assert_eq!(object_dataset("Event"), "event");
    }
}
