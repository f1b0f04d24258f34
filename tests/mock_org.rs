//! The mock org against its specification: Salesforce's wire behaviour, exercised with plain
//! reqwest and jsonwebtoken (no other module of this crate), so a mismatch in either shows here.

use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use salesforce_jwt::clock::{Clock, ManualClock};
use salesforce_jwt_mock::{
    DEMO_PRIVATE_KEY_PEM, EDGE_CASE_CYCLE, Fault, FaultTarget, Interval, MockLogFile, MockOrg,
    MockOrgBuilder,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

const PRIVATE_KEY: &str = include_str!("fixtures/test_rsa_pkcs8.pem");
const PUBLIC_KEY: &str = include_str!("fixtures/test_rsa_public.pem");
const CERTIFICATE: &str = include_str!("fixtures/test_rsa_cert.pem");
const OTHER_KEY: &str = include_str!("fixtures/other_rsa_pkcs1.pem");

/// A fixed "now" far in the real past: a token request only succeeds if the org judges `exp` by
/// its own clock, not the system's.
const T0: OffsetDateTime = datetime!(2024-03-12 12:00 UTC);

const ALL_FIELDS: &str = "Id, EventType, LogDate, CreatedDate, Interval, Sequence, \
    LogFileLength, LogFile, ApiVersion, LogFileContentType, LogFileFieldNames, LogFileFieldTypes";

fn builder(clock: &ManualClock) -> MockOrgBuilder {
    MockOrg::builder()
        .public_key_pem(PUBLIC_KEY)
        .unwrap()
        .clock(Arc::new(clock.clone()))
}

async fn org() -> (MockOrg, ManualClock) {
    let clock = ManualClock::new(T0);
    (builder(&clock).start().await, clock)
}

fn sign(key_pem: &str, claims: &Value) -> String {
    let key = if key_pem.contains("BEGIN RSA PRIVATE KEY") || key_pem.contains("BEGIN PRIVATE KEY")
    {
        EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap()
    } else {
        panic!("not an RSA private key")
    };
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key).unwrap()
}

fn claims(org: &MockOrg, clock: &ManualClock) -> Value {
    json!({
        "iss": org.client_id(),
        "sub": org.username(),
        "aud": org.audience(),
        "exp": clock.now().unix_timestamp() + 180,
    })
}

async fn post_token(org: &MockOrg, assertion: &str) -> (StatusCode, Value) {
    post_grant(
        org,
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        assertion,
    )
    .await
}

