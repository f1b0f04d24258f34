//! Checks a Salesforce JWT bearer setup end to end and says what to fix.
//!
//! ```sh
//! export SF_AUDIENCE_URL=https://login.salesforce.com SF_CLIENT_KEY_PATH=key.pem \
//!        SF_USERNAME=integration@example.com SF_CLIENT_ID=3MVG9... \
//!        SF_INSTANCE_URL=https://acme.my.salesforce.com SF_TOKEN_URL=https://login.salesforce.com
//! cargo run --example check_setup
//! ```
//!
//! Prints the instance, org and user, the API version, and whether the user can read
//! EventLogFile. Never prints the token. Exits non-zero with an actionable message on any
//! failure.

use std::process::ExitCode;

use salesforce_jwt::event_log::EventLogFileQuery;
use salesforce_jwt::{Error, JwtBearerClient, JwtBearerConfig};

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
    if let Some(usage) = client.last_api_usage() {
        println!(
            "API usage       {}/{} requests in the last 24 h",
            usage.used, usage.limit
        );
    }
    Ok(())
}
