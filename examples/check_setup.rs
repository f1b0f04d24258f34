//! Checks a Salesforce JWT bearer setup end to end and says what to fix.
//!
//! ```sh
//! export SF_AUDIENCE_URL=https://login.salesforce.com SF_CLIENT_KEY_PATH=key.pem \
//!        SF_USERNAME=integration@example.com SF_CLIENT_ID=3MVG9... \
//!        SF_INSTANCE_URL=https://acme.my.salesforce.com SF_TOKEN_URL=https://login.salesforce.com
//! cargo run --example check_setup
//! ```
//!
//! Prints the instance, org and user, the API version, whether the user can read
//! EventLogFile, whether Real-Time Event Monitoring data can be read (one `LoginEvent`
//! row), and whether Event Log Objects can be read (one `LoginEventLog` row), telling apart an
//! API version below 61.0, an org not on Hyperforce and a missing View Event Log Object Data
//! permission. Never prints the token. Exits non-zero with an actionable message on any
//! failure; a real-time or Event Log Object problem is reported with what to do but does not
//! fail the check, since EventLogFile alone needs neither.

use std::process::ExitCode;

use futures_util::TryStreamExt as _;
use salesforce_jwt::event_log_file::EventLogFileQuery;
use salesforce_jwt::event_log_objects::{EventLogObjectQuery, check_api_version};
use salesforce_jwt::objects::{BigObjectQuery, EventObject, FieldSelection};
use salesforce_jwt::{Error, JwtBearerClient, JwtBearerConfig, QueryOptions};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Escape codes only where a person reads them, not in captured logs.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match check().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nFAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn check() -> Result<(), Error> {
    let config = JwtBearerConfig::from_env()?;
    println!("configuration   ok");
    println!("  token URL     {}", config.token_url());
    println!("  audience      {}", config.audience());
    println!("  username      {}", config.username());
    println!("  key           {}", config.key().origin());
    let client = JwtBearerClient::new(config)?;
    let token = client.access_token().await?;
    println!("authentication  ok");
    println!("  instance URL  {}", token.instance_url());
    println!(
        "  org ID        {}",
        token.org_id().unwrap_or("(not returned)")
    );
    println!(
        "  user ID       {}",
        token.user_id().unwrap_or("(not returned)")
    );
    println!(
        "  scope         {}",
        token.scope().unwrap_or("(not returned)")
    );
    let served = client.check_api_version().await?;
    println!(
        "  API version   {} (the org serves {} to {})",
        client.config().api_version(),
        served.first().map_or("?", String::as_str),
        served.last().map_or("?", String::as_str)
    );
    let configured = client.config().instance_url();
    if token.instance_url().origin() != configured.origin() {
        println!(
            "  note: Salesforce names the instance {} but SF_INSTANCE_URL is {}; requests go to \
             SF_INSTANCE_URL",
            token.instance_url(),
            configured
        );
    }
    let files = client
        .count(&EventLogFileQuery::new().to_count_soql())
        .await?;
    println!("EventLogFile    readable ({files} files visible)");
    check_realtime(&client).await?;
    check_event_log_objects(&client).await?;
    if let Some(usage) = client.last_api_usage() {
        // `API usage: 1234/15000 (8%)`: requests in the rolling 24 hours over the org's limit,
        // what sf-ingest's --api-budget compares with.
        println!("API usage: {usage}");
    }
    Ok(())
}

