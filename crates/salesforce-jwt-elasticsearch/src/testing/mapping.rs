//! The double's mappings: dynamic types, template types, and the refusal of a value that does
//! not fit its field's type (`mapper_parsing_exception`).

use std::collections::BTreeMap;

use serde_json::Value;

/// A refusal: `error.type` and `error.reason`.
pub(crate) type Refusal = (String, String);

/// The field types of a template's `template.mappings.properties`, by dotted path.
pub(crate) fn template_types(template: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(props) = template
        .pointer("/template/mappings/properties")
        .and_then(Value::as_object)
    {
        flatten("", props, &mut out);
    }
    out
}

fn flatten(
    prefix: &str,
    props: &serde_json::Map<String, Value>,
    out: &mut BTreeMap<String, String>,
) {
    for (name, field) in props {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let kind = field
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("object");
        out.insert(path.clone(), kind.to_string());
        if let Some(inner) = field.get("properties").and_then(Value::as_object) {
            flatten(&path, inner, out);
        }
    }
}

/// Whether `pattern` (with `*` wildcards) matches `name`.
pub(crate) fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == name;
    };
    if parts.len() == 1 {
        return pattern == name;
    }
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Checks `doc` against `mappings`; the new fields' dynamic types when it fits.
/// Whether a template's settings turn on `index.mapping.ignore_malformed`, in any of the
/// spellings Elasticsearch accepts (nested or dotted).
pub(crate) fn ignores_malformed(template: &Value) -> bool {
    let Some(settings) = template.pointer("/template/settings") else {
        return false;
    };
    [
        "/index/mapping/ignore_malformed",
        "/mapping/ignore_malformed",
        "/index.mapping.ignore_malformed",
        "/index/mapping.ignore_malformed",
    ]
    .iter()
    .filter_map(|p| settings.pointer(p))
    .any(|v| v == true || v == "true")
}

/// Checks `doc` against `mappings`; the new fields' dynamic types when it fits. With
/// `ignore_malformed`, a value that does not fit a numeric, date or ip field is left unindexed
/// instead of refusing the document (an object where a value is mapped, or the reverse, is
/// still refused).
pub(crate) fn check(
    doc: &Value,
    mappings: &BTreeMap<String, String>,
    id: &str,
    ignore_malformed: bool,
) -> Result<Vec<(String, String)>, Refusal> {
    let Some(root) = doc.as_object() else {
        return Err((
            "mapper_parsing_exception".into(),
            "failed to parse, document is empty".into(),
        ));
    };
    let mut added = BTreeMap::new();
    let mut walker = Walker {
        mappings,
        added: &mut added,
        id,
        ignore_malformed,
    };
    for (name, value) in root {
        walker.walk(name, value)?;
    }
    Ok(added.into_iter().collect())
}

struct Walker<'a> {
    mappings: &'a BTreeMap<String, String>,
    added: &'a mut BTreeMap<String, String>,
    id: &'a str,
    ignore_malformed: bool,
}

impl Walker<'_> {
    fn walk(&mut self, path: &str, value: &Value) -> Result<(), Refusal> {
        let mapped = self
            .mappings
            .get(path)
            .or_else(|| self.added.get(path))
            .cloned();
        match value {
            Value::Null => Ok(()),
            Value::Array(values) => values.iter().try_for_each(|v| self.walk(path, v)),
            Value::Object(fields) => match mapped.as_deref() {
                Some("object") | Some("nested") => self.walk_fields(path, fields),
                Some("geo_point") => Ok(()),
                Some(kind) => Err(parse_failure(path, kind, self.id, value)),
                None => {
                    self.added.insert(path.to_string(), "object".into());
                    self.walk_fields(path, fields)
                }
            },
            scalar => match mapped.as_deref() {
                Some("object") | Some("nested") => Err((
                    "mapper_parsing_exception".into(),
                    format!(
                        "object mapping for [{path}] tried to parse field [{path}] as object, but found a concrete value"
                    ),
                )),
                Some(kind) => {
                    if fits(kind, scalar) || (self.ignore_malformed && kind != "boolean") {
                        Ok(())
                    } else {
                        Err(parse_failure(path, kind, self.id, scalar))
                    }
                }
                None => {
                    self.added
                        .insert(path.to_string(), dynamic_type(scalar).into());
                    Ok(())
                }
            },
        }
    }

    fn walk_fields(
        &mut self,
        path: &str,
        fields: &serde_json::Map<String, Value>,
    ) -> Result<(), Refusal> {
        for (name, value) in fields {
            self.walk(&format!("{path}.{name}"), value)?;
        }
        Ok(())
    }
}

