//! The queryable objects: Real-Time Event Monitoring big objects, threat-detection stores,
//! `SetupAuditTrail` and Event Log Objects, with their rows.

pub(crate) mod catalogue;
pub(crate) mod generate;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::generate::with_checksum;
use catalogue::{Kind, ObjectDef};

/// A stored row: its fields and when it was written (`CreatedDate`), which with the object's
/// queryable lag decides when queries start to see it.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) fields: Map<String, Value>,
    written: Option<OffsetDateTime>,
    /// The datetime fields, parsed once: a query over 50,000 rows filters and sorts on them.
    times: Vec<(&'static str, OffsetDateTime)>,
}

const DATETIME_FIELDS: [&str; 5] = [
    "EventDate",
    "CreatedDate",
    "LastModifiedDate",
    "SystemModstamp",
    "Timestamp",
];

/// How long Salesforce keeps Event Log Object rows ("retained for up to 30 days"): older rows
/// are not served.
pub(crate) const EVENT_LOG_RETENTION: time::Duration = time::Duration::days(30);

/// When an Event Log Object row becomes queryable: "within 25-45 minutes after the event is
/// logged". Each row gets its own delay in that range, fixed by its `Id`, so that rows appear
/// out of `Timestamp` order as they do on the platform.
fn event_log_published(timestamp: OffsetDateTime, id: &str) -> OffsetDateTime {
    // FNV-1a: deterministic across runs, unlike the std hasher.
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let spread = (hash % (20 * 60 * 1000 + 1)) as i64;
    timestamp + time::Duration::minutes(25) + time::Duration::milliseconds(spread)
}

impl Row {
    /// A datetime field's value, parsed.
    pub(crate) fn datetime(&self, field: &str) -> Option<OffsetDateTime> {
        self.times
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, t)| *t)
    }
}

/// Every object's rows and queryable lag.
#[derive(Debug, Default)]
pub(crate) struct ObjectStore {
    rows: HashMap<&'static str, Vec<Arc<Row>>>,
    lag: HashMap<&'static str, Duration>,
    next_id: u64,
}

/// Key prefixes for the Ids of standard-object rows (SetupAuditTrail's is Salesforce's).
fn id_prefix(object: &str) -> &'static str {
    match object {
        // No key prefix is documented for Event Log Objects: one the org does not otherwise use.
        o if o.ends_with("EventLog") => "0Xe",
        "SetupAuditTrail" => "0Ym",
        "ApiAnomalyEventStore" => "0Qa",
        "CredentialStuffingEventStore" => "0Qc",
        "ReportAnomalyEventStore" => "0Qr",
        _ => "0Qs",
    }
}

impl ObjectStore {
    /// Stores a row; a standard-object row without an `Id` gets the next one, so Ids sort in
    /// insertion order. Returns the row as stored.
    pub(crate) fn insert(
        &mut self,
        def: &'static ObjectDef,
        mut fields: Map<String, Value>,
    ) -> Map<String, Value> {
        if matches!(def.kind, Kind::Standard | Kind::EventLog)
            && !fields.get("Id").is_some_and(Value::is_string)
        {
            let id = with_checksum(&format!("{}5j{:010}", id_prefix(def.name), self.next_id));
            self.next_id += 1;
            fields.insert("Id".to_string(), Value::String(id));
        }
        let times: Vec<(&'static str, OffsetDateTime)> = DATETIME_FIELDS
            .iter()
            .filter_map(|name| {
                let text = fields.get(*name)?.as_str()?;
                Some((*name, parse_datetime(text)?))
            })
            .collect();
        let written = if def.kind == Kind::EventLog {
            // Event Log Objects have no CreatedDate: their rows are published after Timestamp.
            let id = fields.get("Id").and_then(Value::as_str).unwrap_or_default();
            times
                .iter()
                .find(|(name, _)| *name == "Timestamp")
                .map(|(_, t)| event_log_published(*t, id))
        } else {
            times
                .iter()
                .find(|(name, _)| *name == "CreatedDate")
                .map(|(_, t)| *t)
        };
        self.rows.entry(def.name).or_default().push(Arc::new(Row {
            fields: fields.clone(),
            written,
            times,
        }));
        fields
    }

    /// The rows a query at `now` sees (those written at least the object's lag ago) for which
    /// `keep` holds. One pass, so that a window query over a large object clones only the rows
    /// it returns.
    pub(crate) fn visible_where(
        &self,
        def: &ObjectDef,
        now: OffsetDateTime,
        keep: impl Fn(&Row) -> bool,
    ) -> Vec<Arc<Row>> {
        let lag = self.lag.get(def.name).copied().unwrap_or_default();
        let retained_after = (def.kind == Kind::EventLog).then(|| now - EVENT_LOG_RETENTION);
        let retained = |row: &Row| match retained_after {
            Some(after) => row.datetime("Timestamp").is_some_and(|t| t > after),
            None => true,
        };
        self.rows
            .get(def.name)
            .map(|rows| {
                rows.iter()
                    .filter(|row| {
                        row.written.is_none_or(|w| w + lag <= now) && retained(row) && keep(row)
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every row of an object, visible or not, in insertion order.
    pub(crate) fn all(&self, def: &ObjectDef) -> Vec<Map<String, Value>> {
        self.rows
            .get(def.name)
            .map(|rows| rows.iter().map(|r| r.fields.clone()).collect())
            .unwrap_or_default()
    }

    pub(crate) fn set_lag(&mut self, def: &'static ObjectDef, lag: Duration) {
        self.lag.insert(def.name, lag);
    }
}

/// Parses `2024-07-08T07:26:18.239+0000`, `…Z` or RFC 3339, into UTC.
pub(crate) fn parse_datetime(s: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    let sf = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond][offset_hour sign:mandatory][offset_minute]"
    );
    let sf_whole = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory][offset_minute]"
    );
    OffsetDateTime::parse(s, sf)
        .or_else(|_| OffsetDateTime::parse(s, sf_whole))
        .or_else(|_| OffsetDateTime::parse(s, &Rfc3339))
        .ok()
        .map(|t| t.to_offset(time::UtcOffset::UTC))
}