async fn post_grant(org: &MockOrg, grant_type: &str, assertion: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(org.token_url())
        .form(&[("grant_type", grant_type), ("assertion", assertion)])
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn token(org: &MockOrg, clock: &ManualClock) -> String {
    let (status, body) = post_token(org, &sign(PRIVATE_KEY, &claims(org, clock))).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn get(org: &MockOrg, token: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}{path}", org.uri()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn query_with(
    org: &MockOrg,
    token: &str,
    soql: &str,
    batch_size: Option<usize>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .get(format!("{}/services/data/v64.0/query", org.uri()))
        .query(&[("q", soql)])
        .bearer_auth(token);
    if let Some(n) = batch_size {
        request = request.header("Sforce-Query-Options", format!("batchSize={n}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    // Edge-proxy faults answer HTML: keep it as a string instead of failing to parse.
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn query(org: &MockOrg, token: &str, soql: &str) -> (StatusCode, Value) {
    query_with(org, token, soql, None).await
}

fn record_ids(body: &Value) -> Vec<String> {
    body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_owned())
        .collect()
}

fn error_code(body: &Value) -> (&str, &str) {
    (
        body[0]["errorCode"].as_str().unwrap(),
        body[0]["message"].as_str().unwrap(),
    )
}

fn file(
    event_type: &str,
    interval: Interval,
    log_date: OffsetDateTime,
    seq: i32,
    created: OffsetDateTime,
) -> MockLogFile {
    MockLogFile::builder(event_type)
        .interval(interval)
        .log_date(log_date)
        .sequence(seq)
        .created_date(created)
        .rows(3)
        .seed(7)
        .build()
}

// ---------------------------------------------------------------------------------------------
// Token endpoint

#[tokio::test]
async fn token_success_has_salesforce_shape() {
    let (org, clock) = org().await;
    let (status, body) = post_token(&org, &sign(PRIVATE_KEY, &claims(&org, &clock))).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert!(token.starts_with("00D000000000001!AR"), "{token}");
    assert!(token.len() >= "00D000000000001!AR".len() + 40);
    assert_eq!(body["scope"], "api");
    assert_eq!(body["instance_url"], org.uri());
    assert_eq!(org.instance_url(), org.uri());
    assert_eq!(body["token_type"], "Bearer");
    let id = body["id"].as_str().unwrap();
    assert!(id.starts_with(&format!("{}/id/00D", org.uri())), "{id}");
    let parts: Vec<&str> = id.rsplit('/').take(2).collect();
    assert_eq!(parts[0].len(), 18);
    assert!(parts[0].starts_with("005"));
    assert!(parts[1].starts_with("00D"));
    assert_eq!(
        body["issued_at"],
        (T0.unix_timestamp() * 1000).to_string(),
        "issued_at is the org clock in ms"
    );
    assert!(body["signature"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(body.get("refresh_token").is_none() && body.get("expires_in").is_none());

    let received = org.received();
    assert_eq!((received.token_requests, received.token_successes), (1, 1));

    // Two requests, two different tokens.
    let other = super_token(&org, &clock).await;
    assert_ne!(other, token);
}

async fn super_token(org: &MockOrg, clock: &ManualClock) -> String {
    token(org, clock).await
}

#[tokio::test]
async fn token_errors_match_salesforce() {
    let (org, clock) = org().await;
    let good = claims(&org, &clock);
    let with = |key: &str, value: Value| {
        let mut c = good.clone();
        c[key] = value;
        c
    };
    let cases: Vec<(String, &str, &str)> = vec![
        (sign(OTHER_KEY, &good), "invalid_grant", "invalid assertion"),
        (
            sign(PRIVATE_KEY, &with("iss", json!("3MVG9WRONG"))),
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            sign(
                PRIVATE_KEY,
                &with("aud", json!("https://test.salesforce.com")),
            ),
            "invalid_grant",
            "audience is invalid",
        ),
        (
            sign(PRIVATE_KEY, &with("sub", json!("someone@example.com"))),
            "invalid_grant",
            "user hasn't approved this consumer",
        ),
        (
            sign(PRIVATE_KEY, &with("exp", json!(T0.unix_timestamp() - 1))),
            "invalid_grant",
            "expired authorization code",
        ),
        (
            sign(PRIVATE_KEY, &with("exp", json!(T0.unix_timestamp()))),
            "invalid_grant",
            "expired authorization code",
        ),
        (
            sign(PRIVATE_KEY, &with("exp", json!("1710244980"))),
            "invalid_grant",
            "invalid assertion",
        ),
        ("not-a-jwt".to_owned(), "invalid_grant", "invalid assertion"),
        (
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &good,
                &EncodingKey::from_secret(b"secret"),
            )
            .unwrap(),
            "invalid_grant",
            "invalid assertion",
        ),
    ];
    for (assertion, error, description) in cases {
        let (status, body) = post_token(&org, &assertion).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], error, "{body}");
        assert_eq!(body["error_description"], description, "{body}");
    }
    let (status, body) = post_grant(&org, "password", &sign(PRIVATE_KEY, &good)).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": "unsupported_grant_type", "error_description": "grant type not supported"})
    );
    let received = org.received();
    assert_eq!(received.token_requests, 10);
    assert_eq!(received.token_successes, 0);

    // The expiry is judged by the org clock: move it back and the "expired" assertion passes.
    clock.set(T0 - Duration::from_secs(60));
    let (status, _) = post_token(
        &org,
        &sign(PRIVATE_KEY, &with("exp", json!(T0.unix_timestamp() - 1))),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn keys_demo_pair_and_certificate() {
    // Default org: verifies with the built-in demo key.
    let org = MockOrg::start().await;
    let clock = ManualClock::new(OffsetDateTime::now_utc());
    let claims = claims(&org, &clock);
    assert_eq!(
        post_token(&org, &sign(DEMO_PRIVATE_KEY_PEM, &claims))
            .await
            .0,
        200
    );
    let (status, body) = post_token(&org, &sign(PRIVATE_KEY, &claims)).await;
    assert_eq!(
        (status.as_u16(), body["error_description"].as_str()),
        (400, Some("invalid assertion"))
    );
    assert_ne!(
        DEMO_PRIVATE_KEY_PEM, PRIVATE_KEY,
        "the demo key must not be a test fixture"
    );

    // The certificate an admin uploads works as the verification key.
    let clock = ManualClock::new(T0);
    let org = MockOrg::builder()
        .public_key_pem(CERTIFICATE)
        .unwrap()
        .clock(Arc::new(clock.clone()))
        .start()
        .await;
    assert_eq!(
        post_token(&org, &sign(PRIVATE_KEY, &crate::claims(&org, &clock)))
            .await
            .0,
        200
    );

    // A private key where the public one belongs is refused up front.
    assert!(MockOrg::builder().public_key_pem(PRIVATE_KEY).is_err());
    assert!(MockOrg::builder().public_key_pem("garbage").is_err());
}

#[tokio::test]
async fn custom_identity_settings() {
    let clock = ManualClock::new(T0);
    let org = builder(&clock)
        .client_id("3MVG9CUSTOM")
        .username("svc@acme.example")
        .audience("https://test.salesforce.com")
        .start()
        .await;
    assert_eq!(
        (org.client_id(), org.username(), org.audience()),
        (
            "3MVG9CUSTOM",
            "svc@acme.example",
            "https://test.salesforce.com"
        )
    );
    token(&org, &clock).await;
}

// ---------------------------------------------------------------------------------------------
// Sessions

#[tokio::test]
async fn session_expires_after_lifetime() {
    let clock = ManualClock::new(T0);
    let org = builder(&clock)
        .token_lifetime(Duration::from_secs(900))
        .start()
        .await;
    let token = token(&org, &clock).await;
    let count = "SELECT COUNT() FROM EventLogFile";
    assert_eq!(query(&org, &token, count).await.0, 200);
    clock.advance(Duration::from_secs(899));
    assert_eq!(query(&org, &token, count).await.0, 200);
    clock.advance(Duration::from_secs(1));
    let (status, body) = query(&org, &token, count).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );
    assert_eq!(org.received().unauthorized, 1);
    let fresh = crate::token(&org, &clock).await;
    assert_eq!(query(&org, &fresh, count).await.0, 200);
}

#[tokio::test]
async fn revoked_and_overused_tokens_are_refused() {
    let clock = ManualClock::new(T0);
    let org = builder(&clock).token_max_uses(Some(2)).start().await;
    let count = "SELECT COUNT() FROM EventLogFile";
    let t = token(&org, &clock).await;
    assert_eq!(query(&org, &t, count).await.0, 200);
    assert_eq!(query(&org, &t, count).await.0, 200);
    assert_eq!(query(&org, &t, count).await.0, 401);

    let t = token(&org, &clock).await;
    assert_eq!(query(&org, &t, count).await.0, 200);
    org.revoke_all_tokens();
    assert_eq!(query(&org, &t, count).await.0, 401);
    let t = token(&org, &clock).await;
    assert_eq!(query(&org, &t, count).await.0, 200);

    // No token, a made-up token, a download without a token: all 401.
    let response = reqwest::Client::new()
        .get(format!(
            "{}/services/data/v64.0/query?q=SELECT+Id+FROM+EventLogFile",
            org.uri()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(query(&org, "00D000000000001!ARnope", count).await.0, 401);
    assert_eq!(org.received().unauthorized, 4);
}

#[tokio::test]
async fn limit_info_header_counts_api_requests() {
    let (org, clock) = org().await;
    let t = token(&org, &clock).await;
    for expected in 1..=3 {
        let response = get(
            &org,
            &t,
            "/services/data/v64.0/query?q=SELECT+COUNT()+FROM+EventLogFile",
        )
        .await;
        assert_eq!(
            response.headers()["Sforce-Limit-Info"],
            format!("api-usage={expected}/15000").as_str()
        );
    }
}

#[tokio::test]
async fn permission_problems_show_at_the_first_query() {
    let clock = ManualClock::new(T0);
    let org = builder(&clock).event_log_access(false).start().await;
    let t = token(&org, &clock).await;
    let (status, body) = query(&org, &t, "SELECT Id FROM EventLogFile").await;
    assert_eq!(status, 400);
    let (code, message) = error_code(&body);
    assert_eq!(code, "INVALID_TYPE");
    assert!(
        message.starts_with("sObject type 'EventLogFile' is not supported."),
        "{message}"
    );

    let org = builder(&clock).api_enabled(false).start().await;
    let t = token(&org, &clock).await;
    let (status, body) = query(&org, &t, "SELECT Id FROM EventLogFile").await;
    assert_eq!(status, 403);
    assert_eq!(
        error_code(&body),
        (
            "API_DISABLED_FOR_ORG",
            "The REST API is not enabled for this Organization."
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Queries

/// Files over two days with known metadata; returns the org, clock, token and Ids:
/// 0 Login daily 03-10, 1 API daily 03-10, 2 Login hourly 03-11T10 seq 1, 3 API hourly 03-11T10,
/// 4 URI hourly 03-11T10 (2..4 share a CreatedDate), 5 Login hourly 03-11T10 seq 2 (late),
/// 6 Login hourly 03-12T02.
async fn seeded() -> (MockOrg, ManualClock, String, Vec<String>) {
    let (org, clock) = org().await;
    let d10 = datetime!(2024-03-10 00:00 UTC);
    let h10 = datetime!(2024-03-11 10:00 UTC);
    let shared_created = datetime!(2024-03-11 13:17 UTC);
    let ids = vec![
        org.add_file(file(
            "Login",
            Interval::Daily,
            d10,
            0,
            datetime!(2024-03-11 02:00 UTC),
        )),
        org.add_file(file(
            "API",
            Interval::Daily,
            d10,
            0,
            datetime!(2024-03-11 02:07 UTC),
        )),
        org.add_file(file("Login", Interval::Hourly, h10, 1, shared_created)),
        org.add_file(file("API", Interval::Hourly, h10, 1, shared_created)),
        org.add_file(file("URI", Interval::Hourly, h10, 1, shared_created)),
        org.add_file(file(
            "Login",
            Interval::Hourly,
            h10,
            2,
            datetime!(2024-03-11 19:40:00.750 UTC),
        )),
        org.add_file(file(
            "Login",
            Interval::Hourly,
            datetime!(2024-03-12 02:00 UTC),
            1,
            datetime!(2024-03-12 05:30 UTC),
        )),
    ];
    let t = token(&org, &clock).await;
    (org, clock, t, ids)
}

#[tokio::test]
async fn record_shape_is_exactly_salesforce() {
    let (org, _clock, t, ids) = seeded().await;
    let response = get(
        &org,
        &t,
        &format!(
            "/services/data/v62.0/query?q={}",
            url_encode(&format!(
                "select {ALL_FIELDS} from EventLogFile where Id = '{}'",
                ids[5]
            ))
        ),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let text = response.text().await.unwrap();
    let length = org.csv_of(&ids[5]).unwrap().len();
    let id = &ids[5];
    let info = org.files().into_iter().find(|f| f.id == *id).unwrap();
    let expected = format!(
        concat!(
            r#"{{"totalSize":1,"done":true,"records":[{{"attributes":{{"type":"EventLogFile","url":"/services/data/v62.0/sobjects/EventLogFile/{id}"}},"#,
            r#""Id":"{id}","EventType":"Login","LogDate":"2024-03-11T10:00:00.000+0000","CreatedDate":"2024-03-11T19:40:00.000+0000","#,
            r#""Interval":"Hourly","Sequence":2,"LogFileLength":{length}.0,"LogFile":"/services/data/v62.0/sobjects/EventLogFile/{id}/LogFile","#,
            r#""ApiVersion":64.0,"LogFileContentType":"CSV","LogFileFieldNames":"{names}","LogFileFieldTypes":"{types}"}}]}}"#
        ),
        id = id,
        length = length,
        names = "EVENT_TYPE,TIMESTAMP,REQUEST_ID,ORGANIZATION_ID,USER_ID,RUN_TIME,CPU_TIME,URI,SESSION_KEY,LOGIN_KEY,USER_TYPE,REQUEST_STATUS,DB_TOTAL_TIME,LOGIN_TYPE,BROWSER_TYPE,API_TYPE,API_VERSION,USER_NAME,TLS_PROTOCOL,CIPHER_SUITE,AUTHENTICATION_METHOD_REFERENCE,LOGIN_SUB_TYPE,TIMESTAMP_DERIVED,USER_ID_DERIVED,CLIENT_IP,URI_ID_DERIVED,LOGIN_STATUS,SOURCE_IP",
        types = "String,String,String,Id,Id,Number,Number,String,String,String,String,String,Number,String,String,String,Number,String,String,String,String,String,DateTime,Id,IP,Id,String,IP",
    );
    assert_eq!(text, expected);
    assert_eq!(info.length as usize, length);
    assert_eq!(
        info.created_date,
        datetime!(2024-03-11 19:40 UTC),
        "stored to whole seconds"
    );

    // Only the selected fields, in query order, with canonical names whatever the query's case.
    let (_, body) = query(
        &org,
        &t,
        &format!("SELECT sequence, ID FROM eventlogfile WHERE Id = '{id}'"),
    )
    .await;
    let record = body["records"][0].as_object().unwrap();
    let keys: Vec<&str> = record.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 3);
    assert!(keys.contains(&"attributes") && keys.contains(&"Sequence") && keys.contains(&"Id"));
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn filters_order_and_limit() {
    let (org, _clock, t, ids) = seeded().await;
    let q = |w: &str| format!("SELECT Id FROM EventLogFile {w}");
    let run = |soql: String| {
        let org = &org;
        let t = &t;
        async move {
            let (status, body) = query(org, t, &soql).await;
            assert_eq!(status, 200, "{soql}: {body}");
            assert_eq!(
                body["totalSize"].as_u64().unwrap() as usize,
                body["records"].as_array().unwrap().len()
            );
            assert_eq!(body["done"], true);
            record_ids(&body)
        }
    };
    let pick = |idx: &[usize]| idx.iter().map(|i| ids[*i].clone()).collect::<Vec<_>>();

    assert_eq!(run(q("")).await, pick(&[0, 1, 2, 3, 4, 5, 6]));
    assert_eq!(
        run(q("WHERE EventType IN ('Login', 'URI')")).await,
        pick(&[0, 2, 4, 5, 6])
    );
    assert_eq!(
        run(q("WHERE EventType NOT IN ('Login', 'URI')")).await,
        pick(&[1, 3])
    );
    assert_eq!(
        run(q("WHERE EventType = 'login'")).await,
        pick(&[0, 2, 5, 6]),
        "text compares case-insensitively"
    );
    assert_eq!(run(q("WHERE Interval = 'Daily'")).await, pick(&[0, 1]));
    assert_eq!(
        run(q("WHERE Interval != 'Daily' AND Sequence > 1")).await,
        pick(&[5])
    );
    assert_eq!(
        run(q(
            "WHERE LogDate >= 2024-03-11T00:00:00Z AND LogDate < 2024-03-12T00:00:00Z"
        ))
        .await,
        pick(&[2, 3, 4, 5])
    );
    assert_eq!(
        run(q("WHERE LogDate = 2024-03-10")).await,
        pick(&[0, 1]),
        "date literal on LogDate"
    );
    assert_eq!(
        run(q("WHERE LogDate = 2024-03-11T11:00:00+01:00")).await,
        pick(&[2, 3, 4, 5]),
        "offset literal"
    );
    assert_eq!(
        run(q("WHERE CreatedDate > 2024-03-11T13:17:00.000Z")).await,
        pick(&[5, 6])
    );
    assert_eq!(
        run(q("WHERE NOT (EventType = 'Login' OR EventType = 'API')")).await,
        pick(&[4])
    );
    assert_eq!(
        run(q("WHERE EventType LIKE 'Lo%'")).await,
        pick(&[0, 2, 5, 6])
    );
    assert_eq!(
        run(q("WHERE LogFileLength > 0 AND ApiVersion = 64.0"))
            .await
            .len(),
        7
    );
    assert_eq!(run(q("WHERE EventType != null")).await.len(), 7);
    assert_eq!(run(q("WHERE EventType = null")).await.len(), 0);

    // ORDER BY and LIMIT.
    assert_eq!(
        run(q("ORDER BY CreatedDate DESC, Id DESC LIMIT 3")).await,
        pick(&[6, 5, 4])
    );
    assert_eq!(
        run(q(
            "WHERE Interval = 'Hourly' ORDER BY LogDate DESC, Sequence DESC, Id ASC"
        ))
        .await,
        pick(&[6, 5, 2, 3, 4])
    );
    assert_eq!(
        run(q("ORDER BY EventType, Id LIMIT 2 OFFSET 1")).await,
        pick(&[3, 0])
    );

    // The resume expression of incremental collection, across files sharing a CreatedDate.
    let resume = |t: &str, id: &str| {
        q(&format!(
            "WHERE (CreatedDate > {t} OR (CreatedDate = {t} AND Id > '{id}')) ORDER BY CreatedDate, Id"
        ))
    };
    assert_eq!(
        run(resume("2024-03-11T13:17:00Z", &ids[2])).await,
        pick(&[3, 4, 5, 6])
    );
    assert_eq!(
        run(resume("2024-03-11T13:17:00Z", &ids[4])).await,
        pick(&[5, 6])
    );
    assert_eq!(
        run(resume("2024-03-11T19:40:00Z", &ids[5])).await,
        pick(&[6])
    );

    // COUNT().
    let (status, body) = query(
        &org,
        &t,
        "select count() from EventLogFile where EventType = 'Login'",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"totalSize": 4, "done": true, "records": []}));
}

#[tokio::test]
async fn the_clients_query_works() {
    let (org, _clock, t, ids) = seeded().await;
    let soql = format!(
        "SELECT {ALL_FIELDS} FROM EventLogFile WHERE EventType IN ('Login', 'API') AND Interval = 'Hourly' \
         AND LogDate >= 2024-03-11T00:00:00Z AND LogDate < 2024-03-12T00:00:00Z AND \
         (CreatedDate > 2024-03-11T13:17:00Z OR (CreatedDate = 2024-03-11T13:17:00Z AND Id > '{}')) \
         ORDER BY CreatedDate, Id LIMIT 100",
        ids[2]
    );
    let (status, body) = query(&org, &t, &soql).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids_of(&body), vec![ids[3].clone(), ids[5].clone()]);
    let record = &body["records"][0];
    assert_eq!(record["LogFile"], log_file_path(&ids[3]));
}

fn ids_of(body: &Value) -> Vec<String> {
    record_ids(body)
}

#[tokio::test]
async fn soql_errors() {
    let (org, _clock, t, _ids) = seeded().await;
    let cases = [
        (
            "SELECT Id EventLogFile",
            "MALFORMED_QUERY",
            "unexpected token",
        ),
        (
            "SELECT Id FROM EventLogFile WHERE",
            "MALFORMED_QUERY",
            "unexpected token",
        ),
        (
            "SELECT Id FROM EventLogFile WHERE Sequence = 1 AND Sequence = 2 OR Sequence = 3",
            "MALFORMED_QUERY",
            "unexpected token: 'OR'",
        ),
        (
            "SELECT Id FROM EventLogFile WHERE EventType = 'Login",
            "MALFORMED_QUERY",
            "unterminated",
        ),
        (
            "SELECT Id FROM EventLogFile LIMIT ten",
            "MALFORMED_QUERY",
            "unexpected token",
        ),
        (
            "SELECT Id, Id FROM EventLogFile",
            "MALFORMED_QUERY",
            "duplicate field",
        ),
        (
            "SELECT Foo FROM EventLogFile",
            "INVALID_FIELD",
            "No such column 'Foo' on entity 'EventLogFile'.",
        ),
        (
            "SELECT Id FROM EventLogFile WHERE Bar = 'x'",
            "INVALID_FIELD",
            "No such column 'Bar' on entity 'EventLogFile'.",
        ),
        (
            "SELECT Id FROM EventLogFile ORDER BY Baz",
            "INVALID_FIELD",
            "No such column 'Baz'",
        ),
        (
            "SELECT Id FROM Account",
            "INVALID_TYPE",
            "sObject type 'Account' is not supported.",
        ),
        (
            "SELECT Id FROM EventLogFile WHERE CreatedDate > '2024-03-11T00:00:00Z'",
            "INVALID_FIELD",
            "must be of type dateTime and should not be enclosed in quotes",
        ),
        (
            "SELECT Id FROM EventLogFile WHERE EventType = Login",
            "MALFORMED_QUERY",
            "unexpected token",
        ),
        (
            "SELECT Id FROM EventLogFile WHERE LogFile = 'x'",
            "INVALID_FIELD",
            "can not be filtered",
        ),
    ];
    for (soql, code, fragment) in cases {
        let (status, body) = query(&org, &t, soql).await;
        assert_eq!(status, 400, "{soql}: {body}");
        let (got_code, message) = error_code(&body);
        assert_eq!(got_code, code, "{soql}: {body}");
        assert!(message.contains(fragment), "{soql}: {message}");
        assert_eq!(body.as_array().unwrap().len(), 1);
    }
    // No q at all.
    let response = get(&org, &t, "/services/data/v64.0/query").await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn string_literal_escapes() {
    let (org, clock) = org().await;
    let t = token(&org, &clock).await;
    let odd = "It's \\ a \"new\"\ntype";
    let id = org.add_file(file(
        odd,
        Interval::Daily,
        datetime!(2024-03-10 00:00 UTC),
        0,
        T0,
    ));
    org.add_file(file(
        "Login",
        Interval::Daily,
        datetime!(2024-03-10 00:00 UTC),
        0,
        T0,
    ));
    let (status, body) = query(
        &org,
        &t,
        r#"SELECT Id, EventType FROM EventLogFile WHERE EventType = 'It\'s \\ a \"new\"\ntype'"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(record_ids(&body), vec![id]);
    assert_eq!(body["records"][0]["EventType"], odd);
    let (status, _) = query(
        &org,
        &t,
        r"SELECT Id FROM EventLogFile WHERE EventType IN ('\t\r\b\f', 'x')",
    )
    .await;
    assert_eq!(status, 200);
}

// ---------------------------------------------------------------------------------------------
// Pagination

async fn many_files(org: &MockOrg, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            org.add_file(
                MockLogFile::builder("Login")
                    .interval(Interval::Hourly)
                    .log_date(datetime!(2024-03-11 00:00 UTC))
                    .sequence(1)
                    .created_date(datetime!(2024-03-11 04:00 UTC) + Duration::from_secs(i as u64))
                    .rows(1)
                    .seed(i as u64)
                    .build(),
            )
        })
        .collect()
}

#[tokio::test]
async fn pagination_follows_next_records_url() {
    let clock = ManualClock::new(T0);
    let org = builder(&clock).page_size(3).start().await;
    let all = many_files(&org, 10).await;
    let t = token(&org, &clock).await;
    let (status, mut body) = query(
        &org,
        &t,
        "SELECT Id FROM EventLogFile ORDER BY CreatedDate, Id",
    )
    .await;
    assert_eq!(status, 200);
    let mut seen = record_ids(&body);
    let mut pages = 1;
    // Files added after the first page don't shift the snapshot.
    many_files(&org, 2).await;
    while body["done"] == false {
        assert_eq!(body["totalSize"], 10);
        assert_eq!(body["records"].as_array().unwrap().len(), 3);
        let next = body["nextRecordsUrl"].as_str().unwrap().to_owned();
        assert!(next.starts_with("/services/data/v64.0/query/01g"), "{next}");
        let response = get(&org, &t, &next).await;
        assert_eq!(response.status(), 200);
        body = response.json().await.unwrap();
        seen.extend(record_ids(&body));
        pages += 1;
    }
    assert!(body.get("nextRecordsUrl").is_none(), "{body}");
    assert_eq!(body["totalSize"], 10);
    assert_eq!(pages, 4);
    assert_eq!(seen, all);
    let received = org.received();
    assert_eq!((received.queries, received.query_more), (1, 3));

    // Unknown locators, and cursors idle for 15 minutes, are refused.
    let response = get(&org, &t, "/services/data/v64.0/query/01gNOPE-3").await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!([{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}])
    );
    let (_, first) = query(&org, &t, "SELECT Id FROM EventLogFile").await;
    let next = first["nextRecordsUrl"].as_str().unwrap().to_owned();
    clock.advance(Duration::from_secs(15 * 60));
    let t = token(&org, &clock).await;
    assert_eq!(get(&org, &t, &next).await.status(), 400);
}

#[tokio::test]
async fn batch_size_header_is_honoured_within_bounds() {
    let (org, clock) = org().await;
    many_files(&org, 450).await;
    let t = token(&org, &clock).await;
    let mut sizes = Vec::new();
    let (_, mut body) = query_with(&org, &t, "SELECT Id FROM EventLogFile", Some(100)).await;
    sizes.push(body["records"].as_array().unwrap().len());
    while let Some(next) = body["nextRecordsUrl"].as_str().map(str::to_owned) {
        body = get(&org, &t, &next).await.json().await.unwrap();
        sizes.push(body["records"].as_array().unwrap().len());
    }
    assert_eq!(sizes, vec![200, 200, 50], "batchSize=100 is raised to 200");
    let (_, body) = query_with(&org, &t, "SELECT Id FROM EventLogFile", Some(300)).await;
    assert_eq!(body["records"].as_array().unwrap().len(), 300);
    let (_, body) = query(&org, &t, "SELECT Id FROM EventLogFile").await;
    assert_eq!(body["records"].as_array().unwrap().len(), 450);
    assert_eq!(body["done"], true);

    // Never above the org's page size.
    let clock = ManualClock::new(T0);
    let org = builder(&clock).page_size(250).start().await;
    many_files(&org, 300).await;
    let t = token(&org, &clock).await;
    let (_, body) = query_with(&org, &t, "SELECT Id FROM EventLogFile", Some(2000)).await;
    assert_eq!(body["records"].as_array().unwrap().len(), 250);
}

// ---------------------------------------------------------------------------------------------
// Downloads

/// The REST path of file `id`'s `LogFile` body.
fn log_file_path(id: &str) -> String {
    format!("/services/data/v64.0/sobjects/EventLogFile/{id}/LogFile")
}

#[tokio::test]
async fn downloads_identity_and_gzip() {
    let (org, _clock, t, ids) = seeded().await;
    let csv = org.csv_of(&ids[1]).unwrap();
    let path = log_file_path(&ids[1]);

    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let response = raw
        .get(format!("{}{path}", org.uri()))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/csv");
    assert!(response.headers().get("content-encoding").is_none());
    assert_eq!(response.bytes().await.unwrap(), csv);

    let response = raw
        .get(format!("{}{path}", org.uri()))
        .bearer_auth(&t)
        .header("Accept-Encoding", "gzip, deflate")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let compressed = response.bytes().await.unwrap();
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, csv);

    // Compressed once and kept: after precompress_downloads the same bytes come back.
    org.precompress_downloads();
    let again = raw
        .get(format!("{}{path}", org.uri()))
        .bearer_auth(&t)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(again, compressed);

    // reqwest with its gzip feature asks for and decodes gzip by itself.
    let response = get(&org, &t, &path).await;
    assert_eq!(response.bytes().await.unwrap(), csv);

    // A 15-character Id finds the file too; unknown Ids are 404 NOT_FOUND.
    let short = log_file_path(&ids[1][..15]);
    assert_eq!(get(&org, &t, &short).await.bytes().await.unwrap(), csv);
    let response = get(
        &org,
        &t,
        "/services/data/v64.0/sobjects/EventLogFile/0AT999999999999AAA/LogFile",
    )
    .await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        error_code(&body),
        ("NOT_FOUND", "The requested resource does not exist")
    );
    assert_eq!(org.received().downloads, 6);

    // The single-record endpoint returns every field.
    let record: Value = get(
        &org,
        &t,
        &format!("/services/data/v64.0/sobjects/EventLogFile/{}", ids[1]),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(record["LogFileLength"], json!(csv.len() as f64));
    assert_eq!(record["EventType"], "API");
}

/// The org's public port is a proxy in front of wiremock that sends a log file's stored body
/// itself (no copy per request); wiremock's own port still answers in full. Both must give the
/// same bytes, and the proxy's bookkeeping must not show on the wire.
#[tokio::test]
async fn downloads_through_the_front_door_and_around_it() {
    let (org, _clock, t, ids) = seeded().await;
    let csv = org.csv_of(&ids[0]).unwrap();
    let path = log_file_path(&ids[0]);
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let fetch = |base: String, gzip: bool| {
        let mut request = raw.get(format!("{base}{path}")).bearer_auth(&t);
        if gzip {
            request = request.header("Accept-Encoding", "gzip");
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            let headers = response.headers().clone();
            assert!(
                headers
                    .keys()
                    .all(|name| !name.as_str().starts_with("x-sfjwt-mock")),
                "{headers:?}"
            );
            let body = response.bytes().await.unwrap();
            let length: usize = headers["content-length"].to_str().unwrap().parse().unwrap();
            assert_eq!(length, body.len());
            (headers, body)
        }
    };
    assert_ne!(org.uri(), org.server().uri());
    for gzip in [false, true] {
        let (front_headers, front) = fetch(org.uri(), gzip).await;
        let (_, around) = fetch(org.server().uri(), gzip).await;
        assert_eq!(front, around, "gzip {gzip}");
        assert_eq!(front_headers["content-type"], "text/csv");
        let plain = if gzip {
            assert_eq!(front_headers["content-encoding"], "gzip");
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&front[..])
                .read_to_end(&mut plain)
                .unwrap();
            plain
        } else {
            front.to_vec()
        };
        assert_eq!(plain, csv);
    }
    // Both ways count as downloads in the org's own log.
    assert_eq!(org.received().downloads, 4);

    // Dropping the org closes the door.
    let uri = org.uri();
    drop(org);
    let refused = reqwest::Client::new()
        .get(format!("{uri}{path}"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test]
async fn unknown_paths_and_versions() {
    let (org, _clock, t, _ids) = seeded().await;
    let response = reqwest::get(format!("{}/services/data/", org.uri()))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the version list needs no session");
    let versions: Value = response.json().await.unwrap();
    assert!(
        versions
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["version"] == "64.0")
    );
    for path in [
        "/services/data/v64.0/sobjects/Account",
        "/nothing/here",
        "/services/data/vX/query",
    ] {
        let response = get(&org, &t, path).await;
        assert_eq!(response.status(), 404, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_code(&body).0, "NOT_FOUND");
    }
    let response = reqwest::Client::new()
        .delete(format!("{}/services/data/v64.0/query", org.uri()))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
}

// ---------------------------------------------------------------------------------------------
// Faults

#[tokio::test]
async fn each_fault_fires_once_on_its_target() {
    let (org, clock, t, ids) = seeded().await;
    let download = log_file_path(&ids[0]);
    let csv = org.csv_of(&ids[0]).unwrap();
    let count = "SELECT COUNT() FROM EventLogFile";

    org.inject(Fault::ServiceUnavailable {
        target: FaultTarget::Download,
        retry_after_secs: Some(7),
    });
    assert_eq!(
        query(&org, &t, count).await.0,
        200,
        "a download fault leaves queries alone"
    );
    let response = get(&org, &t, &download).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "7");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(response.text().await.unwrap().contains("<html>"));
    assert_eq!(get(&org, &t, &download).await.status(), 200);

    org.inject(Fault::TooManyRequests {
        target: FaultTarget::Query,
        retry_after_secs: None,
    });
    let response = get(
        &org,
        &t,
        "/services/data/v64.0/query?q=SELECT+COUNT()+FROM+EventLogFile",
    )
    .await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().get("retry-after").is_none());
    assert_eq!(query(&org, &t, count).await.0, 200);

    org.inject(Fault::RequestLimitExceeded {
        target: FaultTarget::Query,
    });
    let (status, body) = query(&org, &t, count).await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    );
    assert_eq!(query(&org, &t, count).await.0, 200);

    org.inject(Fault::ServiceUnavailable {
        target: FaultTarget::Token,
        retry_after_secs: None,
    });
    let response = reqwest::Client::new()
        .post(org.token_url())
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &sign(PRIVATE_KEY, &claims(&org, &clock))),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let t = token(&org, &clock).await;

    org.inject(Fault::ServiceUnavailable {
        target: FaultTarget::Any,
        retry_after_secs: Some(1),
    });
    assert_eq!(query(&org, &t, count).await.0, 503);
    assert_eq!(query(&org, &t, count).await.0, 200);

    // Truncation: half the body, identity or gzip, once.
    org.inject(Fault::TruncatedBody);
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let body = raw
        .get(format!("{}{download}", org.uri()))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body, csv.slice(..csv.len() / 2));
    assert_eq!(get(&org, &t, &download).await.bytes().await.unwrap(), csv);
    org.inject(Fault::TruncatedBody);
    assert_eq!(
        get(&org, &t, &download).await.bytes().await.unwrap(),
        csv.slice(..csv.len() / 2),
        "gzip of the half"
    );

    // Revocation: the next API request is refused, a new token works.
    org.inject(Fault::RevokeSessions);
    assert_eq!(query(&org, &t, count).await.0, 401);
    let t = token(&org, &clock).await;
    assert_eq!(query(&org, &t, count).await.0, 200);

    // Faults for the same target fire in injection order.
    org.inject(Fault::TooManyRequests {
        target: FaultTarget::Query,
        retry_after_secs: None,
    });
    org.inject(Fault::ServiceUnavailable {
        target: FaultTarget::Query,
        retry_after_secs: None,
    });
    assert_eq!(query(&org, &t, count).await.0, 429);
    assert_eq!(query(&org, &t, count).await.0, 503);
    assert_eq!(query(&org, &t, count).await.0, 200);

    assert_eq!(org.pending_faults(), 0);
    assert_eq!(org.received().faults_fired, 10);
}

