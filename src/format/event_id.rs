//! Deterministic `event.id`s: the same row or record gets the same id however often, and from
//! whichever file or query, it is collected, so a SIEM can use it as the document `_id` and
//! drop repeats.
//!
//! # Log-file rows
//!
//! Salesforce gives a log-file row no key of its own: `REQUEST_ID` repeats within a file
//! (a Logout file logs several sessions ended by one request; UITracking files hold several
//! rows per request and `TIMESTAMP`), and the EventLogFile `Id`, `Sequence` and line change when
//! Salesforce publishes the same events again (a late hourly file, the daily file of the same
//! day). So the id is a fingerprint of the row's own content ([`log_row_event_id`]):
//!
//! - SHA-256 over `salesforce-jwt:EventLogFile:v1`, then the file's `EventType`, then every
//!   **non-empty** column as (header name, raw text) pairs **sorted by header name** (byte
//!   order), each string preceded by its length as 8 bytes, big-endian;
//! - the first 16 bytes (128 bits) of the digest, as 32 lower-case hex digits.
//!
//! The identifying columns (`ORGANIZATION_ID`, `EVENT_TYPE`, `TIMESTAMP`,
//! `TIMESTAMP_DERIVED`, `REQUEST_ID`, `USER_ID`, `SESSION_KEY`, `LOGIN_KEY`) are all part of
//! it, but only the whole row is unique: rows that differ in any column get different ids. Two
//! rows identical in every column get the same id; nothing in the data tells them apart, and
//! a SIEM keeping one of them loses nothing. Sorting and skipping empty columns keep the id
//! the same when a file lists its columns in another order or adds a column that is empty.
//! The raw text is hashed, not the typed value, so the id does not depend on number or date
//! formatting.
//!
//! # Queried records (Real-Time Event Monitoring storage, SetupAuditTrail)
//!
//! [`object_event_id`], the first that applies:
//!
//! 1. `SetupAuditTrail` and the Threat Detection stores (`ApiAnomalyEventStore`,
//!    `CredentialStuffingEventStore`, `ReportAnomalyEventStore`, `SessionHijackingEventStore`,
//!    ...): their `Id`, a real record Id.
//! 2. `EventIdentifier`, Salesforce's "unique identifier for each record", as it is.
//! 3. `Id`, unless it is the empty Id (`000000000000000` or `000000000000000AAA`) that big
//!    objects return for every row.
//! 4. A fingerprint: SHA-256 over `salesforce-jwt:object:v1`, the object name, then `EventDate`
//!    (as RFC 3339 UTC with milliseconds), `UserId`, `SessionKey`, `LoginKey` and `SourceIp`,
//!    each as its name and value length-prefixed as above (a missing or null field as an empty
//!    value), first 128 bits in hex.
//!
//! ```
//! use salesforce_jwt::format::event_id::object_event_id;
//!
//! let login: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
//!     r#"{"EventIdentifier":"95eeec6d-1e93-46c1-882b-88bd28f7f8de","Id":"000000000000000AAA"}"#,
//! )?;
//! assert_eq!(object_event_id("LoginEvent", &login), "95eeec6d-1e93-46c1-882b-88bd28f7f8de");
//! # Ok::<(), serde_json::Error>(())
//! ```

use aws_lc_rs::digest::{Context, Digest, SHA256, digest};
use serde_json::{Map, Value};

use crate::datetime;
use crate::format::names::is_threat_detection;
use crate::format::rfc3339_millis;
use crate::format::row::{LogFileInfo, LogRecord};

/// Bytes of the digest kept: 128 bits, far beyond any org's row count for collisions.
const ID_BYTES: usize = 16;

/// The fields of the fallback fingerprint for event objects without an `EventIdentifier`.
const OBJECT_FINGERPRINT_FIELDS: &[&str] =
    &["EventDate", "UserId", "SessionKey", "LoginKey", "SourceIp"];

struct Fingerprint(Context);

impl Fingerprint {
    fn new(domain: &str) -> Self {
        let mut context = Context::new(&SHA256);
        context.update(domain.as_bytes());
        Fingerprint(context)
    }

    /// A length-prefixed string: no two sequences of strings feed the same bytes.
    fn push(&mut self, s: &str) {
        self.0.update(&(s.len() as u64).to_be_bytes());
        self.0.update(s.as_bytes());
    }

    fn finish(self) -> String {
        self.finish_hex().as_str().to_string()
    }

    fn finish_hex(self) -> HexId {
        HexId::new(&self.0.finish())
    }
}

/// A fingerprint id (32 lower-case hex digits) held on the stack: the encoders write one per
/// row, and a `String` each would be an allocation per row.
#[derive(Clone, Copy)]
pub(crate) struct HexId([u8; ID_BYTES * 2]);

