//! The checks [`JwtBearerConfigBuilder::build`] makes: required fields, URL rules, the API
//! version's range, lifetimes and timeouts.

use std::net::IpAddr;
use std::time::Duration;

use url::{Host, Url};

use super::load::read_key;
use super::{DEFAULT_API_VERSION, JwtBearerConfig, JwtBearerConfigBuilder, redact_userinfo};
use crate::assertion::MAX_ASSERTION_LIFETIME;
use crate::error::{ConfigError, ConfigProblem, Error};

/// `EventLogFile.Interval` (and so hourly files) exists from this version on.
const MIN_API_VERSION: u32 = 37;

/// The highest version accepted when building. Salesforce adds three a year (66.0 is Spring
/// '26), so 99.0 is a decade away; anything above is a typo. What an org really serves is
/// checked by [`JwtBearerClient::check_api_version`](crate::JwtBearerClient::check_api_version).
const MAX_API_VERSION: u32 = 99;

/// The path Salesforce serves the OAuth token endpoint on.
const TOKEN_PATH: &str = "/services/oauth2/token";

impl JwtBearerConfigBuilder {
    /// Validates everything and reads the key. All problems are reported together.
    pub fn build(self) -> Result<JwtBearerConfig, Error> {
        let n = self.names;
        let mut problems: Vec<ConfigProblem> = Vec::new();
        let mut problem = |field: &str, text: String| {
            problems.push(ConfigProblem {
                field: field.to_string(),
                problem: text,
            })
        };

        let audience = required(
            self.audience.as_deref(),
            n.audience_url,
            "https://login.salesforce.com for production, https://test.salesforce.com for sandboxes",
            parse_audience,
            &mut problem,
        );
        let username = required(
            self.username.as_deref(),
            n.username,
            "the username of the pre-authorized integration user",
            |v| Ok(v.to_string()),
            &mut problem,
        );
        let client_id = required(
            self.client_id.as_deref(),
            n.client_id,
            "the consumer key of the External Client App",
            |v| Ok(v.to_string()),
            &mut problem,
        );
        let instance_url = required(
            self.instance_url.as_deref(),
            n.instance_url,
            "the org's My Domain URL, like https://acme.my.salesforce.com",
            parse_instance_url,
            &mut problem,
        );
        let token_url = required(
            self.token_url.as_deref(),
            n.token_url,
            "https://login.salesforce.com/services/oauth2/token, or the My Domain or sandbox host",
            parse_token_url,
            &mut problem,
        );
        let api_version = match parse_api_version(self.api_version.as_deref()) {
            Ok(v) => Some(v),
            Err(e) => {
                problem(n.api_version, e);
                None
            }
        };
        if self.assertion_lifetime.is_zero() || self.assertion_lifetime > MAX_ASSERTION_LIFETIME {
            problem(
                "assertion_lifetime",
                format!(
                    "{:?} is out of range: Salesforce accepts assertions valid for at most 3 minutes (1 to 180 s)",
                    self.assertion_lifetime
                ),
            );
        }
        if self.session_lifetime < Duration::from_secs(60) {
            problem(
                "session_lifetime",
                "must be at least 1 minute (Salesforce's shortest session timeout is 15 minutes)"
                    .into(),
            );
        }
        if self.refresh_margin >= self.session_lifetime {
            problem(
                "refresh_margin",
                format!(
                    "{:?} must be shorter than the session lifetime {:?}",
                    self.refresh_margin, self.session_lifetime
                ),
            );
        }
        if self.http_timeout.is_zero() {
            problem("http_timeout", "must be more than zero".into());
        }
        if self.retry.max_attempts == 0 {
            problem("retry_policy", "max_attempts must be at least 1".into());
        }
        let key_field = n.key_field(self.key.as_ref());
        let key = read_key(self.key, &key_field, &mut problem);
        problems.extend(self.extra_problems);
        match (
            audience,
            key,
            username,
            client_id,
            instance_url,
            token_url,
            api_version,
        ) {
            (
                Some(audience),
                Some(key),
                Some(username),
                Some(client_id),
                Some(instance_url),
                Some(token_url),
                Some(api_version),
            ) if problems.is_empty() => Ok(JwtBearerConfig {
                audience,
                key,
                username,
                client_id,
                instance_url,
                token_url,
                api_version,
                assertion_lifetime: self.assertion_lifetime,
                session_lifetime: self.session_lifetime,
                refresh_margin: self.refresh_margin,
                http_timeout: self.http_timeout,
                retry: self.retry,
            }),
            _ => Err(ConfigError { problems }.into()),
        }
    }
}