/// Probes one big object, the newest `LoginEvent`, and tells apart the two reasons it may give
/// nothing: no access (the type is unknown to this user) or no stored rows.
async fn check_realtime(client: &JwtBearerClient) -> Result<(), Error> {
    let login = EventObject::named("LoginEvent")
        .ok_or_else(|| Error::Internal("LoginEvent is missing from the catalogue".into()))?;
    // `SELECT EventIdentifier FROM LoginEvent ORDER BY EventDate DESC LIMIT 1`: the cheapest
    // query a big object accepts.
    let soql = BigObjectQuery::new(&login)?
        .fields(FieldSelection::Fields(vec!["EventIdentifier".into()]))
        .limit(1)
        .to_soql()?;
    let rows: Result<Vec<serde_json::Value>, Error> = client
        .query(&soql, QueryOptions::default())
        .try_collect()
        .await;
    match rows {
        Ok(rows) if !rows.is_empty() => {
            println!("Real-time       readable (LoginEvent has stored rows)");
        }
        Ok(_) => {
            println!(
                "Real-time       readable, but LoginEvent has no stored rows: storage is probably \
                 not enabled. Visit Setup > Event Manager (Quick Find \"Event Manager\") and \
                 choose \"Enable Storage\" for LoginEvent (and every event you collect); rows \
                 are stored from then on. An org where nobody logged in recently looks the same"
            );
        }
        Err(Error::Api(api))
            if matches!(
                api.error_code.as_deref(),
                Some(
                    "INVALID_TYPE"
                        | "INSUFFICIENT_ACCESS"
                        | "INSUFFICIENT_ACCESS_OR_READONLY"
                        | "INVALID_TYPE_FOR_OPERATION"
                )
            ) =>
        {
            println!(
                "Real-time       NOT readable ({}): this user cannot see LoginEvent. It needs \
                 the Salesforce Shield or Event Monitoring add-on licence on the org, and the \
                 \"View Real-Time Event Monitoring Data\" permission: Setup > Permission Sets \
                 (or Profiles) > System Permissions. EventLogFile collection works without it",
                api.error_code.as_deref().unwrap_or("refused")
            );
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Probes one Event Log Object, `LoginEventLog`, over the last hour, and tells apart the three
/// reasons it may be unreadable: an API version below 61.0 (known without asking), an org
/// without the objects (not Hyperforce, or Government Cloud: `INVALID_TYPE`) and a user
/// without View Event Log Object Data (`INSUFFICIENT_ACCESS`).
async fn check_event_log_objects(client: &JwtBearerClient) -> Result<(), Error> {
    let version = client.config().api_version();
    if let Err(e) = check_api_version(version) {
        println!("Event Log Objects NOT readable: {e}");
        return Ok(());
    }
    let login = EventObject::named("LoginEventLog")
        .ok_or_else(|| Error::Internal("LoginEventLog is missing from the catalogue".into()))?;
    let now = client.org_now();
    let soql = EventLogObjectQuery::new(&login)?
        .fields(FieldSelection::Fields(vec!["Id".into()]))
        .window(now - time::Duration::HOUR, now)
        .limit(1)
        .to_soql()?;
    let rows: Result<Vec<serde_json::Value>, Error> = client
        .query(&soql, QueryOptions::default())
        .try_collect()
        .await;
    match rows {
        Ok(_) => println!("Event Log Objects readable (LoginEventLog)"),
        Err(Error::Api(api)) if api.error_code.as_deref() == Some("INVALID_TYPE") => {
            println!(
                "Event Log Objects NOT available (INVALID_TYPE): this org has no LoginEventLog. \
                 Event Log Objects exist only on Hyperforce orgs (not Government Cloud) with \
                 Shield or the Event Monitoring add-on: check Setup > Company Information (or ask \
                 your Salesforce account team about Hyperforce). Collect EventLogFile meanwhile. \
                 If the org is on Hyperforce, check the permission below too"
            );
        }
        Err(Error::Api(api))
            if matches!(
                api.error_code.as_deref(),
                Some("INSUFFICIENT_ACCESS" | "INSUFFICIENT_ACCESS_OR_READONLY")
            ) =>
        {
            println!(
                "Event Log Objects NOT readable ({}): the user lacks the \"View Event Log Object \
                 Data\" permission: Setup > Permission Sets > System Permissions (or assign the \
                 Event Monitoring User permission set)",
                api.error_code.as_deref().unwrap_or("refused")
            );
        }
        Err(e) => return Err(e),
    }
    Ok(())
}
