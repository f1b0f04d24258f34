//! Where an org's rows go: its output file (exactly once), or stdout.

use std::io::{BufWriter, Stdout};
use std::path::Path;

use salesforce_jwt::Error;
use salesforce_jwt::event_log::{
    Checkpoint, EventLogFile, LogRecord, NdjsonFileSink, NdjsonSink, RecordSink,
};

use crate::format::OutputFormat;

/// An org's sink.
#[derive(Debug)]
pub enum OutputSink {
    File(NdjsonFileSink),
    Stdout(NdjsonSink<BufWriter<Stdout>>),
    /// `salesforce_events`, committed with the PostgreSQL checkpoint.
    Postgres(salesforce_jwt_postgres::PgSink),
}

impl OutputSink {
    /// Opens `out` to go on from `checkpoint` (refused when the checkpoint belongs to another
    /// output; otherwise cut back to its committed position), or stdout for `None`.
    pub fn open(
        out: Option<&Path>,
        checkpoint: &Checkpoint,
        format: OutputFormat,
    ) -> Result<Self, Error> {
        Ok(match out {
            Some(path) => {
                OutputSink::File(NdjsonFileSink::resume(path, checkpoint)?.with_format(format))
            }
            None => OutputSink::Stdout(
                NdjsonSink::new(BufWriter::with_capacity(256 * 1024, std::io::stdout()))
                    .with_format(format),
            ),
        })
    }
}

impl RecordSink for OutputSink {
    async fn begin_file(&mut self, file: &EventLogFile) -> Result<(), Error> {
        match self {
            OutputSink::File(s) => s.begin_file(file).await,
            OutputSink::Stdout(s) => s.begin_file(file).await,
            OutputSink::Postgres(s) => s.begin_file(file).await,
        }
    }

    async fn write_row(&mut self, file: &EventLogFile, row: &LogRecord) -> Result<(), Error> {
        match self {
            OutputSink::File(s) => s.write_row(file, row).await,
            OutputSink::Stdout(s) => s.write_row(file, row).await,
            OutputSink::Postgres(s) => s.write_row(file, row).await,
        }
    }

    async fn commit_file(&mut self, file: &EventLogFile) -> Result<Option<u64>, Error> {
        match self {
            OutputSink::File(s) => s.commit_file(file).await,
            OutputSink::Stdout(s) => s.commit_file(file).await,
            OutputSink::Postgres(s) => s.commit_file(file).await,
        }
    }

    fn committed_position(&self) -> Option<u64> {
        match self {
            OutputSink::File(s) => s.committed_position(),
            OutputSink::Stdout(s) => s.committed_position(),
            OutputSink::Postgres(s) => s.committed_position(),
        }
    }

    fn output(&self) -> Option<String> {
        match self {
            OutputSink::File(s) => s.output(),
            OutputSink::Stdout(s) => s.output(),
            OutputSink::Postgres(s) => s.output(),
        }
    }

    async fn rollback_file(&mut self, file: &EventLogFile) -> Result<(), Error> {
        match self {
            OutputSink::File(s) => s.rollback_file(file).await,
            OutputSink::Stdout(s) => s.rollback_file(file).await,
            OutputSink::Postgres(s) => s.rollback_file(file).await,
        }
    }
}
