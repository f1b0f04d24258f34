//! `--out http(s)://HOST:PORT`: rows go to Elasticsearch or OpenSearch data streams through
//! `salesforce-jwt-elasticsearch`'s sink, and `sf-ingest elasticsearch setup` installs the
//! index template.
//!
//! Credentials come from the environment, never from the command line or the config file:
//! `ES_API_KEY`, or `ES_USERNAME` and `ES_PASSWORD` (a config file may name other variables
//! with `es_api_key_env`, `es_username_env`, `es_password_env`, per org or in `[defaults]`).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use salesforce_jwt_elasticsearch::{
    Credentials, EsClient, EsConfig, INDEX_TEMPLATE_NAME, index_template,
};

use serde::Deserialize;

use crate::keys::keys_of;
use crate::plan::Invalid;
pub use crate::plan::{EsPlan, is_url_path, looks_like_url};

/// The variables read by default.
pub const API_KEY_ENV: &str = "ES_API_KEY";
pub const USERNAME_ENV: &str = "ES_USERNAME";
pub const PASSWORD_ENV: &str = "ES_PASSWORD";

/// The module's keys of one config table (per org, or in `[defaults]`), as written: the
/// struct is their schema.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsKeys {
    #[serde(rename = "es_api_key_env")]
    api_key_env: Option<String>,
    #[serde(rename = "es_username_env")]
    username_env: Option<String>,
    #[serde(rename = "es_password_env")]
    password_env: Option<String>,
    #[serde(rename = "es_ca_file")]
    ca_file: Option<PathBuf>,
    dead_letter: Option<PathBuf>,
    /// The first of them the table sets to a usable value, for a message that names one.
    #[serde(skip)]
    first: Option<&'static str>,
}

/// Takes the module's keys out of `table` (so the rest is checked as before), reporting values
/// that are not strings.
pub fn take_keys(table: &mut toml::Table, prefix: &str, invalid: &mut Invalid) -> EsKeys {
    let mut ours = toml::Table::new();
    let mut first = None;
    for &key in keys_of::<EsKeys>() {
        match table.remove(key) {
            None => {}
            Some(toml::Value::String(s)) if !s.trim().is_empty() => {
                first = first.or(Some(key));
                ours.insert(key.to_string(), toml::Value::String(s));
            }
            Some(_) => {
                invalid.0.push(format!(
                    "{prefix}{key}: must be a non-empty string{}",
                    if key.ends_with("_env") {
                        ", the name of an environment variable"
                    } else {
                        ", a file path"
                    }
                ));
            }
        }
    }
    // Cannot fail: only strings, under the struct's own keys.
    let keys: EsKeys = toml::Value::Table(ours).try_into().unwrap_or_default();
    EsKeys { first, ..keys }
}

/// An org's plan from its config keys (its own first, then `[defaults]`), when `out` is a
/// cluster; problems are reported with `prefix`. Relative paths resolve against `base`.
pub fn plan_from_config(
    out: Option<&Path>,
    own: &EsKeys,
    defaults: &EsKeys,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    prefix: &str,
    invalid: &mut Invalid,
) -> Option<EsPlan> {
    let Some(url) = out.filter(|o| is_url_path(o)).and_then(Path::to_str) else {
        if let Some(key) = own.first {
            invalid.0.push(format!(
                "{prefix}{key}: applies to an Elasticsearch output only; set out = \"https://HOST:9200\" or remove it",
            ));
        }
        return None;
    };
    let pick = |f: fn(&EsKeys) -> &Option<String>, default: &str| {
        f(own)
            .clone()
            .or_else(|| f(defaults).clone())
            .unwrap_or_else(|| default.to_string())
    };
    let vars = (
        pick(|k| &k.api_key_env, API_KEY_ENV),
        pick(|k| &k.username_env, USERNAME_ENV),
        pick(|k| &k.password_env, PASSWORD_ENV),
    );
    let ca_file = own
        .ca_file
        .clone()
        .or_else(|| defaults.ca_file.clone())
        .map(|p| base.join(p));
    // A dead-letter file is the org's own: it is not shared through [defaults].
    let dead_letter = own.dead_letter.clone().map(|p| base.join(p));
    if defaults.dead_letter.is_some() {
        invalid
            .0
            .push("[defaults]: dead_letter: give each org its own dead_letter file instead".into());
    }
    match plan(url, env, &vars, ca_file, dead_letter) {
        Ok(plan) => Some(plan),
        Err(problems) => {
            invalid.add(prefix, problems);
            None
        }
    }
}

