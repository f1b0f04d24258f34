//! The JWT bearer assertion: claims and RS256 signature. Pure functions, no I/O.
//!
//! ```
//! use std::time::Duration;
//! use salesforce_jwt::SigningKey;
//! use salesforce_jwt::assertion::{Claims, sign};
//! use salesforce_jwt::time::macros::datetime;
//!
//! let key = SigningKey::from_pem(std::fs::read("tests/fixtures/test_rsa_pkcs8.pem").unwrap())?;
//! let now = datetime!(2025-06-10 12:00 UTC);
//! let claims = Claims::new(
//!     "3MVG9...client-id",
//!     "integration@example.com",
//!     "https://login.salesforce.com",
//!     now,
//!     Duration::from_secs(180),
//! );
//! assert_eq!(claims.exp, now.unix_timestamp() + 180);
//! let assertion = sign(&claims, &key)?;
//! // header.claims.signature, and a Debug output that hides it.
//! assert_eq!(assertion.expose_secret().split('.').count(), 3);
//! assert!(!format!("{assertion:?}").contains(assertion.expose_secret()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Header};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::Error;
use crate::key::SigningKey;

/// The longest assertion lifetime Salesforce documents ("within 3 minutes").
pub const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(180);

/// The claims Salesforce reads from the assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The client ID (consumer key) of the External Client App.
    pub iss: String,
    /// The username of the pre-authorized integration user.
    pub sub: String,
    /// The audience: `https://login.salesforce.com`, `https://test.salesforce.com` or a site URL.
    pub aud: String,
    /// Expiry, whole seconds since the Unix epoch.
    pub exp: i64,
}

impl Claims {
    /// Claims expiring `lifetime` after `now`.
    pub fn new(
        client_id: &str,
        username: &str,
        audience: &str,
        now: OffsetDateTime,
        lifetime: Duration,
    ) -> Claims {
        // Salesforce wants whole seconds; rounding down keeps `exp` within the lifetime.
        let exp = now.unix_timestamp() + i64::try_from(lifetime.as_secs()).unwrap_or(180);
        Claims {
            iss: client_id.to_string(),
            sub: username.to_string(),
            aud: audience.to_string(),
            exp,
        }
    }
}

/// A signed assertion. Its Debug output is redacted: whoever holds it can obtain a token until
/// it expires.
#[derive(Clone)]
pub struct Assertion(String);

impl Assertion {
    /// The compact JWT, to put in the token request. Keep it out of logs.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Assertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Assertion(** redacted **)")
    }
}

/// Signs `claims` with RS256.
pub fn sign(claims: &Claims, key: &SigningKey) -> Result<Assertion, Error> {
    // Salesforce's documentation shows only {"alg":"RS256"}; jsonwebtoken adds "typ":"JWT", which
    // Salesforce accepts.
    let header = Header::new(Algorithm::RS256);
    jsonwebtoken::encode(&header, claims, key.encoding_key())
        .map(Assertion)
        .map_err(|e| Error::Internal(format!("signing the assertion failed: {e}")))
}
