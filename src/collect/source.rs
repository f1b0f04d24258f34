//! What a source of rows is to the engine: something that walks its own units from its
//! position in the checkpoint, through the pass's one protocol (see [`Pass`]).
//!
//! A new source is one module implementing [`Source`], and one variant of the collector's
//! `AnySource`.

use std::future::Future;

use crate::collect::checkpoint::CheckpointStore;
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
