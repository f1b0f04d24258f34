//! SOQL for each kind of object, built so that only shapes the platform accepts can come out.
//!
//! Big objects ([`BigObjectQuery`]) take a filter on `EventDate` alone, `ORDER BY EventDate DESC`
//! and an optional `LIMIT`, nothing else: Salesforce answers anything more (another filter
//! field, `!=`, ascending order, an aggregate) with 400 `BIG_OBJECT_UNSUPPORTED_OPERATION`.
//! Standard objects ([`KeysetQuery`]) are read in `(CreatedDate, Id)` order from a keyset.

use time::OffsetDateTime;

use crate::datetime::rfc3339_millis;
use crate::error::Error;
use crate::objects::object::{EventObject, ObjectKind, is_api_name};
use crate::soql;

/// The SELECT list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FieldSelection {
    /// `FIELDS(STANDARD)`: every standard field, with no row limit (unlike `FIELDS(ALL)`, which
    /// Salesforce caps at 200 rows).
    #[default]
    Standard,
    /// Explicit API names. The fields the collector keys on (`EventDate` and `EventIdentifier`
    /// on big objects, `CreatedDate` and `Id` on standard ones) are added when missing, and
    /// duplicates are dropped (Salesforce refuses a field selected twice).
    Fields(Vec<String>),
}

impl FieldSelection {
    pub(crate) fn render(&self, required: &[&str]) -> Result<String, Error> {
        let FieldSelection::Fields(names) = self else {
            return Ok("FIELDS(STANDARD)".to_string());
        };
        let mut out: Vec<String> = Vec::new();
        for name in names
            .iter()
            .map(|n| n.trim())
            .chain(required.iter().copied())
        {
            if !is_api_name(name) {
                return Err(Error::InvalidArgument(format!(
                    "field {name:?} is not a Salesforce API name: use names like EventDate, \
                     SourceIp or CreatedBy.Username"
                )));
            }
            if !out.iter().any(|o| o.eq_ignore_ascii_case(name)) {
                out.push(name.to_string());
            }
        }
        Ok(out.join(", "))
    }
}

/// Moved to [`crate::datetime::rfc3339_millis`].
#[deprecated(
    since = "0.1.0",
    note = "moved to salesforce_jwt::datetime::rfc3339_millis"
)]
pub use crate::datetime::rfc3339_millis as datetime_millis;

/// A query on a big object: `SELECT … FROM X [WHERE EventDate > a AND EventDate <= b]
/// ORDER BY EventDate DESC [LIMIT n]`.
///
/// ```
/// use salesforce_jwt::objects::{BigObjectQuery, EventObject};
/// use time::macros::datetime;
///
/// let login = EventObject::named("LoginEvent").unwrap();
/// let soql = BigObjectQuery::new(&login)
///     .unwrap()
///     .window(datetime!(2024-07-08 07:00 UTC), datetime!(2024-07-08 08:00 UTC))
///     .to_soql()
///     .unwrap();
/// assert_eq!(
///     soql,
///     "SELECT FIELDS(STANDARD) FROM LoginEvent WHERE EventDate > 2024-07-08T07:00:00.000Z \
///      AND EventDate <= 2024-07-08T08:00:00.000Z ORDER BY EventDate DESC"
/// );
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BigObjectQuery {
    object: EventObject,
    fields: FieldSelection,
    after: Option<OffsetDateTime>,
    up_to: Option<OffsetDateTime>,
    limit: Option<u32>,
}

impl BigObjectQuery {
    /// A query on `object`, which must be a big object.
    pub fn new(object: &EventObject) -> Result<Self, Error> {
        if object.kind() != ObjectKind::BigObject {
            return Err(Error::InvalidArgument(format!(
                "{object} is a standard object: query it with KeysetQuery, in (CreatedDate, Id) \
                 order"
            )));
        }
        Ok(BigObjectQuery {
            object: object.clone(),
            fields: FieldSelection::Standard,
            after: None,
            up_to: None,
            limit: None,
        })
    }

    /// The SELECT list (default `FIELDS(STANDARD)`).
    pub fn fields(mut self, fields: FieldSelection) -> Self {
        self.fields = fields;
        self
    }

