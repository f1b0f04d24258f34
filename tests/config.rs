//! Builder and environment validation: every problem found at build time, each naming its field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{AUDIENCE, CLIENT_ID, USERNAME, fixture, fixture_path};
use salesforce_jwt::{
    ConfigError, DEFAULT_API_VERSION, Error, JwtBearerConfig, JwtBearerConfigBuilder,
};

fn complete() -> JwtBearerConfigBuilder {
    JwtBearerConfig::builder()
        .audience_url(AUDIENCE)
        .client_key_path(fixture_path("test_rsa_pkcs1.pem"))
        .username(USERNAME)
        .client_id(CLIENT_ID)
        .instance_url("https://acme.my.salesforce.com")
        .token_url("https://login.salesforce.com")
}

fn config_error(result: Result<JwtBearerConfig, Error>) -> ConfigError {
    match result {
        Err(Error::Config(e)) => e,
        Err(other) => panic!("expected a config error, got {other:?}"),
        Ok(config) => panic!("expected a config error, got {config:?}"),
    }
}

fn fields(error: &ConfigError) -> Vec<&str> {
    error.problems.iter().map(|p| p.field.as_str()).collect()
}

/// The one problem of `error`, which must name `field`; returns its text.
fn only_problem<'a>(error: &'a ConfigError, field: &str) -> &'a str {
    assert_eq!(fields(error), [field], "{error}");
    &error.problems[0].problem
}

#[test]
fn a_complete_builder_builds() {
    let config = complete().build().unwrap();
    assert_eq!(config.audience(), AUDIENCE);
    assert_eq!(config.username(), USERNAME);
    assert_eq!(config.client_id(), CLIENT_ID);
    assert_eq!(
        config.instance_url().as_str(),
        "https://acme.my.salesforce.com/"
    );
    assert_eq!(
        config.token_url().as_str(),
        "https://login.salesforce.com/services/oauth2/token"
    );
    assert_eq!(config.api_version(), DEFAULT_API_VERSION);
    assert_eq!(
        config.data_path(),
        format!("/services/data/v{DEFAULT_API_VERSION}")
    );
    assert_eq!(config.assertion_lifetime(), Duration::from_secs(180));
    assert_eq!(config.session_lifetime(), Duration::from_secs(2 * 3600));
}

#[test]
fn each_missing_field_is_named() {
    type Unset = fn(JwtBearerConfigBuilder) -> JwtBearerConfigBuilder;
    let cases: [(&str, Unset); 6] = [
        ("audience_url", |b| b.audience_url("")),
        ("client_key", |b| b.client_key_pem("")),
        ("username", |b| b.username("   ")),
        ("client_id", |b| b.client_id("")),
        ("instance_url", |b| b.instance_url("")),
        ("token_url", |b| b.token_url(" ")),
    ];
    for (field, unset) in cases {
        let error = config_error(unset(complete()).build());
        assert_eq!(fields(&error), [field], "{error}");
        let text = error.to_string();
        assert!(text.contains(field), "{text}");
    }
    // The key, left out entirely rather than given empty.
    let error = config_error(
        JwtBearerConfig::builder()
            .audience_url(AUDIENCE)
            .username(USERNAME)
            .client_id(CLIENT_ID)
            .instance_url("https://acme.my.salesforce.com")
            .token_url("https://login.salesforce.com")
            .build(),
    );
    let text = only_problem(&error, "client_key");
    assert!(text.contains("is required"), "{text}");
}

