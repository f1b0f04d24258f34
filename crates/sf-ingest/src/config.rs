//! The `--config` file: any number of orgs, in TOML. The schema is documented in
//! `sf-ingest.example.toml`.
//!
//! Every problem of the file is reported at once, each as `org "NAME": FIELD: problem`: unknown
//! keys, values of the wrong type, missing or invalid Salesforce fields (checked by
//! `JwtBearerConfig`'s builder, key included), clashing names and paths.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use salesforce_jwt::JwtBearerConfig;
use serde::Deserialize;

use crate::keys::keys_of;
use crate::options::{Choices, Collect};
use crate::plan::{
    DEFAULT_MAX_DOWNLOADS, Invalid, MAX_DOWNLOADS, OrgPlan, PgPlan, max_downloads_problem, places,
    shared_file_problem,
};

/// A first run of a configured org starts this far back unless `since` says otherwise.
const DEFAULT_SINCE: Duration = Duration::from_secs(24 * 3600);

/// The top level of the file. The values are checked one by one, each with its own message.
#[derive(Debug, Default, Deserialize)]
struct TopLevel {
    max_downloads: Option<toml::Value>,
    metrics_addr: Option<toml::Value>,
    defaults: Option<toml::Value>,
    org: Option<toml::Value>,
}

/// An `[[org]]` table's own keys. It also takes the collection choices of `[defaults]`
/// ([`Choices`]) and the Elasticsearch keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrgEntry {
    name: Option<String>,
    audience_url: Option<String>,
    client_key_path: Option<PathBuf>,
    client_key_env: Option<String>,
    username: Option<String>,
    client_id: Option<String>,
    instance_url: Option<String>,
    token_url: Option<String>,
    api_version: Option<String>,
    out: Option<PathBuf>,
    state: Option<PathBuf>,
}

/// The library's names of the key's two fields, as this file calls them (its other fields
/// have the library's names).
const KEY_FIELDS: &[(&str, &str)] = &[
    ("client_key_path", "client_key_path"),
    ("client_key_pem", "client_key_env"),
];

/// The orgs of a config file and the global download bound.
#[derive(Debug)]
pub struct FileConfig {
    pub orgs: Vec<OrgPlan>,
    pub max_downloads: usize,
    /// `metrics_addr = "HOST:PORT"`.
    pub metrics_addr: Option<String>,
}

/// Reads and validates `path`. `cli` are the command line's choices, which win over the file's;
/// `env` reads the variables that `client_key_env` names.
pub fn load(
    path: &Path,
    cli: &Choices,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<FileConfig, Invalid> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Invalid::one(format!(
            "cannot read the config file {}: {e}",
            path.display()
        ))
    })?;
    warn_if_readable_by_others(path, "config file");
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse(&text, &base, cli, env).map_err(|mut i| {
        for line in &mut i.0 {
            *line = format!("{}: {line}", path.display());
        }
        i
    })
}

