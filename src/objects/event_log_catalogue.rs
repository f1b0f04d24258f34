//! The Event Log Objects Salesforce documents, and the fields this crate knows of them.

use std::time::Duration;

use crate::error::Error;

/// The first API version that has Event Log Objects (`61.0`). `LoginEventLog` was listed from
/// 55.0 in older references; the Summer '26 ones say 61.0 for every object.
pub const MIN_API_VERSION: f64 = 61.0;

/// How long Salesforce keeps Event Log Object rows: "Log data is retained for up to 30 days."
pub const RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The longest an Event Log Object row takes to become queryable after its `Timestamp`
/// ("expect log data to be available to query within 25-45 minutes after the event is
/// logged"): the collector's default overlap (60 minutes) covers it with room to spare.
pub const PUBLICATION_DELAY: Duration = Duration::from_secs(45 * 60);

/// `LoginEventLog`'s fields in the v67 object reference. `Id` is not listed there (no key is);
/// every sObject has one and the collector keys on it.
const LOGIN_EVENT_LOG: &[&str] = &[
    "Id",
    "ApiType",
    "ApiVersion",
    "AuthenticatedMethodReference",
    "BrowserType",
    "CipherSuite",
    "ClientIp",
    "CpuTime",
    "DatabaseTotalTime",
    "ForwardedForIp",
    "LoginKey",
    "LoginStatus",
    "LoginSubType",
    "LoginType",
    "RequestIdentifier",
    "RequestStatus",
    "RunTime",
    "SessionKey",
    "SourceIp",
    "Timestamp",
    "TransportLayerSecurityProtocol",
    "Uri",
    "UserIdentifier",
    "UserType",
    "Username",
];

/// `ApiTotalUsageEventLog`'s fields in the v67 object reference, with `Id`.
const API_TOTAL_USAGE_EVENT_LOG: &[&str] = &[
    "Id",
    "ApiFamily",
    "ApiResource",
    "BotIdentifier",
    "BotSessionIdentifier",
    "ClientIp",
    "ClientName",
    "ConnectedAppIdentifier",
    "HttpMethod",
    "IsApiLimitCounted",
    "ObjectName",
    "PlannerIdentifier",
    "RequestIdentifier",
    "StatusCode",
    "Timestamp",
    "UserIdentifier",
];

/// Every object of "Store and Query Log Data with Event Log Objects" (Summer '26) and the
/// newer references, with its fields where this crate knows them (empty: not listed here,
/// `FIELDS(STANDARD)` reads them all).
const CATALOGUE: &[(&str, &[&str])] = &[
    ("AnalyticsChangeEventLog", &[]),
    ("AnalyticsDownloadEventLog", &[]),
    ("AnalyticsInteractEventLog", &[]),
    ("AnalyticsPerfEventLog", &[]),
    ("ApexCalloutEventLog", &[]),
    ("ApexExecutionEventLog", &[]),
    ("ApexExtlCalloutEventLog", &[]),
    ("ApexRestApiEventLog", &[]),
    ("ApexSoapApiEventLog", &[]),
    ("ApexTriggerEventLog", &[]),
    ("ApexUnexpectedExcpEventLog", &[]),
    ("ApiTotalUsageEventLog", API_TOTAL_USAGE_EVENT_LOG),
    ("AsyncReportRunEventLog", &[]),
    ("AuraRequestEventLog", &[]),
    ("BulkApiEventLog", &[]),
    ("BulkApi2EventLog", &[]),
    ("ConcurApexLimitEventLog", &[]),
    ("ContentDistributionEventLog", &[]),
    ("ContentTransferEventLog", &[]),
    ("DocAtchDownloadEventLog", &[]),
    ("FlowNavMetricEventLog", &[]),
    ("InsufficientAccessEventLog", &[]),
    ("KnowledgeArticleEventLog", &[]),
    ("LightningLoggerEventLog", &[]),
    ("LightningPageViewEventLog", &[]),
    ("LoginAsEventLog", &[]),
    ("LoginEventLog", LOGIN_EVENT_LOG),
    ("MetadataApiOpEventLog", &[]),
    ("NamedCredentialEventLog", &[]),
    ("PackageInstallEventLog", &[]),
    ("PermissionUpdateEventLog", &[]),
    ("QueuedExecutionEventLog", &[]),
    ("ReportEventLog", &[]),
    ("RestApiEventLog", &[]),
    ("SalesforceLoginAsEventLog", &[]),
    ("SandboxStatusEventLog", &[]),
    ("SearchClickEventLog", &[]),
    ("SearchEventLog", &[]),
    ("SiteEventLog", &[]),
    ("SoapApiEventLog", &[]),
    ("TransactionSecurityEventLog", &[]),
    ("UniqueQueryEventLog", &[]),
    ("UriEventLog", &[]),
    ("VisualforceRequestEventLog", &[]),
];

/// The API names of every Event Log Object Salesforce documents.
pub fn catalogue() -> impl Iterator<Item = &'static str> {
    CATALOGUE.iter().map(|(name, _)| *name)
}

/// The fields the object reference lists for `object` (case-insensitive), with `Id`, when
/// this crate knows them (`LoginEventLog`, `ApiTotalUsageEventLog`); `None` for the others
/// and for names that are not Event Log Objects.
///
/// ```
/// let fields = salesforce_jwt::event_log_objects::fields("LoginEventLog").unwrap();
/// assert!(fields.contains(&"Timestamp") && fields.contains(&"UserIdentifier"));
/// assert!(salesforce_jwt::event_log_objects::fields("UriEventLog").is_none());
/// ```
pub fn fields(object: &str) -> Option<&'static [&'static str]> {
    CATALOGUE
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(object.trim()))
        .map(|(_, fields)| *fields)
        .filter(|fields| !fields.is_empty())
}

/// Checks that `api_version` (`64.0`, as configured) has Event Log Objects: below 61.0 the
/// objects do not exist for the API, and every query answers `INVALID_TYPE` as if the org
/// lacked them.
///
/// ```
/// use salesforce_jwt::event_log_objects::check_api_version;
/// assert!(check_api_version("64.0").is_ok());
/// let old = check_api_version("58.0").unwrap_err().to_string();
/// assert!(old.contains("61.0") && old.contains("SF_API_VERSION"), "{old}");
/// ```
pub fn check_api_version(api_version: &str) -> Result<(), Error> {
    let number: f64 = api_version
        .trim()
        .trim_start_matches(['v', 'V'])
        .parse()
        .map_err(|_| {
            Error::InvalidArgument(format!(
                "API version {api_version:?} is not a number like 64.0"
            ))
        })?;
    if number < MIN_API_VERSION {
        return Err(Error::InvalidArgument(format!(
            "API version {api_version} is below 61.0, the first with Event Log Objects: set \
             api_version (SF_API_VERSION) to 61.0 or later (the org's newest is best)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_end_in_event_log() {
        let names: Vec<&str> = catalogue().collect();
        for (i, name) in names.iter().enumerate() {
            assert!(name.ends_with("EventLog"), "{name}");
            assert!(
                !names[..i].iter().any(|n| n.eq_ignore_ascii_case(name)),
                "{name} twice"
            );
        }
        assert!(fields("logineventlog").is_some());
        assert!(fields("LoginEvent").is_none());
        let api = fields("ApiTotalUsageEventLog").unwrap();
        assert!(api.contains(&"Id") && api.contains(&"StatusCode"));
        assert!(check_api_version("61.0").is_ok());
        assert!(check_api_version("60.0").is_err());
        assert!(check_api_version("sixty").is_err());
    }
}
