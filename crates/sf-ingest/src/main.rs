//! `sf-ingest`: collects Salesforce security logs (EventLogFile, Real-Time Event Monitoring
//! objects, SetupAuditTrail) from one org (the `SF_*` variables) or many (`--config FILE`),
//! exactly once, as NDJSON or ECS. The collection itself is the
//! `salesforce-jwt` library's; this program is configuration, signals, progress and output.
//!
//! Exit codes: 0 done, or stopped by SIGINT/SIGTERM with checkpoints consistent; 1 an org
//! failed; 2 usage or configuration error; 128+N a second signal N ended the run at once.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![deny(clippy::await_holding_lock)]

mod budget;
mod checkpoint_cmd;
mod cli;
mod config;
mod context;
mod demo;
mod elasticsearch;
mod flags;
mod format;
mod keys;
mod logging;
mod metrics;
mod notify;
mod options;
mod overlap;
mod pacer;
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

use crate::context::Context;
use crate::stop::Stop;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let display = logging::init(&cli);
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
    match &cli.command {
        Some(cli::Command::Checkpoint(command)) => return checkpoint_cmd::run(command).await,
        Some(cli::Command::Elasticsearch(command)) => {
            let env = |name: &str| std::env::var(name).ok();
            return ExitCode::from(elasticsearch::run_command(command, &env).await);
        }
        Some(cli::Command::Healthcheck { url }) => {
            return match metrics::healthcheck(url).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sf-ingest healthcheck: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        None => {}
    }
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
    // Before --check's answer too: a configuration can be valid and still collect the same
    // events twice.
    overlap::warn(&setup.orgs);
    if cli.check {
        let names: Vec<&str> = setup.orgs.iter().map(|o| o.name.as_str()).collect();
        tracing::info!(orgs = ?names, "the configuration is valid");
        return ExitCode::SUCCESS;
    }
    let metrics = Arc::new(metrics::Metrics::new());
    if let Some((addr, field)) = &setup.metrics_addr {
        match metrics::bind(addr, field).await {
            Ok((listener, bound)) => {
                tracing::info!(address = %bound, "serving metrics at /metrics and liveness at /healthz");
                tokio::spawn(metrics::serve(listener, Arc::clone(&metrics)));
            }
            Err(e) => {
                eprintln!("sf-ingest: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let env = |name: &str| std::env::var(name).ok();
    if let Some(notifier) = notify::ready(
        notify::Notifier::from_env(&env),
        notify::watchdog_every(&env),
    ) {
        let stop = stop.clone();
        tokio::spawn(async move {
            stop.wait().await;
            notifier.notify("STOPPING=1");
        });
    }
    tracing::info!(
        orgs = setup.orgs.len(),
        max_downloads = setup.max_downloads,
        follow_seconds = cli.follow,
        "sf-ingest {} starting",
        env!("CARGO_PKG_VERSION")
    );
    let context = Arc::new(Context {
        downloads: Arc::new(Semaphore::new(setup.max_downloads)),
        tokens: pacer::TokenPacer::new(setup.orgs.len(), cli.follow.map(Duration::from_secs)),
        stop,
        follow: cli.follow.map(Duration::from_secs),
        display,
        lease_ttl: cli.lease_ttl.map_or(
            salesforce_jwt_postgres::DEFAULT_LEASE_TTL,
            Duration::from_secs,
        ),
        postgres: Default::default(),
        metrics,
    });
    let ok = run::run_all(setup.orgs, context).await;
    drop(setup.demo);
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