#[test]
fn all_problems_are_reported_at_once() {
    let error = config_error(JwtBearerConfig::builder().build());
    let mut named = fields(&error);
    named.sort_unstable();
    assert_eq!(
        named,
        [
            "audience_url",
            "client_id",
            "client_key",
            "instance_url",
            "token_url",
            "username"
        ]
    );
    let text = error.to_string();
    assert!(text.contains("(6 problems)"), "{text}");
    for field in named {
        assert!(text.contains(&format!("- {field}: ")), "{text}");
    }

    // Invalid values (not only missing ones) are collected too.
    let error = config_error(
        complete()
            .token_url("http://login.salesforce.com")
            .instance_url("https://acme.my.salesforce.com/services")
            .api_version("abc")
            .assertion_lifetime(Duration::from_secs(600))
            .build(),
    );
    let mut named = fields(&error);
    named.sort_unstable();
    assert_eq!(
        named,
        [
            "api_version",
            "assertion_lifetime",
            "instance_url",
            "token_url"
        ]
    );
}

#[test]
fn one_problem_display_is_a_single_line() {
    let error = config_error(complete().username("").build());
    assert_eq!(
        error.to_string(),
        "invalid Salesforce JWT configuration: username: is required: the username of the \
         pre-authorized integration user"
    );
}

#[test]
fn https_is_required_except_for_loopback() {
    for url in [
        "http://127.0.0.1:8080",
        "http://127.1.2.3",
        "http://[::1]:9999",
        "http://localhost:3000",
        "http://LOCALHOST",
        "https://acme.my.salesforce.com",
    ] {
        let config = complete()
            .instance_url(url)
            .token_url(url)
            .build()
            .unwrap_or_else(|e| panic!("{url} refused: {e}"));
        assert_eq!(
            config.instance_url().scheme(),
            url.split(':').next().unwrap()
        );
    }
    for url in [
        "http://acme.my.salesforce.com",
        "http://login.salesforce.com",
        "http://127.0.0.1.nip.io",
        "http://localhost.example.com",
        "http://10.0.0.1",
        "http://[::2]",
    ] {
        let error = config_error(complete().token_url(url).build());
        let text = only_problem(&error, "token_url");
        assert!(text.contains("plain http"), "{url}: {text}");
        assert!(text.contains("https://"), "{url}: {text}");

        let error = config_error(complete().instance_url(url).build());
        let text = only_problem(&error, "instance_url");
        assert!(text.contains("plain http"), "{url}: {text}");
    }
    for url in [
        "ftp://login.salesforce.com",
        "not a url",
        "https://user:pw@acme.my.salesforce.com",
    ] {
        let error = config_error(complete().token_url(url).build());
        only_problem(&error, "token_url");
    }
}

#[test]
fn a_token_url_without_path_gets_the_token_path() {
    for (given, expected) in [
        (
            "https://login.salesforce.com",
            "https://login.salesforce.com/services/oauth2/token",
        ),
        (
            "https://acme.my.salesforce.com/",
            "https://acme.my.salesforce.com/services/oauth2/token",
        ),
        (
            "  https://test.salesforce.com  ",
            "https://test.salesforce.com/services/oauth2/token",
        ),
        (
            "https://login.salesforce.com/services/oauth2/token",
            "https://login.salesforce.com/services/oauth2/token",
        ),
        // A full URL is used exactly as given, even an unusual one (a proxy's path).
        (
            "https://proxy.example.com/salesforce/token",
            "https://proxy.example.com/salesforce/token",
        ),
    ] {
        let config = complete().token_url(given).build().unwrap();
        assert_eq!(config.token_url().as_str(), expected, "{given}");
    }
}

#[test]
fn an_instance_url_with_a_path_is_refused() {
    for url in [
        "https://acme.my.salesforce.com/services/data",
        "https://acme.my.salesforce.com/lightning/page/home",
    ] {
        let error = config_error(complete().instance_url(url).build());
        let text = only_problem(&error, "instance_url");
        assert!(text.contains("has a path"), "{text}");
    }
    let error = config_error(
        complete()
            .instance_url("https://acme.my.salesforce.com/?x=1")
            .build(),
    );
    only_problem(&error, "instance_url");
    // A trailing slash is no path.
    let config = complete()
        .instance_url("https://acme.my.salesforce.com/")
        .build()
        .unwrap();
    assert_eq!(
        config.instance_url().as_str(),
        "https://acme.my.salesforce.com/"
    );
}

