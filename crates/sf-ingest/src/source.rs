//! `--source` / `sources =`: which kinds of Salesforce security logs an org is collected from.

use std::fmt;
use std::str::FromStr;

/// A kind of log, in Salesforce's own names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    /// Event Monitoring log files, collected exactly once through the library's `Collector`.
    #[default]
    EventLogFile,
}

impl FromStr for Source {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "EventLogFile" => Ok(Source::EventLogFile),
            // INTEGRATE: sources — add the real-time event sources here once the library's
            // real-time module lands, and collect them in run.rs.
            other => Err(format!(
                "source {other:?} is not available in this build of sf-ingest: only EventLogFile is"
            )),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::EventLogFile => "EventLogFile",
        })
    }
}
