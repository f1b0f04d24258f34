//! The mock org's Event Log Objects: the platform's SOQL rules (two Timestamp filters, 15 days,
//! no `!=`, OFFSET, HAVING or relationships), 30-day retention, rows queryable 25-45 minutes
//! after their Timestamp, and the answers for a missing permission, a non-Hyperforce org and an
//! API version below 61.0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use futures_util::TryStreamExt as _;
use salesforce_jwt::clock::ManualClock;
use salesforce_jwt::{Error, JwtBearerClient, QueryOptions};
use salesforce_jwt_mock::{EventLogObjectAccess, MockOrg, MockOrgBuilder, generate_records};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

fn now() -> OffsetDateTime {
    datetime!(2025-06-10 12:00 UTC)
}

async fn start(builder: MockOrgBuilder, version: &str) -> (MockOrg, ManualClock, JwtBearerClient) {
    let clock = ManualClock::new(now());
    let mock = builder.clock(Arc::new(clock.clone())).start().await;
    let config = mock.config_builder().api_version(version).build().unwrap();
    let client = JwtBearerClient::builder(config)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    (mock, clock, client)
}

async fn query(client: &JwtBearerClient, soql: &str) -> Result<Vec<Map<String, Value>>, Error> {
    client
        .query::<Map<String, Value>>(soql, QueryOptions::default())
        .try_collect()
        .await
}

/// The query is refused with `status` and `code`; returns the message.
async fn refused(client: &JwtBearerClient, soql: &str, status: u16, code: &str) -> String {
    match query(client, soql).await {
        Err(Error::Api(e)) => {
            assert_eq!(e.status, status, "{soql}: {e}");
            assert_eq!(e.error_code.as_deref(), Some(code), "{soql}: {e}");
            e.message
        }
        other => panic!("{soql}: expected a refusal, got {other:?}"),
    }
}

