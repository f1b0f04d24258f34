//! What a run collects: one or more orgs, each with validated credentials, choices and files.

use std::fmt;
use std::path::PathBuf;

use salesforce_jwt::format::ecs::EcsOptions;
use salesforce_jwt::{ConfigError, Error, JwtBearerConfig};
use salesforce_jwt_postgres::PgTarget;

use crate::options::{Collect, Problem};

/// Default bound on downloads in flight across all orgs.
pub const DEFAULT_MAX_DOWNLOADS: usize = 16;

/// Highest `max_downloads` accepted: far beyond what one process's network and Salesforce's
/// per-org limits serve (64 orgs at the highest concurrency), and far below what the download
/// slots' semaphore can count (a larger count would abort the program instead of running it).
pub const MAX_DOWNLOADS: usize = 4096;

/// The problem with a `max_downloads` of `n`, if any.
pub fn max_downloads_problem(n: i128) -> Option<String> {
    if n < 1 || n > MAX_DOWNLOADS as i128 {
        Some(format!(
            "{n} is out of range: a number from 1 to {MAX_DOWNLOADS} (default \
             {DEFAULT_MAX_DOWNLOADS})"
        ))
    } else {
        None
    }
}

/// One org to collect.
#[derive(Debug, Clone)]
pub struct OrgPlan {
    /// How logs and errors name the org.
    pub name: String,
    pub jwt: JwtBearerConfig,
    pub collect: Collect,
    /// NDJSON output; `None` is stdout.
    pub out: Option<PathBuf>,
    /// Checkpoint; `None` keeps it in memory (the next run starts again from `since`).
    pub state: Option<PathBuf>,
    /// `state = "postgres://…"`: checkpoints and leases in PostgreSQL (then `state` is `None`).
    pub postgres: Option<PgPlan>,
    /// `out = "http(s)://…"`: an Elasticsearch cluster (then `out` holds the URL as written).
    pub elasticsearch: Option<EsPlan>,
}

impl OrgPlan {
    /// The ECS documents' `data_stream.namespace` and `salesforce.instance_url` (the org's
    /// configured instance).
    pub fn ecs_options(&self) -> EcsOptions {
        let options = EcsOptions::default().with_instance_url(self.jwt.instance_url().as_str());
        // Validated when the plan was made.
        match options.clone().with_namespace(&self.collect.namespace) {
            Ok(with_namespace) => with_namespace,
            Err(_) => options,
        }
    }
}

/// An org whose checkpoints (and perhaps rows) are in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgPlan {
    pub target: PgTarget,
    /// `out = "postgres://…"` too: rows go to `salesforce_events` (then `out` is `None`).
    pub rows: bool,
}

