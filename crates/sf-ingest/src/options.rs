//! What to collect from an org and how: layered choices (command line, then the org's own
//! settings, then `[defaults]`, then built-in defaults), checked all at once.

use std::time::Duration;

use salesforce_jwt::event_log_file::{EventType, IntervalFilter};
use serde::Deserialize;

use crate::format::OutputFormat;
use crate::source::Source;
use salesforce_jwt::format::ecs::{DEFAULT_NAMESPACE, EcsOptions};

/// Highest `concurrency` accepted: more parallel downloads per org buys nothing against
/// Salesforce's per-org limits and only risks `REQUEST_LIMIT_EXCEEDED`.
pub const MAX_CONCURRENCY: usize = 64;

/// One layer of choices, as written on the command line or in the config file; `None` leaves
/// the choice to the next layer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choices {
    pub sources: Option<Vec<String>>,
    pub event_types: Option<Vec<String>>,
    pub interval: Option<String>,
    pub since: Option<String>,
    pub concurrency: Option<usize>,
    pub format: Option<String>,
    pub namespace: Option<String>,
    pub skip_bad_files: Option<bool>,
    pub api_budget: Option<i64>,
}

/// The resolved choices for one org.
#[derive(Debug, Clone, PartialEq)]
pub struct Collect {
    pub sources: Vec<Source>,
    pub event_types: Vec<EventType>,
    pub interval: IntervalFilter,
    pub since: Duration,
    pub concurrency: usize,
    pub format: OutputFormat,
    /// `data_stream.namespace` of ECS documents.
    pub namespace: String,
    pub skip_bad_files: bool,
    /// The share of the org's daily API limit, in percent, past which nothing more is sent.
    pub api_budget: u8,
}

/// The API budget when no layer sets one, in percent of the org's limit.
pub const DEFAULT_API_BUDGET: u8 = 50;

/// A problem with one field: `(field, what is wrong and how to fix it)`.
pub type Problem = (String, String);

impl Collect {
    /// The first choice each layer makes, in order; `default_since` when no layer sets `since`.
    /// Every problem is returned, not only the first.
    pub fn resolve(layers: &[&Choices], default_since: Duration) -> Result<Collect, Vec<Problem>> {
        fn first<'a, T>(
            layers: &[&'a Choices],
            get: impl Fn(&'a Choices) -> Option<&'a T>,
        ) -> Option<&'a T> {
            layers.iter().find_map(|l| get(l))
        }
        let mut problems: Vec<Problem> = Vec::new();
        let mut problem = |field: &str, text: String| problems.push((field.to_string(), text));

        let mut sources = Vec::new();
        match first(layers, |l| l.sources.as_ref()) {
            None => sources.push(Source::EventLogFile),
            Some(names) if names.is_empty() => problem(
                "sources",
                "is empty: list at least one, like [\"EventLogFile\"]".into(),
            ),
            Some(names) => {
                for name in names {
                    match name.parse::<Source>() {
                        Ok(s) if !sources.contains(&s) => sources.push(s),
                        Ok(_) => {}
                        Err(e) => problem("sources", e),
                    }
                }
            }
        }
        let event_types = first(layers, |l| l.event_types.as_ref())
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(|t| {
                if t.trim().is_empty() {
                    problem(
                        "event_types",
                        "holds an empty name: use EventType values like Login".into(),
                    );
                    None
                } else {
                    Some(EventType::from(t.trim()))
                }
            })
            .collect();
        let interval = match first(layers, |l| l.interval.as_ref()) {
            None => IntervalFilter::Auto,
            Some(text) => parse_interval(text).unwrap_or_else(|e| {
                problem("interval", e);
                IntervalFilter::Auto
            }),
        };
        let since = match first(layers, |l| l.since.as_ref()) {
            None => default_since,
            Some(text) => parse_duration(text).unwrap_or_else(|e| {
                problem("since", e);
                default_since
            }),
        };
        let concurrency = match first(layers, |l| l.concurrency.as_ref()) {
            None => 4,
            Some(&n) if (1..=MAX_CONCURRENCY).contains(&n) => n,
            Some(n) => {
                problem(
                    "concurrency",
                    format!("{n} is out of range: a number from 1 to {MAX_CONCURRENCY}"),
                );
                4
            }
        };
        let format = match first(layers, |l| l.format.as_ref()) {
            None => OutputFormat::Ndjson,
            Some(text) => match text.parse::<OutputFormat>() {
                Ok(f) => f,
                Err(e) => {
                    problem("format", e.to_string());
                    OutputFormat::Ndjson
                }
            },
        };
        let namespace = match first(layers, |l| l.namespace.as_ref()) {
            None => DEFAULT_NAMESPACE.to_string(),
            Some(text) => match EcsOptions::default().with_namespace(text) {
                Ok(options) => options.namespace().to_string(),
                Err(e) => {
                    problem("namespace", e.to_string());
                    DEFAULT_NAMESPACE.to_string()
                }
            },
        };
        let skip_bad_files = first(layers, |l| l.skip_bad_files.as_ref())
            .copied()
            .unwrap_or(false);
        let api_budget = match first(layers, |l| l.api_budget.as_ref()) {
            None => DEFAULT_API_BUDGET,
            Some(&n) => u8::try_from(n)
                .ok()
                .filter(|n| (1..=100).contains(n))
                .unwrap_or_else(|| {
                    problem(
                        "api_budget",
                        format!(
                            "{n} is out of range: a percentage of the org's daily API limit \
                             from 1 to 100 (the default is {DEFAULT_API_BUDGET})"
                        ),
                    );
                    DEFAULT_API_BUDGET
                }),
        };
        if problems.is_empty() {
            Ok(Collect {
                sources,
                event_types,
                interval,
                since,
                concurrency,
                format,
                namespace,
                skip_bad_files,
                api_budget,
            })
        } else {
            Err(problems)
        }
    }
}

