//! [`ObjectRecord`]: one row of any object, field name to JSON value.

use std::fmt;
use std::sync::OnceLock;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// One row of a query on any object, as Salesforce returned it: every field under its API name
/// with its JSON value. Relationship fields stay nested objects (`"CreatedBy": {"Username": ...}`);
/// the `attributes` entries Salesforce adds (object type and URL) are dropped at every level.
///
/// ```
/// use salesforce_jwt::objects::ObjectRecord;
///
/// let row: ObjectRecord = serde_json::from_str(
///     r#"{"attributes":{"type":"LoginEvent"},"EventDate":"2024-07-08T07:26:18.239+0000",
///         "EventIdentifier":"95eeec6d-1e93-46c1-882b-88bd28f7f8de","Id":"000000000000000AAA"}"#,
/// ).unwrap();
/// assert_eq!(row.event_identifier(), Some("95eeec6d-1e93-46c1-882b-88bd28f7f8de"));
/// assert!(row.get("attributes").is_none());
/// ```
#[derive(Clone, Default)]
pub struct ObjectRecord {
    /// The field names and values, back to back: each value as the JSON text serde_json writes
    /// for it (what `serde_json::to_writer` of the `Value` gives), plus the unescaped text of a
    /// string value where it differs from the inside of its quotes.
    bytes: Vec<u8>,
    /// One entry per field, sorted by name as a `serde_json::Map` is.
    members: Vec<Member>,
    /// The fields as a map, built on the first call that needs a `Value` ([`get`](Self::get),
    /// [`fields`](Self::fields)): the collector and the NDJSON output work from `members`.
    map: OnceLock<Map<String, Value>>,
}

/// Where one field's name, JSON text and (for a string) unescaped text are in `bytes`.
#[derive(Debug, Clone, Copy)]
struct Member {
    name: (usize, usize),
    json: (usize, usize),
    text: Option<(usize, usize)>,
}

impl fmt::Debug for ObjectRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Fields<'a>(&'a ObjectRecord);
        impl fmt::Debug for Fields<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.json_fields().map(|(name, json)| (name, Raw(json))))
                    .finish()
            }
        }
        struct Raw<'a>(&'a str);
        impl fmt::Debug for Raw<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
        }
        f.debug_struct("ObjectRecord")
            .field("fields", &Fields(self))
            .finish()
    }
}

/// Equal when the fields are: the JSON texts are compared first, the values only when those
/// differ (`-0.0` and `0.0` are equal numbers with different texts).
impl PartialEq for ObjectRecord {
    fn eq(&self, other: &Self) -> bool {
        self.json_fields().eq(other.json_fields()) || self.fields() == other.fields()
    }
}

/// The fields as a JSON object, as a `serde_json::Map` of them serializes.
impl Serialize for ObjectRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.members.len()))?;
        for (name, value) in self.serializable_fields() {
            map.serialize_entry(name, &value)?;
        }
        map.end()
    }
}

/// A field's value, serialized as its `Value` would be, from its JSON text: a string from its
/// text, a number as the `serde_json::Number` it reads as; only objects and arrays
/// (relationships) go through a `Value`.
#[derive(Clone, Copy)]
pub(crate) struct FieldValue<'a> {
    json: &'a [u8],
    text: Option<&'a str>,
}

impl Serialize for FieldValue<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if let Some(text) = self.text {
            return s.serialize_str(text);
        }
        match self.json.first() {
            Some(b'n') => s.serialize_unit(),
            Some(b't') => s.serialize_bool(true),
            Some(b'f') => s.serialize_bool(false),
            Some(b'{' | b'[') => serde_json::from_slice::<Value>(self.json)
                .map_err(serde::ser::Error::custom)?
                .serialize(s),
            _ => serde_json::from_slice::<serde_json::Number>(self.json)
                .map_err(serde::ser::Error::custom)?
                .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ObjectRecord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RecordVisitor)
    }
}