/// The plan for `url` with credentials from the variables `vars` (API key, user, password).
/// Problems name the setting (`out`, `es_ca_file`) or the variables.
pub fn plan(
    url: &str,
    env: &dyn Fn(&str) -> Option<String>,
    vars: &(String, String, String),
    ca_file: Option<PathBuf>,
    dead_letter: Option<PathBuf>,
) -> Result<EsPlan, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let mut config = match EsConfig::new(url) {
        Ok(c) => Some(c),
        Err(e) => {
            problems.push(("out".to_string(), e.to_string().replacen("url: ", "", 1)));
            None
        }
    };
    let credentials = Credentials::from_env(env, &vars.0, &vars.1, &vars.2).unwrap_or_else(|e| {
        problems.push(("credentials".to_string(), e));
        Credentials::None
    });
    if let Some(path) = &ca_file
        && !path.is_file()
    {
        problems.push((
            "es_ca_file".to_string(),
            format!(
                "{} is not a readable file: give the PEM file of the CA that signed the cluster's certificate",
                path.display()
            ),
        ));
    }
    if let Some(config) = &mut config {
        config.credentials = credentials;
        config.ca_file = ca_file;
        config.dead_letter = dead_letter;
        if let Err(e) = salesforce_jwt_elasticsearch::EsSink::new(config) {
            problems.push(("out".to_string(), e.to_string()));
        }
    }
    match config {
        Some(config) if problems.is_empty() => Ok(EsPlan { config }),
        _ => Err(problems),
    }
}

/// The plan of the command line's `--out URL`: `ES_API_KEY` or `ES_USERNAME` and
/// `ES_PASSWORD`, `--es-ca-file`, `--dead-letter`.
pub fn plan_from_cli(
    url: &str,
    ca_file: Option<&Path>,
    dead_letter: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<EsPlan, Invalid> {
    let vars = (
        API_KEY_ENV.to_string(),
        USERNAME_ENV.to_string(),
        PASSWORD_ENV.to_string(),
    );
    plan(
        url,
        env,
        &vars,
        ca_file.map(Path::to_path_buf),
        dead_letter.map(Path::to_path_buf),
    )
    .map_err(|problems| {
        let mut invalid = Invalid::default();
        invalid.add(
            "",
            problems.into_iter().map(|(field, text)| {
                let flag = match field.as_str() {
                    "out" => "--out".to_string(),
                    "es_ca_file" => "--es-ca-file".to_string(),
                    other => other.to_string(),
                };
                (flag, text)
            }),
        );
        invalid
    })
}

/// `sf-ingest elasticsearch ...`.
#[derive(Debug, Args)]
pub struct EsCommand {
    #[command(subcommand)]
    pub action: EsAction,
}

/// What to do with the cluster.
#[derive(Debug, Subcommand)]
pub enum EsAction {
    /// Installs the index template logs-salesforce (data streams logs-salesforce.*-*, the ECS
    /// fields sf-ingest writes typed), for clusters without Elastic's Salesforce integration.
    /// Credentials from ES_API_KEY, or ES_USERNAME and ES_PASSWORD.
    Setup {
        /// The cluster, http(s)://HOST:PORT.
        #[arg(long, value_name = "URL")]
        out: String,
        /// PEM file of the CA that signed the cluster's certificate (beside the system's roots).
        #[arg(long, value_name = "FILE")]
        es_ca_file: Option<PathBuf>,
    },
}

/// Runs `sf-ingest elasticsearch ...`: 0 done, 1 the cluster refused, 2 a usage error.
pub async fn run_command(command: &EsCommand, env: &dyn Fn(&str) -> Option<String>) -> u8 {
    let EsAction::Setup { out, es_ca_file } = &command.action;
    let plan = match plan_from_cli(out, es_ca_file.as_deref(), None, env) {
        Ok(p) => p,
        Err(invalid) => {
            eprintln!("sf-ingest: {invalid}");
            return 2;
        }
    };
    let client = match EsClient::new(&plan.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sf-ingest: configuration error: {e}");
            return 2;
        }
    };
    match client
        .put_index_template(INDEX_TEMPLATE_NAME, &index_template())
        .await
    {
        Ok(()) => {
            tracing::info!(
                cluster = %plan.config.output_name(),
                template = INDEX_TEMPLATE_NAME,
                "installed the index template for data streams logs-salesforce.*-*"
            );
            0
        }
        Err(e) => {
            tracing::error!(cluster = %plan.config.output_name(), error = %e, "cannot install the index template");
            1
        }
    }
}