#[test]
fn api_version_default_and_accepted_forms() {
    assert_eq!(complete().build().unwrap().api_version(), "64.0");
    for (given, expected) in [
        ("v62.0", "62.0"),
        ("62", "62.0"),
        ("62.0", "62.0"),
        ("V66.0", "66.0"),
        ("37.0", "37.0"),
    ] {
        let config = complete().api_version(given).build().unwrap();
        assert_eq!(config.api_version(), expected, "{given}");
        assert_eq!(config.data_path(), format!("/services/data/v{expected}"));
    }
}

#[test]
fn api_version_too_old_or_not_a_version_is_refused() {
    for given in [
        "36.0", "abc", "v", "62.5", "-64", "1e3", "999.0", "100", "6.4e1", "+64", "64.", "64 .0",
    ] {
        let error = config_error(complete().api_version(given).build());
        let text = only_problem(&error, "api_version");
        assert!(text.contains(given), "{given}: {text}");
    }
    let error = config_error(complete().api_version("36.0").build());
    assert!(error.problems[0].problem.contains("37.0"), "{error}");
}

#[test]
fn assertion_lifetime_is_at_most_180_seconds() {
    let config = complete()
        .assertion_lifetime(Duration::from_secs(180))
        .build()
        .unwrap();
    assert_eq!(config.assertion_lifetime(), Duration::from_secs(180));
    let config = complete()
        .assertion_lifetime(Duration::from_secs(30))
        .build()
        .unwrap();
    assert_eq!(config.assertion_lifetime(), Duration::from_secs(30));
    for lifetime in [
        Duration::from_secs(181),
        Duration::from_millis(180_001),
        Duration::from_secs(3600),
        Duration::ZERO,
    ] {
        let error = config_error(complete().assertion_lifetime(lifetime).build());
        let text = only_problem(&error, "assertion_lifetime");
        assert!(text.contains("3 minutes"), "{text}");
    }
}

#[test]
fn refresh_margin_must_be_shorter_than_the_session_lifetime() {
    let config = complete()
        .session_lifetime(Duration::from_secs(900))
        .refresh_margin(Duration::from_secs(899))
        .build()
        .unwrap();
    assert_eq!(config.refresh_margin(), Duration::from_secs(899));
    for margin in [900, 901, 7200] {
        let error = config_error(
            complete()
                .session_lifetime(Duration::from_secs(900))
                .refresh_margin(Duration::from_secs(margin))
                .build(),
        );
        only_problem(&error, "refresh_margin");
    }
    // The default margin (5 min) against a session shorter than it.
    let error = config_error(
        complete()
            .session_lifetime(Duration::from_secs(120))
            .build(),
    );
    only_problem(&error, "refresh_margin");
}

#[test]
fn a_bad_key_is_reported_under_the_key_field_with_the_key_error() {
    let error = config_error(
        complete()
            .client_key_path(fixture_path("test_rsa_public.pem"))
            .build(),
    );
    let text = only_problem(&error, "client_key");
    assert!(text.contains("public key"), "{text}");
}

// ---- from_lookup ----

fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn full_env() -> HashMap<String, String> {
    let key = fixture_path("test_rsa_pkcs8.pem");
    env(&[
        ("SF_AUDIENCE_URL", AUDIENCE),
        ("SF_CLIENT_KEY_PATH", key.to_str().unwrap()),
        ("SF_USERNAME", USERNAME),
        ("SF_CLIENT_ID", CLIENT_ID),
        ("SF_INSTANCE_URL", "https://acme.my.salesforce.com"),
        ("SF_TOKEN_URL", "https://acme.my.salesforce.com"),
    ])
}

fn from_map(vars: &HashMap<String, String>) -> Result<JwtBearerConfig, Error> {
    JwtBearerConfig::from_lookup(|name| vars.get(name).cloned())
}

