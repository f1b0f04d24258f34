//! How the ECS documents read Salesforce values: categories, addresses, methods, TLS versions.

use std::borrow::Cow;
use std::net::IpAddr;

use crate::format::names::{is_threat_detection, snake_case};

/// `event.category` and `event.type` of a log-file `EventType`, where ECS has a fitting pair.
pub(crate) fn log_file_category(event_type: &str) -> Option<(&'static str, &'static str)> {
    Some(match event_type {
        "Login" | "LoginAs" => ("authentication", "start"),
        "Logout" => ("authentication", "end"),
        "ApexExecution" | "ApexTrigger" | "ApexUnexpectedException" => return None,
        t if t.starts_with("Apex") => ("network", "connection"),
        "API" | "RestApi" | "BulkApi" | "BulkApi2" | "URI" | "VisualforceRequest"
        | "AuraRequest" | "Sites" => ("web", "access"),
        "PackageInstall" => ("package", "installation"),
        _ => return None,
    })
}

/// `event.category` and `event.type` of a queried object, where ECS has a fitting pair.
pub(crate) fn object_category(sobject_type: &str) -> Option<(&'static str, &'static str)> {
    Some(match sobject_type {
        "LoginEvent" | "LoginAsEvent" => ("authentication", "start"),
        "LogoutEvent" => ("authentication", "end"),
        "SetupAuditTrail" => ("configuration", "change"),
        "ApiEvent" | "UriEvent" | "LightningUriEvent" => ("web", "access"),
        t if is_threat_detection(t) => ("intrusion_detection", "info"),
        _ => return None,
    })
}

/// `event.action`: the type in kebab case (`ApexCallout` -> `apex-callout`).
pub(crate) fn action_name(name: &str) -> String {
    snake_case(name).replace('_', "-")
}

/// Salesforce wraps some values in a third pair of quotes (`"""https://x"""` in the CSV reads as
/// `"https://x"`): an artifact of its escaping, dropped in ECS fields.
pub(crate) fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(s)
}

pub(crate) fn is_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !domain.contains('@') && !s.contains(' ')
        }
        None => false,
    }
}

/// `Salesforce.com IP` (a request from inside Salesforce) and other non-addresses give `None`.
pub(crate) fn ip(s: &str) -> Option<IpAddr> {
    s.trim().parse().ok()
}

/// An HTTP method token (`GET`, `POST`...); Salesforce writes `Unknown` when it has none.
pub(crate) fn http_method(s: &str) -> Option<&str> {
    (!s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_uppercase())).then_some(s)
}

/// `TLSv1.2`, `TLS 1.3`, `TLSv1` -> `1.2`, `1.3`, `1.0`; `Unknown` -> `None`.
pub(crate) fn tls_version(s: &str) -> Option<Cow<'_, str>> {
    let rest = s.strip_prefix("TLS").or_else(|| s.strip_prefix("tls"))?;
    let rest = rest.trim_start_matches(['v', 'V', ' ']);
    let well_formed = !rest.is_empty()
        && rest.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && !rest.starts_with('.')
        && !rest.ends_with('.');
    if !well_formed {
        return None;
    }
    // Borrowed in the common cases: this runs for every row that has a TLS column.
    Some(match rest {
        _ if rest.contains('.') => Cow::Borrowed(rest),
        "1" => Cow::Borrowed("1.0"),
        "2" => Cow::Borrowed("2.0"),
        "3" => Cow::Borrowed("3.0"),
        _ => Cow::Owned(format!("{rest}.0")),
    })
}

/// A user-agent column that holds a real user-agent string, not one of Salesforce's numeric
/// browser codes (`9999`, `130`...).
pub(crate) fn user_agent(s: &str) -> Option<&str> {
    let s = unquote(s);
    (!s.is_empty() && !s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_versions() {
        assert_eq!(tls_version("TLSv1.2").as_deref(), Some("1.2"));
        assert_eq!(tls_version("TLS 1.3").as_deref(), Some("1.3"));
        assert_eq!(tls_version("TLSv1").as_deref(), Some("1.0"));
        assert_eq!(tls_version("TLSv3").as_deref(), Some("3.0"));
        assert_eq!(tls_version("TLS 13").as_deref(), Some("13.0"));
        assert_eq!(tls_version("Unknown"), None);
        assert_eq!(tls_version("TLS"), None);
        assert_eq!(tls_version("TLSv1."), None);
    }

    #[test]
    fn small_rules() {
        assert!(is_email("ak@at.com"));
        assert!(!is_email("ak"));
        assert!(!is_email("@at.com"));
        assert_eq!(ip("Salesforce.com IP"), None);
        assert_eq!(http_method("Unknown"), None);
        assert_eq!(http_method("POST"), Some("POST"));
        assert_eq!(user_agent("9999"), None);
        assert_eq!(unquote("\"https://x\""), "https://x");
        assert_eq!(action_name("ApexCallout"), "apex-callout");
    }
}
