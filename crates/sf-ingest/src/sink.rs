//! Where an org's rows go: its output file (exactly once), or stdout.

use std::io::{BufWriter, Stdout};
use std::path::Path;

use salesforce_jwt::Error;
use salesforce_jwt::event_log::{
    Checkpoint, EventLogFile, LogRecord, NdjsonFileSink, NdjsonSink, PendingCommit, RecordSink,
};
use salesforce_jwt::realtime::{Batch, ObjectRecord, ObjectSink};

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
    /// output; otherwise it goes on from its committed position), or stdout for `None`.
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

    fn encoded_format(&self) -> Option<OutputFormat> {
        match self {
            OutputSink::File(s) => s.encoded_format(),
            OutputSink::Stdout(s) => s.encoded_format(),
            OutputSink::Postgres(s) => s.encoded_format(),
        }
    }

    async fn write_encoded(&mut self, file: &EventLogFile, lines: &[u8]) -> Result<(), Error> {
        match self {
            OutputSink::File(s) => s.write_encoded(file, lines).await,
            OutputSink::Stdout(s) => s.write_encoded(file, lines).await,
            OutputSink::Postgres(s) => s.write_encoded(file, lines).await,
        }
    }

    async fn commit_file(&mut self, file: &EventLogFile) -> Result<Option<u64>, Error> {
        match self {
            OutputSink::File(s) => s.commit_file(file).await,
            OutputSink::Stdout(s) => s.commit_file(file).await,
            OutputSink::Postgres(s) => s.commit_file(file).await,
        }
    }

    async fn start_commit(&mut self, file: &EventLogFile) -> Result<PendingCommit, Error> {
        match self {
            OutputSink::File(s) => s.start_commit(file).await,
            OutputSink::Stdout(s) => s.start_commit(file).await,
            OutputSink::Postgres(s) => s.start_commit(file).await,
        }
    }

    fn recorded(&mut self, position: Option<u64>) -> Result<(), Error> {
        match self {
            OutputSink::File(s) => RecordSink::recorded(s, position),
            OutputSink::Stdout(s) => RecordSink::recorded(s, position),
            OutputSink::Postgres(s) => RecordSink::recorded(s, position),
        }
    }

    async fn published(&mut self) -> Result<(), Error> {
        match self {
            OutputSink::File(s) => RecordSink::published(s).await,
            OutputSink::Stdout(s) => RecordSink::published(s).await,
            OutputSink::Postgres(s) => RecordSink::published(s).await,
        }
    }

    fn committed_position(&self) -> Option<u64> {
        match self {
            OutputSink::File(s) => RecordSink::committed_position(s),
            OutputSink::Stdout(s) => RecordSink::committed_position(s),
            OutputSink::Postgres(s) => RecordSink::committed_position(s),
        }
    }

    fn output(&self) -> Option<String> {
        match self {
            OutputSink::File(s) => RecordSink::output(s),
            OutputSink::Stdout(s) => RecordSink::output(s),
            OutputSink::Postgres(s) => RecordSink::output(s),
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

/// Real-time object rows go to the same output with the same positions.
impl ObjectSink for OutputSink {
    async fn begin(&mut self, batch: &Batch<'_>) -> Result<(), Error> {
        match self {
            OutputSink::File(s) => s.begin(batch).await,
            OutputSink::Stdout(s) => s.begin(batch).await,
            OutputSink::Postgres(s) => s.begin(batch).await,
        }
    }

    async fn write(&mut self, batch: &Batch<'_>, record: &ObjectRecord) -> Result<(), Error> {
        match self {
            OutputSink::File(s) => ObjectSink::write(s, batch, record).await,
            OutputSink::Stdout(s) => ObjectSink::write(s, batch, record).await,
            OutputSink::Postgres(s) => ObjectSink::write(s, batch, record).await,
        }
    }

    async fn commit(&mut self, batch: &Batch<'_>) -> Result<Option<u64>, Error> {
        match self {
            OutputSink::File(s) => s.commit(batch).await,
            OutputSink::Stdout(s) => s.commit(batch).await,
            OutputSink::Postgres(s) => s.commit(batch).await,
        }
    }

    async fn rollback(&mut self, batch: &Batch<'_>) -> Result<(), Error> {
        match self {
            OutputSink::File(s) => s.rollback(batch).await,
            OutputSink::Stdout(s) => s.rollback(batch).await,
            OutputSink::Postgres(s) => s.rollback(batch).await,
        }
    }

    fn recorded(&mut self, position: Option<u64>) -> Result<(), Error> {
        RecordSink::recorded(self, position)
    }

    async fn published(&mut self) -> Result<(), Error> {
        RecordSink::published(self).await
    }

    fn committed_position(&self) -> Option<u64> {
        RecordSink::committed_position(self)
    }

    fn output(&self) -> Option<String> {
        RecordSink::output(self)
    }
}
