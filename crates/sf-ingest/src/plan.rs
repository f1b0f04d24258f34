//! What a run collects: one or more orgs, each with validated credentials, choices and files.

use std::fmt;
use std::path::PathBuf;

use salesforce_jwt::{ConfigError, Error, JwtBearerConfig};

use crate::options::{Collect, Problem};

/// Default bound on downloads in flight across all orgs.
pub const DEFAULT_MAX_DOWNLOADS: usize = 16;

/// One org to collect.
#[derive(Debug)]
pub struct OrgPlan {
    /// How logs and errors name the org.
    pub name: String,
    pub jwt: JwtBearerConfig,
    pub collect: Collect,
    /// NDJSON output; `None` is stdout.
    pub out: Option<PathBuf>,
    /// Checkpoint; `None` keeps it in memory (the next run starts again from `since`).
    pub state: Option<PathBuf>,
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
