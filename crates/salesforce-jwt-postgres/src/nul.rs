//! U+0000 in collected rows. PostgreSQL's `jsonb` refuses the `\u0000` escape and `text`
//! cannot hold the character, while a Salesforce field can (a user agent, a URI). Such a row is
//! stored with the character escaped, reversibly:
//!
//! - A record without U+0000 anywhere is stored as it is.
//! - In a record with U+0000, each top-level field whose name or value holds one is escaped:
//!   in its name and in every string inside its value, `\` becomes `\\` and U+0000 becomes
//!   `\0`. The record gets one more key, [`NUL_ESCAPED_KEY`], listing the names (as stored) of
//!   the fields escaped. Other fields are untouched.
//! - An `event_id` holding U+0000 (an id taken from a field) is escaped the same way.
//!
//! [`unescape_nul`] gives the record back as collected.

use serde_json::{Map, Value};

use crate::store::EventRow;

/// The key listing, in a stored record, the fields whose U+0000 were escaped (see
/// [`escape_nul`]). Reserved: a collected field of this name would be taken for it.
pub const NUL_ESCAPED_KEY: &str = "sfjwt_nul_escaped";

/// Escapes U+0000 in `row` so that PostgreSQL takes it (see the rules at [`NUL_ESCAPED_KEY`]'s
/// module: a field `"UserAgent": "a\u0000b\\c"` is stored as `"UserAgent": "a\\0b\\\\c"` with
/// `"sfjwt_nul_escaped": ["UserAgent"]`). Returns whether anything was escaped. A record that
/// is not a JSON object is left as it is.
pub fn escape_nul(row: &mut EventRow) -> bool {
    let mut escaped = false;
    if row.event_id.contains('\0') {
        row.event_id = escape_str(&row.event_id);
        escaped = true;
    }
    // serde_json writes U+0000 as `\u0000`; without that text the record cannot hold one.
    if !contains(&row.record, b"\\u0000") {
        return escaped;
    }
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&row.record) else {
        return escaped;
    };
    let mut names = Vec::new();
    let mut stored = Map::with_capacity(fields.len() + 1);
    for (name, mut value) in fields {
        if name.contains('\0') || holds_nul(&value) {
            let name = escape_str(&name);
            escape_value(&mut value);
            names.push(Value::String(name.clone()));
            stored.insert(name, value);
        } else {
            stored.insert(name, value);
        }
    }
    if names.is_empty() {
        // `\u0000` was text (`\\u0000`), not the character.
        return escaped;
    }
    stored.insert(NUL_ESCAPED_KEY.to_string(), Value::Array(names));
    if let Ok(record) = serde_json::to_vec(&Value::Object(stored)) {
        row.record = record;
    }
    true
}

/// The record as collected from one stored by [`escape_nul`]: the fields listed under
/// [`NUL_ESCAPED_KEY`] unescaped, and that key removed. A record without it is left as it is.
pub fn unescape_nul(record: &mut Value) {
    let Value::Object(fields) = record else {
        return;
    };
    let Some(Value::Array(names)) = fields.remove(NUL_ESCAPED_KEY) else {
        return;
    };
    for name in names {
        let Value::String(name) = name else {
            continue;
        };
        if let Some(mut value) = fields.remove(&name) {
            unescape_value(&mut value);
            fields.insert(unescape_str(&name), value);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(fields) => fields.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

fn escape_value(value: &mut Value) {
    match value {
        Value::String(s) => *s = escape_str(s),
        Value::Array(items) => items.iter_mut().for_each(escape_value),
        Value::Object(fields) => {
            *fields = std::mem::take(fields)
                .into_iter()
                .map(|(k, mut v)| {
                    escape_value(&mut v);
                    (escape_str(&k), v)
                })
                .collect();
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn unescape_value(value: &mut Value) {
    match value {
        Value::String(s) => *s = unescape_str(s),
        Value::Array(items) => items.iter_mut().for_each(unescape_value),
        Value::Object(fields) => {
            *fields = std::mem::take(fields)
                .into_iter()
                .map(|(k, mut v)| {
                    unescape_value(&mut v);
                    (unescape_str(&k), v)
                })
                .collect();
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn escape_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out
}

fn unescape_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('\0'),
            Some('\\') => out.push('\\'),
            // Not written by escape_str; kept as it is.
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(record: &Value) -> EventRow {
        EventRow {
            event_id: "id".into(),
            record: serde_json::to_vec(record).unwrap(),
        }
    }

    #[test]
    fn a_record_without_nul_is_stored_as_it_is() {
        let record = json!({"URI": "/a\\u0000b", "Path": "c:\\d", "N": 1});
        let mut stored = row(&record);
        let before = stored.record.clone();
        assert!(!escape_nul(&mut stored));
        assert_eq!(stored.record, before);
    }

    #[test]
    fn nul_is_escaped_in_the_fields_holding_one_and_unescaped_back() {
        let record = json!({
            "UserAgent": "a\u{0}b\\0c",
            "URI": "/x\\y",
            "Nested": {"k\u{0}": ["\u{0}", 2]},
            "ROWS": 3,
        });
        let mut stored = row(&record);
        assert!(escape_nul(&mut stored));
        let text = String::from_utf8(stored.record.clone()).unwrap();
        assert!(!text.contains("\\u0000"), "{text}");
        let mut value: Value = serde_json::from_slice(&stored.record).unwrap();
        assert_eq!(value["UserAgent"], json!("a\\0b\\\\0c"));
        // A field without NUL keeps its backslash as collected.
        assert_eq!(value["URI"], json!("/x\\y"));
        assert_eq!(value["Nested"], json!({"k\\0": ["\\0", 2]}));
        let mut listed: Vec<_> = value[NUL_ESCAPED_KEY]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        listed.sort();
        assert_eq!(listed, ["Nested", "UserAgent"]);
        unescape_nul(&mut value);
        assert_eq!(value, record);
    }

    #[test]
    fn a_nul_in_a_field_name_or_the_event_id_is_escaped_too() {
        let record = json!({"A\u{0}": "x"});
        let mut stored = EventRow {
            event_id: "e\u{0}\\".into(),
            record: serde_json::to_vec(&record).unwrap(),
        };
        assert!(escape_nul(&mut stored));
        assert_eq!(stored.event_id, "e\\0\\\\");
        assert_eq!(unescape_str(&stored.event_id), "e\u{0}\\");
        let mut value: Value = serde_json::from_slice(&stored.record).unwrap();
        assert_eq!(value, json!({"A\\0": "x", NUL_ESCAPED_KEY: ["A\\0"]}));
        unescape_nul(&mut value);
        assert_eq!(value, record);
    }
}
