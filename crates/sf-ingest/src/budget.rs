//! What an org's task says about its API budget (`--api-budget`, `api_budget`): when a pass
//! stops at the budget, and when a later pass (with `--follow`) finds usage fallen below it.
//!
//! The budget itself is enforced by the library's client, for every source: no request is
//! sent while the last `Sforce-Limit-Info` seen is at or above it, and a pass that starts
//! paused sends one request to the limits resource to learn whether usage fell (the versions
//! resource is free but carries no usage).

use salesforce_jwt::JwtBearerClient;
use salesforce_jwt::collect::PassSummary;

/// Whether an org is paused by its budget, so that pausing and resuming are each said once.
#[derive(Debug, Default)]
pub struct Pause {
    paused: bool,
}

impl Pause {
    /// Says on stderr when `summary`'s pass was stopped by the budget (once per pause), and
    /// when a pass ran again after a pause.
    pub fn after_pass(&mut self, org: &str, summary: &PassSummary, client: &JwtBearerClient) {
        match &summary.budget_reached {
            Some(reached) if !self.paused => {
                self.paused = true;
                tracing::warn!(org = %org, "{reached}: pausing {org}");
            }
            Some(reached) => {
                tracing::info!(org = %org, "{reached}: still pausing {org}");
            }
            None if self.paused => {
                self.paused = false;
                let usage = client
                    .last_api_usage()
                    .map_or_else(|| "unknown".to_string(), |u| u.to_string());
                let budget = client.api_budget().unwrap_or(100);
                tracing::info!(org = %org, "API usage {usage} is below the budget of {budget}%: resumed {org}");
            }
            None => {}
        }
    }
}
