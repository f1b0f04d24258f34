//! A stand-in for a downstream service: it uses `salesforce-jwt` only through its public API,
//! as a crate that depends on it by path with no optional features would. The tests in
//! `tests/` run it on a current-thread tokio runtime against the org double.

use std::sync::atomic::AtomicBool;

use futures_util::StreamExt as _;
use salesforce_jwt::collect::{Collector, CollectorOptions, FileCheckpointStore};
use salesforce_jwt::event_log_file::EventLogFileQuery;
use salesforce_jwt::sink::NdjsonFileSink;
use salesforce_jwt::{Error, JwtBearerClient};

/// Counts the EventLogFile records the client can list, with a plain `while let` loop.
pub async fn count_log_files(client: &JwtBearerClient) -> Result<usize, Error> {
    let mut files = client.event_log_files(&EventLogFileQuery::new());
    let mut count = 0;
    while let Some(file) = files.next().await {
        file?;
        count += 1;
    }
    Ok(count)
}

/// One collector pass of every EventLogFile row into an NDJSON file, with a file checkpoint,
/// the way a service embedding the collector runs it. Returns the rows delivered.
pub async fn collect_once(
    client: JwtBearerClient,
    out: &std::path::Path,
    state: &std::path::Path,
    options: CollectorOptions,
) -> Result<u64, Error> {
    let store = FileCheckpointStore::new(state);
    let mut collector = Collector::new(client, EventLogFileQuery::new(), store, options)?;
    let mut sink = NdjsonFileSink::resume(out, collector.checkpoint())?;
    let summary = collector
        .run_pass(&mut sink, &mut |_| {}, &AtomicBool::new(false))
        .await?;
    Ok(summary.rows)
}
