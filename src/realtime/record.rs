//! [`ObjectRecord`]: one row of any object, field name to JSON value.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::event_log::sf_datetime;

/// One row of a query on any object, as Salesforce returned it: every field under its API name
/// with its JSON value. Relationship fields stay nested objects (`"CreatedBy": {"Username": ...}`);
/// the `attributes` entries Salesforce adds (object type and URL) are dropped at every level.
///
/// ```
/// use salesforce_jwt::realtime::ObjectRecord;
///
/// let row: ObjectRecord = serde_json::from_str(
///     r#"{"attributes":{"type":"LoginEvent"},"EventDate":"2024-07-08T07:26:18.239+0000",
///         "EventIdentifier":"95eeec6d-1e93-46c1-882b-88bd28f7f8de","Id":"000000000000000AAA"}"#,
/// ).unwrap();
/// assert_eq!(row.event_identifier(), Some("95eeec6d-1e93-46c1-882b-88bd28f7f8de"));
/// assert!(row.get("attributes").is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct ObjectRecord {
    fields: Map<String, Value>,
}

impl<'de> Deserialize<'de> for ObjectRecord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut fields = Map::<String, Value>::deserialize(d)?;
        strip_attributes(&mut fields);
        Ok(ObjectRecord { fields })
    }
}

fn strip_attributes(map: &mut Map<String, Value>) {
    map.remove("attributes");
    for value in map.values_mut() {
        match value {
            Value::Object(inner) => strip_attributes(inner),
            // A child relationship (subquery) comes back as a nested query result.
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(inner) = item {
                        strip_attributes(inner);
                    }
                }
            }
            _ => {}
        }
    }
}

impl ObjectRecord {
    /// A record from a JSON object (its `attributes` are dropped).
    pub fn from_map(mut fields: Map<String, Value>) -> Self {
        strip_attributes(&mut fields);
        ObjectRecord { fields }
    }

    /// The value of a field by API name (exact case, as Salesforce returns them); a relationship
    /// path (`CreatedBy.Username`) walks the nested objects.
    pub fn get(&self, name: &str) -> Option<&Value> {
        let mut parts = name.split('.');
        let mut value = self.fields.get(parts.next()?)?;
        for part in parts {
            value = value.as_object()?.get(part)?;
        }
        Some(value)
    }

    /// A text field's value; `None` when absent, null or not text.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name)?.as_str()
    }

    /// A datetime field's value (`2024-07-08T07:26:18.239+0000`), in UTC; `None` when absent,
    /// null or not a datetime.
    pub fn get_datetime(&self, name: &str) -> Option<OffsetDateTime> {
        sf_datetime::parse(self.get_str(name)?).ok()
    }

    /// Every field, in the order of the map (sorted by name).
    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// The fields, owned.
    pub fn into_fields(self) -> Map<String, Value> {
        self.fields
    }

    /// `EventDate`: when the event happened (big objects and most event stores).
    pub fn event_date(&self) -> Option<OffsetDateTime> {
        self.get_datetime("EventDate")
    }

    /// `EventIdentifier`: the unique id of a big-object row (`Id` is not a key there).
    pub fn event_identifier(&self) -> Option<&str> {
        self.get_str("EventIdentifier").filter(|s| !s.is_empty())
    }

    /// `CreatedDate`: when the stored row was written.
    pub fn created_date(&self) -> Option<OffsetDateTime> {
        self.get_datetime("CreatedDate")
    }

    /// `Id`. On big objects it is always `000000000000000AAA` and identifies nothing.
    pub fn id(&self) -> Option<&str> {
        self.get_str("Id").filter(|s| !s.is_empty())
    }

    /// The row deserialized into a typed model ([`LoginEvent`](crate::realtime::LoginEvent),
    /// [`SetupAuditTrail`](crate::realtime::SetupAuditTrail), or a struct of one's own).
    pub fn to_typed<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(Value::Object(self.fields.clone()))
    }

    /// The key that tells a big-object row apart: `EventIdentifier`, or, if a row ever comes
    /// without one, a composite of the fields that describe the event (EventDate, UserId,
    /// SessionKey, LoginKey, SourceIp). Elastic's field docs once claimed LogoutEvent's
    /// EventIdentifier is blank for ordinary logouts; Salesforce's page and real rows show it
    /// set, but the fallback keeps such a row from being dropped as a duplicate of another.
    pub fn dedupe_key(&self) -> String {
        if let Some(id) = self.event_identifier() {
            return id.to_string();
        }
        let part = |name: &str| match self.get(name) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        format!(
            "composite:{}|{}|{}|{}|{}",
            part("EventDate"),
            part("UserId"),
            part("SessionKey"),
            part("LoginKey"),
            part("SourceIp")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_relationships_keep_their_fields_without_attributes() {
        let row: ObjectRecord = serde_json::from_str(
            r#"{"attributes":{"type":"SetupAuditTrail","url":"/x"},"Id":"0Ym5j000019nwonCAA",
                "CreatedBy":{"attributes":{"type":"User","url":"/y"},"Username":"a@b.c"},
                "CreatedDate":"2022-08-16T09:26:38.000+0000","DelegateUser":null}"#,
        )
        .unwrap();
        assert_eq!(row.get_str("CreatedBy.Username"), Some("a@b.c"));
        assert!(row.get("CreatedBy.attributes").is_none());
        assert_eq!(row.get("DelegateUser"), Some(&Value::Null));
        assert_eq!(row.id(), Some("0Ym5j000019nwonCAA"));
        assert!(row.created_date().is_some());
        assert!(row.dedupe_key().starts_with("composite:"));
    }
}