    /// Rows with `after < EventDate <= up_to`.
    pub fn window(mut self, after: OffsetDateTime, up_to: OffsetDateTime) -> Self {
        self.after = Some(after);
        self.up_to = Some(up_to);
        self
    }

    /// Rows with `EventDate > after` only.
    pub fn after(mut self, after: OffsetDateTime) -> Self {
        self.after = Some(after);
        self
    }

    /// Rows with `EventDate <= up_to` only.
    pub fn up_to(mut self, up_to: OffsetDateTime) -> Self {
        self.up_to = Some(up_to);
        self
    }

    /// At most `n` rows (the newest ones).
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }

    /// The SOQL text.
    pub fn to_soql(&self) -> Result<String, Error> {
        if let (Some(a), Some(b)) = (self.after, self.up_to)
            && a >= b
        {
            return Err(Error::InvalidArgument(format!(
                "an EventDate window on {} must end after it starts ({} .. {})",
                self.object,
                rfc3339_millis(a),
                rfc3339_millis(b)
            )));
        }
        let select = self.fields.render(&["EventDate", "EventIdentifier"])?;
        let mut soql = format!("SELECT {select} FROM {}", self.object.name());
        let mut filters = Vec::new();
        if let Some(a) = self.after {
            filters.push(format!("EventDate > {}", rfc3339_millis(a)));
        }
        if let Some(b) = self.up_to {
            filters.push(format!("EventDate <= {}", rfc3339_millis(b)));
        }
        if !filters.is_empty() {
            soql.push_str(" WHERE ");
            soql.push_str(&filters.join(" AND "));
        }
        // Not optional: the unordered result has no documented order, and EventDate DESC is the
        // only order these objects accept.
        soql.push_str(" ORDER BY EventDate DESC");
        if let Some(n) = self.limit {
            soql.push_str(&format!(" LIMIT {n}"));
        }
        Ok(soql)
    }
}

/// Where a keyset query starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KeysetStart {
    /// From the oldest row.
    #[default]
    Beginning,
    /// Rows with `CreatedDate > t`.
    After(OffsetDateTime),
    /// Rows after the key `(CreatedDate, Id)`: `CreatedDate > t OR (CreatedDate = t AND Id > id)`.
    /// `CreatedDate` has second precision, so many rows share one: the `Id` breaks the tie.
    AfterKey {
        /// The last delivered row's `CreatedDate`.
        created_date: OffsetDateTime,
        /// The last delivered row's `Id`.
        id: String,
    },
}

/// A query on a standard object in `(CreatedDate, Id)` order:
/// `SELECT … FROM X WHERE (CreatedDate > t OR (CreatedDate = t AND Id > 'x')) AND CreatedDate <= b
/// ORDER BY CreatedDate ASC, Id ASC [LIMIT n]`.
///
/// ```
/// use salesforce_jwt::objects::{EventObject, KeysetQuery, KeysetStart};
/// use time::macros::datetime;
///
/// let trail = EventObject::named("SetupAuditTrail").unwrap();
/// let soql = KeysetQuery::new(&trail)
///     .unwrap()
///     .start(KeysetStart::AfterKey {
///         created_date: datetime!(2022-08-16 09:26:38 UTC),
///         id: "0Ym5j000019nwonCAA".into(),
///     })
///     .up_to(datetime!(2022-08-16 10:00 UTC))
///     .to_soql()
///     .unwrap();
/// assert_eq!(
///     soql,
///     "SELECT FIELDS(STANDARD) FROM SetupAuditTrail WHERE (CreatedDate > \
///      2022-08-16T09:26:38.000Z OR (CreatedDate = 2022-08-16T09:26:38.000Z AND \
///      Id > '0Ym5j000019nwonCAA')) AND CreatedDate <= 2022-08-16T10:00:00.000Z \
///      ORDER BY CreatedDate ASC, Id ASC"
/// );
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct KeysetQuery {
    object: EventObject,
    fields: FieldSelection,
    start: KeysetStart,
    up_to: Option<OffsetDateTime>,
    limit: Option<u32>,
}

