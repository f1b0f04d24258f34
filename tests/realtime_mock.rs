//! The mock org's real-time objects: Salesforce's big-object query rules with its error bodies,
//! 2,000-row pages, queryable lag, QUERY_TIMEOUT, realistic generated rows, access refusal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt as _;
use salesforce_jwt::clock::ManualClock;
use salesforce_jwt::{Error, JwtBearerClient, QueryOptions};
use salesforce_jwt_mock::{MockOrg, MockOrgBuilder, generate_records};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::macros::datetime;

fn now() -> OffsetDateTime {
    datetime!(2025-06-10 12:00 UTC)
}

async fn start(builder: MockOrgBuilder) -> (MockOrg, ManualClock, JwtBearerClient) {
    let clock = ManualClock::new(now());
    let mock = builder.clock(Arc::new(clock.clone())).start().await;
    let config = mock.config_builder().build().unwrap();
    let client = JwtBearerClient::builder(config)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    (mock, clock, client)
}

async fn with_logins(count: usize) -> (MockOrg, ManualClock, JwtBearerClient) {
    let (mock, clock, client) = start(MockOrg::builder()).await;
    let rows = generate_records(
        "LoginEvent",
        now() - time::Duration::hours(3),
        now() - time::Duration::minutes(1),
        count,
        1,
    );
    mock.add_records("LoginEvent", rows).unwrap();
    (mock, clock, client)
}

async fn query(client: &JwtBearerClient, soql: &str) -> Result<Vec<Map<String, Value>>, Error> {
    client
        .query::<Map<String, Value>>(soql, QueryOptions::default())
        .try_collect()
        .await
}