// ---------------------------------------------------------------------------------------------
// Generated CSV

const TYPES: [&str; 8] = [
    "Login",
    "Logout",
    "API",
    "URI",
    "ApexExecution",
    "Report",
    "ApexUnexpectedException",
    "LightningError",
];

fn parse_csv(body: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(body);
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

#[test]
fn generated_csv_is_wellformed_and_has_the_edge_cases() {
    let log_date = datetime!(2024-03-11 15:00 UTC);
    let allowed = [
        "String",
        "Id",
        "Number",
        "Boolean",
        "DateTime",
        "IP",
        "EscapedString",
    ];
    let mut all_values = String::new();
    for event_type in TYPES {
        let generated = MockLogFile::builder(event_type)
            .interval(Interval::Hourly)
            .log_date(log_date)
            .rows(40)
            .seed(42)
            .generate_csv();
        let (header, rows) = parse_csv(&generated.body);
        assert_eq!(rows.len(), 40);
        assert_eq!(generated.rows, 40);
        assert_eq!(header.join(","), generated.field_names, "{event_type}");
        let types: Vec<&str> = generated.field_types.split(',').collect();
        assert_eq!(types.len(), header.len(), "{event_type}");
        assert!(types.iter().all(|t| allowed.contains(t)), "{types:?}");
        assert_eq!(header[0], "EVENT_TYPE");
        // Every field is quoted: the header line is `"EVENT_TYPE","TIMESTAMP",...`.
        assert!(generated.body.starts_with(b"\"EVENT_TYPE\",\"TIMESTAMP\","));
        let col = |name: &str| header.iter().position(|h| h == name);
        let ts = col("TIMESTAMP").unwrap();
        let derived = col("TIMESTAMP_DERIVED").unwrap();
        for row in &rows {
            assert_eq!(row.len(), header.len());
            assert_eq!(row[0], event_type);
            let stamp = &row[ts];
            let millis = event_type != "Logout";
            assert_eq!(stamp.len(), if millis { 18 } else { 14 }, "{stamp}");
            assert!(stamp.starts_with("2024031115"), "within the hour: {stamp}");
            let iso = OffsetDateTime::parse(
                &row[derived],
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            assert!(iso >= log_date && iso < log_date + Duration::from_secs(3600));
            assert!(
                row[derived].ends_with('Z') && row[derived].len() == 24,
                "{}",
                row[derived]
            );
            let compact = format!(
                "{:04}{:02}{:02}{:02}{:02}{:02}",
                iso.year(),
                u8::from(iso.month()),
                iso.day(),
                iso.hour(),
                iso.minute(),
                iso.second()
            );
            assert!(
                stamp.starts_with(&compact),
                "TIMESTAMP {stamp} and TIMESTAMP_DERIVED agree"
            );
            for (value, ty) in row.iter().zip(&types) {
                match *ty {
                    "Number" => {
                        assert!(value.is_empty() || value.parse::<f64>().is_ok(), "{value}")
                    }
                    "Boolean" => assert!(
                        ["true", "false", "0", "1"].contains(&value.as_str()),
                        "{value}"
                    ),
                    "Id" => assert!([0, 15, 18].contains(&value.len()), "{value}"),
                    _ => {}
                }
            }
            if let Some(ip) = col("CLIENT_IP") {
                let ip = &row[ip];
                assert!(
                    ip == "Salesforce.com IP" || ip.parse::<std::net::IpAddr>().is_ok(),
                    "{ip}"
                );
            }
            all_values.push_str(&row.join("\u{1f}"));
        }
        assert!(
            rows.windows(2).all(|w| w[0][derived] <= w[1][derived]),
            "timestamps ascend"
        );
    }
    assert!(all_values.contains("Salesforce.com IP"));
    assert!(all_values.contains("東京") && all_values.contains("Zoë Ångström"));
    assert!(all_values.contains('\n'));
    assert!(all_values.contains("VP, \"Sales\""));
    assert!(all_values.contains("\u{1f}\u{1f}"), "empty fields");

    // One API file alone carries every edge case.
    let api = MockLogFile::builder("API")
        .interval(Interval::Daily)
        .log_date(log_date)
        .rows(EDGE_CASE_CYCLE)
        .seed(1)
        .generate_csv();
    let (header, rows) = parse_csv(&api.body);
    let query = header.iter().position(|h| h == "QUERY").unwrap();
    let queries: Vec<&str> = rows.iter().map(|r| r[query].as_str()).collect();
    assert!(queries.iter().any(|q| q.contains('\n')));
    assert!(queries.iter().any(|q| q.contains(',') && q.contains('"')));
    assert!(queries.iter().any(|q| q.contains("東京")));
    assert!(queries.iter().any(|q| q.is_empty()));
    assert!(
        rows.iter()
            .any(|r| r.contains(&"Salesforce.com IP".to_owned()))
    );

    // The Login header is the observed one, verbatim; Report has a Boolean column.
    let login = MockLogFile::builder("Login")
        .interval(Interval::Daily)
        .log_date(log_date)
        .rows(1)
        .seed(1)
        .generate_csv();
    assert_eq!(
        login.field_names,
        "EVENT_TYPE,TIMESTAMP,REQUEST_ID,ORGANIZATION_ID,USER_ID,RUN_TIME,CPU_TIME,URI,SESSION_KEY,LOGIN_KEY,USER_TYPE,REQUEST_STATUS,DB_TOTAL_TIME,LOGIN_TYPE,BROWSER_TYPE,API_TYPE,API_VERSION,USER_NAME,TLS_PROTOCOL,CIPHER_SUITE,AUTHENTICATION_METHOD_REFERENCE,LOGIN_SUB_TYPE,TIMESTAMP_DERIVED,USER_ID_DERIVED,CLIENT_IP,URI_ID_DERIVED,LOGIN_STATUS,SOURCE_IP"
    );
    let report = MockLogFile::builder("Report")
        .interval(Interval::Daily)
        .log_date(log_date)
        .rows(1)
        .seed(1)
        .generate_csv();
    let names: Vec<&str> = report.field_names.split(',').collect();
    let types: Vec<&str> = report.field_types.split(',').collect();
    assert_eq!(
        types[names.iter().position(|n| *n == "IS_SCHEDULED").unwrap()],
        "Boolean"
    );
}

#[test]
fn generation_is_deterministic_and_streams() {
    let log_date = datetime!(2024-03-11 00:00 UTC);
    let a = MockLogFile::builder("API")
        .interval(Interval::Daily)
        .log_date(log_date)
        .rows(100)
        .seed(9)
        .generate_csv();
    let b = MockLogFile::builder("API")
        .interval(Interval::Daily)
        .log_date(log_date)
        .rows(100)
        .seed(9)
        .generate_csv();
    let c = MockLogFile::builder("API")
        .interval(Interval::Daily)
        .log_date(log_date)
        .rows(100)
        .seed(10)
        .generate_csv();
    assert_eq!(a, b);
    assert_ne!(a.body, c.body);

    let mut generator = MockLogFile::builder("API")
        .interval(Interval::Daily)
        .log_date(log_date)
        .rows(100)
        .seed(9)
        .csv_generator();
    assert_eq!(generator.size_hint(), (101, Some(101)));
    assert_eq!(generator.field_names(), a.field_names);
    assert_eq!(generator.field_types(), a.field_types);
    assert_eq!(generator.rows(), 100);
    let header = generator.next().unwrap();
    assert!(header.ends_with(b"\n"));
    let mut body = header;
    for chunk in generator.by_ref() {
        body.extend_from_slice(&chunk);
    }
    assert_eq!(body, a.body);
    assert!(generator.next().is_none());

    // A long stream keeps going without holding its output.
    let bytes: usize = MockLogFile::builder("Login")
        .interval(Interval::Daily)
        .log_date(log_date)
        .rows(20_000)
        .seed(1)
        .csv_generator()
        .map(|chunk| chunk.len())
        .sum();
    assert!(bytes > 20_000 * 200, "{bytes}");

    let file = MockLogFile::builder("API")
        .interval(Interval::Daily)
        .log_date(log_date)
        .sequence(0)
        .created_date(log_date)
        .rows(100)
        .seed(9)
        .build();
    assert_eq!(file.csv, a.body);
    assert_eq!(file.row_count(), 100);
}

#[tokio::test]
async fn crlf_file_from_csv_round_trips() {
    let (org, clock) = org().await;
    let csv = "\"EVENT_TYPE\",\"TIMESTAMP\",\"USER_ID\",\"CLIENT_IP\",\"QUERY\"\r\n\
               \"API\",\"20240311150000.123\",\"005000000000001\",\"Salesforce.com IP\",\"SELECT Id\r\nFROM Account\"\r\n\
               \"API\",\"20240311150001.000\",\"005000000000001AAA\",\"192.0.2.1\",\"\"\r\n";
    let mut file = MockLogFile::builder("API")
        .interval(Interval::Hourly)
        .log_date(datetime!(2024-03-11 15:00 UTC))
        .sequence(1)
        .created_date(datetime!(2024-03-11 18:00 UTC))
        .csv(csv)
        .build();
    assert_eq!(
        file.field_names,
        "EVENT_TYPE,TIMESTAMP,USER_ID,CLIENT_IP,QUERY"
    );
    assert_eq!(file.field_types, "String,String,Id,IP,EscapedString");
    assert_eq!(file.row_count(), 2);
    file.api_version = 58.0;
    let id = org.add_file(file);
    let info = &org.files()[0];
    assert_eq!(
        (info.id.as_str(), info.row_count, info.length),
        (id.as_str(), 2, csv.len() as u64)
    );
    let t = token(&org, &clock).await;
    let (_, body) = query(
        &org,
        &t,
        "SELECT ApiVersion, LogFileLength FROM EventLogFile",
    )
    .await;
    assert_eq!(body["records"][0]["ApiVersion"], json!(58.0));
    assert_eq!(body["records"][0]["LogFileLength"], json!(csv.len() as f64));
    let downloaded = get(
        &org,
        &t,
        &format!("/services/data/v64.0/sobjects/EventLogFile/{id}/LogFile"),
    )
    .await
    .bytes()
    .await
    .unwrap();
    assert_eq!(downloaded, csv.as_bytes());
    let (_, rows) = parse_csv(&downloaded);
    assert_eq!(rows[0][4], "SELECT Id\r\nFROM Account");
    assert_eq!(rows[1][4], "");
}

#[test]
fn demo_data_is_realistic() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let org = MockOrg::start().await;
        let now = datetime!(2024-03-12 01:30 UTC);
        let ids = org.add_demo_data(now);
        let files = org.files();
        assert_eq!(ids.len(), files.len());
        assert_eq!(ids, files.iter().map(|f| f.id.clone()).collect::<Vec<_>>());
        assert!(ids.iter().all(|id| id.len() == 18 && id.starts_with("0AT")));
        let daily: Vec<_> = files
            .iter()
            .filter(|f| f.interval == Interval::Daily)
            .collect();
        let hourly: Vec<_> = files
            .iter()
            .filter(|f| f.interval == Interval::Hourly)
            .collect();
        assert_eq!(daily.len(), 12);
        assert!(daily.iter().all(|f| f.sequence == 0));
        let mut types: Vec<&str> = daily.iter().map(|f| f.event_type.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        assert_eq!(
            types,
            ["API", "ApexExecution", "Login", "Logout", "Report", "URI"]
        );
        assert!(hourly.iter().all(|f| f.sequence >= 1));
        assert!(
            files
                .iter()
                .all(|f| f.created_date <= now && f.log_date < f.created_date)
        );
        let late = hourly.iter().find(|f| f.sequence == 2).unwrap();
        let first = hourly
            .iter()
            .find(|f| {
                f.sequence == 1 && f.log_date == late.log_date && f.event_type == late.event_type
            })
            .unwrap();
        assert!(late.created_date > first.created_date);
        assert!(
            hourly
                .iter()
                .any(|f| f.created_date == first.created_date && f.id != first.id)
        );
        let rows: usize = files.iter().map(|f| f.row_count).sum();
        assert!((200..=600).contains(&rows), "{rows}");
        for f in &files {
            assert_eq!(org.csv_of(&f.id).unwrap().len() as u64, f.length);
        }
        // Same now, same data.
        let again = MockOrg::start().await;
        again.add_demo_data(now);
        for (a, b) in files.iter().zip(again.files()) {
            assert_eq!(org.csv_of(&a.id), again.csv_of(&b.id));
        }
        assert!(org.remove_file(&ids[0]));
        assert!(!org.remove_file(&ids[0]));
        assert_eq!(org.files().len(), files.len() - 1);
    });
}

#[tokio::test]
async fn received_counts_every_kind() {
    let (org, _clock, t, ids) = seeded().await;
    let received = org.received();
    assert_eq!((received.token_requests, received.token_successes), (1, 1));
    query(&org, &t, "SELECT Id FROM EventLogFile").await;
    query(&org, &t, "SELECT Nope FROM EventLogFile").await;
    get(&org, &t, &log_file_path(&ids[0])).await;
    get(&org, "bad", &log_file_path(&ids[0])).await;
    get(&org, &t, "/services/data/v64.0/query/01gMOCK99-2000").await;
    let received = org.received();
    assert_eq!(received.queries, 2);
    assert_eq!(received.query_more, 1);
    assert_eq!(received.downloads, 2);
    assert_eq!(received.unauthorized, 1);
    assert_eq!(received.faults_fired, 0);
}
