//! From the command line and the environment to a [`Setup`]: the config file's orgs, the one org
//! of the `SF_*` variables, or the demo org.

use std::time::Duration;

use salesforce_jwt::{ENV_VARS, JwtBearerConfig};
use salesforce_jwt_mock::MockOrg;

use crate::cli::Cli;
use crate::config;
use crate::demo;
use crate::options::{Choices, Collect};
use crate::plan::{
    DEFAULT_MAX_DOWNLOADS, Invalid, OrgPlan, max_downloads_problem, places, shared_file_problem,
};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Everything a run needs.
#[derive(Debug)]
pub struct Setup {
    pub orgs: Vec<OrgPlan>,
    pub max_downloads: usize,
    /// The demo org, kept alive for the run.
    pub demo: Option<MockOrg>,
    /// Where to serve metrics, and the option or key that says so (for errors).
    pub metrics_addr: Option<(String, &'static str)>,
}

/// The command line's collection choices, which win over the config file's.
pub fn cli_choices(cli: &Cli) -> Choices {
    let list = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    Choices {
        sources: list(&cli.sources),
        event_types: list(&cli.event_types),
        interval: cli.interval.clone(),
        since: cli.since.clone(),
        concurrency: cli.concurrency,
        format: cli.format.clone(),
        namespace: cli.namespace.clone(),
        skip_bad_files: cli.skip_bad_files.then_some(true),
        api_budget: cli.api_budget,
    }
}

/// Checks the command line's choices on their own, naming the options.
fn check_cli(cli: &Cli, choices: &Choices) -> Result<(), Invalid> {
    let mut invalid = Invalid::default();
    if let Err(problems) = Collect::resolve(&[choices], DAY) {
        invalid.add(
            "",
            problems
                .into_iter()
                .map(|(field, text)| (flag(&field), text)),
        );
    }
    if let Some(problem) = cli
        .max_downloads
        .and_then(|n| max_downloads_problem(i128::try_from(n).unwrap_or(i128::MAX)))
    {
        invalid.0.push(format!("--max-downloads: {problem}"));
    }
    if let Some(Err(e)) = cli.metrics_addr.as_deref().map(crate::metrics::check_addr) {
        invalid.0.push(format!("--metrics-addr: {e}"));
    }
    if invalid.is_empty() {
        Ok(())
    } else {
        Err(invalid)
    }
}

fn flag(field: &str) -> String {
    match field {
        "sources" => "--source".into(),
        "event_types" => "--event-type".into(),
        other => format!("--{}", other.replace('_', "-")),
    }
}

/// Builds the setup; `env` reads environment variables.
/// Event Log Objects exist from API 61.0: an older `api_version` would answer every query
/// `INVALID_TYPE`, as an org without them does, so it is refused before anything runs.
fn event_log_object_version_problem(
    collect: &crate::options::Collect,
    jwt: &JwtBearerConfig,
    field: &str,
) -> Option<String> {
    let logs: Vec<String> = collect
        .sources
        .iter()
        .filter_map(|s| match s {
            crate::source::Source::Object(o)
                if o.kind() == salesforce_jwt::objects::ObjectKind::EventLogObject =>
            {
                Some(o.name().to_string())
            }
            _ => None,
        })
        .collect();
    if logs.is_empty() {
        return None;
    }
    salesforce_jwt::event_log_objects::check_api_version(jwt.api_version())
        .err()
        .map(|_| {
            format!(
                "{field}: {} is below 61.0, the first API version with Event Log Objects ({}): \
                 set {field} to 61.0 or later, or collect those events from EventLogFile",
                jwt.api_version(),
                logs.join(", ")
            )
        })
}

pub async fn setup(cli: &Cli, env: &dyn Fn(&str) -> Option<String>) -> Result<Setup, Invalid> {
    let choices = cli_choices(cli);
    check_cli(cli, &choices)?;
    if let Some(path) = &cli.config {
        let file = config::load(path, &choices, env)?;
        let max_downloads = cli.max_downloads.unwrap_or(file.max_downloads);
        let mut invalid = Invalid::default();
        for org in &file.orgs {
            if let Some(problem) =
                event_log_object_version_problem(&org.collect, &org.jwt, "api_version")
            {
                invalid.0.push(format!("org {:?}: {problem}", org.name));
            }
            if org.collect.concurrency > max_downloads {
                invalid.0.push(format!(
                    "org {:?}: concurrency: {} is more than max_downloads {max_downloads}: no org \
                     downloads more files at once than the shared max_downloads; lower it or raise \
                     max_downloads",
                    org.name, org.collect.concurrency
                ));
            }
        }
        return if invalid.is_empty() {
            Ok(Setup {
                orgs: file.orgs,
                max_downloads,
                demo: None,
                metrics_addr: match (&cli.metrics_addr, file.metrics_addr) {
                    (Some(addr), _) => Some((addr.clone(), "--metrics-addr")),
                    (None, Some(addr)) => Some((addr, "metrics_addr")),
                    (None, None) => None,
                },
            })
        } else {
            Err(invalid)
        };
    }
    let configured = ENV_VARS.iter().any(|v| env(v).is_some());
    if !configured {
        // Synthetic demo rows must never land in a file or database meant for a real org's.
        let named: Vec<&str> = [("--out", &cli.out), ("--state", &cli.state)]
            .into_iter()
            .filter_map(|(flag, value)| value.as_ref().map(|_| flag))
            .collect();
        if !named.is_empty() {
            return Err(Invalid::one(format!(
                "{}: no org is configured, so nothing real would be collected there: set \
                 SF_AUDIENCE_URL, SF_CLIENT_KEY_PATH (or SF_CLIENT_KEY_PEM), SF_USERNAME, \
                 SF_CLIENT_ID, SF_INSTANCE_URL and SF_TOKEN_URL, or pass --config FILE. Without \
                 {}, sf-ingest runs an embedded demo org to stdout",
                named.join(" and "),
                named.join(" and "),
            )));
        }
    }
    let (jwt, demo, since, name) = if configured {
        if let Some(key) = env("SF_CLIENT_KEY_PATH") {
            config::warn_if_readable_by_others(std::path::Path::new(&key), "key file");
        }
        let jwt = JwtBearerConfig::from_lookup(env).map_err(|e| {
            let mut invalid = Invalid::default();
            invalid.add_jwt("", e, str::to_string);
            invalid
        })?;
        let name = jwt.instance_url().host_str().unwrap_or("org").to_string();
        (jwt, None, DAY, name)
    } else {
        let (org, jwt) = demo::start()
            .await
            .map_err(|e| Invalid::one(format!("the demo org cannot start: {e}")))?;
        (jwt, Some(org), demo::DEMO_SINCE, "demo".to_string())
    };
    let collect = Collect::resolve(&[&choices], since).map_err(|p| {
        let mut invalid = Invalid::default();
        invalid.add("", p);
        invalid
    })?;
    if let Some(problem) = event_log_object_version_problem(&collect, &jwt, "SF_API_VERSION") {
        return Err(Invalid::one(problem));
    }
    let (out, state, postgres) = places(cli.out.as_deref(), cli.state.as_deref(), &|p| {
        p.to_path_buf()
    })
    .map_err(|problems| {
        let mut invalid = Invalid::default();
        invalid.add(
            "",
            problems
                .into_iter()
                .map(|(field, text)| (format!("--{field}"), text)),
        );
        invalid
    })?;
    let elasticsearch = match out
        .as_deref()
        .filter(|o| crate::elasticsearch::is_url_path(o))
        .and_then(|o| o.to_str())
    {
        Some(url) => Some(crate::elasticsearch::plan_from_cli(
            url,
            cli.es_ca_file.as_deref(),
            cli.dead_letter.as_deref(),
            env,
        )?),
        None if cli.dead_letter.is_some() || cli.es_ca_file.is_some() => {
            return Err(Invalid::one(
                "--dead-letter and --es-ca-file apply to an Elasticsearch output only: add \
                 --out https://HOST:9200, or remove them",
            ));
        }
        None => None,
    };
    if let Some((field, text)) =
        shared_file_problem(&collect, out.as_deref(), postgres.as_ref(), true)
    {
        return Err(Invalid::one(format!("{field}: {text}")));
    }
    if state.is_none() && postgres.is_none() && demo.is_none() {
        tracing::warn!(
            "no --state or --out file: the checkpoint is kept in memory, so the next run starts again from --since"
        );
    }
    let max_downloads = cli
        .max_downloads
        .unwrap_or(DEFAULT_MAX_DOWNLOADS)
        .max(collect.concurrency);
    Ok(Setup {
        orgs: vec![OrgPlan {
            name,
            jwt,
            collect,
            out,
            state,
            postgres,
            elasticsearch,
        }],
        max_downloads,
        demo,
        metrics_addr: cli.metrics_addr.clone().map(|a| (a, "--metrics-addr")),
    })
}
