//! REST API errors with their hints, and API usage from `Sforce-Limit-Info`.

use std::fmt;
use std::time::Duration;

/// A REST API error: status, Salesforce's `errorCode` and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// Salesforce's `errorCode` (`MALFORMED_QUERY`, `INVALID_SESSION_ID`...), when the body was
    /// Salesforce JSON.
    pub error_code: Option<String>,
    /// Salesforce's message, or the start of a non-JSON body (an edge proxy's HTML page).
    pub message: String,
    /// What was being done ("querying EventLogFile", "downloading EventLogFile 0AT...").
    pub context: String,
    /// The `Retry-After` the response carried.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// Whether the status is a transient one (429, 500, 502, 503, 504).
    pub fn is_retryable(&self) -> bool {
        matches!(self.status, 429 | 500 | 502 | 503 | 504)
    }

    /// Whether this answers a query on an Event Log Object (the request's context names the
    /// object's kind).
    pub(crate) fn is_event_log_object_query(&self) -> bool {
        self.context.contains("(Event Log Object)")
    }

    /// What the administrator should do, for the errors that mean a missing permission.
    pub fn hint(&self) -> Option<&'static str> {
        if self.is_event_log_object_query() {
            return match (self.status, self.error_code.as_deref()) {
                (_, Some("INVALID_TYPE")) => Some(
                    "This org has no such Event Log Object: they exist only on Hyperforce orgs \
                     (not Government Cloud) with Shield or the Event Monitoring add-on, from API \
                     61.0. Check the org's infrastructure (Setup > Company Information) and \
                     SF_API_VERSION; on a Hyperforce org, check the user's View Event Log Object \
                     Data permission",
                ),
                (_, Some("INSUFFICIENT_ACCESS" | "INSUFFICIENT_ACCESS_OR_READONLY")) => Some(
                    "The integration user cannot read Event Log Objects: grant the \"View Event \
                     Log Object Data\" permission (or the Event Monitoring User permission set) \
                     in a permission set",
                ),
                (400, _) => Some(
                    "Salesforce refused this Event Log Object query; it is not retried. Event \
                     Log Objects take at most two Timestamp filters spanning at most 15 days, \
                     and no !=, OFFSET, HAVING or relationship fields",
                ),
                _ => None,
            };
        }
        let code = self.error_code.as_deref()?;
        match code {
            "API_DISABLED_FOR_ORG" => Some(
                "The integration user cannot use the API: grant the \"API Enabled\" permission \
                 in its profile or a permission set (the org's edition must include API access)",
            ),
            "INVALID_TYPE" if self.message.contains("EventLogFile") => Some(
                "The integration user cannot see EventLogFile: grant the \"View Event Log Files\" \
                 permission in its profile or a permission set; the org needs Event Monitoring \
                 (Shield or the Event Monitoring add-on) for anything beyond the free Login and \
                 Logout daily files",
            ),
            "INVALID_FIELD" if self.message.contains("Interval") => Some(
                "EventLogFile.Interval needs API version 37.0 or later and hourly files need the \
                 Event Monitoring licence: raise SF_API_VERSION or query daily files only",
            ),
            "BIG_OBJECT_UNSUPPORTED_OPERATION" => Some(
                "The object is a big object: it accepts a filter on EventDate alone (or EventDate = \
                 with EventIdentifier), ORDER BY EventDate DESC and LIMIT, nothing else. If you \
                 named the object yourself, declare it with \
                 EventObject::custom(name, ObjectKind::BigObject)",
            ),
            "INVALID_SESSION_ID" => Some(
                "The session expired or was revoked and a fresh token was refused as well: check \
                 that the app's session policies allow this user, and the org's session timeout",
            ),
            "NOT_FOUND" if self.message.contains("version") => Some(
                "The API version (SF_API_VERSION) is not served by this org: choose a lower one",
            ),
            _ => None,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: Salesforce answered HTTP {}",
            self.context, self.status
        )?;
        if let Some(code) = &self.error_code {
            write!(f, " {code}")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(hint) = self.hint() {
            write!(f, ". {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// API usage from the `Sforce-Limit-Info: api-usage=18/5000` response header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiUsage {
    /// Requests used in the rolling 24 hours.
    pub used: u64,
    /// The org's limit.
    pub limit: u64,
}

impl ApiUsage {
    /// Parses the header value; other parts after `;` (`per-app-api-usage=...`) are ignored.
    pub fn parse(header: &str) -> Option<ApiUsage> {
        header.split(';').find_map(|part| {
            let (name, value) = part.trim().split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("api-usage") {
                return None;
            }
            let (used, limit) = value.trim().split_once('/')?;
            Some(ApiUsage {
                used: used.trim().parse().ok()?,
                limit: limit.trim().parse().ok()?,
            })
        })
    }

    /// Usage as a whole percentage of the limit, rounded down (0 for a zero limit).
    pub fn percent(&self) -> u64 {
        if self.limit == 0 {
            return 0;
        }
        u64::try_from(u128::from(self.used) * 100 / u128::from(self.limit)).unwrap_or(u64::MAX)
    }

    /// Whether usage is at or above `percent` of the limit, compared exactly (not on the
    /// rounded [`percent`](Self::percent)). A zero limit counts as reached.
    pub fn reaches(&self, percent: u8) -> bool {
        u128::from(self.used) * 100 >= u128::from(self.limit) * u128::from(percent)
    }
}

impl fmt::Display for ApiUsage {
    /// `1234/15000 (8%)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} ({}%)", self.used, self.limit, self.percent())
    }
}
