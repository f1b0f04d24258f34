//! Typed rows for the objects whose fields Salesforce documents: [`LoginEvent`],
//! [`LogoutEvent`] and [`SetupAuditTrail`]. Every other object is read as an
//! [`ObjectRecord`](crate::objects::ObjectRecord).
//!
//! Fields a row may lack are `Option`; fields the structs do not name are kept in `other`, so
//! nothing a newer API version adds is lost.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// A `LoginEvent` row (API 36.0+): one login to the org, successful or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct LoginEvent {
    /// The unique identifier of the event: the primary key (`Id` is not one).
    pub event_identifier: String,
    /// When the login happened, millisecond precision.
    #[serde(with = "crate::datetime")]
    pub event_date: OffsetDateTime,
    /// When the stored row was written; lags `EventDate` by seconds.
    #[serde(
        default,
        with = "crate::datetime::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_date: Option<OffsetDateTime>,
    /// Always `000000000000000AAA` on big objects.
    #[serde(default, deserialize_with = "opt_text")]
    pub id: Option<String>,
    /// The user's Id.
    #[serde(default, deserialize_with = "opt_text")]
    pub user_id: Option<String>,
    /// The username.
    #[serde(default, deserialize_with = "opt_text")]
    pub username: Option<String>,
    /// The first IP address to reach Salesforce (the first proxy's).
    #[serde(default, deserialize_with = "opt_text")]
    pub source_ip: Option<String>,
    /// `X-Forwarded-For` (API 61.0+).
    #[serde(default, deserialize_with = "opt_text")]
    pub forwarded_for_ip: Option<String>,
    /// `Remote Access 2.0`, `Application`, `SAML Sfdc Initiated SSO`...
    #[serde(default, deserialize_with = "opt_text")]
    pub login_type: Option<String>,
    /// The login subtype.
    #[serde(default, deserialize_with = "opt_text")]
    pub login_sub_type: Option<String>,
    /// `Success` or the failure reason (`Failed: Missing Consumer Key Parameter`).
    #[serde(default, deserialize_with = "opt_text")]
    pub status: Option<String>,
    /// The browser, `Chrome 77`, `Unknown`.
    #[serde(default, deserialize_with = "opt_text")]
    pub browser: Option<String>,
    /// The platform, `Mac OSX`, `Unknown`.
    #[serde(default, deserialize_with = "opt_text")]
    pub platform: Option<String>,
    /// The application used to log in.
    #[serde(default, deserialize_with = "opt_text")]
    pub application: Option<String>,
    /// The login host, `login.salesforce.com`.
    #[serde(default, deserialize_with = "opt_text")]
    pub login_url: Option<String>,
    /// The session key; often null on LoginEvent (the session does not exist yet).
    #[serde(default, deserialize_with = "opt_text")]
    pub session_key: Option<String>,
    /// Ties the events of one login session together.
    #[serde(default, deserialize_with = "opt_text")]
    pub login_key: Option<String>,
    /// ISO 3166 country code.
    #[serde(default, deserialize_with = "opt_text")]
    pub country_iso: Option<String>,
    /// Country name.
    #[serde(default, deserialize_with = "opt_text")]
    pub country: Option<String>,
    /// City.
    #[serde(default, deserialize_with = "opt_text")]
    pub city: Option<String>,
    /// Latitude of the login (sometimes sent as text).
    #[serde(default, deserialize_with = "opt_number")]
    pub login_latitude: Option<f64>,
    /// Longitude of the login (sometimes sent as text).
    #[serde(default, deserialize_with = "opt_number")]
    pub login_longitude: Option<f64>,
    /// Correlates with `LoginHistory` and `AuthSession`.
    #[serde(default, deserialize_with = "opt_text")]
    pub login_history_id: Option<String>,
    /// `TLS 1.2`, `TLS 1.3`, `Unknown`.
    #[serde(default, deserialize_with = "opt_text")]
    pub tls_protocol: Option<String>,
    /// OpenSSL-style cipher suite.
    #[serde(default, deserialize_with = "opt_text")]
    pub cipher_suite: Option<String>,
    /// `GET`, `POST`, `Unknown`.
    #[serde(default, deserialize_with = "opt_text")]
    pub http_method: Option<String>,
    /// The API type, `N/A` for UI logins.
    #[serde(default, deserialize_with = "opt_text")]
    pub api_type: Option<String>,
    /// The API version: text here (`N/A`, `Unknown`), a number is kept as its text.
    #[serde(default, deserialize_with = "opt_text")]
    pub api_version: Option<String>,
    /// The client version, text.
    #[serde(default, deserialize_with = "opt_text")]
    pub client_version: Option<String>,
    /// JSON text from `x-sfdc-addinfo-*` headers.
    #[serde(default, deserialize_with = "opt_text")]
    pub additional_info: Option<String>,
    /// `STANDARD`, `HIGH_ASSURANCE`, `LOW`.
    #[serde(default, deserialize_with = "opt_text")]
    pub session_level: Option<String>,
    /// `Standard`, `PowerPartner`, `CspLitePortal`...
    #[serde(default, deserialize_with = "opt_text")]
    pub user_type: Option<String>,
    /// Transaction Security policy outcome.
    #[serde(default, deserialize_with = "opt_text")]
    pub policy_outcome: Option<String>,
    /// Transaction Security evaluation time in ms (a double, sometimes sent as text).
    #[serde(default, deserialize_with = "opt_number")]
    pub evaluation_time: Option<f64>,
    /// Set only when extra authentication (MFA) generated related events.
    #[serde(default, deserialize_with = "opt_text")]
    pub related_event_identifier: Option<String>,
    /// Every other field, under its API name.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// A `LogoutEvent` row (API 46.0+): a logout from the UI (not a session timeout, unless "Force
