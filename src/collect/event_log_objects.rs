//! Event Log Objects as a source: `Timestamp` windows `(after, up_to]` of at most 15 days, from
//! the saved position up to the org's clock, each window one committed unit.
//!
//! Rows become queryable 25-45 minutes after their `Timestamp`, out of order, so every pass
//! reads an overlap again (60 minutes by default) and drops the rows whose `Id` it delivered
//! (the documentation names no key; every sObject has an `Id`). Inside a window the rows come
//! in `ORDER BY Timestamp, Id` and all its pages (`nextRecordsUrl`) are read before the commit:
//! the platform accepts no third `Timestamp` filter, so a keyset inside a window is not
//! possible, and a window is the unit. Rows are kept 30 days: `since` asks for no more.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::collect::checkpoint::{CheckpointStore, SourceState};
use crate::collect::object_options::{
    EventLogObjectOptions, ObjectCollectorOptions, ObjectSummary,
};
use crate::collect::object_state::{MILLI, QuietWatch, bound_overlap, span, to_ms};
use crate::collect::pass::{Delivered, Pass};
use crate::collect::sink::{Batch, Row, Sink, Unit};
use crate::collect::source::Source;
use crate::datetime as sf_datetime;
use crate::error::Error;
use crate::event_log_objects::{
    EventLogObjectQuery, MAX_WINDOW, PUBLICATION_DELAY, RETENTION, check_api_version,
};
use crate::objects::fetch::{first_page, next_page};
use crate::objects::{EventObject, FieldSelection};

/// Where an Event Log Object's collection stands.
///
/// Everything with `Timestamp <= watermark` has been delivered, except rows published after
/// their window was read: each pass reads `(watermark - overlap, now]` again and drops the rows
/// whose `Id` is in `delivered_in_overlap`, which holds only rows with `Timestamp` inside the
/// overlap, at most
/// [`max_overlap_rows`](crate::collect::ObjectCollectorOptions::max_overlap_rows) of them (past
/// that, the oldest go and `overlap_floor` keeps the next pass from reading their time again).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventLogObjectState {
    /// The end of the last window whose rows were all durably delivered.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub watermark: Option<OffsetDateTime>,
    /// `Id` -> `Timestamp` of the delivered rows inside the overlap.
    #[serde(default)]
    pub delivered_in_overlap: BTreeMap<String, String>,
    /// Set when `delivered_in_overlap` was cut to its bound: rows with `Timestamp` at or
    /// before it are not read again.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub overlap_floor: Option<OffsetDateTime>,
    /// The zero-row watch.
    #[serde(default)]
    pub quiet: QuietWatch,
}

/// An Event Log Object as a source.
#[derive(Debug)]
pub(crate) struct EventLogObjectSource {
    pub(crate) object: EventObject,
    pub(crate) options: Arc<ObjectCollectorOptions>,
}

impl Source for EventLogObjectSource {
    fn name(&self) -> &str {
        self.object.name()
    }

    async fn collect<S: CheckpointStore + ?Sized, K: Sink>(
        &self,
        pass: &mut Pass<'_, S>,
        sink: &mut K,
    ) -> Result<(), Error> {
        check_api_version(pass.client.config().api_version())?;
        let overlap = self.options.event_log_objects.overlap;
        // Timestamp is stamped by Salesforce: the windows end at the org's clock, never ours.
        let now = pass
            .org_now(overlap, "half the Event Log Object overlap")
            .await?;
        pass.report.current = Some(self.object.name().to_string());
        pass.report();
        let state = match pass.checkpoint.sources.get(self.object.name()) {
            None => EventLogObjectState::default(),
            Some(SourceState::EventLogObject(state)) => state.clone(),
            Some(_) => {
                return Err(Error::InvalidArgument(format!(
                    "the saved state of {} is for another kind of object than the Event Log \
                     Object it is now: remove its state to collect it again from `since`",
                    self.object
                )));
            }
        };
        let mut walk = Walk {
            pass,
            sink,
            object: &self.object,
            options: &self.options,
            now,
            position: None,
            saved_rows: 0,
            summary: ObjectSummary {
                object: self.object.name().to_string(),
                ..ObjectSummary::default()
            },
            overlap_cut_logged: false,
        };
        walk.run(state).await?;
        let summary = walk.summary;
        pass.summary.objects.push(summary);
        Ok(())
    }
}

/// One pass over one Event Log Object.
struct Walk<'w, 'p, S: ?Sized, K> {
    pass: &'w mut Pass<'p, S>,
    sink: &'w mut K,
    object: &'w EventObject,
    options: &'w ObjectCollectorOptions,
    now: OffsetDateTime,
    /// The sink's position after the last commit, saved with the next save.
    position: Option<u64>,
    /// `summary.rows` at the last save, for the checkpoint's `rows_delivered`.
    saved_rows: u64,
    summary: ObjectSummary,
    overlap_cut_logged: bool,
}

