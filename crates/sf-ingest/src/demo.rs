//! The embedded demo: with neither `SF_*` variables nor `--config`, an org double with demo
//! data stands in for Salesforce, so the first run shows what the program does.

use std::time::Duration;

use salesforce_jwt::objects::EventObject;
use salesforce_jwt::{Error, JwtBearerConfig};
use salesforce_jwt_mock::{MockOrg, generate_records};

/// The demo org holds about three days of files; a first real run starts one day back.
pub const DEMO_SINCE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Starts the demo org (kept alive by the caller: dropping it stops the server) and the
/// configuration that reaches it.
pub async fn start() -> Result<(MockOrg, JwtBearerConfig), Error> {
    let org = MockOrg::start().await;
    let now = time::OffsetDateTime::now_utc();
    let files = org.add_demo_data(now);
    for (seed, object) in EventObject::catalogue().iter().enumerate() {
        // Written at least a minute ago, so every row is queryable at once.
        let rows = generate_records(
            object.name(),
            now - time::Duration::days(3),
            now - time::Duration::minutes(1),
            40,
            seed as u64,
        );
        org.add_records(object.name(), rows)
            .map_err(|e| Error::Internal(format!("demo data: {e}")))?;
    }
    tracing::warn!(
        files = files.len(),
        "DEMO: neither SF_* variables nor --config are set, so this run collects from an embedded mock \
         Salesforce org with demo log files and real-time rows (--since defaults to 7d). Set SF_AUDIENCE_URL, \
         SF_CLIENT_KEY_PATH, SF_USERNAME, SF_CLIENT_ID, SF_INSTANCE_URL and SF_TOKEN_URL, or pass \
         --config FILE, to collect from real orgs"
    );
    let config = org.config_builder().build()?;
    Ok((org, config))
}
