//! The access token and what the token response says about it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Deserialize;
use time::OffsetDateTime;
use url::Url;

use crate::config::{check_transport, redact_userinfo};
use crate::error::Error;

/// An access token with what Salesforce said about it.
///
/// Cheap to clone (an `Arc`). Debug shows the metadata and never the token itself; the token is
/// only reachable through [`AccessToken::expose_secret`].
#[derive(Clone)]
pub struct AccessToken(Arc<TokenInner>);

struct TokenInner {
    secret: String,
    instance_url: Url,
    id_url: Option<String>,
    org_id: Option<String>,
    user_id: Option<String>,
    token_type: String,
    scope: Option<String>,
    issued_at: Option<OffsetDateTime>,
    obtained_at: OffsetDateTime,
    refresh_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    /// Whether the instance has answered a request with this token other than 401: a 401
    /// before that is a setup problem, not an expired session.
    accepted: AtomicBool,
}

/// The token endpoint's success body. No Debug: it holds the token.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    access_token: String,
    instance_url: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    issued_at: Option<String>,
}

impl TokenResponse {
    pub(crate) fn instance_url(&self) -> &str {
        &self.instance_url
    }
}

impl AccessToken {
    /// Builds a token from a token response. `refresh_at` and `expires_at` come from the assumed
    /// session lifetime, since Salesforce's JWT flow returns no `expires_in`.
    pub(crate) fn from_response(
        response: TokenResponse,
        obtained_at: OffsetDateTime,
        refresh_at: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<AccessToken, Error> {
        if response.access_token.is_empty() {
            return Err(Error::UnexpectedResponse(
                "the token response holds an empty access_token".into(),
            ));
        }
        let instance_url = Url::parse(&response.instance_url).map_err(|e| {
            Error::UnexpectedResponse(format!(
                "the token response's instance_url {:?} is not a URL: {e}",
                redact_userinfo(&response.instance_url)
            ))
        })?;
        check_transport(&instance_url).map_err(|problem| {
            Error::UnexpectedResponse(format!(
                "the token response's instance_url {} is refused: {problem}",
                redact_userinfo(instance_url.as_str())
            ))
        })?;
        let (org_id, user_id) = response
            .id
            .as_deref()
            .and_then(ids_from_identity_url)
            .map_or((None, None), |(o, u)| (Some(o), Some(u)));
        let issued_at = response
            .issued_at
            .as_deref()
            .and_then(|ms| ms.parse::<i128>().ok())
            // Milliseconds from the server: a value past `time`'s range (or whose nanoseconds
            // overflow) is dropped as unknown rather than trusted.
            .and_then(|ms| ms.checked_mul(1_000_000))
            .and_then(|ns| OffsetDateTime::from_unix_timestamp_nanos(ns).ok());
        Ok(AccessToken(Arc::new(TokenInner {
            secret: response.access_token,
            instance_url,
            id_url: response.id,
            org_id,
            user_id,
            token_type: response.token_type.unwrap_or_else(|| "Bearer".into()),
            scope: response.scope,
            issued_at,
            obtained_at,
            refresh_at,
            expires_at,
            accepted: AtomicBool::new(false),
        })))
    }

    /// Records that the instance accepted this token.
    pub(crate) fn mark_accepted(&self) {
        self.0.accepted.store(true, Ordering::Relaxed);
    }

    /// Whether the instance ever accepted this token.
    pub(crate) fn was_accepted(&self) -> bool {
        self.0.accepted.load(Ordering::Relaxed)
    }

    /// The token itself, for an `Authorization: Bearer` header. Keep it out of logs.
    pub fn expose_secret(&self) -> &str {
        &self.0.secret
    }

    /// The `instance_url` of the token response.
    pub fn instance_url(&self) -> &Url {
        &self.0.instance_url
    }

    /// The identity URL (`id`), `https://login.salesforce.com/id/<org id>/<user id>`.
    pub fn identity_url(&self) -> Option<&str> {
        self.0.id_url.as_deref()
    }

    /// The org ID (`00D...`), from the identity URL.
    pub fn org_id(&self) -> Option<&str> {
        self.0.org_id.as_deref()
    }

    /// The integration user's ID (`005...`), from the identity URL.
    pub fn user_id(&self) -> Option<&str> {
        self.0.user_id.as_deref()
    }

    /// `token_type`, normally `Bearer`.
    pub fn token_type(&self) -> &str {
        &self.0.token_type
    }

    /// The granted scopes, space-separated.
    pub fn scope(&self) -> Option<&str> {
        self.0.scope.as_deref()
    }

    /// `issued_at`, when Salesforce sent it.
    pub fn issued_at(&self) -> Option<OffsetDateTime> {
        self.0.issued_at
    }

    /// When this crate received the token (by its clock).
    pub fn obtained_at(&self) -> OffsetDateTime {
        self.0.obtained_at
    }

    /// From this time on, callers still get this token but a new one is fetched in the
    /// background.
    pub fn refresh_at(&self) -> OffsetDateTime {
        self.0.refresh_at
    }

    /// When the token is assumed to expire (obtained + session lifetime).
    pub fn expires_at(&self) -> OffsetDateTime {
        self.0.expires_at
    }

    /// Whether two handles are the very same token (not merely equal strings).
    pub fn same_as(&self, other: &AccessToken) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"** redacted **")
            .field("instance_url", &self.0.instance_url.as_str())
            .field("org_id", &self.0.org_id)
            .field("user_id", &self.0.user_id)
            .field("obtained_at", &self.0.obtained_at)
            .field("expires_at", &self.0.expires_at)
            .finish()
    }
}

/// `.../id/00Dxx/005xx` -> (org id, user id).
fn ids_from_identity_url(id: &str) -> Option<(String, String)> {
    let url = Url::parse(id).ok()?;
    let mut segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    let user = segments.pop()?;
    let org = segments.pop()?;
    let marker = segments.pop()?;
    (marker == "id").then(|| (org.to_string(), user.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_url_gives_org_and_user() {
        assert_eq!(
            ids_from_identity_url("https://login.salesforce.com/id/00DXX0000001/005XX0000002"),
            Some(("00DXX0000001".into(), "005XX0000002".into()))
        );
        assert_eq!(
            ids_from_identity_url("https://login.salesforce.com/x/1/2"),
            None
        );
        assert_eq!(ids_from_identity_url("not a url"), None);
    }
}
