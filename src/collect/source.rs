//! What a source of rows is to the engine: something that walks its own units from its
//! position in the checkpoint, through the pass's one protocol (see [`Pass`]).
//!
//! A new source is one module implementing [`Source`], and one variant of [`AnySource`].

use std::future::Future;

use crate::collect::checkpoint::CheckpointStore;
use crate::collect::event_log_files::EventLogFiles;
use crate::collect::event_log_objects::EventLogObjectSource;
use crate::collect::objects::ObjectSource;
use crate::collect::pass::Pass;
use crate::collect::sink::Sink;
use crate::error::Error;

/// A source of rows.
pub(crate) trait Source: Send + Sync {
    /// Its name in progress reports: `EventLogFile`, or the object's API name.
    fn name(&self) -> &str;

    /// Walks the source's units from its position in `pass`'s checkpoint up to now, each one
    /// written into `sink`, committed and recorded through `pass`; ends early, with the
    /// checkpoint consistent, when [`Pass::stop_requested`] says so (setting the summary's
    /// `stopped`).
    fn collect<S: CheckpointStore + ?Sized, K: Sink>(
        &self,
        pass: &mut Pass<'_, S>,
        sink: &mut K,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Every kind of source a [`Collector`](crate::collect::Collector) holds, in the order it
/// collects them.
#[derive(Debug)]
pub(crate) enum AnySource {
    EventLogFile(EventLogFiles),
    Object(ObjectSource),
    EventLogObject(EventLogObjectSource),
}

impl Source for AnySource {
    fn name(&self) -> &str {
        match self {
            AnySource::EventLogFile(s) => s.name(),
            AnySource::Object(s) => s.name(),
            AnySource::EventLogObject(s) => s.name(),
        }
    }

    async fn collect<S: CheckpointStore + ?Sized, K: Sink>(
        &self,
        pass: &mut Pass<'_, S>,
        sink: &mut K,
    ) -> Result<(), Error> {
        match self {
            AnySource::EventLogFile(s) => s.collect(pass, sink).await,
            AnySource::Object(s) => s.collect(pass, sink).await,
            AnySource::EventLogObject(s) => s.collect(pass, sink).await,
        }
    }
}
