//! The [`Collector`]: every selected source, one after the other, through one pass.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::client::JwtBearerClient;
use crate::collect::checkpoint::{
    Checkpoint, CheckpointStore, EVENT_LOG_FILE_ALL_TYPES, begin_org,
};
use crate::collect::event_log_files::EventLogFiles;
use crate::collect::event_log_objects::{EventLogObjectSource, overlap_warning};
use crate::collect::figures::DeliveryFigures;
use crate::collect::object_options::ObjectCollectorOptions;
use crate::collect::objects::ObjectSource;
use crate::collect::options::{CollectorOptions, PassSummary, Progress};
use crate::collect::pass::Pass;
use crate::collect::positions::{adopt_sources, begin_output, earlier};
use crate::collect::sink::Sink;
use crate::collect::source::Source;
use crate::error::Error;
use crate::event_log_file::{EventLogFile, EventLogFileQuery};
use crate::objects::{EventObject, ObjectKind};

/// Collects every selected source exactly once across restarts, into one [`Sink`] with one
/// [`Checkpoint`]: EventLogFile ([`new`](Self::new)), real-time objects and SetupAuditTrail, or
/// both ([`with_sources`](Self::with_sources)). One method runs a pass:
/// [`run_pass`](Self::run_pass).
///
/// ```no_run
/// # async fn run() -> Result<(), salesforce_jwt::Error> {
/// use std::sync::atomic::AtomicBool;
/// use salesforce_jwt::collect::{Collector, CollectorOptions, FileCheckpointStore};
/// use salesforce_jwt::event_log_file::{EventLogFileQuery, EventType};
/// use salesforce_jwt::sink::NdjsonFileSink;
/// use salesforce_jwt::{JwtBearerClient, JwtBearerConfig};
///
/// let client = JwtBearerClient::new(JwtBearerConfig::from_env()?)?;
/// let query = EventLogFileQuery::new().event_types([EventType::Login, EventType::Logout]);
/// let store = FileCheckpointStore::new("collector.checkpoint.json");
/// let mut collector = Collector::new(client, query, store, CollectorOptions::default())?;
/// let mut sink = NdjsonFileSink::resume("events.ndjson", collector.checkpoint())?;
/// let summary = collector
///     .run_pass(&mut sink, &mut |_progress| {}, &AtomicBool::new(false))
///     .await?;
/// println!("{} rows from {} files", summary.rows, summary.files);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Collector<S: CheckpointStore> {
    client: JwtBearerClient,
    store: S,
    checkpoint: Checkpoint,
    /// What it collects, in order: EventLogFile (when selected, see
    /// [`Collector::with_sources`]), then each object.
    sources: Vec<AnySource>,
    /// What each source delivered (see [`Collector::figures`]).
    figures: DeliveryFigures,
}

impl<S: CheckpointStore> Collector<S> {
    /// Loads the checkpoint from `store` (a new one is created). `template` chooses event types
    /// and interval; its date filters and cursor are replaced by the collector's own.
    ///
    /// Each selected event type keeps its own position in the checkpoint (see
    /// [`Checkpoint`]): a type the checkpoint does not know yet starts `options.since` ago,
    /// the others go on where they were, and types no longer selected keep their positions.
    /// Refused, with what to do: another interval than the checkpoint's, and all event types
    /// with a checkpoint that collected them one by one (their rows would be delivered again).
    pub fn new(
        client: JwtBearerClient,
        template: EventLogFileQuery,
        store: S,
        options: CollectorOptions,
    ) -> Result<Self, Error> {
        Self::with_sources(
            client,
            Some(template),
            Vec::new(),
            store,
            options,
            ObjectCollectorOptions::default(),
        )
    }

