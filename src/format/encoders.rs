//! Log-file rows encoded directly into lines, one encoder per format: where the rows are
//! decoded (each file's download task, for a sink that takes encoded lines), and in the NDJSON
//! sinks.

use crate::error::Error;
use crate::format::OutputFormat;
use crate::format::ecs::{EcsEncoder, EcsOptions};
use crate::format::json::NdjsonEncoder;
use crate::format::row::{LogFileInfo, LogRecord};

/// The direct encoders of log-file rows, one per format.
#[derive(Debug, Default)]
pub(crate) struct Encoders {
    ndjson: NdjsonEncoder,
    ecs: EcsEncoder,
}

impl Encoders {
    /// Encoders writing ECS documents with `ecs`.
    pub(crate) fn new(ecs: &EcsOptions) -> Self {
        Encoders {
            ndjson: NdjsonEncoder::default(),
            ecs: EcsEncoder::new(ecs.clone()),
        }
    }
}

/// Appends the row's line (newline included) to `out`: the same bytes as `serde_json` writes
/// for `NdjsonRow` or `ecs::EcsRow` (tests/encode.rs compares them), written directly. On
/// error `out` may hold part of the line: the caller drops the buffer with the error.
pub(crate) fn append_row(
    out: &mut Vec<u8>,
    encoders: &mut Encoders,
    format: OutputFormat,
    file: &(impl LogFileInfo + ?Sized),
    row: &LogRecord,
) -> Result<(), Error> {
    let written = match format {
        OutputFormat::Ecs => {
            encoders.ecs.encode(out, file, row);
            Ok(())
        }
        OutputFormat::Ndjson => encoders.ndjson.encode(out, file, row),
    };
    written.map_err(|e| Error::Csv {
        id: file.id().to_string(),
        line: row.line(),
        message: format!("cannot encode the row as JSON: {e}"),
    })?;
    out.push(b'\n');
    Ok(())
}
