//! Where an org's rows go: its output file (exactly once), or stdout.

use std::io::{BufWriter, Stdout};
use std::path::Path;

use salesforce_jwt::Error;
use salesforce_jwt::collect::{Checkpoint, PendingCommit, Row, SaveListener, Sink, Unit};
use salesforce_jwt::event_log_file::EventLogFile;
use salesforce_jwt::sink::{NdjsonFileSink, NdjsonSink};

use crate::format::OutputFormat;
use salesforce_jwt::format::ecs::EcsOptions;

/// An org's sink.
#[derive(Debug)]
pub enum OutputSink {
    File(NdjsonFileSink),
    Stdout(NdjsonSink<BufWriter<Stdout>>),
    /// `salesforce_events`, committed with the PostgreSQL checkpoint.
    Postgres(salesforce_jwt_postgres::PgSink),
    /// Elasticsearch/OpenSearch data streams.
    Elasticsearch(Box<salesforce_jwt_elasticsearch::EsSink>),
}

impl OutputSink {
    /// Opens `out` to go on from `checkpoint` (refused when the checkpoint belongs to another
    /// output; otherwise cut back to its committed position), or stdout for `None`.
    pub fn open(
        out: Option<&Path>,
        checkpoint: &Checkpoint,
        format: OutputFormat,
        ecs: EcsOptions,
        elasticsearch: Option<&crate::elasticsearch::EsPlan>,
    ) -> Result<Self, Error> {
        if let Some(plan) = elasticsearch {
            let sink = salesforce_jwt_elasticsearch::EsSink::new(&plan.config)
                .map_err(|e| Error::sink("opening the Elasticsearch output", e, false))?
                .with_ecs_options(ecs);
            return Ok(OutputSink::Elasticsearch(Box::new(sink)));
        }
        Ok(match out {
            Some(path) => OutputSink::File(
                NdjsonFileSink::resume(path, checkpoint)?
                    .with_format(format)
                    .with_ecs_options(ecs),
            ),
            None => OutputSink::Stdout(
                NdjsonSink::new(BufWriter::with_capacity(256 * 1024, std::io::stdout()))
                    .with_format(format)
                    .with_ecs_options(ecs),
            ),
        })
    }
}

impl OutputSink {
    /// Rows found already in salesforce_events since the sink was opened (`None` for a file or
    /// stdout): delivered before, counted as delivered again.
    pub fn already_present(&self) -> Option<u64> {
        match self {
            OutputSink::Postgres(s) => Some(s.already_present()),
            OutputSink::File(_) | OutputSink::Stdout(_) | OutputSink::Elasticsearch(_) => None,
        }
    }
}

/// Every source's rows go to the same output with the same positions.
impl Sink for OutputSink {
    async fn begin(&mut self, unit: &Unit<'_>) -> Result<(), Error> {
        match self {
            OutputSink::File(s) => s.begin(unit).await,
            OutputSink::Stdout(s) => s.begin(unit).await,
            OutputSink::Postgres(s) => s.begin(unit).await,
            OutputSink::Elasticsearch(s) => s.begin(unit).await,
        }
    }

    async fn write(&mut self, row: Row<'_>) -> Result<(), Error> {
        match self {
            OutputSink::File(s) => s.write(row).await,
            OutputSink::Stdout(s) => s.write(row).await,
            OutputSink::Postgres(s) => s.write(row).await,
            OutputSink::Elasticsearch(s) => s.write(row).await,
        }
    }

    fn encoded_format(&self) -> Option<OutputFormat> {
        match self {
            OutputSink::File(s) => s.encoded_format(),
            OutputSink::Stdout(s) => s.encoded_format(),
            OutputSink::Postgres(s) => s.encoded_format(),
            OutputSink::Elasticsearch(s) => s.encoded_format(),
        }
    }

    fn ecs_options(&self) -> EcsOptions {
        match self {
            OutputSink::File(s) => s.ecs_options(),
            OutputSink::Stdout(s) => s.ecs_options(),
            OutputSink::Postgres(s) => s.ecs_options(),
            OutputSink::Elasticsearch(s) => s.ecs_options(),
        }
    }

    async fn write_encoded(&mut self, file: &EventLogFile, lines: &[u8]) -> Result<(), Error> {
        match self {
            OutputSink::File(s) => s.write_encoded(file, lines).await,
            OutputSink::Stdout(s) => s.write_encoded(file, lines).await,
            OutputSink::Postgres(s) => s.write_encoded(file, lines).await,
            OutputSink::Elasticsearch(s) => s.write_encoded(file, lines).await,
        }
    }

    async fn commit(&mut self, unit: &Unit<'_>) -> Result<Option<u64>, Error> {
        match self {
            OutputSink::File(s) => s.commit(unit).await,
            OutputSink::Stdout(s) => s.commit(unit).await,
            OutputSink::Postgres(s) => s.commit(unit).await,
            OutputSink::Elasticsearch(s) => s.commit(unit).await,
        }
    }

    async fn start_commit(&mut self, unit: &Unit<'_>) -> Result<PendingCommit, Error> {
        match self {
            OutputSink::File(s) => s.start_commit(unit).await,
            OutputSink::Stdout(s) => s.start_commit(unit).await,
            OutputSink::Postgres(s) => s.start_commit(unit).await,
            OutputSink::Elasticsearch(s) => s.start_commit(unit).await,
        }
    }

    fn committed_position(&self) -> Option<u64> {
        match self {
            OutputSink::File(s) => s.committed_position(),
            OutputSink::Stdout(s) => s.committed_position(),
            OutputSink::Postgres(s) => s.committed_position(),
            OutputSink::Elasticsearch(s) => s.committed_position(),
        }
    }

    fn output(&self) -> Option<String> {
        match self {
            OutputSink::File(s) => s.output(),
            OutputSink::Stdout(s) => s.output(),
            OutputSink::Postgres(s) => s.output(),
            OutputSink::Elasticsearch(s) => s.output(),
        }
    }

    fn save_listener(&mut self) -> Option<SaveListener> {
        match self {
            OutputSink::File(s) => s.save_listener(),
            OutputSink::Stdout(s) => s.save_listener(),
            OutputSink::Postgres(s) => s.save_listener(),
            OutputSink::Elasticsearch(s) => s.save_listener(),
        }
    }

    async fn rollback(&mut self, unit: &Unit<'_>) -> Result<(), Error> {
        match self {
            OutputSink::File(s) => s.rollback(unit).await,
            OutputSink::Stdout(s) => s.rollback(unit).await,
            OutputSink::Postgres(s) => s.rollback(unit).await,
            OutputSink::Elasticsearch(s) => s.rollback(unit).await,
        }
    }
}
