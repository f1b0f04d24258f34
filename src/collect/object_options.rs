//! What the [`Collector`](crate::collect::Collector) is told about objects, and what it
//! reports for each.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::Error;
use crate::event_log_objects::{MAX_WINDOW, RETENTION};
use crate::objects::FieldSelection;

/// How the [`Collector`](crate::collect::Collector) reads objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCollectorOptions {
    /// How far back the first pass of a source starts (default 1 day).
    pub since: Duration,
    /// How much before its saved position each pass reads again, for rows that became
    /// queryable after their time was passed (default 5 minutes: Salesforce writes big-object
    /// rows seconds to minutes after their `EventDate`, and standard-object reads trail writes
    /// by seconds). A row that appears later than this is missed.
    pub overlap: Duration,
    /// The width of the first `EventDate` window a big object is read in, and the narrowest
    /// (default 1 hour).
    pub window: Duration,
    /// The widest `EventDate` window (default 1 hour, the same as `window`: windows of one
    /// width). Wider, windows grow with a sparse object: after a window with fewer than a
    /// quarter of `max_rows_per_window` rows the next one is twice as wide, up to this, so a
    /// week of a quiet object costs a handful of queries rather than 168; after one with more
    /// than half, half as wide.
    pub max_window: Duration,
    /// A big-object or Event Log Object window holding more rows than this is split in halves
    /// before anything is written (default 10,000), as is a big-object one Salesforce answers
    /// with `QUERY_TIMEOUT`.
    pub max_rows_per_window: u64,
    /// Rows per keyset batch of a standard object (`LIMIT`, default 2,000); each batch is
    /// committed on its own.
    pub batch_size: u32,
    /// After this long with zero rows from a source, a warning says once that storage may be
    /// switched off in Event Manager (default 24 hours).
    pub quiet_warning_after: Duration,
    /// The SELECT list per object API name; objects not named here use `FIELDS(STANDARD)`.
    pub fields: BTreeMap<String, FieldSelection>,
    /// The most identifiers a source keeps to drop rows read again inside the overlap
    /// (default 20,000, about 2 MB of checkpoint). Past it the oldest go, and the next pass
    /// does not read their time again: an object busier than this in one overlap gets a
    /// shorter allowance for late rows (logged), never a duplicate or an unbounded checkpoint.
    pub max_overlap_rows: usize,
    /// What to do with a query page that cannot be read (its JSON does not parse): `false`
    /// (the default) stops the pass with the error; `true` (sf-ingest's `--skip-bad-files`,
    /// as for EventLogFile) narrows the window (`EventDate` for big objects, `CreatedDate`
    /// for standard ones) around it by halves, gives up on the narrowest one that still fails
    /// (a millisecond), records it in
    /// [`Checkpoint::skipped`](crate::collect::Checkpoint::skipped) (keyed
    /// `OBJECT FIELD (after, up_to]`, with the object as `event_type` and the window's end as
    /// `created_date`), logs an error and goes on; later passes read around it. A page
    /// unreadable once only is read again by the narrowing, and nothing is skipped. Past 128
    /// narrowings or 16 skipped windows of one object in one pass, the pass stops with the
    /// error all the same: then the org's answers, not a row or two, are broken.
    pub skip_unreadable_pages: bool,
    /// How Event Log Objects are read: `Timestamp` window and overlap (defaults 1 hour and 60
    /// minutes). `since` applies to them too, within the 30 days Salesforce keeps them.
    pub event_log_objects: EventLogObjectOptions,
}

impl Default for ObjectCollectorOptions {
    fn default() -> Self {
        ObjectCollectorOptions {
            since: Duration::from_secs(24 * 3600),
            overlap: Duration::from_secs(5 * 60),
            window: Duration::from_secs(3600),
            max_window: Duration::from_secs(3600),
            max_rows_per_window: 10_000,
            batch_size: 2000,
            quiet_warning_after: Duration::from_secs(24 * 3600),
            fields: BTreeMap::new(),
            max_overlap_rows: 20_000,
            skip_unreadable_pages: false,
            event_log_objects: EventLogObjectOptions::default(),
        }
    }
}

impl ObjectCollectorOptions {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let mut problems = Vec::new();
        if self.window < Duration::from_millis(1) {
            problems.push("window must be at least 1 ms (default 1 hour)");
        }
        if self.max_rows_per_window == 0 {
            problems.push("max_rows_per_window must be at least 1 (default 10,000)");
        }
        if self.max_overlap_rows == 0 {
            problems.push("max_overlap_rows must be at least 1 (default 20,000)");
        }
        if self.batch_size == 0 {
            problems.push("batch_size must be at least 1 (default 2,000)");
        }
        problems.extend(self.event_log_objects.problems());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "ObjectCollectorOptions: {}",
                problems.join("; ")
            )))
        }
    }
}

/// What a pass did for one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectSummary {
    /// The object's API name.
    pub object: String,
    /// Rows delivered (committed).
    pub rows: u64,
    /// Rows read again inside the overlap and dropped as already delivered.
    pub duplicates_dropped: u64,
    /// Windows or batches committed.
    pub batches: u64,
    /// Big-object windows split because they were too large for one query.
    pub splits: u64,
    /// Whether this pass logged the "storage may be off" warning.
    pub storage_warning: bool,
    /// Windows given up on because a page could not be read (only with
    /// [`ObjectCollectorOptions::skip_unreadable_pages`]); each is listed in the checkpoint's
    /// `skipped`.
    pub skipped_windows: u64,
}

/// How the [`Collector`](crate::collect::Collector) reads Event Log Objects (part of
/// [`ObjectCollectorOptions`]; `since`, `fields`, `max_overlap_rows` and
/// `quiet_warning_after` are shared with the other objects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLogObjectOptions {
    /// The width of the `Timestamp` windows (default 1 hour; at most 15 days, the widest
    /// Salesforce accepts). Each window is read whole and committed as one unit.
    pub window: Duration,
    /// How much before its saved position each pass reads again (default 60 minutes): rows
    /// become queryable 25-45 minutes after their `Timestamp`. A row later than this is
    /// missed.
    pub overlap: Duration,
}

impl Default for EventLogObjectOptions {
    fn default() -> Self {
        EventLogObjectOptions {
            window: Duration::from_secs(3600),
            overlap: Duration::from_secs(60 * 60),
        }
    }
}

impl EventLogObjectOptions {
    pub(crate) fn problems(&self) -> Vec<&'static str> {
        let mut problems = Vec::new();
        if self.window < Duration::from_millis(1) || self.window > MAX_WINDOW {
            problems.push(
                "event_log_objects.window must be between 1 ms and 15 days (default 1 hour): \
                 Salesforce refuses a wider Timestamp window",
            );
        }
        if self.overlap >= RETENTION {
            problems.push(
                "event_log_objects.overlap must be shorter than the 30 days Event Log Objects \
                 are kept (default 60 minutes)",
            );
        }
        problems
    }
}
