//! The log of received requests, for tests that assert what their code sent.

use std::fmt;

use time::OffsetDateTime;

/// What a received request asked for, decided from its method and path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestKind {
    /// `POST /services/oauth2/token`.
    Token,
    /// `GET /services/data/`: the API versions.
    Versions,
    /// `GET /id/{orgId}/{userId}`: the identity service.
    Identity,
    /// `GET /services/data/vNN.N/query?q=`: the first page of a query.
    Query,
    /// `GET /services/data/vNN.N/query/{locator}`: a following page.
    QueryMore,
    /// `GET .../sobjects/EventLogFile/{Id}/LogFile`: a download.
    Download,
    /// `GET .../sobjects/EventLogFile/{Id}`: one record.
    Record,
    /// Anything else (answered 404 or 405).
    Other,
}

/// One request the org received, as [`MockOrg::requests`](crate::MockOrg::requests) lists it.
///
/// The `Authorization` header's value is kept, so that a test can check which token its code
/// sent ([`bearer_token`](Self::bearer_token)), but `Debug` never shows it: a failing assertion
/// that prints the list does not leak it into the test log.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceivedRequest {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The path, e.g. `/services/data/v64.0/query`, without the query string.
    pub path: String,
    /// What it asked for.
    pub kind: RequestKind,
    /// The SOQL of a query request, decoded from its `q` parameter.
    pub soql: Option<String>,
    /// When the org received it, by the org's clock (a `ManualClock` in tests).
    pub received_at: OffsetDateTime,
    /// Its place in the order of arrival, from 1 (it keeps counting after old requests are
    /// dropped from the log).
    pub sequence: u64,
    bearer: Option<String>,
}

impl ReceivedRequest {
    pub(crate) fn new(
        method: String,
        path: String,
        kind: RequestKind,
        soql: Option<String>,
        received_at: OffsetDateTime,
        bearer: Option<String>,
    ) -> Self {
        Self {
            method,
            path,
            kind,
            soql,
            received_at,
            sequence: 0,
            bearer,
        }
    }

    /// Whether it carried an `Authorization: Bearer` (or `OAuth`) token.
    pub fn has_bearer_token(&self) -> bool {
        self.bearer.is_some()
    }

    /// The bearer token it carried. A secret: compare it, never log it.
    pub fn bearer_token(&self) -> Option<&str> {
        self.bearer.as_deref()
    }
}

impl fmt::Debug for ReceivedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("kind", &self.kind)
            .field("soql", &self.soql)
            .field("received_at", &self.received_at)
            .field("sequence", &self.sequence)
            .field("bearer_token", &self.bearer.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}