/// logout on session timeout" is on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct LogoutEvent {
    /// The unique identifier of the event. Documented as always set; `None` if a row ever
    /// comes without it.
    #[serde(default, deserialize_with = "opt_text")]
    pub event_identifier: Option<String>,
    /// When the logout happened.
    #[serde(with = "crate::datetime")]
    pub event_date: OffsetDateTime,
    /// When the stored row was written.
    #[serde(
        default,
        with = "crate::datetime::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_date: Option<OffsetDateTime>,
    /// Who wrote the row.
    #[serde(default, deserialize_with = "opt_text")]
    pub created_by_id: Option<String>,
    /// Always `000000000000000AAA` on big objects.
    #[serde(default, deserialize_with = "opt_text")]
    pub id: Option<String>,
    /// The user's Id.
    #[serde(default, deserialize_with = "opt_text")]
    pub user_id: Option<String>,
    /// The username.
    #[serde(default, deserialize_with = "opt_text")]
    pub username: Option<String>,
    /// The source IP address.
    #[serde(default, deserialize_with = "opt_text")]
    pub source_ip: Option<String>,
    /// The session that ended.
    #[serde(default, deserialize_with = "opt_text")]
    pub session_key: Option<String>,
    /// The login session the logout belongs to.
    #[serde(default, deserialize_with = "opt_text")]
    pub login_key: Option<String>,
    /// `STANDARD`, `HIGH_ASSURANCE`, `LOW`.
    #[serde(default, deserialize_with = "opt_text")]
    pub session_level: Option<String>,
    /// Set only when extra authentication generated related events.
    #[serde(default, deserialize_with = "opt_text")]
    pub related_event_identifier: Option<String>,
    /// Every other field, under its API name.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// A `SetupAuditTrail` row: one change an admin made in Setup (kept at least 180 days).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct SetupAuditTrail {
    /// The 18-character Id.
    pub id: String,
    /// When the change was recorded; second precision, so ties are common.
    #[serde(with = "crate::datetime")]
    pub created_date: OffsetDateTime,
    /// The change, `PermSetCreate`, `insertConnectedApplication`.
    #[serde(default, deserialize_with = "opt_text")]
    pub action: Option<String>,
    /// The Setup area, `Manage Users`, `Connected Apps`.
    #[serde(default, deserialize_with = "opt_text")]
    pub section: Option<String>,
    /// The full text of the change.
    #[serde(default, deserialize_with = "opt_text")]
    pub display: Option<String>,
    /// The Login-As user who made the change on someone's behalf (API 35.0+).
    #[serde(default, deserialize_with = "opt_text")]
    pub delegate_user: Option<String>,
    /// Who made the change.
    #[serde(default, deserialize_with = "opt_text")]
    pub created_by_id: Option<String>,
    /// The context of the change, `Einstein` (API 48.0+).
    #[serde(default, deserialize_with = "opt_text")]
    pub created_by_context: Option<String>,
    /// Reserved.
    #[serde(default, deserialize_with = "opt_text")]
    pub created_by_issuer: Option<String>,
    /// The namespace of the package that made the change.
    #[serde(default, deserialize_with = "opt_text")]
    pub responsible_namespace_prefix: Option<String>,
    /// The `CreatedBy` relationship when selected (`CreatedBy.Username`), without attributes.
    #[serde(
        default,
        deserialize_with = "relationship",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_by: Option<BTreeMap<String, Value>>,
    /// Every other field, under its API name.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// Text that Salesforce may send as a number or boolean: kept as its text; null stays `None`.
fn opt_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => None,
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    })
}

/// A relationship object (`{"attributes": {...}, "Username": ...}`) without its attributes.
fn relationship<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, Value>>, D::Error> {
    let map = Option::<BTreeMap<String, Value>>::deserialize(d)?;
    Ok(map.map(|mut m| {
        m.remove("attributes");
        m
    }))
}

/// A number that may come as text (`"0"`, `"37.77"`); null and empty text are `None`.
fn opt_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => Ok(n.as_f64()),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("expected a number, got {s:?}"))),
        other => Err(serde::de::Error::custom(format!(
            "expected a number, got {other}"
        ))),
    }
}