/// A required field: blank or missing is reported as such, anything else as `parse` judges it.
fn required<T>(
    value: Option<&str>,
    field: &str,
    what: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
    problem: &mut impl FnMut(&str, String),
) -> Option<T> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => {
            problem(field, format!("is required: {what}"));
            None
        }
        Some(raw) => parse(raw).map_err(|e| problem(field, e)).ok(),
    }
}

fn parse_audience(raw: &str) -> Result<String, String> {
    // The audience is compared as a string by Salesforce, so it is kept exactly as given; it
    // must still be an https URL (loopback excepted, for tests), without credentials.
    parse_http_url(raw).map(|_| raw.to_string()).map_err(|e| {
        format!("{e}; use https://login.salesforce.com, https://test.salesforce.com or a site URL")
    })
}

/// The access token travels in clear over plain HTTP, so only `https` is accepted, except for
/// loopback hosts, which exist for tests and local proxies.
pub(crate) fn check_transport(url: &Url) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(format!(
            "plain http is only allowed for loopback hosts (127.0.0.0/8, ::1, localhost); use https://{}",
            url.host_str().unwrap_or("...")
        )),
        other => Err(format!("the scheme {other:?} is not supported; use https")),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn parse_http_url(raw: &str) -> Result<Url, String> {
    let shown = redact_userinfo(raw);
    let url = Url::parse(raw).map_err(|e| format!("{shown:?} is not a URL ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{shown:?} must not carry credentials (the `user:password@` part): the JWT bearer \
             flow needs none, remove them"
        ));
    }
    if url.host().is_none() {
        return Err(format!("{shown:?} has no host"));
    }
    check_transport(&url).map_err(|e| format!("{shown:?}: {e}"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{shown:?} must not have a query or fragment"));
    }
    Ok(url)
}

fn parse_instance_url(raw: &str) -> Result<Url, String> {
    let mut url = parse_http_url(raw)?;
    if url.path() != "/" {
        return Err(format!(
            "{:?} has a path; give only the origin, like https://acme.my.salesforce.com",
            redact_userinfo(raw)
        ));
    }
    url.set_path("");
    Ok(url)
}

fn parse_token_url(raw: &str) -> Result<Url, String> {
    let mut url = parse_http_url(raw)?;
    if url.path() == "/" {
        url.set_path(TOKEN_PATH);
    }
    Ok(url)
}

fn parse_api_version(raw: Option<&str>) -> Result<String, String> {
    let Some(raw) = raw.map(str::trim) else {
        return Ok(DEFAULT_API_VERSION.to_string());
    };
    let digits = raw.strip_prefix(['v', 'V']).unwrap_or(raw);
    // `NN` or `NN.0`: Salesforce's versions are whole numbers written with one decimal.
    let (major, minor) = digits.split_once('.').unwrap_or((digits, "0"));
    let well_formed = !major.is_empty()
        && major.len() <= 3
        && major.bytes().all(|b| b.is_ascii_digit())
        && minor == "0";
    let not_a_version = || {
        format!(
            "{raw:?} is not usable: a whole version from {MIN_API_VERSION}.0 (where \
             EventLogFile.Interval appeared) to {MAX_API_VERSION}.0, like {DEFAULT_API_VERSION}"
        )
    };
    if !well_formed {
        return Err(not_a_version());
    }
    let value: u32 = major.parse().map_err(|_| not_a_version())?;
    if !(MIN_API_VERSION..=MAX_API_VERSION).contains(&value) {
        return Err(not_a_version());
    }
    Ok(format!("{value}.0"))
}
