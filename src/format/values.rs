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

/// Elastic's decoding of `API_TYPE` (Login and Logout log files).
pub(crate) const API_TYPES: &[(&str, &str)] = &[
    ("D", "Apex Class"),
    ("E", "SOAP Enterprise"),
    ("I", "SOAP Cross Instance"),
    ("M", "SOAP Metadata"),
    ("O", "Old SOAP"),
    ("P", "SOAP Partner"),
    ("S", "SOAP Apex"),
    ("T", "SOAP Tooling"),
    ("X", "XmlRPC"),
    ("f", "Feed"),
    ("l", "Live Agent"),
    ("p", "SOAP ClientSync"),
];

/// Elastic's decoding of a Login file's `REQUEST_STATUS`.
pub(crate) const REQUEST_STATUSES: &[(&str, &str)] = &[
    ("S", "Success"),
    ("F", "Failure"),
    ("U", "Undefined"),
    ("A", "Authorization Error"),
    ("R", "Redirect"),
    ("N", "Not Found"),
];

/// Elastic's decoding of a Logout file's `SESSION_TYPE`.
pub(crate) const SESSION_TYPES: &[(&str, &str)] = &[
    ("A", "API"),
    ("I", "APIOnlyUser"),
    ("N", "ChatterNetworks"),
    ("Z", "ChatterNetworksAPIOnly"),
    ("C", "Content"),
    ("P", "OauthApprovalUI"),
    ("O", "Oauth2"),
    ("T", "SiteStudio"),
    ("R", "SitePreview"),
    ("S", "SubstituteUser"),
    ("B", "TempContentExchange"),
    ("G", "TempOauthAccessTokenFrontdoor"),
    ("Y", "TempVisualforceExchange"),
    ("F", "TempUIFrontdoor"),
    ("U", "UI"),
    ("E", "UserSite"),
    ("V", "Visualforce"),
    ("W", "WDC_API"),
];

/// Elastic's decoding of a Logout file's `SESSION_LEVEL`.
pub(crate) const SESSION_LEVELS: &[(&str, &str)] =
    &[("1", "Standard Session"), ("2", "High-Assurance Session")];

/// Elastic's decoding of a Logout file's `PLATFORM_TYPE`.
pub(crate) const PLATFORM_TYPES: &[(&str, &str)] = &[
    ("1000", "Windows"),
    ("1008", "Windows 2003"),
    ("1013", "Windows 8.1"),
    ("1015", "Windows 10"),
    ("2003", "Macintosh/Apple OSX"),
    ("4000", "Linux"),
    ("5005", "Android"),
    ("5006", "iPhone"),
    ("5007", "iPad"),
    ("5200", "Android 10.0"),
];

/// Elastic's decoding of a Logout file's `APP_TYPE`.
pub(crate) const APP_TYPES: &[(&str, &str)] = &[
    ("1000", "Application"),
    ("1007", "SFDC Application"),
    ("1014", "Chat"),
    ("2501", "CTI"),
    ("2514", "OAuth"),
    ("3475", "SFDC Partner Portal"),
];

/// Elastic's decoding of a Logout file's `USER_TYPE`.
pub(crate) const USER_TYPES: &[(&str, &str)] = &[
    ("A", "Automated Process"),
    ("b", "High Volume Portal"),
    ("C", "Customer Portal User"),
    ("D", "External Who"),
    ("F", "Self-Service"),
    ("G", "Guest"),
    ("L", "Package License Manager"),
    ("N", "Salesforce to Salesforce"),
    ("n", "CSN Only"),
    ("O", "Power Custom"),
    ("o", "Custom"),
    ("P", "Partner"),
    ("p", "Customer Portal Manager"),
    ("S", "Standard"),
    ("X", "Salesforce Administrator"),
];

/// Elastic's decoding of an Apex file's numeric `USER_AGENT` code, by its first three digits.
pub(crate) const USER_AGENT_CODES: &[(&str, &str)] = &[
    ("100", "Internet Explorer"),
    ("110", "Firefox"),
    ("130", "Chrome"),
    ("140", "Safari"),
    ("150", "Opera"),
    ("160", "Android"),
    ("170", "Netscape"),
    ("180", "Webkit"),
    ("190", "Gecko"),
    ("230", "Blackberry"),
    ("240", "Good Access"),
    ("999", "Unknown"),
];

/// `code`'s meaning in `table`, else `code` itself (Elastic keeps codes it does not know).
pub(crate) fn decode<'a>(table: &[(&str, &'a str)], code: &'a str) -> &'a str {
    table
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(code, |(_, meaning)| meaning)
}

/// One Aura action of an `ACTION_MESSAGE` segment
/// `<id>$<scheme>://<controller>/ACTION$<method>=<milliseconds>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AuraAction<'a> {
    pub(crate) id: &'a str,
    pub(crate) scheme: &'a str,
    pub(crate) controller: &'a str,
    pub(crate) method: &'a str,
    /// Absent when the text after `=` is not a whole number.
    pub(crate) duration: Option<i64>,
}