/// The query is refused with 400 BIG_OBJECT_UNSUPPORTED_OPERATION; returns the message.
async fn refused(client: &JwtBearerClient, soql: &str) -> String {
    match query(client, soql).await {
        Err(Error::Api(e)) => {
            assert_eq!(e.status, 400, "{soql}");
            assert_eq!(
                e.error_code.as_deref(),
                Some("BIG_OBJECT_UNSUPPORTED_OPERATION"),
                "{soql}: {e}"
            );
            e.message
        }
        other => panic!("{soql}: expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn big_objects_refuse_what_salesforce_refuses_with_its_error_bodies() {
    let (mock, _clock, client) = with_logins(5).await;
    assert_eq!(
        refused(
            &client,
            "SELECT FIELDS(STANDARD) FROM LoginEvent ORDER BY EventDate ASC"
        )
        .await,
        "Unsupported order direction on filter column: EVENTDATE : ASCENDING"
    );
    let shapes = [
        "SELECT Id FROM LoginEvent WHERE SourceIp = '89.160.20.112'",
        "SELECT Id FROM LoginEvent WHERE EventDate != 2025-06-10T11:00:00.000Z",
        "SELECT COUNT() FROM LoginEvent",
        "SELECT COUNT(Id) FROM LoginEvent",
        "SELECT Id FROM LoginEvent WHERE EventDate >= 2025-06-10T11:00:00.000Z AND EventIdentifier = 'x'",
        "SELECT Id FROM LoginEvent WHERE EventIdentifier = 'x'",
        "SELECT Id FROM LoginEvent WHERE EventDate > 2025-06-10T11:00:00.000Z OR EventDate < 2025-06-10T10:00:00.000Z",
        "SELECT Id FROM LoginEvent ORDER BY CreatedDate DESC",
        "SELECT Id FROM LoginEvent ORDER BY EventDate DESC, EventIdentifier DESC",
        "SELECT Id FROM LoginEvent ORDER BY EventDate DESC LIMIT 5 OFFSET 5",
    ];
    for soql in shapes {
        refused(&client, soql).await;
    }
    assert_eq!(
        refused(&client, "SELECT COUNT() FROM LoginEvent").await,
        "Aggregate functions not supported"
    );
    // Every refusal was one request, answered once.
    assert_eq!(mock.received().queries, 12);
}

#[tokio::test]
async fn big_objects_accept_the_shapes_the_collector_sends() {
    let (mock, _clock, client) = with_logins(30).await;
    let all = query(
        &client,
        "SELECT FIELDS(STANDARD) FROM LoginEvent WHERE EventDate > 2025-06-10T08:00:00.000Z \
         AND EventDate <= 2025-06-10T12:00:00.000Z ORDER BY EventDate DESC",
    )
    .await
    .unwrap();
    assert_eq!(all.len(), 30);
    let dates: Vec<&str> = all
        .iter()
        .map(|r| r["EventDate"].as_str().unwrap())
        .collect();
    let mut sorted = dates.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(dates, sorted, "newest first");
    let first = &all[0];
    assert_eq!(first["attributes"]["type"], "LoginEvent");
    assert_eq!(first["Id"], "000000000000000AAA");
    assert!(
        first.contains_key("ForwardedForIp"),
        "standard fields, null or not"
    );
    let one = query(
        &client,
        &format!(
            "SELECT EventIdentifier FROM LoginEvent WHERE EventDate = {} AND EventIdentifier = '{}'",
            salesforce_jwt::datetime::rfc3339_millis(
                salesforce_jwt::datetime::parse(first["EventDate"].as_str().unwrap())
                    .unwrap()
            ),
            first["EventIdentifier"].as_str().unwrap()
        ),
    )
    .await
    .unwrap();
    assert_eq!(one.len(), 1);
    let limited = query(
        &client,
        "SELECT FIELDS(STANDARD) FROM LoginEvent ORDER BY EventDate DESC LIMIT 3",
    )
    .await
    .unwrap();
    assert_eq!(limited.len(), 3);
    assert_eq!(limited[0]["EventIdentifier"], first["EventIdentifier"]);
    assert_eq!(mock.records("LoginEvent").len(), 30);
}

#[tokio::test]
async fn big_object_results_page_at_2000_rows() {
    let (mock, _clock, client) = with_logins(4500).await;
    let rows = query(
        &client,
        "SELECT EventIdentifier FROM LoginEvent ORDER BY EventDate DESC",
    )
    .await
    .unwrap();
    assert_eq!(rows.len(), 4500);
    assert_eq!(mock.received().query_more, 2);
}

#[tokio::test]
async fn a_big_object_query_over_too_many_rows_times_out() {
    let (mock, _clock, client) =
        start(MockOrg::builder().big_object_query_timeout_rows(Some(10))).await;
    let rows = generate_records("ApiEvent", now() - time::Duration::hours(2), now(), 11, 2);
    mock.add_records("ApiEvent", rows).unwrap();
    match query(&client, "SELECT Id FROM ApiEvent ORDER BY EventDate DESC").await {
        Err(Error::Api(e)) => {
            assert_eq!(e.error_code.as_deref(), Some("QUERY_TIMEOUT"));
            assert!(!Error::Api(e).is_retryable());
        }
        other => panic!("expected QUERY_TIMEOUT, got {other:?}"),
    }
    let rows = query(
        &client,
        "SELECT Id FROM ApiEvent WHERE EventDate > 2025-06-10T11:00:00.000Z ORDER BY EventDate DESC",
    )
    .await
    .unwrap();
    assert!(rows.len() < 11);
}

#[tokio::test]
async fn rows_become_queryable_only_after_the_lag() {
    let (mock, clock, client) = start(MockOrg::builder()).await;
    mock.set_queryable_lag("LogoutEvent", Duration::from_secs(120))
        .unwrap();
    let rows = generate_records(
        "LogoutEvent",
        now() - time::Duration::seconds(30),
        now() - time::Duration::seconds(20),
        2,
        3,
    );
    mock.add_records("LogoutEvent", rows).unwrap();
    let soql = "SELECT EventIdentifier FROM LogoutEvent ORDER BY EventDate DESC";
    assert!(query(&client, soql).await.unwrap().is_empty());
    clock.advance(Duration::from_secs(120));
    assert_eq!(query(&client, soql).await.unwrap().len(), 2);
}

#[tokio::test]
async fn standard_objects_take_keyset_queries_and_relationship_fields() {
    let (mock, _clock, client) = start(MockOrg::builder()).await;
    let rows = generate_records(
        "SetupAuditTrail",
        now() - time::Duration::hours(1),
        now(),
        10,
        4,
    );
    let stored = mock.add_records("SetupAuditTrail", rows).unwrap();
    let ids: Vec<&str> = stored.iter().map(|r| r["Id"].as_str().unwrap()).collect();
    assert!(ids.iter().all(|id| id.len() == 18 && id.starts_with("0Ym")));
    let all = query(
        &client,
        "SELECT Id, CreatedDate, CreatedBy.Username FROM SetupAuditTrail \
         WHERE CreatedDate > 2025-06-10T10:00:00.000Z ORDER BY CreatedDate ASC, Id ASC",
    )
    .await
    .unwrap();
    assert_eq!(all.len(), 10);
    assert!(
        all[0]["CreatedDate"]
            .as_str()
            .unwrap()
            .ends_with(".000+0000")
    );
    assert_eq!(all[0]["CreatedBy"]["attributes"]["type"], "User");
    assert!(all[0]["CreatedBy"]["Username"].is_string());
    let (t, id) = (
        all[4]["CreatedDate"]
            .as_str()
            .unwrap()
            .replace("+0000", "Z"),
        all[4]["Id"].as_str().unwrap(),
    );
    let after = query(
        &client,
        &format!(
            "SELECT Id FROM SetupAuditTrail WHERE (CreatedDate > {t} OR (CreatedDate = {t} AND \
             Id > '{id}')) ORDER BY CreatedDate ASC, Id ASC"
        ),
    )
    .await
    .unwrap();
    let rest: Vec<&Value> = all[5..].iter().map(|r| &r["Id"]).collect();
    assert_eq!(after.iter().map(|r| &r["Id"]).collect::<Vec<_>>(), rest);
    // Standard objects accept what big objects refuse.
    assert_eq!(
        query(
            &client,
            "SELECT Id FROM SetupAuditTrail WHERE Action != 'x'"
        )
        .await
        .unwrap()
        .len(),
        10
    );
}

#[tokio::test]
async fn generated_rows_have_salesforces_shapes() {
    for object in [
        "LoginEvent",
        "ApiEvent",
        "FileEventStore",
        "IdentityVerificationEvent",
    ] {
        for row in generate_records(object, now() - time::Duration::hours(1), now(), 20, 5) {
            let id = row["EventIdentifier"].as_str().unwrap();
            assert_eq!(id.len(), 36, "{object}: UUID {id}");
            assert_eq!(&id[14..15], "4");
            assert_eq!(row["Id"], "000000000000000AAA");
            let parse = |f: &str| {
                let text = row[f].as_str().unwrap();
                assert!(text.ends_with("+0000"), "{object}.{f}: {text}");
                salesforce_jwt::datetime::parse(text).unwrap()
            };
            let lag = parse("CreatedDate") - parse("EventDate");
            assert!(
                lag > time::Duration::ZERO && lag < time::Duration::seconds(10),
                "{lag}"
            );
        }
    }
    for row in generate_records(
        "SessionHijackingEventStore",
        now() - time::Duration::hours(1),
        now(),
        20,
        6,
    ) {
        assert!(!row.contains_key("Id"), "assigned when stored");
        assert!(row["CreatedDate"].as_str().unwrap().ends_with(".000+0000"));
        assert!(row["SessionHijackingEventNumber"].is_string());
    }
}

#[tokio::test]
async fn without_the_permission_real_time_objects_are_invalid_types() {
    let (_mock, _clock, client) = start(MockOrg::builder().realtime_access(false)).await;
    match query(&client, "SELECT Id FROM LoginEvent").await {
        Err(Error::Api(e)) => assert_eq!(e.error_code.as_deref(), Some("INVALID_TYPE")),
        other => panic!("expected INVALID_TYPE, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_object_is_refused_when_adding_rows() {
    let (mock, _clock, _client) = start(MockOrg::builder()).await;
    let error = mock
        .add_records("LoginEventStream", Vec::new())
        .unwrap_err();
    assert!(error.to_string().contains("LoginEventStream"));
}