fn parse_failure(path: &str, kind: &str, id: &str, value: &Value) -> Refusal {
    let preview = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    (
        "mapper_parsing_exception".into(),
        format!(
            "failed to parse field [{path}] of type [{kind}] in document with id '{id}'. Preview of field's value: '{preview}'"
        ),
    )
}

fn dynamic_type(value: &Value) -> &'static str {
    match value {
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "long",
        Value::String(s) if looks_like_date(s) => "date",
        _ => "keyword",
    }
}

/// `strict_date_optional_time`'s start: `yyyy-MM-dd`, alone or followed by `T`.
fn looks_like_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
        && (b.len() == 10 || b[10] == b'T')
}

fn fits(kind: &str, value: &Value) -> bool {
    match kind {
        "long" | "integer" | "short" | "byte" | "unsigned_long" | "float" | "double"
        | "half_float" | "scaled_float" => match value {
            Value::Number(_) => true,
            // Elasticsearch coerces numeric strings by default.
            Value::String(s) => s.trim().parse::<f64>().is_ok(),
            _ => false,
        },
        "boolean" => {
            matches!(value, Value::Bool(_))
                || matches!(value, Value::String(s) if s == "true" || s == "false" || s.is_empty())
        }
        "date" => match value {
            Value::Number(_) => true,
            Value::String(s) => looks_like_date(s),
            _ => false,
        },
        "ip" => matches!(value, Value::String(s) if s.parse::<std::net::IpAddr>().is_ok()),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_first_type_sticks_and_a_conflict_is_a_mapper_parsing_exception() {
        let first = check(
            &json!({"a": {"n": 1}, "t": "2024-01-01T00:00:00Z"}),
            &BTreeMap::new(),
            "1",
            false,
        )
        .unwrap();
        let mappings: BTreeMap<String, String> = first.into_iter().collect();
        assert_eq!(mappings["a.n"], "long");
        assert_eq!(mappings["t"], "date");
        let (kind, reason) = check(&json!({"a": {"n": "x"}}), &mappings, "2", false).unwrap_err();
        assert_eq!(kind, "mapper_parsing_exception");
        assert!(
            reason.contains("[a.n] of type [long]") && reason.contains("'2'"),
            "{reason}"
        );
        assert!(
            check(&json!({"a": 3}), &mappings, "3", false)
                .unwrap_err()
                .1
                .contains("object mapping for [a]")
        );
        assert!(
            check(&json!({"a": {"n": "12"}}), &mappings, "4", false).is_ok(),
            "coerced"
        );
        // ignore_malformed (the built-in logs template's setting) keeps the document...
        assert!(check(&json!({"a": {"n": "x"}}), &mappings, "5", true).is_ok());
        // ...but not one with a value where an object is mapped.
        assert!(check(&json!({"a": 3}), &mappings, "6", true).is_err());
    }

    #[test]
    fn globs() {
        assert!(glob("logs-salesforce.*-*", "logs-salesforce.login-default"));
        assert!(!glob("logs-salesforce.*-*", "logs-other-default"));
        assert!(glob("logs-*-*", "logs-a-b"));
    }
}