/// Reads a record's fields straight into an [`ObjectRecord`]'s buffer: no `Value` per field
/// except for relationships and subqueries (objects and arrays), whose `attributes` must go.
struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = ObjectRecord;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record (a JSON object of fields)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<ObjectRecord, A::Error> {
        let mut record = ObjectRecord {
            bytes: Vec::with_capacity(1024),
            members: Vec::with_capacity(access.size_hint().unwrap_or(32)),
            map: OnceLock::new(),
        };
        while let Some(name) = access.next_key_seed(NameSeed(&mut record.bytes))? {
            if &record.bytes[name.0..name.1] == b"attributes" {
                record.bytes.truncate(name.0);
                access.next_value::<IgnoredAny>()?;
                continue;
            }
            let (json, text) = access.next_value_seed(ValueSeed(&mut record.bytes))?;
            record.members.push(Member { name, json, text });
        }
        record.sort_members();
        Ok(record)
    }
}

/// A field name, copied into the record's buffer.
struct NameSeed<'b>(&'b mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for NameSeed<'_> {
    type Value = (usize, usize);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for NameSeed<'_> {
    type Value = (usize, usize);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        let start = self.0.len();
        self.0.extend_from_slice(name.as_bytes());
        Ok((start, self.0.len()))
    }
}

/// A field value, written into the record's buffer as serde_json would write its `Value`.
/// Returns the JSON text's place and, for a string, its unescaped text's.
struct ValueSeed<'b>(&'b mut Vec<u8>);

type Placed = ((usize, usize), Option<(usize, usize)>);

