//! `sf-ingest`: collects Salesforce Event Monitoring logs (EventLogFile) from one org (the `SF_*`
//! variables) or many (`--config FILE`), exactly once, as NDJSON. The collection itself is the
//! `salesforce-jwt` library's; this program is configuration, signals, progress and output.
//!
//! Exit codes: 0 done, or stopped by SIGINT/SIGTERM with checkpoints consistent; 1 an org
//! failed; 2 usage or configuration error; 128+N a second signal N ended the run at once.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![deny(clippy::await_holding_lock)]

mod cli;
mod config;
mod demo;
mod elasticsearch;
mod format;
mod logging;
mod options;
mod plan;
mod postgres;
mod progress;
mod run;
mod setup;
mod sink;
mod source;
mod stop;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser as _;
use tokio::sync::Semaphore;

use crate::run::Context;
use crate::stop::Stop;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let display = logging::init(&cli);
    if let Some(cli::Command::Elasticsearch(command)) = &cli.command {
        return match tokio::runtime::Runtime::new() {
            Ok(rt) => ExitCode::from(rt.block_on(elasticsearch::run_command(command, &|name| {
                std::env::var(name).ok()
            }))),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the async runtime");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async_main(cli, display))
}

async fn async_main(cli: cli::Cli, display: progress::Display) -> ExitCode {
    let stop = Stop::new();
    if let Err(e) = stop::install(stop.clone()) {
        tracing::error!(error = %e, "cannot listen for SIGINT and SIGTERM");
        return ExitCode::FAILURE;
    }
    let setup = match setup::setup(&cli, &|name| std::env::var(name).ok()).await {
        Ok(s) => s,
        Err(invalid) => {
            // Plain text on stderr whatever the log format: a person has to fix this.
            eprintln!("sf-ingest: {invalid}\n(see sf-ingest --help and sf-ingest.example.toml)");
            return ExitCode::from(2);
        }
    };
    if cli.check {
        let names: Vec<&str> = setup.orgs.iter().map(|o| o.name.as_str()).collect();
        tracing::info!(orgs = ?names, "the configuration is valid");
        return ExitCode::SUCCESS;
    }
    tracing::info!(
        orgs = setup.orgs.len(),
        max_downloads = setup.max_downloads,
        follow_seconds = cli.follow,
        "sf-ingest {} starting",
        env!("CARGO_PKG_VERSION")
    );
    let context = Arc::new(Context {
        downloads: Semaphore::new(setup.max_downloads),
        stop,
        follow: cli.follow.map(Duration::from_secs),
        display,
        lease_ttl: cli.lease_ttl.map_or(
            salesforce_jwt_postgres::DEFAULT_LEASE_TTL,
            Duration::from_secs,
        ),
        postgres: Default::default(),
    });
    let ok = run::run_all(setup.orgs, context).await;
    drop(setup.demo);
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
