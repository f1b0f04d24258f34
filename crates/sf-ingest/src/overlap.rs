//! Sources of one org that collect the same category of events: allowed (each keeps its own
//! shape and fields), but every such event then arrives once per source, which a SIEM counting
//! logins would count twice. Said once at start and by `--check`.
//!
//! The table pairs EventLogFile event types with the Real-Time Event Monitoring objects and
//! Event Log Objects that record the same activity. It is kept by hand: Salesforce documents
//! each source on its own page, not the correspondence.

use salesforce_jwt::event_log_file::IntervalFilter;

use crate::plan::OrgPlan;
use crate::source::Source;

/// `(category, EventLogFile event types, objects)` recording the same events.
const CATEGORIES: &[(&str, &[&str], &[&str])] = &[
    ("Login", &["Login"], &["LoginEvent", "LoginEventLog"]),
    ("Logout", &["Logout"], &["LogoutEvent"]),
    (
        "LoginAs",
        &["LoginAs"],
        &["LoginAsEvent", "LoginAsEventLog"],
    ),
    ("API", &["API", "RestApi"], &["ApiEvent", "RestApiEventLog"]),
    ("URI", &["URI"], &["UriEvent"]),
    (
        "LightningPageView",
        &["LightningPageView"],
        &["LightningUriEvent", "LightningPageViewEventLog"],
    ),
    ("Report", &["Report"], &["ReportEvent", "ReportEventLog"]),
];

/// One category collected from two sources of an org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    pub org: String,
    pub category: &'static str,
    /// How each source is named: `EventLogFile (Login)` or `LoginEvent`.
    pub first: String,
    pub second: String,
}

impl std::fmt::Display for Overlap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "org {}: {} events are collected from two sources, {} and {}: each such event is \
             delivered once per source; remove one of them from sources (or event_types) to \
             get it once",
            self.org, self.category, self.first, self.second
        )
    }
}

/// Every category each org collects from more than one source, pair by pair.
pub fn overlaps(orgs: &[OrgPlan]) -> Vec<Overlap> {
    let mut found = Vec::new();
    for org in orgs {
        let event_log_file = org.collect.sources.contains(&Source::EventLogFile);
        let chosen = &org.collect.event_types;
        for (category, types, objects) in CATEGORIES {
            let mut sources: Vec<String> = Vec::new();
            if event_log_file {
                // No event_types means every type.
                let types: Vec<&str> = types
                    .iter()
                    .copied()
                    .filter(|t| chosen.is_empty() || chosen.iter().any(|c| c.as_str() == *t))
                    .collect();
                if !types.is_empty() {
                    sources.push(format!("EventLogFile ({})", types.join(", ")));
                }
            }
            for source in &org.collect.sources {
                if let Source::Object(object) = source
                    && objects.contains(&object.name())
                {
                    sources.push(object.name().to_string());
                }
            }
            for (i, first) in sources.iter().enumerate() {
                for second in &sources[i + 1..] {
                    found.push(Overlap {
                        org: org.name.clone(),
                        category,
                        first: first.clone(),
                        second: second.clone(),
                    });
                }
            }
        }
    }
    found
}

/// Warns of every overlap, once, and of each org whose EventLogFile interval `all` takes
/// both the hourly and the daily copy of the same events.
pub fn warn(orgs: &[OrgPlan]) {
    for overlap in overlaps(orgs) {
        tracing::warn!(org = %overlap.org, category = overlap.category, "{overlap}");
    }
    for org in orgs {
        if org.collect.sources.contains(&Source::EventLogFile)
            && org.collect.interval == IntervalFilter::All
        {
            tracing::warn!(
                org = %org.name,
                "org {}: interval all collects both the hourly and the daily EventLogFile of a \
                 day where the org publishes both: those events repeat; use interval auto (the \
                 default) to get each event once",
                org.name
            );
        }
    }
}