impl ValueSeed<'_> {
    fn json<E: de::Error>(self, value: &impl Serialize) -> Result<Placed, E> {
        let start = self.0.len();
        serde_json::to_writer(&mut *self.0, value).map_err(E::custom)?;
        Ok(((start, self.0.len()), None))
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Placed;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Placed;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Placed, E> {
        self.json(&v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Placed, E> {
        self.json(&v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Placed, E> {
        self.json(&v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Placed, E> {
        // As `Value` does: a number JSON cannot hold is null.
        match serde_json::Number::from_f64(v) {
            Some(n) => self.json(&n),
            None => self.visit_unit(),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Placed, E> {
        let start = self.0.len();
        serde_json::to_writer(&mut *self.0, v).map_err(E::custom)?;
        let end = self.0.len();
        // Nothing was escaped: the text is the inside of the quotes.
        let text = if end - start == v.len() + 2 {
            (start + 1, end - 1)
        } else {
            self.0.extend_from_slice(v.as_bytes());
            (end, self.0.len())
        };
        Ok(((start, end), Some(text)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Placed, E> {
        let start = self.0.len();
        self.0.extend_from_slice(b"null");
        Ok(((start, self.0.len()), None))
    }

    fn visit_none<E: de::Error>(self) -> Result<Placed, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Placed, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Placed, A::Error> {
        let mut value = Value::deserialize(SeqAccessDeserializer::new(seq))?;
        strip_nested(&mut value);
        self.json(&value)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Placed, A::Error> {
        let mut value = Value::deserialize(MapAccessDeserializer::new(map))?;
        strip_nested(&mut value);
        self.json(&value)
    }
}

/// A relationship (object) or child relationship (array of objects) without `attributes`.
fn strip_nested(value: &mut Value) {
    match value {
        Value::Object(inner) => strip_attributes(inner),
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

fn strip_attributes(map: &mut Map<String, Value>) {
    map.remove("attributes");
    for value in map.values_mut() {
        strip_nested(value);
    }
}

impl ObjectRecord {
    /// A record from a JSON object (its `attributes` are dropped).
    pub fn from_map(mut fields: Map<String, Value>) -> Self {
        strip_attributes(&mut fields);
        let mut record = ObjectRecord {
            bytes: Vec::new(),
            members: Vec::with_capacity(fields.len()),
            map: OnceLock::new(),
        };
        for (name, value) in &fields {
            let start = record.bytes.len();
            record.bytes.extend_from_slice(name.as_bytes());
            let name = (start, record.bytes.len());
            let placed: Result<Placed, serde_json::Error> = match value {
                Value::String(s) => ValueSeed(&mut record.bytes).visit_str(s),
                other => ValueSeed(&mut record.bytes).json(other),
            };
            // Writing a `Value` into a Vec cannot fail; a field that somehow did is left out
            // of the raw form only (the map below keeps it).
            if let Ok((json, text)) = placed {
                record.members.push(Member { name, json, text });
            } else {
                record.bytes.truncate(start);
            }
        }
        // A Map iterates in name order already.
        record.map = OnceLock::from(fields);
        record
    }

    /// Sorts by name as a `serde_json::Map` does and keeps the last of duplicate names, as
    /// inserting into one does.
    fn sort_members(&mut self) {
        let bytes = &self.bytes;
        let name = |m: &Member| &bytes[m.name.0..m.name.1];
        if !self.members.is_sorted_by(|a, b| name(a) < name(b)) {
            self.members.sort_by(|a, b| name(a).cmp(name(b)));
            let mut deduped: Vec<Member> = Vec::with_capacity(self.members.len());
            for m in self.members.drain(..) {
                match deduped.last_mut() {
                    Some(last) if name(last) == name(&m) => *last = m,
                    _ => deduped.push(m),
                }
            }
            self.members = deduped;
        }
    }

    fn str_at(&self, (start, end): (usize, usize)) -> &str {
        // Only ever whole UTF-8 texts are written at these places.
        std::str::from_utf8(&self.bytes[start..end]).unwrap_or_default()
    }

    fn member(&self, name: &str) -> Option<&Member> {
        let bytes = &self.bytes;
        self.members
            .binary_search_by(|m| bytes[m.name.0..m.name.1].cmp(name.as_bytes()))
            .ok()
            .map(|i| &self.members[i])
    }

    /// Every field as its name and its value's JSON text (exactly what `serde_json` writes for
    /// the value, relationships without `attributes`), in name order. Lets an encoder copy
    /// values to its output without building a `Value`.
    ///
    /// ```
    /// use salesforce_jwt::objects::ObjectRecord;
    ///
    /// let row: ObjectRecord = serde_json::from_str(
    ///     r#"{"attributes":{"type":"LoginEvent"},"Status":"Success","EvaluationTime":0.5}"#,
    /// ).unwrap();
    /// let fields: Vec<_> = row.json_fields().collect();
    /// assert_eq!(fields, [("EvaluationTime", "0.5"), ("Status", "\"Success\"")]);
    /// ```
    pub fn json_fields(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.members
            .iter()
            .map(|m| (self.str_at(m.name), self.str_at(m.json)))
    }

    /// The fields as name and serializable value, in name order.
    pub(crate) fn serializable_fields(&self) -> impl Iterator<Item = (&str, FieldValue<'_>)> {
        self.members.iter().map(|m| {
            let value = FieldValue {
                json: &self.bytes[m.json.0..m.json.1],
                text: m.text.map(|t| self.str_at(t)),
            };
            (self.str_at(m.name), value)
        })
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the record has no field.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The value of a field by API name (exact case, as Salesforce returns them); a relationship
    /// path (`CreatedBy.Username`) walks the nested objects.
    pub fn get(&self, name: &str) -> Option<&Value> {
        let mut parts = name.split('.');
        let mut value = self.fields().get(parts.next()?)?;
        for part in parts {
            value = value.as_object()?.get(part)?;
        }
        Some(value)
    }

    /// A text field's value; `None` when absent, null or not text.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        if name.contains('.') {
            return self.get(name)?.as_str();
        }
        self.member(name)?.text.map(|t| self.str_at(t))
    }

    /// A datetime field's value (`2024-07-08T07:26:18.239+0000`), in UTC; `None` when absent,
    /// null or not a datetime.
    pub fn get_datetime(&self, name: &str) -> Option<OffsetDateTime> {
        crate::datetime::parse(self.get_str(name)?).ok()
    }

    /// Every field, in the order of the map (sorted by name). Built on first use:
    /// [`json_fields`](Self::json_fields) and [`get_str`](Self::get_str) need no map.
    pub fn fields(&self) -> &Map<String, Value> {
        self.map.get_or_init(|| {
            self.members
                .iter()
                .map(|m| {
                    let json = &self.bytes[m.json.0..m.json.1];
                    // serde_json wrote this text: it reads back as the same value.
                    let value = serde_json::from_slice(json).unwrap_or(Value::Null);
                    (self.str_at(m.name).to_string(), value)
                })
                .collect()
        })
    }

    /// The fields, owned.
    pub fn into_fields(mut self) -> Map<String, Value> {
        match self.map.take() {
            Some(map) => map,
            None => {
                self.fields();
                self.map.take().unwrap_or_default()
            }
        }
    }

    /// The row as one JSON line of the NDJSON output, without the newline: every field in name
    /// order, then `"SObjectType": "<sobject_type>"` (a field of that name is replaced).
    /// Appends to `out` exactly the bytes `serde_json::to_writer` writes for
    /// [`NdjsonObjectRow`](crate::sink::NdjsonObjectRow), copying the values' JSON texts
    /// instead of building and serializing a map.
    pub fn write_ndjson(&self, sobject_type: &str, out: &mut Vec<u8>) {
        out.push(b'{');
        for m in &self.members {
            let name = self.str_at(m.name);
            if name == "SObjectType" {
                continue;
            }
            write_json_str(out, name);
            out.push(b':');
            out.extend_from_slice(&self.bytes[m.json.0..m.json.1]);
            out.push(b',');
        }
        write_json_str(out, "SObjectType");
        out.push(b':');
        write_json_str(out, sobject_type);
        out.push(b'}');
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

    /// The row deserialized into a typed model ([`LoginEvent`](crate::objects::LoginEvent),
    /// [`SetupAuditTrail`](crate::objects::SetupAuditTrail), or a struct of one's own).
    pub fn to_typed<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        // From the fields' JSON texts: no copy of the record into a `Value` tree first.
        T::deserialize(RecordDeserializer(self))
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
        // A string's text, another value's JSON text, null and absent as nothing: what the
        // `Value`s gave (`Value::to_string` is the same JSON text).
        let part = |name: &str| match self.member(name) {
            Some(m) => match m.text {
                Some(text) => self.str_at(text).to_string(),
                None if &self.bytes[m.json.0..m.json.1] == b"null" => String::new(),
                None => self.str_at(m.json).to_string(),
            },
            None => String::new(),
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

/// A JSON string as serde_json writes it.
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// A record as a serde map: names as they are, each value read from its JSON text.
struct RecordDeserializer<'a>(&'a ObjectRecord);

impl<'de> Deserializer<'de> for RecordDeserializer<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(RecordAccess {
            record: self.0,
            next: 0,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct RecordAccess<'a> {
    record: &'a ObjectRecord,
    next: usize,
}

impl<'de> MapAccess<'de> for RecordAccess<'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some(m) = self.record.members.get(self.next) else {
            return Ok(None);
        };
        let name = self.record.str_at(m.name);
        seed.deserialize(de::value::BorrowedStrDeserializer::new(name))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let Some(m) = self.record.members.get(self.next) else {
            return Err(de::Error::custom("a value was asked for without its field"));
        };
        self.next += 1;
        let mut json = serde_json::Deserializer::from_slice(&self.record.bytes[m.json.0..m.json.1]);
        let value = seed.deserialize(&mut json)?;
        json.end()?;
        Ok(value)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.record.members.len() - self.next)
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