/// Splits `out` and `state` as written (a file path or a `postgres://` URL) into file paths and
/// a PostgreSQL plan. `resolve` turns a written file path into the one to use. The problems name
/// the field; none repeats a URL, which may hold a password.
#[allow(clippy::type_complexity)]
pub fn places(
    out: Option<&std::path::Path>,
    state: Option<&std::path::Path>,
    resolve: &dyn Fn(&std::path::Path) -> PathBuf,
) -> Result<(Option<PathBuf>, Option<PathBuf>, Option<PgPlan>), Vec<(String, String)>> {
    let url = |p: Option<&std::path::Path>| {
        p.and_then(|p| p.to_str())
            .filter(|s| PgTarget::looks_like_url(s))
            .map(str::to_string)
    };
    let mut problems = Vec::new();
    let mut parse = |field: &str, text: &str| match PgTarget::parse(text) {
        Ok(t) => Some(t),
        Err(e) => {
            problems.push((field.to_string(), e.to_string()));
            None
        }
    };
    let out_url = url(out);
    let state_url = url(state);
    let out_target = out_url.as_deref().and_then(|u| parse("out", u));
    let state_target = state_url.as_deref().and_then(|u| parse("state", u));
    let postgres = match (&out_url, &state_url) {
        (Some(o), Some(s)) => {
            if o != s {
                problems.push((
                    "out".into(),
                    "names another PostgreSQL database than state: the rows are committed in the \
                     checkpoint's transaction, so give both the same URL"
                        .into(),
                ));
            }
            state_target.map(|target| PgPlan { target, rows: true })
        }
        (Some(_), None) => {
            problems.push((
                "out".into(),
                "a PostgreSQL output needs its checkpoints in the same database (the rows are \
                 committed in the checkpoint's transaction): set state to the same postgres:// URL"
                    .into(),
            ));
            out_target.map(|target| PgPlan { target, rows: true })
        }
        (None, Some(_)) => state_target.map(|target| PgPlan {
            target,
            rows: false,
        }),
        (None, None) => None,
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let file = |p: Option<&std::path::Path>, is_url: bool| match (p, is_url) {
        (Some(p), false) => Some(resolve(p)),
        _ => None,
    };
    // An Elasticsearch cluster stays as written; it has no checkpoint beside it.
    let es_out = out.filter(|o| is_url_path(o));
    if es_out.is_some() && state.is_none() {
        return Err(vec![(
            "state".into(),
            "is required with an Elasticsearch out: a checkpoint file (or a postgres:// URL), \
             saved only once Elasticsearch acknowledged every document of a file or window"
                .into(),
        )]);
    }
    let out_file = match es_out {
        Some(url) => Some(url.to_path_buf()),
        None => file(out, out_url.is_some()),
    };
    let state_file = match (state, &state_url) {
        (Some(s), None) => Some(resolve(s)),
        (Some(_), Some(_)) => None,
        // The default checkpoint beside an output file.
        (None, _) => out_file.as_ref().map(|out| {
            let mut name = out.as_os_str().to_os_string();
            name.push(".checkpoint.json");
            PathBuf::from(name)
        }),
    };
    Ok((out_file, state_file, postgres))
}

/// The problem with collecting several sources into one output file with checkpoints in
/// PostgreSQL, if `collect`, `out` and `postgres` make that combination. There each
/// (org, source) is its own task with its own lease and checkpoint row (so that several
/// processes can share an org's sources), and each would open the one file and cut it back to
/// its own committed position, removing the other sources' rows. `cli` says whether to name
/// the command line's options or the config file's keys.
pub fn shared_file_problem(
    collect: &crate::options::Collect,
    out: Option<&std::path::Path>,
    postgres: Option<&PgPlan>,
    cli: bool,
) -> Option<Problem> {
    let pg_state = postgres.is_some_and(|p| !p.rows);
    // An Elasticsearch output is no file: its documents are keyed by event.id, nothing is cut.
    let file_out = out.filter(|o| !is_url_path(o));
    if !pg_state || file_out.is_none() || collect.sources.len() < 2 {
        return None;
    }
    let sources: Vec<String> = collect.sources.iter().map(ToString::to_string).collect();
    let (field, state, one_per_file) = if cli {
        (
            "--out",
            "--state",
            "run one sf-ingest per --source, each with its own --out file",
        )
    } else {
        (
            "out",
            "state",
            "give each source its own [[org]] entry (its own name) with its own out file",
        )
    };
    Some((
        field.to_string(),
        format!(
            "one file cannot take several sources ({}) with postgres:// {state}: each source is \
             collected under its own lease and checkpoint, and each would cut the file back to \
             its own position, removing the other sources' rows. Set {field} to the same \
             postgres:// URL as {state} (rows go to the table salesforce_events), or {one_per_file}",
            sources.join(", ")
        ),
    ))
}

/// Configuration problems, every one found, each naming where it is (an org and a field, a
/// variable, or an option): a usage error, exit code 2.
#[derive(Debug, Default)]
pub struct Invalid(pub Vec<String>);

impl Invalid {
    pub fn one(text: impl Into<String>) -> Self {
        Invalid(vec![text.into()])
    }

    /// Records `problems` as `{prefix}{field}: {problem}`.
    pub fn add(&mut self, prefix: &str, problems: impl IntoIterator<Item = Problem>) {
        self.0.extend(
            problems
                .into_iter()
                .map(|(field, text)| format!("{prefix}{field}: {text}")),
        );
    }

    /// The problems of a `JwtBearerConfig` that failed to build; `rename` maps the library's
    /// field names to the ones the user wrote.
    pub fn add_jwt(&mut self, prefix: &str, error: Error, rename: impl Fn(&str) -> String) {
        match error {
            Error::Config(ConfigError { problems, .. }) => {
                self.add(
                    prefix,
                    problems.into_iter().map(|p| (rename(&p.field), p.problem)),
                );
            }
            other => self.0.push(format!("{prefix}{other}")),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "configuration error: {one}"),
            many => {
                write!(f, "configuration errors ({}):", many.len())?;
                for line in many {
                    write!(f, "\n  {line}")?;
                }
                Ok(())
            }
        }
    }
}

/// Whether `out` names a cluster rather than a file.
pub fn looks_like_url(out: &str) -> bool {
    let lower = out.trim_start().to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// [`looks_like_url`] for a path as written.
pub fn is_url_path(out: &std::path::Path) -> bool {
    out.to_str().is_some_and(looks_like_url)
}

/// What an org sends to a cluster with.
#[derive(Debug, Clone)]
pub struct EsPlan {
    pub config: salesforce_jwt_elasticsearch::EsConfig,
}
