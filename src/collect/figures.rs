//! Running figures of what collectors delivered, per source, for a service's metrics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use time::OffsetDateTime;

/// What one source delivered since its [`DeliveryFigures`] were created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceFigures {
    /// Rows committed to the sink.
    pub rows: u64,
    /// Bytes read from Salesforce for those rows: the CSV of EventLogFile files
    /// (`LogFileLength`), the query responses of an object's committed batches.
    pub bytes: u64,
    /// The time of the newest event delivered: the end of the period the newest EventLogFile
    /// covers (its `LogDate` plus its `Interval`; the rows inside are at most that recent), the
    /// newest `EventDate` (or `CreatedDate`) of an object's rows.
    pub newest_event: Option<OffsetDateTime>,
}

/// Per-source figures, counted when a file or batch is committed (rows rolled back and sent
/// again are counted once). Cheap to clone; clones share the figures, so one set can follow
/// the collectors that replace each other after failures
/// ([`Collector::with_figures`](crate::collect::Collector::with_figures)), and be read by
/// another task while a pass runs. Sources are keyed by name: `EventLogFile` (every event
/// type together) or the object's API name.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFigures {
    sources: Arc<Mutex<BTreeMap<String, SourceFigures>>>,
}

impl DeliveryFigures {
    /// Figures with nothing delivered.
    pub fn new() -> Self {
        DeliveryFigures::default()
    }

    /// Every source that delivered something, or was [`touch`](Self::touch)ed.
    pub fn snapshot(&self) -> BTreeMap<String, SourceFigures> {
        self.sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// One source's figures.
    pub fn get(&self, source: &str) -> Option<SourceFigures> {
        self.sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(source)
            .copied()
    }

    /// Lists `source` with zero figures if it is not listed yet, so that it shows before its
    /// first delivery.
    pub fn touch(&self, source: &str) {
        self.sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(source.to_string())
            .or_default();
    }

    /// Adds a committed file or batch of `source`.
    pub(crate) fn delivered(
        &self,
        source: &str,
        rows: u64,
        bytes: u64,
        newest: Option<OffsetDateTime>,
    ) {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        let figures = sources.entry(source.to_string()).or_default();
        figures.rows = figures.rows.saturating_add(rows);
        figures.bytes = figures.bytes.saturating_add(bytes);
        if let Some(newest) = newest {
            figures.newest_event = Some(figures.newest_event.map_or(newest, |n| n.max(newest)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn figures_add_up_keep_the_newest_event_and_are_shared_by_clones() {
        let figures = DeliveryFigures::new();
        let reader = figures.clone();
        figures.touch("LoginEvent");
        figures.delivered(
            "EventLogFile",
            3,
            100,
            Some(datetime!(2026-01-02 00:00 UTC)),
        );
        figures.delivered("EventLogFile", 2, 50, Some(datetime!(2026-01-01 00:00 UTC)));
        let elf = reader.get("EventLogFile").unwrap();
        assert_eq!((elf.rows, elf.bytes), (5, 150));
        assert_eq!(elf.newest_event, Some(datetime!(2026-01-02 00:00 UTC)));
        assert_eq!(reader.get("LoginEvent"), Some(SourceFigures::default()));
        assert_eq!(reader.snapshot().len(), 2);
    }
}