impl HexId {
    /// The first [`ID_BYTES`] of `digest` in lower-case hex.
    fn new(digest: &Digest) -> Self {
        let mut hex = [0u8; ID_BYTES * 2];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(digest.as_ref()) {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0xf)];
        }
        HexId(hex)
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The `event.id` of a log-file row: a fingerprint of the file's `EventType` and the row's
/// non-empty columns, the same for the same row in any file (see the [module](self) docs for
/// the exact rule).
pub fn log_row_event_id<F: LogFileInfo + ?Sized>(file: &F, row: &LogRecord) -> String {
    let mut fields: Vec<(&str, &str)> = row.iter().collect();
    fields.sort_unstable();
    let mut fingerprint = Fingerprint::new(LOG_ROW_DOMAIN);
    fingerprint.push(file.event_type());
    for (name, value) in fields {
        fingerprint.push(name);
        fingerprint.push(value);
    }
    fingerprint.finish()
}

/// Appends `s` to a fingerprint's message as [`Fingerprint::push`] feeds it: the message of
/// [`log_row_event_id`] built in one buffer and hashed in one call by [`hex_digest`], which
/// gives the same id without a hash update per string.
#[inline]
pub(crate) fn push_prefixed(message: &mut Vec<u8>, s: &[u8]) {
    message.extend_from_slice(&(s.len() as u64).to_be_bytes());
    message.extend_from_slice(s);
}

/// The domain [`log_row_event_id`]'s message starts with.
pub(crate) const LOG_ROW_DOMAIN: &str = "salesforce-jwt:EventLogFile:v1";

/// The id of a whole fingerprint message (domain included), as [`Fingerprint::finish`] writes it.
pub(crate) fn hex_digest(message: &[u8]) -> HexId {
    // One shot: no `Context` to set up and copy per row.
    HexId::new(&digest(&SHA256, message))
}

/// The `event.id` of a queried record of `sobject_type` (`attributes` dropped or not: it is
/// not read). See the [module](self) docs for the rule.
pub fn object_event_id(sobject_type: &str, record: &Map<String, Value>) -> String {
    let text = |name: &str| {
        record
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let has_record_id = sobject_type == "SetupAuditTrail" || is_threat_detection(sobject_type);
    if let Some(id) = text("Id").filter(|_| has_record_id) {
        return id.to_string();
    }
    if let Some(id) = text("EventIdentifier") {
        return id.to_string();
    }
    if let Some(id) = text("Id").filter(|id| !id.starts_with("000000000000000")) {
        return id.to_string();
    }
    let mut fingerprint = Fingerprint::new("salesforce-jwt:object:v1");
    fingerprint.push(sobject_type);
    for &name in OBJECT_FINGERPRINT_FIELDS {
        fingerprint.push(name);
        match record.get(name) {
            None | Some(Value::Null) => fingerprint.push(""),
            Some(Value::String(s)) if name == "EventDate" => match datetime::parse(s) {
                // `2021-10-19T11:38:54Z` and `2021-10-19T11:38:54.000+0000` are one instant.
                Ok(t) => fingerprint.push(&rfc3339_millis(t)),
                Err(_) => fingerprint.push(s),
            },
            Some(Value::String(s)) => fingerprint.push(s),
            Some(other) => fingerprint.push(&other.to_string()),
        }
    }
    fingerprint.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn objects_without_an_event_identifier_get_a_fingerprint() {
        let a = record(
            json!({"EventDate":"2021-10-19T11:38:54Z","UserId":"005A","SessionKey":"s",
            "LoginKey":"k","SourceIp":"1.2.3.4","Id":"000000000000000AAA","EventIdentifier":null}),
        );
        let same_instant = record(
            json!({"EventDate":"2021-10-19T11:38:54.000+0000","UserId":"005A",
            "SessionKey":"s","LoginKey":"k","SourceIp":"1.2.3.4"}),
        );
        let other_session = record(json!({"EventDate":"2021-10-19T11:38:54Z","UserId":"005A",
            "SessionKey":"t","LoginKey":"k","SourceIp":"1.2.3.4"}));
        let id = object_event_id("LogoutEvent", &a);
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(object_event_id("LogoutEvent", &same_instant), id);
        assert_ne!(object_event_id("LogoutEvent", &other_session), id);
        assert_ne!(object_event_id("LoginEvent", &a), id);
    }

    #[test]
    fn stores_use_their_id_and_big_objects_their_event_identifier() {
        let r = record(json!({"Id":"0Ym5j000019nwonCAA","EventIdentifier":"e-1"}));
        assert_eq!(object_event_id("SetupAuditTrail", &r), "0Ym5j000019nwonCAA");
        assert_eq!(
            object_event_id("SessionHijackingEventStore", &r),
            "0Ym5j000019nwonCAA"
        );
        assert_eq!(object_event_id("LoginEvent", &r), "e-1");
        let no_identifier = record(json!({"Id":"0Ym5j000019nwonCAA","EventIdentifier":""}));
        assert_eq!(
            object_event_id("ApiEvent", &no_identifier),
            "0Ym5j000019nwonCAA"
        );
    }
}
