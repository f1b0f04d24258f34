//! The persisted position of each real-time source, kept in the collector's
//! [`Checkpoint`](crate::collect::Checkpoint) under the object's API name.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::datetime as sf_datetime;
use crate::objects::EventObject;

/// Where a big object's collection stands.
///
/// Everything with `EventDate <= watermark` has been delivered, except rows that became
/// queryable after their window was read: each pass reads `(watermark - overlap, now]` again
/// and drops the rows whose `EventIdentifier` is in `delivered_in_overlap`. That set only holds
/// rows with `EventDate` inside the overlap, and at most
/// [`max_overlap_rows`](crate::collect::ObjectCollectorOptions::max_overlap_rows) of them:
/// past that, the oldest are dropped and `overlap_floor` keeps the next pass from reading
/// their `EventDate`s again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BigObjectState {
    /// The end of the last window whose rows were all durably delivered (or which was
    /// skipped, see `skipped_windows`).
    #[serde(default, with = "opt_datetime")]
    pub watermark: Option<OffsetDateTime>,
    /// `EventIdentifier` (or the composite key of a row without one) -> `EventDate`, for the
    /// delivered rows inside the overlap.
    #[serde(default)]
    pub delivered_in_overlap: BTreeMap<String, String>,
    /// Set when `delivered_in_overlap` was cut to its bound: rows with `EventDate` at or
    /// before it are not read again, even inside the overlap (their identifiers are gone).
    #[serde(
        default,
        with = "opt_datetime",
        skip_serializing_if = "Option::is_none"
    )]
    pub overlap_floor: Option<OffsetDateTime>,
    /// Windows given up on because a page of theirs could not be read (with
    /// [`skip_unreadable_pages`](crate::collect::ObjectCollectorOptions::skip_unreadable_pages)),
    /// while they are inside the overlap: later passes read around them instead of failing on
    /// them again. Each is listed for good in the checkpoint's `skipped`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_windows: Vec<SkippedWindow>,
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
    /// `Id` -> `CreatedDate` of the delivered rows inside the overlap, at most
    /// [`max_overlap_rows`](crate::collect::ObjectCollectorOptions::max_overlap_rows).
    #[serde(default)]
    pub delivered_in_overlap: BTreeMap<String, String>,
    /// Set when `delivered_in_overlap` was cut to its bound: rows with `CreatedDate` at or
    /// before it are not read again.
    #[serde(
        default,
        with = "opt_datetime",
        skip_serializing_if = "Option::is_none"
    )]
    pub overlap_floor: Option<OffsetDateTime>,
    /// `CreatedDate` ranges given up on because a page could not be read, while inside the
    /// overlap (see [`BigObjectState::skipped_windows`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_windows: Vec<SkippedWindow>,
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

/// A window `(after, up_to]` of `EventDate` (big objects) or `CreatedDate` (standard
/// objects) given up on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedWindow {
    /// Its start (exclusive).
    #[serde(with = "sf_datetime")]
    pub after: OffsetDateTime,
    /// Its end (inclusive).
    #[serde(with = "sf_datetime")]
    pub up_to: OffsetDateTime,
}

/// Cuts `delivered` (key -> datetime) to the `max` newest entries. Entries sharing the datetime
/// at the cut go together, so that the returned floor (the newest datetime dropped) splits
/// the rows cleanly: everything at or before it is forgotten, everything after it kept. `None`
/// when nothing had to go. The first cut of a walk (`logged` false) is logged: rows of `object`
/// at or before the floor that arrive later will be missed.
pub(crate) fn bound_overlap(
    delivered: &mut BTreeMap<String, String>,
    max: usize,
    object: &EventObject,
    logged: &mut bool,
) -> Option<OffsetDateTime> {
    if delivered.len() <= max {
        return None;
    }
    let mut dates: Vec<OffsetDateTime> = delivered
        .values()
        .filter_map(|d| sf_datetime::parse(d).ok())
        .collect();
    dates.sort_unstable_by(|a, b| b.cmp(a));
    let floor = *dates.get(max)?;
    delivered.retain(|_, d| sf_datetime::parse(d).is_ok_and(|d| d > floor));
    if !*logged {
        *logged = true;
        tracing::warn!(
            object = %object,
            floor = %sf_datetime::format(floor),
            max_overlap_rows = max,
            "more rows inside the overlap than max_overlap_rows: rows up to the floor are not read again, so a row of that time that arrives later is missed"
        );
    }
    Some(floor)
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

impl QuietWatch {
    /// Counts a pass over `object` that delivered `rows`, at the org's time `now`. Zero rows
    /// for `after` looks exactly like storage switched off (or, for an Event Log Object, a
    /// missing permission): the warning is logged once per empty run, and `true` says it was
    /// logged now.
    pub(crate) fn after_pass(
        &mut self,
        object: &EventObject,
        rows: u64,
        now: OffsetDateTime,
        after: std::time::Duration,
    ) -> bool {
        if rows > 0 {
            *self = QuietWatch::default();
            return false;
        }
        let since = *self.empty_since.get_or_insert(now);
        let after = time::Duration::try_from(after).unwrap_or(time::Duration::MAX);
        if self.warned || now - since < after {
            return false;
        }
        self.warned = true;
        tracing::warn!(
            object = %object,
            quiet_since = %sf_datetime::format(since),
            "{} has returned no rows since {}: {}",
            object,
            sf_datetime::format(since),
            object.storage_hint()
        );
        true
    }
}

mod opt_datetime {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    use crate::datetime as sf_datetime;

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

/// The finest step of a window bound: SOQL datetimes carry milliseconds.
pub(crate) const MILLI: time::Duration = time::Duration::milliseconds(1);

/// `t` in UTC without its sub-millisecond part: a window bound finer than SOQL's literals
/// would be rounded by Salesforce, and two windows could then overlap or leave a gap.
pub(crate) fn to_ms(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t)
}

/// A configured span as a `time` one; beyond `time`'s range it means "all of it".
pub(crate) fn span(d: std::time::Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_are_kept_and_below_dropped() {
        assert_eq!(
            to_ms(time::macros::datetime!(2024-07-08 07:26:18.2399 UTC)),
            time::macros::datetime!(2024-07-08 07:26:18.239 UTC)
        );
    }
    use crate::collect::SourceState;
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
        assert!(text.contains("\"kind\":\"BigObject\""), "{text}");
        assert_eq!(serde_json::from_str::<SourceState>(&text).unwrap(), state);
    }
}