impl<S: CheckpointStore + ?Sized, K: Sink> Walk<'_, '_, S, K> {
    fn fields(&self) -> FieldSelection {
        self.options
            .fields
            .get(self.object.name())
            .cloned()
            .unwrap_or_default()
    }

    /// Where this pass starts: the overlap before the watermark, or `since` ago, never before
    /// what Salesforce still keeps.
    fn start(&self, state: &EventLogObjectState) -> OffsetDateTime {
        let overlap = span(self.options.event_log_objects.overlap);
        let kept_from = self.now - span(RETENTION);
        let start = match state.watermark {
            Some(w) => {
                if w < kept_from {
                    tracing::warn!(
                        object = %self.object,
                        watermark = %sf_datetime::format(w),
                        "the last position of {} is older than the 30 days Salesforce keeps Event \
                         Log Object rows: rows between it and {} are gone and cannot be collected",
                        self.object,
                        sf_datetime::format(kept_from)
                    );
                }
                w - overlap
            }
            None => {
                if self.options.since > RETENTION {
                    tracing::warn!(
                        object = %self.object,
                        since_days = self.options.since.as_secs() / 86_400,
                        "since asks for {} days of {}, but Salesforce keeps Event Log Object rows \
                         for 30 days only: collecting from 30 days ago",
                        self.options.since.as_secs() / 86_400,
                        self.object
                    );
                }
                self.now - span(self.options.since)
            }
        };
        let mut start = start.max(kept_from);
        if let Some(floor) = state.overlap_floor {
            start = start.max(floor);
        }
        to_ms(start)
    }

    async fn run(&mut self, mut state: EventLogObjectState) -> Result<(), Error> {
        let end = to_ms(self.now);
        let width = span(self.options.event_log_objects.window.min(MAX_WINDOW)).max(MILLI);
        let overlap = span(self.options.event_log_objects.overlap);
        let mut windows = Vec::new();
        let mut a = self.start(&state);
        while a < end {
            let b = to_ms((a + width).min(end)).max(a + MILLI);
            windows.push((a, b));
            a = b;
        }
        // Oldest first: the watermark only moves past a contiguous committed prefix.
        windows.reverse();
        while let Some((a, b)) = windows.pop() {
            let Some(rows) = self.window(&mut state, a, b).await? else {
                let mid = to_ms(a + (b - a) / 2);
                tracing::info!(object = %self.object, after = %sf_datetime::format(a), up_to = %sf_datetime::format(b), "Timestamp window holds more than max_rows_per_window rows; splitting it in halves");
                self.summary.splits += 1;
                windows.push((mid, b));
                windows.push((a, mid));
                continue;
            };
            state.watermark = Some(state.watermark.map_or(b, |w| w.max(b)));
            if let Some(w) = state.watermark {
                let keep_after = w - overlap;
                state
                    .delivered_in_overlap
                    .retain(|_, t| sf_datetime::parse(t).is_ok_and(|t| t > keep_after));
                state.overlap_floor = state.overlap_floor.filter(|f| *f > keep_after);
            }
            if let Some(floor) = self.bound(&mut state.delivered_in_overlap) {
                state.overlap_floor = Some(state.overlap_floor.map_or(floor, |f| f.max(floor)));
            }
            self.save(&state)?;
            self.pass.report.rows += rows;
            self.pass.report();
            if self.pass.stop_requested() {
                // The watermark is saved at this window's end: the next pass goes on there.
                self.pass.summary.stopped = true;
                return Ok(());
            }
        }
        self.quiet_watch(&mut state.quiet);
        self.save(&state)
    }

