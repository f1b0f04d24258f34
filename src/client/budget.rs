//! The API budget: a share of the org's rolling 24-hour API limit beyond which the client sends
//! nothing more, so that collecting logs never starves the org's other integrations.
//!
//! Salesforce reports usage only in the `Sforce-Limit-Info` header of responses, so the budget
//! is checked against the last usage seen: a run that crosses it stops within the requests
//! already in flight. Once stopped, only a response can tell that usage fell;
//! [`JwtBearerClient::probe_api_usage`] sends one request for that. It asks the limits resource
//! because the versions resource (`/services/data/`), although free, carries no usage header;
//! the limits resource costs one request and says the usage both in its header and its body.

use std::sync::atomic::Ordering;

use reqwest::header::{self, HeaderValue};

use super::JwtBearerClient;
use super::request::InstanceRequest;
use crate::error::{ApiUsage, Error};

impl JwtBearerClient {
    /// Sets the API budget, in percent of the org's limit (1 to 100), or removes it (`None`).
    /// With a budget, [`send`](Self::send) refuses with [`Error::ApiBudgetReached`] while the
    /// last usage seen is at or above it. Clones share the budget.
    pub fn set_api_budget(&self, percent: Option<u8>) -> Result<(), Error> {
        let value = match percent {
            None => 0,
            Some(p @ 1..=100) => p,
            Some(other) => {
                return Err(Error::InvalidArgument(format!(
                    "the API budget is {other}%: give a percentage from 1 to 100"
                )));
            }
        };
        self.inner.budget.store(value, Ordering::Relaxed);
        Ok(())
    }

    /// The API budget in percent of the org's limit, if one is set.
    pub fn api_budget(&self) -> Option<u8> {
        match self.inner.budget.load(Ordering::Relaxed) {
            0 => None,
            p => Some(p),
        }
    }

    /// [`Error::ApiBudgetReached`] when a budget is set and the last usage seen is at or above
    /// it; `None` otherwise (no budget, or no usage seen yet).
    pub fn api_budget_reached(&self) -> Option<Error> {
        let budget = self.api_budget()?;
        let usage = self.last_api_usage()?;
        usage
            .reaches(budget)
            .then_some(Error::ApiBudgetReached { usage, budget })
    }

    /// Sends one request to learn the org's current API usage, whatever the budget: `GET
    /// /services/data/vXX.X/limits`, which counts as one API request. A collector paused by
    /// its budget calls it before its next pass; the usage it returns (also
    /// [`last_api_usage`](Self::last_api_usage) from then on) says whether to go on. The
    /// resource needs the "View Setup and Configuration" permission; when it is refused (403,
    /// 404) the usage the refusal carried is taken.
    pub async fn probe_api_usage(&self) -> Result<Option<ApiUsage>, Error> {
        let version = &self.inner.config.api_version;
        let request = InstanceRequest::get(format!("/services/data/v{version}/limits"))
            .header(header::ACCEPT, HeaderValue::from_static("application/json"))
            .context("reading the org's API usage (limits)");
        match self.send_within_budget(&request, false).await {
            Ok(_) => {}
            // The resource needs "View Setup and Configuration", which a log collector's user
            // may lack; the refusal still carries `Sforce-Limit-Info`, recorded on arrival.
            Err(Error::Api(refused)) if matches!(refused.status, 403 | 404) => {
                tracing::debug!(error = %refused, "the limits resource was refused; using the usage its answer carried");
            }
            Err(other) => return Err(other),
        }
        Ok(self.last_api_usage())
    }
}
