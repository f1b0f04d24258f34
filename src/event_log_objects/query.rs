//! [`EventLogObjectQuery`]: the one SOQL shape the collector sends to an Event Log Object.

use std::time::Duration;

use time::OffsetDateTime;

use crate::datetime::rfc3339_millis;
use crate::error::Error;
use crate::objects::{EventObject, FieldSelection, ObjectKind};

/// The widest `Timestamp` window one query may span: "You can query up to 15 days of data at
/// a time using the Timestamp filter".
pub const MAX_WINDOW: Duration = Duration::from_secs(15 * 24 * 3600);

/// A query on an Event Log Object: `SELECT … FROM X WHERE Timestamp > a AND Timestamp <= b
/// ORDER BY Timestamp ASC, Id ASC [LIMIT n]`.
///
/// Both bounds are required and the window is at most [`MAX_WINDOW`]: a missing bound makes
/// Salesforce read 15 days in its direction without a word, and a third `Timestamp` filter, a
/// wider window, `!=`, `OFFSET`, `HAVING` or a relationship field are refused, so this builder
/// cannot express them. Inside a window the order is total (`Timestamp` has millisecond
/// precision and several events share one; `Id` breaks the tie).
///
/// ```
/// use salesforce_jwt::event_log_objects::EventLogObjectQuery;
/// use salesforce_jwt::objects::{EventObject, FieldSelection};
/// use time::macros::datetime;
///
/// let api = EventObject::named("ApiTotalUsageEventLog").unwrap();
/// let soql = EventLogObjectQuery::new(&api)?
///     .fields(FieldSelection::Fields(vec!["ApiFamily".into(), "StatusCode".into()]))
///     .window(datetime!(2025-06-01 00:00 UTC), datetime!(2025-06-16 00:00 UTC))
///     .to_soql()?;
/// assert_eq!(
///     soql,
///     "SELECT ApiFamily, StatusCode, Id, Timestamp FROM ApiTotalUsageEventLog WHERE \
///      Timestamp > 2025-06-01T00:00:00.000Z AND Timestamp <= 2025-06-16T00:00:00.000Z \
///      ORDER BY Timestamp ASC, Id ASC"
/// );
/// # Ok::<(), salesforce_jwt::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct EventLogObjectQuery {
    object: EventObject,
    fields: FieldSelection,
    window: Option<(OffsetDateTime, OffsetDateTime)>,
    limit: Option<u32>,
}

impl EventLogObjectQuery {
    /// A query on `object`, which must be an Event Log Object.
    pub fn new(object: &EventObject) -> Result<Self, Error> {
        if object.kind() != ObjectKind::EventLogObject {
            return Err(Error::InvalidArgument(format!(
                "{object} is a {}, not an Event Log Object: query it with {}",
                object.kind().describe(),
                match object.kind() {
                    ObjectKind::BigObject => "BigObjectQuery",
                    _ => "KeysetQuery",
                }
            )));
        }
        Ok(EventLogObjectQuery {
            object: object.clone(),
            fields: FieldSelection::Standard,
            window: None,
            limit: None,
        })
    }

    /// The SELECT list (default `FIELDS(STANDARD)`). `Id` and `Timestamp` are added to an
    /// explicit list; relationship paths (`CreatedBy.Username`) are refused.
    pub fn fields(mut self, fields: FieldSelection) -> Self {
        self.fields = fields;
        self
    }

    /// Rows with `after < Timestamp <= up_to` (required; at most [`MAX_WINDOW`] wide).
    pub fn window(mut self, after: OffsetDateTime, up_to: OffsetDateTime) -> Self {
        self.window = Some((after, up_to));
        self
    }