#[test]
fn from_lookup_reads_every_variable() {
    let mut vars = full_env();
    vars.insert("SF_API_VERSION".into(), "v62.0".into());
    let config = from_map(&vars).unwrap();
    assert_eq!(config.audience(), AUDIENCE);
    assert_eq!(config.username(), USERNAME);
    assert_eq!(config.client_id(), CLIENT_ID);
    assert_eq!(
        config.instance_url().as_str(),
        "https://acme.my.salesforce.com/"
    );
    assert_eq!(
        config.token_url().as_str(),
        "https://acme.my.salesforce.com/services/oauth2/token"
    );
    assert_eq!(config.api_version(), "62.0");
    assert!(config.key().origin().contains("test_rsa_pkcs8.pem"));
}

#[test]
fn from_lookup_reports_all_missing_variables_in_one_error() {
    let error = config_error(from_map(&HashMap::new()));
    let mut named = fields(&error);
    named.sort_unstable();
    assert_eq!(
        named,
        [
            "SF_AUDIENCE_URL",
            "SF_CLIENT_ID",
            "SF_CLIENT_KEY_PATH (or SF_CLIENT_KEY_PEM)",
            "SF_INSTANCE_URL",
            "SF_TOKEN_URL",
            "SF_USERNAME",
        ]
    );
    let text = error.to_string();
    for var in [
        "SF_AUDIENCE_URL",
        "SF_CLIENT_ID",
        "SF_CLIENT_KEY_PEM",
        "SF_USERNAME",
    ] {
        assert!(text.contains(var), "{text}");
    }

    // Blank values count as missing; present ones are not reported.
    let mut vars = full_env();
    vars.insert("SF_USERNAME".into(), "  ".into());
    vars.remove("SF_TOKEN_URL");
    let error = config_error(from_map(&vars));
    let mut named = fields(&error);
    named.sort_unstable();
    assert_eq!(named, ["SF_TOKEN_URL", "SF_USERNAME"]);
}

#[test]
fn from_lookup_names_invalid_variables() {
    let mut vars = full_env();
    vars.insert("SF_API_VERSION".into(), "36.0".into());
    vars.insert("SF_TOKEN_URL".into(), "http://login.salesforce.com".into());
    let error = config_error(from_map(&vars));
    let mut named = fields(&error);
    named.sort_unstable();
    assert_eq!(named, ["SF_API_VERSION", "SF_TOKEN_URL"]);

    let mut vars = full_env();
    vars.insert("SF_CLIENT_KEY_PATH".into(), "/nonexistent/key.pem".into());
    let error = config_error(from_map(&vars));
    let text = only_problem(&error, "SF_CLIENT_KEY_PATH");
    assert!(text.contains("/nonexistent/key.pem"), "{text}");
}

#[test]
fn from_lookup_accepts_the_pem_itself() {
    let mut vars = full_env();
    vars.remove("SF_CLIENT_KEY_PATH");
    vars.insert("SF_CLIENT_KEY_PEM".into(), fixture("test_rsa_pkcs1.pem"));
    let config = from_map(&vars).unwrap();
    assert_eq!(config.key().origin(), "the in-memory PEM");

    // A bad PEM is reported under the variable that held it.
    vars.insert("SF_CLIENT_KEY_PEM".into(), fixture("test_rsa_cert.pem"));
    let error = config_error(from_map(&vars));
    let text = only_problem(&error, "SF_CLIENT_KEY_PEM");
    assert!(text.contains("certificate"), "{text}");
}