impl KeysetQuery {
    /// A query on `object`, which must be a standard object.
    pub fn new(object: &EventObject) -> Result<Self, Error> {
        match object.kind() {
            ObjectKind::Standard => {}
            ObjectKind::BigObject => {
                return Err(Error::InvalidArgument(format!(
                    "{object} is a big object: it only accepts an EventDate filter and ORDER BY \
                     EventDate DESC; query it with BigObjectQuery"
                )));
            }
            ObjectKind::EventLogObject => {
                return Err(Error::InvalidArgument(format!(
                    "{object} is an Event Log Object: it takes Timestamp windows of at most 15 \
                     days; query it with event_log_objects::EventLogObjectQuery"
                )));
            }
        }
        Ok(KeysetQuery {
            object: object.clone(),
            fields: FieldSelection::Standard,
            start: KeysetStart::Beginning,
            up_to: None,
            limit: None,
        })
    }

    /// The SELECT list (default `FIELDS(STANDARD)`).
    pub fn fields(mut self, fields: FieldSelection) -> Self {
        self.fields = fields;
        self
    }

    /// Where to start (default: the oldest row).
    pub fn start(mut self, start: KeysetStart) -> Self {
        self.start = start;
        self
    }

    /// Rows with `CreatedDate <= up_to` only.
    pub fn up_to(mut self, up_to: OffsetDateTime) -> Self {
        self.up_to = Some(up_to);
        self
    }

    /// At most `n` rows.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }

    /// The SOQL text.
    pub fn to_soql(&self) -> Result<String, Error> {
        let select = self.fields.render(&["Id", "CreatedDate"])?;
        let mut soql = format!("SELECT {select} FROM {}", self.object.name());
        let mut filters = Vec::new();
        match &self.start {
            KeysetStart::Beginning => {}
            KeysetStart::After(t) => filters.push(format!("CreatedDate > {}", rfc3339_millis(*t))),
            KeysetStart::AfterKey { created_date, id } => {
                let t = rfc3339_millis(*created_date);
                filters.push(format!(
                    "(CreatedDate > {t} OR (CreatedDate = {t} AND Id > {}))",
                    soql::string(id)
                ));
            }
        }
        if let Some(b) = self.up_to {
            filters.push(format!("CreatedDate <= {}", rfc3339_millis(b)));
        }
        if !filters.is_empty() {
            soql.push_str(" WHERE ");
            soql.push_str(&filters.join(" AND "));
        }
        soql.push_str(" ORDER BY CreatedDate ASC, Id ASC");
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

    #[test]
    fn big_object_shapes() {
        let login = EventObject::named("LoginEvent").unwrap();
        let q = BigObjectQuery::new(&login)
            .unwrap()
            .fields(FieldSelection::Fields(vec![
                "SourceIp".into(),
                "eventdate".into(),
            ]))
            .up_to(datetime!(2024-07-08 07:26:18.2391 UTC))
            .limit(50);
        assert_eq!(
            q.to_soql().unwrap(),
            "SELECT SourceIp, eventdate, EventIdentifier FROM LoginEvent WHERE EventDate <= \
             2024-07-08T07:26:18.239Z ORDER BY EventDate DESC LIMIT 50"
        );
        assert!(
            BigObjectQuery::new(&login)
                .unwrap()
                .fields(FieldSelection::Fields(vec!["Id FROM Account --".into()]))
                .to_soql()
                .is_err()
        );
        let t = datetime!(2024-07-08 07:00 UTC);
        assert!(
            BigObjectQuery::new(&login)
                .unwrap()
                .window(t, t)
                .to_soql()
                .is_err()
        );
        let trail = EventObject::named("SetupAuditTrail").unwrap();
        assert!(BigObjectQuery::new(&trail).is_err());
        assert!(KeysetQuery::new(&login).is_err());
    }

    #[test]
    fn keyset_escapes_the_id() {
        let trail = EventObject::named("SetupAuditTrail").unwrap();
        let soql = KeysetQuery::new(&trail)
            .unwrap()
            .start(KeysetStart::AfterKey {
                created_date: datetime!(2022-08-16 09:26:38 +02:00),
                id: "x' OR Id != '".into(),
            })
            .to_soql()
            .unwrap();
        assert!(soql.contains(r"Id > 'x\' OR Id != \''"), "{soql}");
        assert!(soql.contains("2022-08-16T07:26:38.000Z"));
    }
}