    /// Reads the window `(a, b]` whole and commits its new rows as one unit; returns how many,
    /// or `None` (nothing written) when it holds more than `max_rows_per_window` rows and can
    /// be halved: one unit stays a bounded transaction for the sink.
    async fn window(
        &mut self,
        state: &mut EventLogObjectState,
        a: OffsetDateTime,
        b: OffsetDateTime,
    ) -> Result<Option<u64>, Error> {
        let object = self.object;
        let soql = EventLogObjectQuery::new(object)?
            .fields(self.fields())
            .window(a, b)
            .to_soql()?;
        let batch = Batch {
            object,
            after: a,
            up_to: b,
        };
        // A refusal (any 400) names the query through the request's context and is not
        // retried: the same query is refused again.
        let mut page = first_page(self.pass.client, object, &soql).await?;
        if page.total_size > self.options.max_rows_per_window && b - a >= 2 * MILLI {
            return Ok(None);
        }
        let mut begun = false;
        let mut seen: HashSet<String> = HashSet::new();
        let mut new: Vec<(String, String)> = Vec::new();
        let mut newest: Option<OffsetDateTime> = None;
        let mut bytes = 0u64;
        let mut pages = 1u32;
        loop {
            bytes += page.bytes;
            for record in std::mem::take(&mut page.records) {
                let (Some(id), Some(timestamp)) = (record.id(), record.get_datetime("Timestamp"))
                else {
                    let error = Error::UnexpectedResponse(format!(
                        "a {object} row came without Id or Timestamp, which the collector keys \
                         and orders on (query `{soql}`)"
                    ));
                    return Err(self.fail(begun, &batch, error).await);
                };
                if state.delivered_in_overlap.contains_key(id) || !seen.insert(id.to_string()) {
                    self.summary.duplicates_dropped += 1;
                    continue;
                }
                if !begun {
                    if let Err(e) = self.sink.begin(&Unit::Batch(batch)).await {
                        return Err(self.fail(false, &batch, e).await);
                    }
                    begun = true;
                }
                if let Err(e) = self
                    .sink
                    .write(Row::Object {
                        object,
                        record: &record,
                    })
                    .await
                {
                    return Err(self.fail(true, &batch, e).await);
                }
                newest = Some(newest.map_or(timestamp, |n| n.max(timestamp)));
                new.push((id.to_string(), sf_datetime::format(timestamp)));
            }
            let Some(next) = page.next_records_url.take().filter(|_| !page.done) else {
                break;
            };
            pages += 1;
            page = match next_page(self.pass.client, object, &next, pages).await {
                Ok(page) => page,
                Err(e) => return Err(self.fail(begun, &batch, e).await),
            };
        }
        let rows = new.len() as u64;
        if begun {
            match self.sink.commit(&Unit::Batch(batch)).await {
                Ok(position) => {
                    if position.is_some() {
                        self.position = position;
                    }
                }
                Err(e) => return Err(self.fail(true, &batch, e).await),
            }
            self.pass.count(Delivered {
                source: object.name(),
                files: 0,
                rows,
                bytes,
                newest,
            });
            self.summary.batches += 1;
        }
        self.summary.rows += rows;
        state.delivered_in_overlap.extend(new);
        Ok(Some(rows))
    }

    /// Rolls the unit back after `error`, which is returned.
    async fn fail(&mut self, begun: bool, batch: &Batch<'_>, error: Error) -> Error {
        if begun && let Err(e) = self.sink.rollback(&Unit::Batch(*batch)).await {
            tracing::error!(object = %batch.object, error = %e, "rolling back a failed window failed too");
        }
        error
    }

    fn save(&mut self, state: &EventLogObjectState) -> Result<(), Error> {
        let name = self.object.name().to_string();
        let delivered = Delivered {
            source: self.object.name(),
            files: 0,
            rows: self.summary.rows - self.saved_rows,
            bytes: 0,
            newest: None,
        };
        let state = SourceState::EventLogObject(state.clone());
        self.pass.save(self.position, Some(&delivered), |next| {
            next.sources.insert(name, state);
            Ok(())
        })?;
        self.saved_rows = self.summary.rows;
        Ok(())
    }

    fn bound(&mut self, delivered: &mut BTreeMap<String, String>) -> Option<OffsetDateTime> {
        bound_overlap(
            delivered,
            self.options.max_overlap_rows,
            self.object,
            &mut self.overlap_cut_logged,
        )
    }

    /// Zero rows for `quiet_warning_after` looks like a missing permission: say so once.
    fn quiet_watch(&mut self, quiet: &mut QuietWatch) {
        if quiet.after_pass(
            self.object,
            self.summary.rows,
            self.now,
            self.options.quiet_warning_after,
        ) {
            self.summary.storage_warning = true;
        }
    }
}

/// The overlap must cover the publication delay, or rows published late are missed.
pub(crate) fn overlap_warning(options: &EventLogObjectOptions) {
    if options.overlap < PUBLICATION_DELAY {
        tracing::warn!(
            overlap_secs = options.overlap.as_secs(),
            "the Event Log Object overlap is shorter than the 45 minutes Salesforce may take to \
             publish a row: rows published later than the overlap are missed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_bounded_by_the_platform() {
        assert!(EventLogObjectOptions::default().problems().is_empty());
        let wide = EventLogObjectOptions {
            window: MAX_WINDOW + std::time::Duration::from_millis(1),
            ..EventLogObjectOptions::default()
        };
        assert_eq!(wide.problems().len(), 1);
        let long = EventLogObjectOptions {
            overlap: RETENTION,
            ..EventLogObjectOptions::default()
        };
        assert_eq!(long.problems().len(), 1);
    }

    #[test]
    fn the_state_round_trips_and_refuses_unknown_fields() {
        let mut state = EventLogObjectState {
            watermark: Some(time::macros::datetime!(2025-06-10 11:00 UTC)),
            ..EventLogObjectState::default()
        };
        state.delivered_in_overlap.insert(
            "0Xe5j0000000001AAA".into(),
            "2025-06-10T10:30:00.000+0000".into(),
        );
        let text = serde_json::to_string(&SourceState::EventLogObject(state.clone())).unwrap();
        assert!(text.contains("\"kind\":\"EventLogObject\""), "{text}");
        assert_eq!(
            serde_json::from_str::<SourceState>(&text).unwrap(),
            SourceState::EventLogObject(state)
        );
        let unknown = text.replace("\"watermark\"", "\"surprise\":1,\"watermark\"");
        assert!(serde_json::from_str::<SourceState>(&unknown).is_err());
    }
}