fn login(timestamp: &str) -> Map<String, Value> {
    json!({"Timestamp": timestamp, "UserIdentifier": "0055j00000AT6I1AAL"})
        .as_object()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn event_log_objects_refuse_what_the_platform_refuses() {
    let (mock, _clock, client) = start(MockOrg::builder(), "64.0").await;
    mock.add_records("LoginEventLog", [login("2025-06-09T10:00:00.000+0000")])
        .unwrap();
    let refusals = [
        (
            "SELECT Id FROM LoginEventLog WHERE Timestamp > 2025-06-01T00:00:00.000Z AND \
             Timestamp <= 2025-06-09T00:00:00.000Z AND Timestamp < 2025-06-08T00:00:00.000Z",
            "Too many Timestamp filters",
        ),
        (
            "SELECT Id FROM LoginEventLog WHERE Timestamp IN (2025-06-01T00:00:00.000Z, \
             2025-06-02T00:00:00.000Z, 2025-06-03T00:00:00.000Z)",
            "Too many Timestamp filters",
        ),
        (
            "SELECT Id FROM LoginEventLog WHERE Timestamp > 2025-05-20T00:00:00.000Z AND \
             Timestamp <= 2025-06-05T00:00:00.000Z",
            "within 15 days",
        ),
        (
            "SELECT Id FROM LoginEventLog WHERE UserIdentifier != '0055j00000AT6I1AAL'",
            "!= isn't supported",
        ),
        (
            "SELECT Id FROM LoginEventLog WHERE UserIdentifier NOT IN ('x')",
            "!= isn't supported",
        ),
        (
            "SELECT Id FROM LoginEventLog ORDER BY Timestamp LIMIT 10 OFFSET 5",
            "OFFSET",
        ),
        (
            "SELECT UserIdentifier, COUNT(Id) FROM LoginEventLog GROUP BY UserIdentifier \
             HAVING COUNT(Id) > 1",
            "HAVING",
        ),
        (
            "SELECT Id, CreatedBy.Username FROM LoginEventLog",
            "Relationship",
        ),
        (
            "SELECT Id FROM LoginEventLog WHERE Timestamp > 2025-06-01T00:00:00.000Z OR \
             Timestamp = 2025-06-09T00:00:00.000Z",
            "OR",
        ),
        (
            "SELECT Id FROM LoginEventLog WHERE Timestamp = 2025-06-01T00:00:00.000Z AND \
             Timestamp < 2025-06-09T00:00:00.000Z",
            "Timestamp =",
        ),
    ];
    for (soql, says) in refusals {
        let message = refused(&client, soql, 400, "MALFORMED_QUERY").await;
        assert!(message.contains(says), "{soql}: {message}");
    }
    // What the collector sends, and the documented valid shapes, are served.
    for soql in [
        "SELECT FIELDS(STANDARD) FROM LoginEventLog WHERE Timestamp > 2025-06-01T00:00:00.000Z \
         AND Timestamp <= 2025-06-10T00:00:00.000Z ORDER BY Timestamp ASC, Id ASC",
        "SELECT Id FROM LoginEventLog WHERE Timestamp >= 2025-05-27T17:18:15.553Z AND \
         timestamp <= 2025-06-10T12:00:00.000Z",
        "SELECT Id FROM LoginEventLog WHERE Timestamp = 2025-06-09T10:00:00.000Z OR \
         Timestamp = 2025-06-09T11:00:00.000Z",
        "SELECT Id FROM LoginEventLog WHERE Timestamp IN (2025-06-09T10:00:00.000Z, \
         2025-06-09T11:00:00.000Z)",
    ] {
        let rows = query(&client, soql)
            .await
            .unwrap_or_else(|e| panic!("{soql}: {e}"));
        assert_eq!(rows.len(), 1, "{soql}");
    }
}

#[tokio::test]
async fn a_missing_bound_reads_15_days_in_its_direction() {
    let (mock, _clock, client) = start(MockOrg::builder(), "64.0").await;
    // 20 days ago and 2 days ago.
    mock.add_records(
        "LoginEventLog",
        [
            login("2025-05-21T12:00:00.000+0000"),
            login("2025-06-08T12:00:00.000+0000"),
        ],
    )
    .unwrap();
    let since_25_days = "SELECT Id, Timestamp FROM LoginEventLog WHERE Timestamp >= \
                         2025-05-16T12:00:00.000Z";
    let rows = query(&client, since_25_days).await.unwrap();
    assert_eq!(rows.len(), 1, "only days 25..10 ago: {rows:?}");
    assert_eq!(rows[0]["Timestamp"], "2025-05-21T12:00:00.000+0000");
    let no_filter = query(&client, "SELECT Id, Timestamp FROM LoginEventLog")
        .await
        .unwrap();
    assert_eq!(no_filter.len(), 1, "the last 15 days: {no_filter:?}");
    assert_eq!(no_filter[0]["Timestamp"], "2025-06-08T12:00:00.000+0000");
    let until = "SELECT Id FROM LoginEventLog WHERE Timestamp <= 2025-06-10T12:00:00.000Z";
    assert_eq!(query(&client, until).await.unwrap().len(), 1);
}

#[tokio::test]
async fn rows_are_queryable_25_to_45_minutes_after_their_timestamp_and_kept_30_days() {
    let (mock, clock, client) = start(MockOrg::builder(), "64.0").await;
    let at = now() - time::Duration::minutes(1);
    let rows = generate_records("LoginEventLog", at - time::Duration::MILLISECOND, at, 50, 7);
    let stored = mock.add_records("LoginEventLog", rows).unwrap();
    let ids: std::collections::BTreeSet<&str> =
        stored.iter().map(|r| r["Id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 50, "each row gets its own Id");
    let soql = "SELECT Id FROM LoginEventLog WHERE Timestamp > 2025-06-10T11:00:00.000Z AND \
                Timestamp <= 2025-06-10T12:00:00.000Z ORDER BY Timestamp ASC, Id ASC";
    let seen = |minutes: i64| {
        let clock = clock.clone();
        let client = client.clone();
        async move {
            clock.set(at + time::Duration::minutes(minutes));
            query(&client, soql).await.unwrap().len()
        }
    };
    assert_eq!(seen(24).await, 0);
    let half = seen(35).await;
    assert!(
        0 < half && half < 50,
        "rows appear over 25-45 minutes: {half}"
    );
    assert_eq!(seen(45).await, 50);
    // 30-day retention: a row 31 days old is gone.
    mock.add_records("LoginEventLog", [login("2025-05-10T00:00:00.000+0000")])
        .unwrap();
    let old = "SELECT Id FROM LoginEventLog WHERE Timestamp > 2025-05-09T00:00:00.000Z AND \
               Timestamp <= 2025-05-11T00:00:00.000Z";
    clock.set(datetime!(2025-06-08 00:00 UTC));
    assert_eq!(query(&client, old).await.unwrap().len(), 1);
    clock.set(datetime!(2025-06-10 00:00 UTC));
    assert_eq!(query(&client, old).await.unwrap().len(), 0);
}

#[tokio::test]
async fn no_permission_not_hyperforce_and_an_old_api_version_answer_apart() {
    let soql = "SELECT Id FROM LoginEventLog WHERE Timestamp > 2025-06-09T00:00:00.000Z AND \
                Timestamp <= 2025-06-10T00:00:00.000Z";
    let (_mock, _clock, client) = start(
        MockOrg::builder().event_log_object_access(EventLogObjectAccess::MissingPermission),
        "64.0",
    )
    .await;
    let message = refused(&client, soql, 403, "INSUFFICIENT_ACCESS").await;
    assert!(message.contains("View Event Log Object Data"), "{message}");
    let (_mock, _clock, client) = start(
        MockOrg::builder().event_log_object_access(EventLogObjectAccess::NotHyperforce),
        "64.0",
    )
    .await;
    refused(&client, soql, 400, "INVALID_TYPE").await;
    let (_mock, _clock, client) = start(MockOrg::builder(), "62.0").await;
    assert!(query(&client, soql).await.is_ok());
    // Below 61.0 the library refuses before sending (event_log_objects::check_api_version);
    // the mock serves 62.0 and later only.
}
