//! What a downstream crate sees: the types it must name come from this crate, streams work
//! with a plain `while let`, and the README's `[dependencies]` snippet names this version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use salesforce_jwt::event_log_file::{EventLogFileQuery, LogFileDecoder};
use salesforce_jwt::{
    Bytes, ClientBuilder, HeaderName, HeaderValue, InstanceRequest, JwtBearerClient, Method,
    OffsetDateTime, QueryOptions, StreamExt as _, Url,
};

fn assert_unpin<T: Unpin>(_: &T) {}

#[tokio::test]
async fn query_streams_are_unpin_and_need_no_pinning() {
    let clock = common::manual_clock();
    let org = salesforce_jwt_mock::MockOrg::builder()
        .clock(std::sync::Arc::new(clock.clone()))
        .start()
        .await;
    org.add_demo_data(common::start_time());
    let config = salesforce_jwt::JwtBearerConfig::builder()
        .audience_url(org.audience())
        .client_key_pem(salesforce_jwt_mock::DEMO_PRIVATE_KEY_PEM)
        .username(org.username())
        .client_id(org.client_id())
        .instance_url(org.instance_url())
        .token_url(org.token_url())
        .build()
        .unwrap();
    let client = JwtBearerClient::builder(config)
        .clock(std::sync::Arc::new(clock.clone()))
        .http_client_builder(ClientBuilder::new())
        .build()
        .unwrap();

    let mut files = client.event_log_files(&EventLogFileQuery::new());
    assert_unpin(&files);
    let mut seen = Vec::new();
    while let Some(file) = files.next().await {
        seen.push(file.unwrap());
    }
    assert!(!seen.is_empty());

    let mut rows = client.log_records(&seen[0]).await.unwrap();
    assert_unpin(&rows);
    let mut n = 0;
    while let Some(row) = rows.next().await {
        row.unwrap();
        n += 1;
    }
    assert!(n > 0);

    let mut body = client.download_log_file(&seen[0]).await.unwrap();
    assert_unpin(&body);
    let mut bytes: Vec<Bytes> = Vec::new();
    while let Some(chunk) = body.next().await {
        bytes.push(chunk.unwrap());
    }
    assert!(!bytes.is_empty());

    seen.truncate(3);
    let mut concurrent = client.download_concurrently(seen.clone(), 2);
    assert_unpin(&concurrent);
    while let Some(mut file) = concurrent.next().await {
        assert_unpin(&file);
        while let Some(row) = file.next().await {
            row.unwrap();
        }
    }

    let mut ids =
        client.query::<serde_json::Value>("SELECT Id FROM EventLogFile", QueryOptions::default());
    assert_unpin(&ids);
    while let Some(id) = ids.next().await {
        id.unwrap();
    }
}

#[test]
fn the_types_users_name_are_reexported() {
    let _: OffsetDateTime = salesforce_jwt::time::macros::datetime!(2024-03-11 15:00 UTC);
    let _: Url = Url::parse("https://acme.my.salesforce.com").unwrap();
    let _ = InstanceRequest::new(Method::GET, "/services/data/").header(
        HeaderName::from_static("x-a"),
        HeaderValue::from_static("b"),
    );
    let _: salesforce_jwt::reqwest::Client = salesforce_jwt::reqwest::Client::new();
    let _: Option<salesforce_jwt::StatusCode> = None;
    let _: Option<salesforce_jwt::Response> = None;
    let _ = LogFileDecoder::new("0AT000000000001AAA", None, None);
}

#[test]
fn the_readme_dependency_snippet_names_this_version() {
    let readme = include_str!("../README.md");
    let version = env!("CARGO_PKG_VERSION");
    let snippets: Vec<&str> = readme
        .lines()
        .filter(|l| l.trim_start().starts_with("salesforce-jwt ="))
        .collect();
    assert!(
        !snippets.is_empty(),
        "the README has no [dependencies] snippet"
    );
    for line in snippets {
        // `salesforce-jwt = "0.1"` or `salesforce-jwt = { version = "0.1", ... }`.
        let requirement = line
            .split('"')
            .nth(1)
            .unwrap_or_else(|| panic!("no version in {line:?}"));
        let wanted: Vec<&str> = requirement.split('.').collect();
        let have: Vec<&str> = version.split('.').collect();
        // Cargo's caret rule: 0.x pins the minor version, 1.x and later the major.
        let significant = if have[0] == "0" { 2 } else { 1 };
        assert!(
            wanted.len() >= significant && wanted[..significant] == have[..significant],
            "README asks for {requirement:?} but Cargo.toml is at {version}"
        );
        for (w, h) in wanted.iter().zip(&have) {
            assert!(
                w.parse::<u64>().unwrap() <= h.parse::<u64>().unwrap(),
                "{requirement} > {version}"
            );
        }
    }
}