    /// At most `n` rows (the oldest ones).
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }

    /// The SOQL text.
    pub fn to_soql(&self) -> Result<String, Error> {
        let object = &self.object;
        let Some((after, up_to)) = self.window else {
            return Err(Error::InvalidArgument(format!(
                "a query on {object} needs a Timestamp window (after, up_to]: without both \
                 bounds Salesforce silently reads 15 days only"
            )));
        };
        let (a, b) = (rfc3339_millis(after), rfc3339_millis(up_to));
        if after >= up_to {
            return Err(Error::InvalidArgument(format!(
                "a Timestamp window on {object} must end after it starts ({a} .. {b})"
            )));
        }
        if up_to - after > time::Duration::try_from(MAX_WINDOW).unwrap_or(time::Duration::MAX) {
            return Err(Error::InvalidArgument(format!(
                "a Timestamp window on {object} spans more than 15 days ({a} .. {b}), which \
                 Salesforce refuses: query it in windows of at most 15 days"
            )));
        }
        if let FieldSelection::Fields(names) = &self.fields
            && let Some(path) = names.iter().find(|n| n.contains('.'))
        {
            return Err(Error::InvalidArgument(format!(
                "field {path:?}: Event Log Objects do not support relationship queries; select \
                 the object's own fields (for example UserIdentifier)"
            )));
        }
        let select = self.fields.render(&["Id", "Timestamp"])?;
        let mut soql = format!(
            "SELECT {select} FROM {} WHERE Timestamp > {a} AND Timestamp <= {b} \
             ORDER BY Timestamp ASC, Id ASC",
            object.name()
        );
        if let Some(n) = self.limit {
            soql.push_str(&format!(" LIMIT {n}"));
        }
        Ok(soql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn login() -> EventObject {
        EventObject::named("LoginEventLog").unwrap()
    }

    #[test]
    fn exactly_two_timestamp_filters_and_a_total_order() {
        let soql = EventLogObjectQuery::new(&login())
            .unwrap()
            .window(
                datetime!(2024-07-08 07:26:18.2399 UTC),
                datetime!(2024-07-08 11:00 +02:00),
            )
            .limit(10)
            .to_soql()
            .unwrap();
        assert_eq!(
            soql,
            "SELECT FIELDS(STANDARD) FROM LoginEventLog WHERE Timestamp > \
             2024-07-08T07:26:18.239Z AND Timestamp <= 2024-07-08T09:00:00.000Z ORDER BY \
             Timestamp ASC, Id ASC LIMIT 10"
        );
        assert_eq!(
            soql.matches("Timestamp >").count() + soql.matches("Timestamp <").count(),
            2
        );
        for refused in ["!=", "OFFSET", "HAVING", " OR ", "."] {
            assert!(
                !soql
                    .replace(".239Z", "")
                    .replace(".000Z", "")
                    .contains(refused),
                "{refused}"
            );
        }
    }

    #[test]
    fn windows_are_bounded_on_both_sides_and_at_most_15_days() {
        let t = datetime!(2025-06-01 00:00 UTC);
        let q = EventLogObjectQuery::new(&login()).unwrap();
        assert!(q.clone().to_soql().is_err(), "no window");
        assert!(q.clone().window(t, t).to_soql().is_err(), "empty window");
        let fifteen = time::Duration::days(15);
        assert!(q.clone().window(t, t + fifteen).to_soql().is_ok());
        let over = q
            .clone()
            .window(t, t + fifteen + time::Duration::milliseconds(1))
            .to_soql()
            .unwrap_err()
            .to_string();
        assert!(over.contains("15 days"), "{over}");
    }

    #[test]
    fn relationship_fields_and_other_kinds_are_refused() {
        let t = datetime!(2025-06-01 00:00 UTC);
        let rel = EventLogObjectQuery::new(&login())
            .unwrap()
            .fields(FieldSelection::Fields(vec!["CreatedBy.Username".into()]))
            .window(t, t + time::Duration::HOUR)
            .to_soql()
            .unwrap_err()
            .to_string();
        assert!(rel.contains("relationship"), "{rel}");
        let injected = EventLogObjectQuery::new(&login())
            .unwrap()
            .fields(FieldSelection::Fields(vec!["Id FROM Account --".into()]))
            .window(t, t + time::Duration::HOUR)
            .to_soql();
        assert!(injected.is_err());
        let explicit = EventLogObjectQuery::new(&login())
            .unwrap()
            .fields(FieldSelection::Fields(vec![
                "timestamp".into(),
                "UserIdentifier".into(),
            ]))
            .window(t, t + time::Duration::HOUR)
            .to_soql()
            .unwrap();
        assert!(
            explicit.starts_with("SELECT timestamp, UserIdentifier, Id FROM LoginEventLog"),
            "{explicit}"
        );
        let big = EventObject::named("LoginEvent").unwrap();
        assert!(EventLogObjectQuery::new(&big).is_err());
    }
}