fn parse_interval(text: &str) -> Result<IntervalFilter, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "daily" => Ok(IntervalFilter::Daily),
        "hourly" => Ok(IntervalFilter::Hourly),
        "all" => Ok(IntervalFilter::All),
        "auto" => Ok(IntervalFilter::Auto),
        _ => Err(format!(
            "{text:?} is not an interval: use auto, daily, hourly or all"
        )),
    }
}

/// `90m`, `36h`, `7d`, `2w`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let (number, unit) = trimmed.split_at(
        trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: write it like 36h or 7d"))?;
    let unit_secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "{text:?}: the unit must be s, m, h, d or w, like 36h or 7d"
            ));
        }
    };
    match n.checked_mul(unit_secs) {
        Some(0) => Err(format!("{text:?} must be more than zero")),
        Some(secs) => Ok(Duration::from_secs(secs)),
        None => Err(format!("{text:?} is too long")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_units_of_the_example() {
        assert_eq!(parse_duration("36h"), Ok(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("7y").unwrap_err().contains("unit"));
        assert!(parse_duration("0d").is_err());
    }

    #[test]
    fn the_interval_is_auto_unless_chosen() {
        let none = Collect::resolve(&[&Choices::default()], Duration::from_secs(1)).unwrap();
        assert_eq!(none.interval, IntervalFilter::Auto);
        for (text, interval) in [
            ("auto", IntervalFilter::Auto),
            ("All", IntervalFilter::All),
            ("daily", IntervalFilter::Daily),
        ] {
            assert_eq!(parse_interval(text), Ok(interval));
        }
        assert!(parse_interval("weekly").unwrap_err().contains("auto"));
    }

    #[test]
    fn the_first_layer_that_chooses_wins_and_every_problem_is_reported() {
        let cli = Choices {
            concurrency: Some(2),
            ..Choices::default()
        };
        let org = Choices {
            concurrency: Some(8),
            interval: Some("hourly".into()),
            ..Choices::default()
        };
        let c = Collect::resolve(&[&cli, &org], Duration::from_secs(1)).unwrap();
        assert_eq!((c.concurrency, c.interval), (2, IntervalFilter::Hourly));
        assert_eq!(c.sources, vec![Source::EventLogFile]);

        let bad = Choices {
            interval: Some("weekly".into()),
            since: Some("soon".into()),
            concurrency: Some(0),
            sources: Some(vec!["LoginEventStream".into()]),
            ..Choices::default()
        };
        let problems = Collect::resolve(&[&bad], Duration::from_secs(1)).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["sources", "interval", "since", "concurrency"]);
        assert!(problems[0].1.contains("LoginEventStream"));
    }

    #[test]
    fn formats_are_the_librarys_and_an_unknown_one_names_the_choices() {
        let ecs = Choices {
            format: Some("ECS".into()),
            ..Choices::default()
        };
        let collect = Collect::resolve(&[&ecs], Duration::from_secs(1)).unwrap();
        assert_eq!(collect.format, OutputFormat::Ecs);
        let bad = Choices {
            format: Some("csv".into()),
            ..Choices::default()
        };
        let problems = Collect::resolve(&[&bad], Duration::from_secs(1)).unwrap_err();
        assert_eq!(problems[0].0, "format");
        assert!(problems[0].1.contains("ndjson, ecs"), "{}", problems[0].1);
    }
}
