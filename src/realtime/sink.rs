//! Where collected real-time rows go: the [`ObjectSink`] trait. The NDJSON sinks of
//! EventLogFile rows ([`NdjsonSink`](crate::event_log::NdjsonSink),
//! [`NdjsonFileSink`](crate::event_log::NdjsonFileSink)) take object rows too, so every source
//! goes to one output with one crash-safe protocol.

use std::future::Future;

use serde::Serialize;
use serde::ser::SerializeMap;
use time::OffsetDateTime;

use crate::error::Error;
use crate::realtime::object::EventObject;
use crate::realtime::record::ObjectRecord;

/// A unit of delivery: the rows of one `EventDate` window of a big object, or one keyset batch
/// of a standard object. The collector's state advances past it only after
/// [`ObjectSink::commit`] returns.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// The object the rows come from.
    pub object: &'a EventObject,
    /// The exclusive lower bound (`EventDate` or `CreatedDate`).
    pub after: OffsetDateTime,
    /// The inclusive upper bound.
    pub up_to: OffsetDateTime,
}

/// Receives real-time rows and makes them durable, like
/// [`RecordSink`](crate::event_log::RecordSink) for EventLogFile rows.
///
/// The collector calls `begin`, `write` for each new row, then `commit`; only after `commit`
/// returns does the source's state advance. If the batch fails it calls `rollback`, and the
/// batch is read again later. Positions, [`committed_position`](Self::committed_position) and
/// [`output`](Self::output) follow [`RecordSink`](crate::event_log::RecordSink)'s restart
/// protocol: a sink implementing both traits shares one position between all sources.
pub trait ObjectSink: Send {
    /// A batch starts.
    fn begin(&mut self, batch: &Batch<'_>) -> impl Future<Output = Result<(), Error>> + Send;

    /// One row of the current batch.
    fn write(
        &mut self,
        batch: &Batch<'_>,
        record: &ObjectRecord,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Makes the batch's rows durable. Returns a position to save with the state (such as the
    /// output's length), handed back on restart so the sink can discard anything written past
    /// it; `None` when the sink has no such notion.
    fn commit(
        &mut self,
        batch: &Batch<'_>,
    ) -> impl Future<Output = Result<Option<u64>, Error>> + Send;

    /// Discards what was written since the last commit.
    fn rollback(&mut self, batch: &Batch<'_>) -> impl Future<Output = Result<(), Error>> + Send;

    /// The checkpoint was saved with `position` as its sink position (see
    /// [`RecordSink::recorded`](crate::event_log::RecordSink::recorded)): the collectors call
    /// it after every save that follows a commit. The default does nothing.
    fn recorded(&mut self, position: Option<u64>) -> Result<(), Error> {
        let _ = position;
        Ok(())
    }

    /// Waits until everything [`recorded`](Self::recorded) is where readers see it (see
    /// [`RecordSink::published`](crate::event_log::RecordSink::published)). The default
    /// returns at once.
    fn published(&mut self) -> impl Future<Output = Result<(), Error>> + Send {
        async { Ok(()) }
    }

    /// Where everything committed so far ends (see
    /// [`RecordSink::committed_position`](crate::event_log::RecordSink::committed_position));
    /// `None` when the sink has no such notion.
    fn committed_position(&self) -> Option<u64> {
        None
    }

    /// Which output the positions refer to (see
    /// [`RecordSink::output`](crate::event_log::RecordSink::output)).
    fn output(&self) -> Option<String> {
        None
    }
}

/// A row as the NDJSON sinks write it: every field under its API name with its JSON value
/// (relationships nested), plus `"SObjectType": "<object name>"`.
#[derive(Debug, Clone, Copy)]
pub struct NdjsonObjectRow<'a> {
    /// The object the row comes from.
    pub object: &'a EventObject,
    /// The row.
    pub record: &'a ObjectRecord,
}

impl NdjsonObjectRow<'_> {
    /// Appends the row's JSON line (without the newline) to `out`: the same bytes as
    /// `serde_json::to_writer(out, self)`, with the values copied from the record's JSON texts
    /// ([`ObjectRecord::write_ndjson`]) rather than serialized from a map.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.record.write_ndjson(self.object.name(), out);
    }
}

impl Serialize for NdjsonObjectRow<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // From the fields' JSON texts, not `fields()`: no map is built for a row on its way out.
        let mut map = s.serialize_map(Some(self.record.len() + 1))?;
        for (name, value) in self.record.serializable_fields() {
            if name != "SObjectType" {
                map.serialize_entry(name, &value)?;
            }
        }
        map.serialize_entry("SObjectType", self.object.name())?;
        map.end()
    }
}
