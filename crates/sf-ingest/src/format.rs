//! Output encodings, and the one place the chosen encoding reaches a sink.

use std::fmt;
use std::str::FromStr;

use salesforce_jwt::event_log::{NdjsonFileSink, NdjsonSink};

/// `--format` / `format =`: how each row is written.
///
/// The library is gaining `salesforce_jwt::format::OutputFormat` (NDJSON as today, or Elastic
/// Common Schema); until it lands this build writes NDJSON only and refuses `ecs` at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// One JSON object per row, every CSV column under its header name.
    #[default]
    Ndjson,
    /// Elastic Common Schema documents.
    Ecs,
}

impl FromStr for OutputFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "ndjson" => Ok(OutputFormat::Ndjson),
            "ecs" => Ok(OutputFormat::Ecs),
            _ => Err(format!(
                "{text:?} is not an output format: use ndjson or ecs"
            )),
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutputFormat::Ndjson => "ndjson",
            OutputFormat::Ecs => "ecs",
        })
    }
}

/// Whether this build can write `format`; a configuration problem otherwise.
// INTEGRATE: format — once `salesforce_jwt::format` exists, accept every format here.
pub fn check_available(format: OutputFormat) -> Result<(), String> {
    match format {
        OutputFormat::Ndjson => Ok(()),
        OutputFormat::Ecs => Err(
            "ecs is not yet available in this build of sf-ingest: use ndjson (the default)".into(),
        ),
    }
}

/// The file sink, encoding rows as `format`.
// INTEGRATE: format — `sink.with_format(format.into())`, with `From<OutputFormat>` for the
// library's `salesforce_jwt::format::OutputFormat` (or use the library's enum directly).
pub fn file_sink(sink: NdjsonFileSink, format: OutputFormat) -> NdjsonFileSink {
    let _ = format;
    sink
}

/// The stream sink (stdout), encoding rows as `format`.
// INTEGRATE: format — `sink.with_format(format.into())`, as in `file_sink`.
pub fn stream_sink<W: std::io::Write + Send>(
    sink: NdjsonSink<W>,
    format: OutputFormat,
) -> NdjsonSink<W> {
    let _ = format;
    sink
}