/// Parses a config file's `text`; relative paths resolve against `base`.
pub fn parse(
    text: &str,
    base: &Path,
    cli: &Choices,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<FileConfig, Invalid> {
    let table: toml::Table =
        toml::from_str(text).map_err(|e| Invalid::one(syntax_error(text, &e)))?;
    let mut invalid = Invalid::default();
    unknown_keys(&table, keys_of::<TopLevel>(), "", &mut invalid);
    // Cannot fail: every field takes any value, and unknown keys were reported above.
    let top: TopLevel = toml::Value::Table(table).try_into().unwrap_or_default();

    let max_downloads = match &top.max_downloads {
        None => DEFAULT_MAX_DOWNLOADS,
        Some(toml::Value::Integer(n)) => match max_downloads_problem(i128::from(*n)) {
            // Within 1..=MAX_DOWNLOADS, so it fits.
            None => usize::try_from(*n).unwrap_or(DEFAULT_MAX_DOWNLOADS),
            Some(problem) => {
                invalid.0.push(format!("max_downloads: {problem}"));
                DEFAULT_MAX_DOWNLOADS
            }
        },
        Some(other) => {
            invalid.0.push(format!(
                "max_downloads: {other} is not usable: a whole number from 1 to {MAX_DOWNLOADS}"
            ));
            DEFAULT_MAX_DOWNLOADS
        }
    };
    let metrics_addr = match &top.metrics_addr {
        None => None,
        Some(toml::Value::String(addr)) => match crate::metrics::check_addr(addr) {
            Ok(()) => Some(addr.clone()),
            Err(e) => {
                invalid.0.push(format!("metrics_addr: {e}"));
                None
            }
        },
        Some(other) => {
            invalid.0.push(format!(
                "metrics_addr: {other} is not usable: a string \"HOST:PORT\", like \"127.0.0.1:9464\""
            ));
            None
        }
    };
    // `state` and `out` in [defaults] are PostgreSQL URLs only: a file cannot be shared.
    let mut shared = (None, None);
    let mut es_defaults = crate::elasticsearch::EsKeys::default();
    let defaults = match &top.defaults {
        None => Choices::default(),
        Some(toml::Value::Table(t)) => {
            let mut t = t.clone();
            for (key, slot) in [("out", &mut shared.0), ("state", &mut shared.1)] {
                match t.remove(key) {
                    None => {}
                    Some(toml::Value::String(url))
                        if salesforce_jwt_postgres::PgTarget::looks_like_url(&url)
                            || (key == "out" && crate::elasticsearch::looks_like_url(&url)) =>
                    {
                        *slot = Some(PathBuf::from(url));
                    }
                    Some(_) => invalid.0.push(format!(
                        "[defaults]: {key}: only a postgres:// URL can be shared by every org; \
                         give each org its own {key} file instead"
                    )),
                }
            }
            es_defaults = crate::elasticsearch::take_keys(&mut t, "[defaults]: ", &mut invalid);
            unknown_keys(&t, keys_of::<Choices>(), "[defaults]: ", &mut invalid);
            typed::<Choices>(&t, "[defaults]: ", &mut invalid).0
        }
        Some(_) => {
            invalid
                .0
                .push("defaults: must be a table, [defaults]".into());
            Choices::default()
        }
    };
    let entries: &[toml::Value] = match &top.org {
        Some(toml::Value::Array(orgs)) if !orgs.is_empty() => orgs,
        Some(_) | None => {
            invalid.0.push(
                "no org: add one [[org]] table per Salesforce org (see sf-ingest.example.toml)"
                    .into(),
            );
            &[]
        }
    };

    let mut orgs = Vec::new();
    let mut names: HashSet<String> = HashSet::new();
    let mut files: HashMap<PathBuf, String> = HashMap::new();
    for (i, value) in entries.iter().enumerate() {
        let label = value
            .get("name")
            .and_then(toml::Value::as_str)
            .filter(|n| !n.trim().is_empty())
            .map(str::to_string);
        let prefix = match &label {
            Some(name) => format!("org {name:?}: "),
            None => format!("org #{} (no name): ", i + 1),
        };
        let Some(org_table) = value.as_table() else {
            invalid
                .0
                .push(format!("{prefix}each org must be a [[org]] table"));
            continue;
        };
        let mut org_table = org_table.clone();
        let es_own = crate::elasticsearch::take_keys(&mut org_table, &prefix, &mut invalid);
        let org_table = &org_table;
        let (org_keys, choice_keys) = (keys_of::<OrgEntry>(), keys_of::<Choices>());
        for key in org_table.keys() {
            if !org_keys.contains(&key.as_str()) && !choice_keys.contains(&key.as_str()) {
                invalid.0.push(format!(
                    "{prefix}{key}: unknown key; an org takes {} and {}",
                    org_keys.join(", "),
                    choice_keys.join(", ")
                ));
            }
        }
        let (mut entry, mut mistyped) = typed::<OrgEntry>(org_table, &prefix, &mut invalid);
        let (own, also) = typed::<Choices>(org_table, &prefix, &mut invalid);
        mistyped.extend(also);
        entry.out = entry.out.take().or_else(|| shared.0.clone());
        entry.state = entry.state.take().or_else(|| shared.1.clone());
        let Some(name) = entry.name.take().filter(|n| !n.trim().is_empty()) else {
            invalid.0.push(format!(
                "{prefix}name: is required: a short name for logs and errors, like \"acme-prod\""
            ));
            continue;
        };
        if !names.insert(name.clone()) {
            invalid.0.push(format!(
                "{prefix}name: another org has the same name; give each its own"
            ));
        }
        // Clashing files are reported whatever else is wrong with the org.
        let (out, state, _, problems) = paths(&entry, base);
        invalid.add(&prefix, problems);
        for (field, path) in [("out", &out), ("state", &state)] {
            let Some(path) = path
                .as_ref()
                .filter(|p| !crate::elasticsearch::is_url_path(p))
            else {
                continue;
            };
            if let Some(other) = files.insert(path.clone(), name.clone()) {
                invalid.0.push(format!(
                    "{prefix}{field}: {} is also used by org {other:?}; every org needs its own output and state",
                    path.display()
                ));
            }
        }
        let before = invalid.0.len();
        let es_out = out.clone();
        if let Some(mut org) = org_plan(
            entry,
            own,
            name,
            &prefix,
            base,
            cli,
            &defaults,
            env,
            &mut invalid,
        ) {
            org.elasticsearch = crate::elasticsearch::plan_from_config(
                es_out.as_deref(),
                &es_own,
                &es_defaults,
                base,
                env,
                &prefix,
                &mut invalid,
            );
            orgs.push(org);
        }
        // A value of the wrong type was reported as such; it is not also missing.
        let missing: Vec<String> = mistyped
            .iter()
            .map(|k| format!("{prefix}{k}: is required"))
            .collect();
        let mut index = 0;
        invalid.0.retain(|line| {
            index += 1;
            index <= before || !missing.iter().any(|m| line.starts_with(m.as_str()))
        });
    }
    if invalid.is_empty() {
        Ok(FileConfig {
            orgs,
            max_downloads,
            metrics_addr,
        })
    } else {
        Err(invalid)
    }
}

/// Where a TOML syntax error is and what it is, without the line itself (toml's own message
/// quotes it, and the line may hold a postgres:// URL with its password).
fn syntax_error(text: &str, error: &toml::de::Error) -> String {
    let message = error
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let Some(span) = error.span() else {
        return format!("TOML syntax error: {message}");
    };
    let mut start = span.start.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!(
        "TOML syntax error at line {line}, column {column}: {message} (the line is not shown: \
         it may hold a password)"
    )
}

/// Warns when `path` (a config or key file, `what`) can be read by its group or by others: it
/// holds a private key, or URLs that may carry a password. A warning, not an error: the file
/// may be on a filesystem without Unix modes, or guarded otherwise.
pub fn warn_if_readable_by_others(path: &Path, what: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o044 != 0 {
            tracing::warn!(
                file = %path.display(),
                mode = %format!("{mode:04o}"),
                "the {what} {} is readable by {} (mode {mode:04o}); it should be readable by its \
                 owner only: chmod 600 {}",
                path.display(),
                match (mode & 0o040 != 0, mode & 0o004 != 0) {
                    (true, true) => "its group and by others",
                    (true, false) => "its group",
                    _ => "others",
                },
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (path, what);
    }
}

/// The org's output and checkpoint, resolved against the config file's directory (the
/// checkpoint defaults to `OUT.checkpoint.json`), or PostgreSQL for `postgres://` URLs; and the
/// problems with them.
fn paths(
    entry: &OrgEntry,
    base: &Path,
) -> (
    Option<PathBuf>,
    Option<PathBuf>,
    Option<PgPlan>,
    Vec<crate::options::Problem>,
) {
    match places(entry.out.as_deref(), entry.state.as_deref(), &|p| {
        base.join(p)
    }) {
        Ok((out, state, pg)) => (out, state, pg, Vec::new()),
        Err(problems) => (None, None, None, problems),
    }
}

/// Deserializes the keys of `table` that `T` has ([`keys_of`]) into `T`, one key at a time
/// first so that a value of the wrong type is reported with its key (serde's message alone does
/// not name it). Returns `T` from the well-typed keys, and the keys that were not.
fn typed<T: serde::de::DeserializeOwned + Default>(
    table: &toml::Table,
    prefix: &str,
    invalid: &mut Invalid,
) -> (T, Vec<String>) {
    let allowed = keys_of::<T>();
    let mut good = toml::Table::new();
    let mut mistyped = Vec::new();
    for (key, value) in table {
        if !allowed.contains(&key.as_str()) {
            continue;
        }
        let mut one = toml::Table::new();
        one.insert(key.clone(), value.clone());
        match toml::Value::Table(one).try_into::<T>() {
            Ok(_) => {
                good.insert(key.clone(), value.clone());
            }
            Err(e) => {
                invalid.0.push(format!("{prefix}{key}: {}", e.message()));
                mistyped.push(key.clone());
            }
        }
    }
    let value = toml::Value::Table(good)
        .try_into::<T>()
        .unwrap_or_else(|e| {
            invalid.0.push(format!("{prefix}{}", e.message()));
            T::default()
        });
    (value, mistyped)
}

fn unknown_keys(table: &toml::Table, allowed: &[&str], prefix: &str, invalid: &mut Invalid) {
    for key in table.keys() {
        if !allowed.contains(&key.as_str()) {
            invalid.0.push(format!(
                "{prefix}{key}: unknown key; the keys here are {}",
                allowed.join(", ")
            ));
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn org_plan(
    entry: OrgEntry,
    own: Choices,
    name: String,
    prefix: &str,
    base: &Path,
    cli: &Choices,
    defaults: &Choices,
    env: &dyn Fn(&str) -> Option<String>,
    invalid: &mut Invalid,
) -> Option<OrgPlan> {
    let before = invalid.0.len();
    // Their problems were reported by the caller.
    let (out, state, postgres, _) = paths(&entry, base);
    let collect = Collect::resolve(&[cli, &own, defaults], DEFAULT_SINCE)
        .map_err(|problems| invalid.add(prefix, problems))
        .ok();

    // The library's rule for the key's two fields; client_key_env names the variable that
    // holds the PEM.
    let key_pem = entry.client_key_env.map(|var| {
        env(&var).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            format!(
                "the environment variable {var} is not set or empty; put the PEM private key \
                 in it, or use client_key_path"
            )
        })
    });
    let key_path = entry.client_key_path.map(|path| {
        let path = base.join(path);
        if key_pem.is_none() {
            warn_if_readable_by_others(&path, "key file");
        }
        path
    });
    let jwt = JwtBearerConfig::builder()
        .field_names(KEY_FIELDS)
        .settings_from(|field| match field {
            "audience_url" => entry.audience_url.clone(),
            "username" => entry.username.clone(),
            "client_id" => entry.client_id.clone(),
            "instance_url" => entry.instance_url.clone(),
            "token_url" => entry.token_url.clone(),
            "api_version" => entry.api_version.clone(),
            _ => None,
        })
        .client_key_from(key_path, key_pem)
        .build();
    let jwt = match jwt {
        Ok(jwt) => Some(jwt),
        Err(salesforce_jwt::Error::Config(error)) => {
            for p in error.problems {
                invalid
                    .0
                    .push(format!("{prefix}{}: {}", p.field, p.problem));
            }
            None
        }
        Err(other) => {
            invalid.0.push(format!("{prefix}{other}"));
            None
        }
    };
    if let Some(collect) = &collect
        && let Some(problem) =
            shared_file_problem(collect, out.as_deref(), postgres.as_ref(), false)
    {
        invalid.add(prefix, [problem]);
    }
    if out.is_none() && !postgres.as_ref().is_some_and(|p| p.rows) {
        invalid.0.push(format!(
            "{prefix}out: is required: the NDJSON file this org's rows are appended to, or \
             the postgres:// URL of its state"
        ));
    }
    match (jwt, collect) {
        (Some(jwt), Some(collect)) if invalid.0.len() == before => Some(OrgPlan {
            name,
            jwt,
            collect,
            out,
            state,
            postgres,
            elasticsearch: None,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM_VAR: &str = "TEST_KEY_PEM";

    fn env(name: &str) -> Option<String> {
        (name == PEM_VAR).then(|| salesforce_jwt_mock::DEMO_PRIVATE_KEY_PEM.to_string())
    }

    fn org(name: &str, out: &str) -> String {
        format!(
            r#"
[[org]]
name = "{name}"
audience_url = "https://login.salesforce.com"
client_key_env = "{PEM_VAR}"
username = "integration@example.com"
client_id = "3MVG9"
instance_url = "https://acme.my.salesforce.com"
token_url = "https://login.salesforce.com"
out = "{out}"
"#
        )
    }

    fn problems(text: &str) -> Vec<String> {
        parse(text, Path::new("/etc/sf-ingest"), &Choices::default(), &env)
            .unwrap_err()
            .0
    }

    const PG: &str = "postgres://sf:s3cret-pw@db.internal:5432/security";

    #[test]
    fn postgres_state_and_out_in_defaults_apply_to_every_org_and_an_org_may_keep_its_file() {
        let text = format!(
            "[defaults]\nstate = \"{PG}\"\nout = \"{PG}\"\n{}{}",
            org("a", "x").replace("out = \"x\"\n", ""),
            org("b", "b.ndjson"),
        );
        let config = parse(
            &text,
            Path::new("/etc/sf-ingest"),
            &Choices::default(),
            &env,
        )
        .unwrap();
        let [a, b] = &config.orgs[..] else {
            panic!("two orgs")
        };
        let pa = a.postgres.as_ref().unwrap();
        assert!(pa.rows && a.out.is_none() && a.state.is_none());
        assert_eq!(
            pa.target.to_string(),
            b.postgres.as_ref().unwrap().target.to_string()
        );
        // b's own file wins over the shared output; its checkpoint stays in PostgreSQL.
        assert!(!b.postgres.as_ref().unwrap().rows);
        assert_eq!(b.out.as_deref(), Some(Path::new("/etc/sf-ingest/b.ndjson")));
        assert!(b.state.is_none());
    }

    #[test]
    fn a_postgres_output_without_postgres_state_and_a_shared_file_are_refused_without_the_password()
    {
        let p = problems(&org("a", PG));
        assert!(
            p.iter()
                .any(|l| l.starts_with(r#"org "a": out: a PostgreSQL output needs"#)),
            "{p:?}"
        );
        let p = problems(&format!(
            "[defaults]\nstate = \"/var/lib/shared.json\"\n{}",
            org("a", "a.ndjson")
        ));
        assert!(
            p.iter()
                .any(|l| l.starts_with("[defaults]: state: only a postgres:// URL")),
            "{p:?}"
        );
        let p = problems(&org("a", "a.ndjson").replace(
            "out = \"a.ndjson\"",
            "out = \"a.ndjson\"\nstate = \"postgres://sf:s3cret-pw@/security\"",
        ));
        assert!(
            p.iter().any(|l| l.starts_with(r#"org "a": state: "#)),
            "{p:?}"
        );
        assert!(!p.iter().any(|l| l.contains("s3cret-pw")), "{p:?}");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory_and_defaults_apply() {
        let text = format!(
            "max_downloads = 6\n[defaults]\nsince = \"2d\"\nconcurrency = 3\n{}state = \"/var/lib/a.json\"\n{}concurrency = 1\n",
            org("a", "a.ndjson"),
            org("b", "/var/lib/b.ndjson")
        );
        let config = parse(
            &text,
            Path::new("/etc/sf-ingest"),
            &Choices::default(),
            &env,
        )
        .unwrap();
        assert_eq!(config.max_downloads, 6);
        let [a, b] = &config.orgs[..] else {
            panic!("two orgs")
        };
        assert_eq!(a.out.as_deref(), Some(Path::new("/etc/sf-ingest/a.ndjson")));
        assert_eq!(a.state.as_deref(), Some(Path::new("/var/lib/a.json")));
        assert_eq!(
            b.state.as_deref(),
            Some(Path::new("/var/lib/b.ndjson.checkpoint.json"))
        );
        assert_eq!((a.collect.concurrency, b.collect.concurrency), (3, 1));
        assert_eq!(b.collect.since, Duration::from_secs(2 * 86_400));
    }

    #[test]
    fn the_command_line_wins_over_the_org_and_the_defaults() {
        let text = format!(
            "[defaults]\nconcurrency = 3\n{}concurrency = 1\n",
            org("a", "a.ndjson")
        );
        let cli = Choices {
            concurrency: Some(2),
            ..Choices::default()
        };
        let config = parse(&text, Path::new("/"), &cli, &env).unwrap();
        assert_eq!(config.orgs[0].collect.concurrency, 2);
    }

    #[test]
    fn unknown_keys_are_reported_everywhere_at_once() {
        let text = format!(
            "max_download = 4\n[defaults]\nsince = \"1d\"\nintervl = \"all\"\n{}tokn_url = \"x\"\n",
            org("a", "a.ndjson")
        );
        let p = problems(&text);
        assert!(
            p.iter().any(|l| l.starts_with("max_download: unknown key")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|l| l.starts_with("[defaults]: intervl: unknown key")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|l| l.starts_with(r#"org "a": tokn_url: unknown key"#)),
            "{p:?}"
        );
    }

    #[test]
    fn names_outputs_and_key_sources_must_not_clash() {
        let text = format!(
            "{}{}client_key_path = \"k.pem\"\n{}",
            org("a", "same.ndjson"),
            org("a", "other.ndjson"),
            org("c", "same.ndjson")
        );
        let p = problems(&text);
        assert!(
            p.iter()
                .any(|l| l.starts_with(r#"org "a": name: another org has the same name"#)),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|l| l.starts_with(r#"org "a": client_key_path: both"#)),
            "{p:?}"
        );
        assert!(
            p.iter().any(|l| l.starts_with(
                r#"org "c": out: /etc/sf-ingest/same.ndjson is also used by org "a""#
            )),
            "{p:?}"
        );
    }

    #[test]
    fn values_of_the_wrong_type_are_reported_with_their_key_and_not_again_as_missing() {
        let text = format!(
            "[defaults]\nconcurrency = \"four\"\n{}since = 5\n",
            org("a", "a.ndjson").replace("out = \"a.ndjson\"", "out = 3")
        );
        let p = problems(&text);
        assert!(
            p.iter()
                .any(|l| l.starts_with("[defaults]: concurrency: invalid type")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|l| l.starts_with(r#"org "a": out: invalid type"#)),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|l| l.starts_with(r#"org "a": since: invalid type"#)),
            "{p:?}"
        );
        assert!(
            !p.iter()
                .any(|l| l.starts_with(r#"org "a": out: is required"#)),
            "{p:?}"
        );
    }

    #[test]
    fn the_keys_an_unknown_key_message_lists_are_the_structs_fields_and_each_is_accepted() {
        let p = problems(&format!("{}tokn_url = \"x\"\n", org("a", "a.ndjson")));
        let listed = p
            .iter()
            .find_map(|l| l.strip_prefix(r#"org "a": tokn_url: unknown key; an org takes "#))
            .unwrap_or_else(|| panic!("{p:?}"));
        let expected = format!(
            "{} and {}",
            keys_of::<OrgEntry>().join(", "),
            keys_of::<Choices>().join(", ")
        );
        assert_eq!(listed, expected);
        assert!(listed.starts_with("name, audience_url, client_key_path, client_key_env,"));
        assert!(listed.ends_with(" and sources, event_types, interval, since, concurrency, format, namespace, skip_bad_files, api_budget"));
        // Every listed key is one an org takes: none is reported unknown.
        for key in keys_of::<OrgEntry>().iter().chain(keys_of::<Choices>()) {
            let mut text: String = org("b", "b.ndjson")
                .lines()
                .filter(|l| !l.starts_with(&format!("{key} =")))
                .map(|l| format!("{l}\n"))
                .collect();
            text.push_str(&format!("{key} = 1\n"));
            let p = parse(&text, Path::new("/"), &Choices::default(), &env)
                .err()
                .map(|i| i.0)
                .unwrap_or_default();
            assert!(
                !p.iter()
                    .any(|l| l.contains("unknown key") || l.contains("TOML")),
                "{key}: {p:?}"
            );
            // The value of the wrong type is reported, with its key: the struct took it.
            if *key != "concurrency" && *key != "api_budget" {
                assert!(
                    p.iter()
                        .any(|l| l.contains(&format!("{key}: invalid type"))),
                    "{key}: {p:?}"
                );
            }
        }
    }

    #[test]
    fn elasticsearch_keys_are_taken_by_their_struct_and_refused_for_a_file_output() {
        let p = problems(&format!(
            "{}es_ca_file = \"ca.pem\"\n",
            org("a", "a.ndjson")
        ));
        assert!(
            p.iter().any(|l| l
                .starts_with(r#"org "a": es_ca_file: applies to an Elasticsearch output only"#)),
            "{p:?}"
        );
        let p = problems(&format!("{}es_username_env = 3\n", org("a", "a.ndjson")));
        assert!(
            p.iter().any(|l| l
                == r#"org "a": es_username_env: must be a non-empty string, the name of an environment variable"#),
            "{p:?}"
        );
        assert!(!p.iter().any(|l| l.contains("applies to")), "{p:?}");
        let p = problems(&format!(
            "[defaults]\nes_ca_fil = \"x\"\n{}",
            org("a", "a.ndjson")
        ));
        assert!(
            p.iter()
                .any(|l| l.starts_with("[defaults]: es_ca_fil: unknown key")),
            "{p:?}"
        );
    }

    #[test]
    fn a_file_without_orgs_or_with_broken_toml_says_so() {
        assert!(problems("[defaults]\n")[0].starts_with("no org"));
        assert!(
            problems("[[org]\n")[0].contains("line 1"),
            "{:?}",
            problems("[[org]\n")
        );
        let p = problems("[[org]]\nout = 3\n");
        assert!(
            p.iter().any(|l| l.starts_with("org #1 (no name): ")),
            "{p:?}"
        );
    }
}