    /// A collector of several sources over one checkpoint and one output: EventLogFile as
    /// [`new`](Self::new) does when `event_log_file` is given (`None`: not collected, and no
    /// EventLogFile position is added to the checkpoint), then each of `objects`, with
    /// `object_options`: big objects in `EventDate` windows, newest first inside a window,
    /// with an overlap read again and deduplicated by `EventIdentifier` (a window too large
    /// for one query is halved until it fits); standard objects (the threat-detection stores,
    /// SetupAuditTrail) in `(CreatedDate, Id)` keyset batches with the same overlap; Event Log
    /// Objects ([`ObjectKind::EventLogObject`]) in `Timestamp` windows of at most 15 days with
    /// an overlap of 60 minutes deduplicated by `Id`, from no more than 30 days ago (refused
    /// below API 61.0). Windows end at the org's clock ([`JwtBearerClient::org_now`]).
    ///
    /// Every source keeps its own position under its own key: a source the checkpoint does not
    /// know yet starts from `since`, the others go on where they were, and sources left out
    /// keep their positions for when they come back.
    pub fn with_sources(
        client: JwtBearerClient,
        event_log_file: Option<EventLogFileQuery>,
        objects: Vec<EventObject>,
        mut store: S,
        options: CollectorOptions,
        object_options: ObjectCollectorOptions,
    ) -> Result<Self, Error> {
        object_options.validate()?;
        if objects
            .iter()
            .any(|o| o.kind() == ObjectKind::EventLogObject)
        {
            crate::event_log_objects::check_api_version(client.config().api_version())?;
            overlap_warning(&object_options.event_log_objects);
        }
        let collect_event_log_file = event_log_file.is_some();
        let template = event_log_file.unwrap_or_default();
        if options.concurrency == 0 || options.max_file_attempts == 0 {
            return Err(Error::InvalidArgument(
                "collector concurrency and max_file_attempts must be at least 1".into(),
            ));
        }
        store.acquire()?;
        let loaded = store.load()?;
        let mut checkpoint = loaded.clone().unwrap_or_default();
        let mut event_types: Vec<String> = Vec::new();
        for t in template.selected_event_types() {
            // SOQL matches EventType without regard to case, so `login` selects Login's
            // files: it must find Login's position too, not start a second one.
            let known = checkpoint.sources.keys().find_map(|k| {
                k.strip_prefix(EVENT_LOG_FILE_ALL_TYPES)?
                    .strip_prefix('/')
                    .filter(|known| known.eq_ignore_ascii_case(t.as_str()))
            });
            let name = known.unwrap_or(t.as_str()).to_string();
            if !event_types.iter().any(|s| s.eq_ignore_ascii_case(&name)) {
                event_types.push(name);
            }
        }
        // Whole UTC days: a first run at 14:23 with `since` 1d must still take yesterday's
        // daily file, whose LogDate is midnight.
        let floor = earlier(client.clock().now(), options.since, "since")?
            .replace_time(time::Time::MIDNIGHT);
        if collect_event_log_file {
            adopt_sources(
                &mut checkpoint,
                &event_types,
                template.selected_interval(),
                floor,
            )?;
        }
        if loaded.as_ref() != Some(&checkpoint) {
            // Saved before anything is delivered, so that a crash in the first file restarts
            // over the same window.
            store.save(&checkpoint)?;
        }
        let template = EventLogFileQuery::new()
            .event_types(template.selected_event_types().iter().cloned())
            .interval(template.selected_interval());
        let object_options = Arc::new(object_options);
        let sources = collect_event_log_file
            .then_some(AnySource::EventLogFile(EventLogFiles {
                template,
                event_types,
                options,
                slots: None,
            }))
            .into_iter()
            .chain(objects.into_iter().map(|object| match object.kind() {
                ObjectKind::EventLogObject => AnySource::EventLogObject(EventLogObjectSource {
                    object,
                    options: Arc::clone(&object_options),
                }),
                ObjectKind::BigObject | ObjectKind::Standard => AnySource::Object(ObjectSource {
                    object,
                    options: Arc::clone(&object_options),
                }),
            }))
            .collect();
        Ok(Collector {
            client,
            store,
            checkpoint,
            sources,
            figures: DeliveryFigures::new(),
        })
    }

    /// Counts deliveries into `figures` instead of the collector's own, so that the figures of
    /// a collector that replaces another (after a failure) go on from the other's.
    pub fn with_figures(mut self, figures: DeliveryFigures) -> Self {
        self.figures = figures;
        self
    }

    /// Shares `slots` with other collectors (other orgs) as a bound on EventLogFile downloads
    /// across all of them: each file's download takes one slot before its request is sent and
    /// keeps it until the file is downloaded and written (its rows buffered ahead of the sink
    /// included), on top of this collector's own
    /// [`concurrency`](crate::collect::CollectorOptions::concurrency). Queries (the file
    /// listing, object windows and batches) take none, so a collector whose pass is querying
    /// holds no slot another one could download with. A file downloaded again after a failure
    /// takes none either: the files behind it may hold them all, waiting for it to be written.
    ///
    /// By default a collector has no shared slots: only `concurrency` bounds its downloads.
    ///
    /// ```
    /// # fn run(
    /// #     a: salesforce_jwt::collect::Collector<salesforce_jwt::collect::MemoryCheckpointStore>,
    /// #     b: salesforce_jwt::collect::Collector<salesforce_jwt::collect::MemoryCheckpointStore>,
    /// # ) {
    /// use std::sync::Arc;
    /// // At most 8 files download at once, whichever org they belong to.
    /// let slots = Arc::new(tokio::sync::Semaphore::new(8));
    /// let a = a.with_download_slots(Arc::clone(&slots));
    /// let b = b.with_download_slots(slots);
    /// # }
    /// ```
    pub fn with_download_slots(mut self, slots: Arc<tokio::sync::Semaphore>) -> Self {
        for source in &mut self.sources {
            if let AnySource::EventLogFile(files) = source {
                files.slots = Some(Arc::clone(&slots));
            }
        }
        self
    }

    /// What each source delivered: a handle another task can read while a pass runs.
    pub fn figures(&self) -> &DeliveryFigures {
        &self.figures
    }

