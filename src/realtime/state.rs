//! The persisted position of each real-time source, and where it is kept.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::Error;
use crate::event_log::sf_datetime;

/// Where a big object's collection stands.
///
/// Everything with `EventDate <= watermark` has been delivered, except rows that became
/// queryable after their window was read: each pass reads `(watermark - overlap, now]` again
/// and drops the rows whose `EventIdentifier` is in `delivered_in_overlap`. That set only holds
/// rows with `EventDate` inside the overlap, so it stays bounded by the overlap's traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BigObjectState {
    /// The end of the last window whose rows were all durably delivered.
    #[serde(default, with = "opt_datetime")]
    pub watermark: Option<OffsetDateTime>,
    /// `EventIdentifier` (or the composite key of a row without one) -> `EventDate`, for the
    /// delivered rows inside the overlap.
    #[serde(default)]
    pub delivered_in_overlap: BTreeMap<String, String>,
    /// The zero-row watch that tells "storage switched off" apart from a normal pass.
    #[serde(default)]
    pub quiet: QuietWatch,
}

/// Where a standard object's collection stands: a `(CreatedDate, Id)` keyset.
///
/// Salesforce's reads of standard objects trail its writes by seconds, so a row can appear with
/// a `CreatedDate` older than rows already delivered: each pass reads again from
/// `CreatedDate > last - overlap` and drops the `Id`s in `delivered_in_overlap`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysetState {
    /// The greatest `(CreatedDate, Id)` delivered.
    #[serde(default)]
    pub last: Option<KeysetPosition>,
    /// The end (`CreatedDate <= scanned_to`) of the last pass that completed; where the next
    /// pass starts when no row was ever delivered.
    #[serde(default, with = "opt_datetime")]
    pub scanned_to: Option<OffsetDateTime>,
    /// `Id` -> `CreatedDate` of the delivered rows inside the overlap.
    #[serde(default)]
    pub delivered_in_overlap: BTreeMap<String, String>,
    /// The zero-row watch.
    #[serde(default)]
    pub quiet: QuietWatch,
}

/// A `(CreatedDate, Id)` key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeysetPosition {
    /// `CreatedDate`.
    #[serde(with = "sf_datetime")]
    pub created_date: OffsetDateTime,
    /// `Id`.
    pub id: String,
}

/// Tracks how long a source has returned nothing, to warn once that storage may be off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietWatch {
    /// When the current run of empty passes began (`None` after a pass that found rows).
    #[serde(default, with = "opt_datetime")]
    pub empty_since: Option<OffsetDateTime>,
    /// Whether the warning was logged for the current empty run.
    #[serde(default)]
    pub warned: bool,
}

/// The state of one source, by its kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cursor")]
pub enum SourceState {
    /// An `EventDate` window cursor.
    BigObject(BigObjectState),
    /// A `(CreatedDate, Id)` keyset.
    Keyset(KeysetState),
}

/// Where the collector keeps each source's [`SourceState`] and the sink's committed position.
///
/// [`ObjectCollector`](crate::realtime::ObjectCollector) calls [`save`](Self::save) after each
/// window (big objects) or batch (standard objects) the sink has committed, so a crash repeats
/// nothing that was confirmed and loses nothing that was not. An application with its own
/// checkpoint implements this over it; [`MemoryStateStore`] is the in-process one.
pub trait ObjectStateStore: Send {
    /// The saved state of `object`, `None` before its first committed window.
    fn state(&self, object: &str) -> Result<Option<SourceState>, Error>;

    /// The sink position saved with the last state (see
    /// [`ObjectSink::commit`](crate::realtime::ObjectSink::commit)).
    fn sink_position(&self) -> Result<Option<u64>, Error>;

    /// Saves `object`'s state together with the sink's committed position.
    fn save(
        &mut self,
        object: &str,
        state: &SourceState,
        sink_position: Option<u64>,
    ) -> Result<(), Error>;
}

/// An [`ObjectStateStore`] in memory; clones share the same states.
#[derive(Debug, Clone, Default)]
pub struct MemoryStateStore {
    inner: Arc<Mutex<Saved>>,
}

/// What a [`MemoryStateStore`] holds; serializable, so it can be kept anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// Each object's state, by API name.
    pub sources: BTreeMap<String, SourceState>,
    /// The sink's position at the last save.
    pub sink_position: Option<u64>,
}

impl MemoryStateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of everything saved.
    pub fn saved(&self) -> Saved {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl ObjectStateStore for MemoryStateStore {
    fn state(&self, object: &str) -> Result<Option<SourceState>, Error> {
        Ok(self
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sources
            .get(object)
            .cloned())
    }

    fn sink_position(&self) -> Result<Option<u64>, Error> {
        Ok(self
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sink_position)
    }

    fn save(
        &mut self,
        object: &str,
        state: &SourceState,
        sink_position: Option<u64>,
    ) -> Result<(), Error> {
        let mut saved = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        saved.sources.insert(object.to_string(), state.clone());
        if sink_position.is_some() {
            saved.sink_position = sink_position;
        }
        Ok(())
    }
}

mod opt_datetime {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    use crate::event_log::sf_datetime;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        let Some(s) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        sf_datetime::parse(&s)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("datetime {s:?}: {e}")))
    }

    pub(super) fn serialize<S: Serializer>(
        t: &Option<OffsetDateTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&sf_datetime::format(*t)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn states_round_trip_through_json() {
        let mut big = BigObjectState {
            watermark: Some(datetime!(2024-07-08 07:26:18.239 UTC)),
            ..BigObjectState::default()
        };
        big.delivered_in_overlap.insert(
            "95eeec6d-1e93-46c1-882b-88bd28f7f8de".into(),
            "2024-07-08T07:26:18.239+0000".into(),
        );
        let state = SourceState::BigObject(big);
        let text = serde_json::to_string(&state).unwrap();
        assert!(text.contains("\"cursor\":\"BigObject\""), "{text}");
        assert_eq!(serde_json::from_str::<SourceState>(&text).unwrap(), state);
    }
}
