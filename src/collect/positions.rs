//! Where each pass starts: the output it must go on from, and every selected event type's
//! position in the checkpoint.

use std::time::Duration;

use time::OffsetDateTime;

use crate::collect::checkpoint::{
    Checkpoint, CheckpointStore, EventLogFileState, MIGRATED_V1_SOURCE, SourceState,
};
use crate::error::Error;
use crate::event_log_file::{Cursor, IntervalFilter};

/// The start of every pass, whatever its sources: refuses a sink of another output than the
/// checkpoint's, or at another position (an earlier commit, save or rollback failed), and
/// records the output and its starting position before the first row.
pub(crate) fn begin_output<S: CheckpointStore + ?Sized>(
    checkpoint: &mut Checkpoint,
    store: &mut S,
    output: Option<String>,
    committed: Option<u64>,
) -> Result<(), Error> {
    if let (Some(recorded), Some(current)) = (&checkpoint.output, &output)
        && recorded != current
    {
        return Err(Error::InvalidArgument(format!(
            "the checkpoint belongs to the output {recorded}, not {current}: its position \
             means nothing there. Use the checkpoint that belongs to {current}, \
             or a new one (which starts from `since`)"
        )));
    }
    if let (Some(saved), Some(sink)) = (checkpoint.sink_position, committed)
        && saved != sink
    {
        // A commit, checkpoint save or rollback failed earlier (or the sink was opened at
        // another position): going on would deliver from a position nobody can prove.
        return Err(Error::sink(
            format!(
                "resuming the output{}",
                output.as_ref().map(|o| format!(" {o}")).unwrap_or_default()
            ),
            format!(
                "its committed position is {sink} but the checkpoint's is {saved}, so \
                 an earlier commit, checkpoint save or rollback failed. Reopen the output \
                 from the checkpoint (NdjsonFileSink::resume cuts it back to {saved}) \
                 and run the pass again"
            ),
            false,
        ));
    }
    let mut next = checkpoint.clone();
    if next.output.is_none() {
        next.output = output;
    }
    if next.sink_position.is_none() {
        // The sink's starting point, recorded before its first row: without it a crash in
        // the first file would leave a torn file that the restart could not cut back.
        next.sink_position = committed;
    }
    if next != *checkpoint {
        // Inline, like every checkpoint save (see `record`).
        store.save(&next)?;
        *checkpoint = next;
    }
    Ok(())
}

/// Where the lookback window before `cursor` starts: whole seconds (what a SOQL literal can
/// say, so the query and the pruning of the completed set agree exactly), and never below the
/// window the completed set covers.
pub(super) fn window_start(
    state: &EventLogFileState,
    cursor: &Cursor,
    lookback: Duration,
) -> OffsetDateTime {
    let back = earlier(cursor.created_date, lookback, "lookback")
        .unwrap_or(state.log_date_floor)
        .replace_nanosecond(0)
        .unwrap_or(cursor.created_date);
    match state.window_start {
        Some(start) if start > back => start,
        _ => back,
    }
}

/// Gives every selected event type (`event_types`, empty for all types) a position in
/// `checkpoint`: the one it has, the one migrated from version 1, the all-types one when the
/// selection narrows, or a fresh one from `floor`.
pub(super) fn adopt_sources(
    checkpoint: &mut Checkpoint,
    event_types: &[String],
    interval: IntervalFilter,
    floor: OffsetDateTime,
) -> Result<(), Error> {
    let migrated = match checkpoint.sources.remove(MIGRATED_V1_SOURCE) {
        Some(SourceState::EventLogFile(mut state)) => {
            state.interval = interval;
            Some(state)
        }
        // Only version-1 migration writes this key, always with an EventLogFile state.
        _ => None,
    };
    let all_key = Checkpoint::event_log_file_key(None);
    let all_types = checkpoint.event_log_file(None).cloned();
    let keys: Vec<String> = if event_types.is_empty() {
        let one_by_one: Vec<&str> = checkpoint
            .sources
            .keys()
            .filter_map(|k| k.strip_prefix(&format!("{all_key}/")))
            .collect();
        // Even with an all-types position: the types collected one by one may have gone past
        // it, and it would deliver their files again.
        if migrated.is_none() && !one_by_one.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "this checkpoint collects EventLogFile by event type ({}); collecting all types \
                 with it would deliver those rows again. Select the event types you want \
                 explicitly (EventLogFileQuery::event_types), or start a new checkpoint",
                one_by_one.join(", ")
            )));
        }
        vec![all_key.clone()]
    } else {
        event_types
            .iter()
            .map(|t| Checkpoint::event_log_file_key(Some(t)))
            .collect()
    };
    for key in keys {
        match checkpoint.sources.get(&key) {
            // `auto` became the default after checkpoints were written with `all`: such a
            // position keeps the interval it was created with rather than being refused.
            Some(SourceState::EventLogFile(_)) if interval == IntervalFilter::Auto => {}
            Some(SourceState::EventLogFile(state)) if state.interval != interval => {
                return Err(Error::InvalidArgument(format!(
                    "the checkpoint collected {key} files with interval {:?}, this collector \
                     asks for {interval:?}: the files that adds lie before its position and \
                     would be skipped. Keep the interval, or start a new checkpoint for it",
                    state.interval
                )));
            }
            Some(_) => {}
            None => {
                let state = match (&migrated, &all_types) {
                    (Some(m), _) => m.clone(),
                    // Everything before the all-types position was delivered, this type's
                    // files included.
                    (None, Some(all)) if all.interval == interval => all.clone(),
                    _ => EventLogFileState::new(interval, floor),
                };
                checkpoint
                    .sources
                    .insert(key, SourceState::EventLogFile(state));
            }
        }
    }
    Ok(())
}

/// `t - d`, or an error naming the option when the result is out of range.
pub(super) fn earlier(
    t: OffsetDateTime,
    d: Duration,
    option: &str,
) -> Result<OffsetDateTime, Error> {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| t.to_offset(time::UtcOffset::UTC).checked_sub(d))
        .ok_or_else(|| Error::InvalidArgument(format!("{option} {d:?} reaches before year -9999")))
}