#[test]
fn from_lookup_accepts_a_pem_with_literal_backslash_n() {
    for name in ["test_rsa_pkcs1.pem", "test_rsa_pkcs8.pem"] {
        let escaped = fixture(name).replace('\n', "\\n");
        assert!(!escaped.contains('\n'));
        let mut vars = full_env();
        vars.remove("SF_CLIENT_KEY_PATH");
        vars.insert("SF_CLIENT_KEY_PEM".into(), escaped);
        from_map(&vars).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn from_lookup_refuses_both_key_variables() {
    let mut vars = full_env();
    vars.insert("SF_CLIENT_KEY_PEM".into(), fixture("test_rsa_pkcs1.pem"));
    let error = config_error(from_map(&vars));
    let text = only_problem(&error, "SF_CLIENT_KEY_PATH");
    assert!(text.contains("SF_CLIENT_KEY_PEM"), "{text}");
    assert!(text.contains("only one"), "{text}");
}

#[test]
fn credentials_in_a_url_are_never_echoed() {
    for url in [
        "https://integration:s3cret-pa55@acme.my.salesforce.com",
        "http://integration:s3cret-pa55@acme.my.salesforce.com/x?y",
        "https://integration:s3cret-pa55@acme.my.salesforce.com/services/oauth2/token",
        "integration:s3cret-pa55@acme.my.salesforce.com",
        "https://integration:s3cret-pa55@",
        "ftp://integration:s3cret-pa55@acme.my.salesforce.com",
    ] {
        let builder = complete()
            .audience_url(url)
            .instance_url(url)
            .token_url(url);
        let debug = format!("{builder:?}");
        assert!(!debug.contains("s3cret-pa55"), "{debug}");
        let error = config_error(builder.build());
        assert_eq!(
            fields(&error),
            ["audience_url", "instance_url", "token_url"],
            "{error}"
        );
        let text = error.to_string();
        assert!(!text.contains("s3cret-pa55"), "{url}: {text}");
        assert!(!text.contains("integration:"), "{url}: {text}");
        assert!(!format!("{error:?}").contains("s3cret-pa55"), "{url}");
    }
    let error = config_error(
        complete()
            .instance_url("https://integration:s3cret-pa55@acme.my.salesforce.com")
            .build(),
    );
    let text = only_problem(&error, "instance_url");
    assert!(text.contains("must not carry credentials"), "{text}");
    assert!(
        text.contains("https://***@acme.my.salesforce.com"),
        "{text}"
    );
}

#[test]
fn the_audience_must_be_https_except_on_loopback() {
    for audience in ["http://login.salesforce.com", "http://test.salesforce.com"] {
        let error = config_error(complete().audience_url(audience).build());
        let text = only_problem(&error, "audience_url");
        assert!(text.contains("plain http"), "{audience}: {text}");
    }
    for audience in [
        "http://127.0.0.1:8080",
        "http://localhost",
        "https://login.salesforce.com",
    ] {
        let config = complete().audience_url(audience).build().unwrap();
        assert_eq!(config.audience(), audience, "kept exactly as given");
    }
    let error = config_error(
        complete()
            .audience_url("http://login.salesforce.com")
            .api_version("999.0")
            .build(),
    );
    assert_eq!(fields(&error), ["audience_url", "api_version"], "{error}");
}

async fn mock_org_client(
    api_version: &str,
) -> (
    salesforce_jwt_mock::MockOrg,
    salesforce_jwt::JwtBearerClient,
) {
    let org = salesforce_jwt_mock::MockOrg::start().await;
    let config = JwtBearerConfig::builder()
        .audience_url(org.audience())
        .client_key_pem(salesforce_jwt_mock::DEMO_PRIVATE_KEY_PEM)
        .username(org.username())
        .client_id(org.client_id())
        .instance_url(org.instance_url())
        .token_url(org.token_url())
        .api_version(api_version)
        .build()
        .unwrap();
    let client = salesforce_jwt::JwtBearerClient::new(config).unwrap();
    (org, client)
}

#[tokio::test]
async fn an_api_version_the_org_does_not_serve_names_the_newest_it_does() {
    let (_org, client) = mock_org_client("67.0").await;
    let error = match client.check_api_version().await {
        Err(Error::Config(e)) => e,
        other => panic!("{other:?}"),
    };
    let text = only_problem(&error, "api_version (SF_API_VERSION)");
    assert!(text.contains("67.0 is not served"), "{text}");
    assert!(text.contains("the newest is 66.0"), "{text}");
    assert!(text.contains("62.0 to 66.0"), "{text}");
}

#[tokio::test]
async fn a_served_api_version_passes_the_check_without_a_session() {
    let (org, client) = mock_org_client("64.0").await;
    let served = client.check_api_version().await.unwrap();
    assert_eq!(served, ["62.0", "63.0", "64.0", "65.0", "66.0"]);
    assert_eq!(org.received().token_successes, 0, "no token was needed");
}

/// A configuration file's names: the key from a file or from an environment variable.
const FILE_FIELDS: &[(&str, &str)] = &[
    ("client_key_path", "client_key_path"),
    ("client_key_pem", "client_key_env"),
    ("username", "user"),
];

fn file_settings(name: &str) -> Option<String> {
    match name {
        "audience_url" => Some(AUDIENCE.into()),
        "user" => Some(USERNAME.into()),
        "client_id" => Some(CLIENT_ID.into()),
        "instance_url" => Some("https://acme.my.salesforce.com".into()),
        "token_url" => Some("https://login.salesforce.com".into()),
        _ => None,
    }
}

#[test]
fn the_key_source_rule_and_the_settings_go_by_the_callers_field_names() {
    let builder = || {
        JwtBearerConfig::builder()
            .field_names(FILE_FIELDS)
            .settings_from(file_settings)
    };
    let pem = fixture("test_rsa_pkcs1.pem");

    // Either source alone builds, settings read by the caller's names.
    let config = builder()
        .client_key_from(Some(fixture_path("test_rsa_pkcs1.pem")), None)
        .build()
        .unwrap();
    assert_eq!(config.username(), USERNAME);
    let config = builder()
        .client_key_from(None, Some(Ok(pem.clone())))
        .build()
        .unwrap();
    assert_eq!(config.key().origin(), "the in-memory PEM");

    // Neither: one missing key naming both fields.
    let error = config_error(builder().client_key_from(None, None).build());
    only_problem(&error, "client_key_path (or client_key_env)");
    // A blank PEM counts as not given.
    let error = config_error(
        builder()
            .client_key_from(None, Some(Ok("  ".into())))
            .build(),
    );
    only_problem(&error, "client_key_path (or client_key_env)");

    // Both: one problem under the path's name, not also a missing key; the PEM not in it.
    let both = builder().client_key_from(
        Some(fixture_path("test_rsa_pkcs1.pem")),
        Some(Ok(pem.clone())),
    );
    assert!(!format!("{both:?}").contains("PRIVATE KEY"), "{both:?}");
    let error = config_error(both.build());
    let text = only_problem(&error, "client_key_path");
    assert!(
        text.contains("client_key_env") && text.contains("only one"),
        "{text}"
    );
    assert!(!error.to_string().contains("PRIVATE KEY"), "{error}");

    // A PEM field whose text cannot be had: its problem under its name, the key not missing.
    let error = config_error(
        builder()
            .client_key_from(None, Some(Err("the variable KEY is not set".into())))
            .build(),
    );
    assert_eq!(
        only_problem(&error, "client_key_env"),
        "the variable KEY is not set"
    );

    // A bad PEM is reported under the field it came from; a renamed setting by its name.
    let error = config_error(
        JwtBearerConfig::builder()
            .field_names(FILE_FIELDS)
            .settings_from(|name| (name != "user").then(|| file_settings(name)).flatten())
            .client_key_from(None, Some(Ok(fixture("test_rsa_cert.pem"))))
            .build(),
    );
    let mut named = fields(&error);
    named.sort_unstable();
    assert_eq!(named, ["client_key_env", "user"]);

    // A name for a field that does not exist is a mistake of the caller's, said as such.
    let error = config_error(
        builder()
            .field_names(&[("client_key", "key")])
            .client_key_from(Some(fixture_path("test_rsa_pkcs1.pem")), None)
            .build(),
    );
    assert!(only_problem(&error, "field_names").contains("\"client_key\""));
}