/// The actions of an AuraRequest `ACTION_MESSAGE`, `;`-separated; a segment that does not
/// follow the grammar is skipped, as Elastic's pipeline does.
pub(crate) fn aura_actions(message: &str) -> impl Iterator<Item = AuraAction<'_>> {
    message.split(';').filter_map(|segment| {
        let part = segment.trim_matches(|c: char| c <= ' ');
        let equals = part.rfind('=').filter(|&i| i >= 1)?;
        let (descriptor, duration) = (&part[..equals], &part[equals + 1..]);
        let id_end = descriptor.find('$').filter(|&i| i >= 1)?;
        let scheme_end = descriptor.find("://").filter(|&i| i > id_end)?;
        let action_start = descriptor
            .find("/ACTION$")
            .filter(|&i| i >= scheme_end + 3)?;
        let numeric = !duration.is_empty() && duration.bytes().all(|b| b.is_ascii_digit());
        Some(AuraAction {
            id: &descriptor[..id_end],
            scheme: &descriptor[id_end + 1..scheme_end],
            controller: &descriptor[scheme_end + 3..action_start],
            method: &descriptor[action_start + "/ACTION$".len()..],
            duration: numeric.then(|| duration.parse().ok()).flatten(),
        })
    })
}

/// The parts of a request URI with no scheme or host (`/one/one.app#`, `/aura?x=1`), as
/// Elasticsearch's `uri_parts` gives them: the percent-decoded path, the extension of its last
/// segment, the query and the fragment (empty ones absent).
pub(crate) struct UriParts<'a> {
    pub(crate) path: Cow<'a, str>,
    pub(crate) extension: Option<&'a str>,
    pub(crate) query: Option<&'a str>,
    pub(crate) fragment: Option<&'a str>,
}

pub(crate) fn uri_parts(uri: &str) -> Option<UriParts<'_>> {
    if !uri.starts_with('/') {
        return None;
    }
    let (before_fragment, fragment) = match uri.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (uri, None),
    };
    let (raw_path, query) = match before_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (before_fragment, None),
    };
    let last = raw_path.rsplit('/').next().unwrap_or_default();
    let extension = last
        .rfind('.')
        .map(|i| &last[i + 1..])
        .filter(|e| !e.is_empty());
    Some(UriParts {
        path: percent_decode(raw_path),
        extension,
        query: query.filter(|q| !q.is_empty()),
        fragment: fragment.filter(|f| !f.is_empty()),
    })
}

/// `%7B` -> `{`; text whose escapes do not decode to UTF-8 stays as it is.
fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let (h, l) = (hex(h).unwrap_or(0), hex(l).unwrap_or(0));
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(decoded) => Cow::Owned(decoded),
        Err(_) => Cow::Borrowed(s),
    }
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
        assert_eq!(decode(API_TYPES, "f"), "Feed");
        assert_eq!(decode(API_TYPES, "fo"), "fo");
    }

    #[test]
    fn aura_action_messages() {
        let actions: Vec<AuraAction<'_>> = aura_actions(
            "1$serviceComponent://a.B/ACTION$getX=87;not-a-valid-segment;2$aura://C/ACTION$getY=;\
             =1;$x://y/ACTION$z=1;3$noscheme/ACTION$m=1",
        )
        .collect();
        assert_eq!(
            actions,
            [
                AuraAction {
                    id: "1",
                    scheme: "serviceComponent",
                    controller: "a.B",
                    method: "getX",
                    duration: Some(87)
                },
                AuraAction {
                    id: "2",
                    scheme: "aura",
                    controller: "C",
                    method: "getY",
                    duration: None
                },
            ]
        );
    }

    #[test]
    fn uri_parts_of_request_paths() {
        let parts = uri_parts("/aurafile/%7B%22a%22%7D/x/browser.js").unwrap();
        assert_eq!(parts.path, "/aurafile/{\"a\"}/x/browser.js");
        assert_eq!(parts.extension, Some("js"));
        let parts = uri_parts("/one/one.app#").unwrap();
        assert_eq!(
            (parts.path.as_ref(), parts.extension, parts.fragment),
            ("/one/one.app", Some("app"), None)
        );
        let parts = uri_parts("/a.b/c?x=1#f").unwrap();
        assert_eq!(
            (
                parts.path.as_ref(),
                parts.extension,
                parts.query,
                parts.fragment
            ),
            ("/a.b/c", None, Some("x=1"), Some("f"))
        );
        assert_eq!(uri_parts("%E0%A4%A").map(|p| p.path.into_owned()), None);
        assert_eq!(uri_parts("/%FF").unwrap().path, "/%FF");
        assert!(uri_parts("CALLOUT-LOG").is_none());
    }
}
