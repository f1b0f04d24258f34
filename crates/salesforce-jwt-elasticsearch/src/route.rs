//! Which data stream a document goes to, and its `_id`.

use std::borrow::Cow;

use serde::Deserialize;

/// The data stream of a document: `logs-<dataset>-<namespace>`, the naming scheme of Elastic's
/// data streams (`logs-salesforce.login-default`).
pub fn data_stream_name(dataset: &str, namespace: &str) -> String {
    format!("logs-{dataset}-{namespace}")
}

/// Checks a dataset or namespace as Elastic's data stream naming scheme wants it: lowercase,
/// no `-` (it separates the parts), none of `\ / * ? " < > | , #` or spaces, at most 100 bytes.
pub(crate) fn check_part(what: &str, value: &str) -> Result<(), String> {
    let bad = |c: char| {
        c.is_ascii_uppercase()
            || c.is_whitespace()
            || matches!(
                c,
                '-' | '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#'
            )
    };
    if value.is_empty() || value.len() > 100 || value.chars().any(bad) {
        return Err(format!(
            "{value:?} cannot be part of a data stream name: a {what} is lowercase, at most 100 \
             bytes, without '-', spaces or any of \\ / * ? \" < > | , #"
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    event: Option<EventHead<'a>>,
    #[serde(borrow, default)]
    data_stream: Option<DataStreamHead<'a>>,
}

#[derive(Deserialize)]
struct EventHead<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    dataset: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct DataStreamHead<'a> {
    #[serde(borrow, default)]
    dataset: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    namespace: Option<Cow<'a, str>>,
}

/// Where a document goes: its `_id` and data stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub id: String,
    pub index: String,
}

/// The route of one ECS document (JSON text): `_id` = `event.id`; the data stream from
/// `data_stream.dataset` (else `event.dataset`) and `data_stream.namespace` (else `namespace`).
pub(crate) fn route(doc: &[u8], namespace: &str) -> Result<Route, String> {
    let head: Head<'_> = serde_json::from_slice(doc)
        .map_err(|e| format!("a document is not a JSON object ({e})"))?;
    let event = head.event;
    let id = event
        .as_ref()
        .and_then(|e| e.id.as_deref())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| "a document has no event.id, which is its _id".to_string())?
        .to_string();
    let stream = head.data_stream;
    let dataset = stream
        .as_ref()
        .and_then(|d| d.dataset.as_deref())
        .or_else(|| event.as_ref().and_then(|e| e.dataset.as_deref()))
        .ok_or_else(|| format!("the document {id} has no data_stream.dataset or event.dataset"))?;
    let namespace = stream
        .as_ref()
        .and_then(|d| d.namespace.as_deref())
        .unwrap_or(namespace);
    check_part("dataset", dataset).map_err(|e| format!("the document {id}: {e}"))?;
    check_part("namespace", namespace).map_err(|e| format!("the document {id}: {e}"))?;
    Ok(Route {
        index: data_stream_name(dataset, namespace),
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_stream_fields_win_over_event_dataset_and_the_default_namespace() {
        let doc = br#"{"@timestamp":"x","event":{"dataset":"salesforce.login","id":"ab"}}"#;
        assert_eq!(
            route(doc, "default").unwrap(),
            Route {
                id: "ab".into(),
                index: "logs-salesforce.login-default".into()
            }
        );
        let doc = br#"{"data_stream":{"dataset":"salesforce.apex","namespace":"prod"},"event":{"dataset":"salesforce.login","id":"ab"}}"#;
        assert_eq!(
            route(doc, "default").unwrap().index,
            "logs-salesforce.apex-prod"
        );
        assert!(
            route(br#"{"event":{"dataset":"salesforce.login"}}"#, "default")
                .unwrap_err()
                .contains("event.id")
        );
        assert!(route(br#"{"event":{"dataset":"Bad-Set","id":"a"}}"#, "default").is_err());
    }
}
