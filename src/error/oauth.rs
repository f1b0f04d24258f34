//! OAuth errors from the token endpoint, each kind with the Salesforce setup step that fixes it.

use std::fmt;

/// The kind of an OAuth error, each one a distinct fix for the administrator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OAuthErrorKind {
    /// `invalid_grant` / "user hasn't approved this consumer".
    UserNotApproved,
    /// `invalid_grant` / "invalid assertion".
    InvalidAssertion,
    /// `invalid_grant` / "audience is invalid".
    InvalidAudience,
    /// `invalid_grant` / "expired authorization code": `exp` was already past.
    ExpiredAssertion,
    /// `invalid_grant` / "authentication failure": Salesforce refused the login itself.
    AuthenticationFailure,
    /// `invalid_client_id` / "client identifier invalid".
    InvalidClientId,
    /// `invalid_app_access` / "user is not admin approved to access this app".
    AppAccessDenied,
    /// `inactive_user`.
    InactiveUser,
    /// `inactive_org`.
    InactiveOrg,
    /// Too many logins (`rate_limit_exceeded`, `LOGIN_RATE_EXCEEDED`).
    RateLimited,
    /// `unsupported_grant_type`: the request itself is wrong (a bug or a proxy rewriting it).
    UnsupportedGrantType,
    /// Any other code; the raw code and description are kept.
    Other,
}

/// Salesforce's answer to a failed token request: `{"error": ..., "error_description": ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The classified kind.
    pub kind: OAuthErrorKind,
    /// The HTTP status (usually 400).
    pub status: u16,
    /// The raw `error` code.
    pub code: String,
    /// The raw `error_description`.
    pub description: String,
}

impl OAuthError {
    /// Classifies Salesforce's code and description. The descriptions are matched loosely because
    /// Salesforce's wording varies between releases.
    pub fn new(status: u16, code: impl Into<String>, description: impl Into<String>) -> Self {
        let code = code.into();
        let description = description.into();
        let c = code.to_ascii_lowercase();
        let d = description.to_ascii_lowercase();
        let kind = match c.as_str() {
            "invalid_grant" if d.contains("approved") => OAuthErrorKind::UserNotApproved,
            "invalid_grant" if d.contains("audience") => OAuthErrorKind::InvalidAudience,
            "invalid_grant" if d.contains("expired") => OAuthErrorKind::ExpiredAssertion,
            "invalid_grant" if d.contains("assertion") => OAuthErrorKind::InvalidAssertion,
            "invalid_grant" if d.contains("authentication failure") => {
                OAuthErrorKind::AuthenticationFailure
            }
            "invalid_client_id" | "invalid_client" if d.contains("client identifier") => {
                OAuthErrorKind::InvalidClientId
            }
            "invalid_client_id" => OAuthErrorKind::InvalidClientId,
            "invalid_app_access" => OAuthErrorKind::AppAccessDenied,
            "inactive_user" => OAuthErrorKind::InactiveUser,
            "inactive_org" => OAuthErrorKind::InactiveOrg,
            "rate_limit_exceeded" | "login_rate_exceeded" => OAuthErrorKind::RateLimited,
            "unsupported_grant_type" => OAuthErrorKind::UnsupportedGrantType,
            _ => OAuthErrorKind::Other,
        };
        OAuthError {
            kind,
            status,
            code,
            description,
        }
    }

    /// What the administrator should do, in Salesforce Setup's words.
    pub fn hint(&self) -> &'static str {
        match self.kind {
            OAuthErrorKind::UserNotApproved => {
                "In Setup, open the External Client App's policies: set Permitted Users to \
                 \"Admin approved users are pre-authorized\" and assign the integration user's \
                 profile or a permission set to the app. Also check that the username \
                 (SF_USERNAME, the JWT `sub`) names that user exactly"
            }
            OAuthErrorKind::InvalidAssertion => {
                "The certificate uploaded to the External Client App does not match the private \
                 key (SF_CLIENT_KEY_PATH), or the assertion was altered on the way. Upload the \
                 certificate made from this key (`openssl req -new -x509 -key key.pem -out \
                 cert.crt -days 365`) under the app's OAuth settings (\"Use digital signatures\")"
            }
            OAuthErrorKind::InvalidAudience => {
                "The audience (SF_AUDIENCE_URL, the JWT `aud`) is wrong: use \
                 https://login.salesforce.com for production orgs, https://test.salesforce.com for \
                 sandboxes, or the Experience Cloud site URL for a site user. It is usually not \
                 the My Domain URL"
            }
            OAuthErrorKind::ExpiredAssertion => {
                "The assertion's `exp` was already past when Salesforce received it: this \
                 machine's clock is probably wrong. Synchronise it (NTP) and retry"
            }
            OAuthErrorKind::AuthenticationFailure => {
                "Salesforce refused the integration user's login itself: check the Login IP \
                 Ranges of its profile (this machine's address must be inside them, or the \
                 app's IP Relaxation must allow it), that the user is not locked or frozen, and \
                 that SF_USERNAME names it exactly; Setup > Login History shows the reason"
            }
            OAuthErrorKind::InvalidClientId => {
                "The client ID (SF_CLIENT_ID) is not the consumer key of an app in the org the \
                 token URL reaches. Copy the consumer key from the External Client App's OAuth \
                 settings, check production vs sandbox (SF_TOKEN_URL), and allow up to about 10 \
                 minutes after creating the app for it to propagate"
            }
            OAuthErrorKind::AppAccessDenied => {
                "The integration user is not admin-approved for the app: assign the user's \
                 profile or a permission set to the External Client App (Manage > Policies)"
            }
            OAuthErrorKind::InactiveUser => {
                "The integration user (SF_USERNAME) is inactive or frozen: reactivate it in \
                 Setup > Users"
            }
            OAuthErrorKind::InactiveOrg => {
                "The org is inactive, locked or expired: check its status with the Salesforce \
                 administrator"
            }
            OAuthErrorKind::RateLimited => {
                "Salesforce is limiting logins for this user (a few thousand an hour). Tokens \
                 are cached by this crate; look for other services logging in as the same user \
                 and wait before retrying"
            }
            OAuthErrorKind::UnsupportedGrantType => {
                "The token request was not understood as a JWT bearer request: check that \
                 SF_TOKEN_URL points at Salesforce's /services/oauth2/token and that no proxy \
                 rewrites the request"
            }
            OAuthErrorKind::Other => {
                "Salesforce returned an OAuth error this crate does not recognise; the code and \
                 description above are Salesforce's own words"
            }
        }
    }

    /// Whether the same request may succeed later without a setup change.
    pub fn is_retryable(&self) -> bool {
        // Login rate limits lift by themselves, but only after minutes: the caller's schedule
        // decides, so it is reported as retryable without an automatic in-call retry.
        matches!(self.kind, OAuthErrorKind::RateLimited)
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Salesforce refused the JWT bearer token request (HTTP {}, {}: {}). {}",
            self.status,
            self.code,
            self.description,
            self.hint()
        )
    }
}

impl std::error::Error for OAuthError {}