    /// The client the collector sends its requests with (its API usage and budget).
    pub fn client(&self) -> &JwtBearerClient {
        &self.client
    }

    /// The current checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The checkpoint store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The EventLogFile source, when selected.
    fn event_log_files(&self) -> Option<&EventLogFiles> {
        self.sources.iter().find_map(|s| match s {
            AnySource::EventLogFile(files) => Some(files),
            AnySource::Object(_) | AnySource::EventLogObject(_) => None,
        })
    }

    /// The EventLogFile query the next pass sends: one for the whole selection, from the
    /// lowest position among the selected event types (each file is then checked against its
    /// own type's). Without EventLogFile, the selection's query without dates.
    pub fn pass_query(&self) -> EventLogFileQuery {
        match self.event_log_files() {
            Some(files) => files.pass_query(&self.checkpoint),
            None => EventLogFileQuery::new(),
        }
    }

    /// The EventLogFiles the next pass will collect, in `(CreatedDate, Id)` order, completed
    /// ones left out (none without EventLogFile).
    pub async fn pending_files(&self) -> Result<Vec<EventLogFile>, Error> {
        match self.event_log_files() {
            Some(files) => files.pending_files(&self.client, &self.checkpoint).await,
            None => Ok(Vec::new()),
        }
    }

    /// Runs one pass over every source: EventLogFile first, then each object, all into `sink`
    /// with one checkpoint. Every unit (a file, a window, a batch) is written, committed, and
    /// then recorded in the checkpoint with the sink's position; `progress` is called as work
    /// advances. When `stop` becomes true the pass ends after the current unit, with the
    /// checkpoint consistent and [`PassSummary::stopped`] set.
    ///
    /// When the client's [API budget](crate::JwtBearerClientBuilder::api_budget) is reached
    /// the pass ends the same way, with [`PassSummary::budget_reached`] set. A pass that
    /// starts while the last usage seen is at or above the budget first sends one
    /// [`probe_api_usage`](crate::JwtBearerClient::probe_api_usage) request and goes on only
    /// if usage has fallen below it.
    pub async fn run_pass<K: Sink>(
        &mut self,
        sink: &mut K,
        progress: &mut (dyn FnMut(&Progress) + Send),
        stop: &AtomicBool,
    ) -> Result<PassSummary, Error> {
        if self.client.api_budget_reached().is_some() {
            // The last pass stopped at the budget: only a response tells whether usage fell,
            // so one request asks before any query is sent.
            self.client.probe_api_usage().await?;
            if let Some(reached) = self.client.api_budget_reached() {
                return Ok(PassSummary {
                    stopped: true,
                    budget_reached: Some(reached),
                    ..PassSummary::default()
                });
            }
        }
        let sources_total = self.sources.len();
        let mut pass = Pass::new(
            &self.client,
            &mut self.store,
            &mut self.checkpoint,
            &self.figures,
            progress,
            stop,
            sources_total,
        );
        pass.listener = sink.save_listener();
        let walked = walk_sources(&mut pass, &self.sources, sink).await;
        // Whatever the outcome, what the checkpoint records is in the output when the pass
        // returns (a sink that appends in the background finishes here).
        // The wait is for disk writes: off the runtime's workers, which other collectors'
        // downloads and timers share (sf-ingest runs hundreds of orgs on two).
        let settled = match pass.listener.clone() {
            None => Ok(()),
            Some(listener) => tokio::task::spawn_blocking(move || listener.settle())
                .await
                .unwrap_or_else(|e| {
                    Err(Error::Internal(format!(
                        "waiting for the sink's appends failed: {e}"
                    )))
                }),
        };
        match walked.and(settled) {
            Ok(()) => {}
            // Units committed so far are recorded; the source being read is taken up again
            // from its last committed position by the next pass.
            Err(error) if error.is_api_budget_reached() => {
                pass.summary.stopped = true;
                pass.summary.budget_reached = Some(error);
            }
            Err(error) => return Err(error),
        }
        Ok(pass.finish())
    }
}

/// The one pass loop: the org and the output are checked, then each source walks its units in
/// turn until all are done or a stop is asked for.
async fn walk_sources<S: CheckpointStore + ?Sized, K: Sink>(
    pass: &mut Pass<'_, S>,
    sources: &[AnySource],
    sink: &mut K,
) -> Result<(), Error> {
    // Before the output is checked: another org's checkpoint says nothing about it.
    begin_org(pass.client, pass.checkpoint, pass.store).await?;
    begin_output(
        pass.checkpoint,
        pass.store,
        sink.output(),
        sink.committed_position(),
    )?;
    for source in sources {
        if pass.stop_requested() {
            pass.summary.stopped = true;
        }
        if pass.summary.stopped {
            break;
        }
        pass.source_started(source.name());
        source.collect(pass, sink).await?;
        pass.source_done();
    }
    Ok(())
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
