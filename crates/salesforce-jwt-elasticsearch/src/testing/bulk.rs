//! The `_bulk` endpoint of the double, over its state.

use serde_json::{Value, json};

use super::mapping::{check, glob, ignores_malformed, template_types};
use super::{State, StoredStream};

/// An error answer: status and body, in Elasticsearch's shape.
pub(crate) fn error_body(status: u16, kind: &str, reason: &str) -> (u16, Value) {
    (
        status,
        json!({
            "error": {
                "root_cause": [{"type": kind, "reason": reason}],
                "type": kind,
                "reason": reason,
            },
            "status": status,
        }),
    )
}

fn item_error(kind: &str, reason: &str, index: &str) -> Value {
    json!({"type": kind, "reason": reason, "index_uuid": "dOuBlEuUiDdOuBlEuUiD00", "shard": "0", "index": index})
}

/// Applies one `_bulk` body (uncompressed); the answer, or a whole-request error.
pub(crate) fn apply(
    state: &mut State,
    body: &[u8],
    default_index: Option<&str>,
    today: &str,
) -> Result<(Value, usize), (u16, Value)> {
    if !body.ends_with(b"\n") {
        return Err(error_body(
            400,
            "illegal_argument_exception",
            "The bulk request must be terminated by a newline [\\n]",
        ));
    }
    let mut lines = body
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace));
    let mut items = Vec::new();
    let mut errors = false;
    while let Some((n, line)) = lines.next() {
        let action: Value = serde_json::from_slice(line).map_err(|e| {
            error_body(
                400,
                "x_content_parse_exception",
                &format!(
                    "[{}:1] Malformed action/metadata line [{}]: {e}",
                    n + 1,
                    n + 1
                ),
            )
        })?;
        let Some((op, meta)) = action.as_object().and_then(|o| o.iter().next()) else {
            return Err(error_body(
                400,
                "illegal_argument_exception",
                &format!(
                    "Malformed action/metadata line [{}], expected START_OBJECT",
                    n + 1
                ),
            ));
        };
        if !matches!(op.as_str(), "create" | "index" | "update" | "delete") {
            return Err(error_body(
                400,
                "illegal_argument_exception",
                &format!(
                    "Malformed action/metadata line [{}], expected field [create], [delete], [index] or [update] but found [{op}]",
                    n + 1
                ),
            ));
        }
        let index = meta
            .get("_index")
            .and_then(Value::as_str)
            .or(default_index)
            .ok_or_else(|| {
                error_body(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: index is missing;",
                )
            })?
            .to_string();
        let source = if op == "delete" {
            None
        } else {
            match lines.next() {
                Some((_, l)) => Some(l),
                None => {
                    return Err(error_body(
                        400,
                        "illegal_argument_exception",
                        &format!(
                            "The bulk request must be terminated by a newline [\\n]; action line [{}] has no source",
                            n + 1
                        ),
                    ));
                }
            }
        };
        let id = meta.get("_id").and_then(Value::as_str).map(str::to_string);
        let (status, result) = one(state, op, &index, id.clone(), source, today);
        let stream = state.streams.get(&index);
        let shown_index = stream.map_or(index.clone(), |s| s.backing_index.clone());
        let shown_id = result
            .get("_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or(id)
            .unwrap_or_default();
        let mut item = json!({"_index": shown_index, "_id": shown_id, "status": status});
        if let (Some(item), Some(extra)) = (item.as_object_mut(), result.as_object()) {
            for (k, v) in extra {
                if k != "_id" {
                    item.insert(k.clone(), v.clone());
                }
            }
        }
        if status >= 300 {
            errors = true;
        }
        items.push(json!({ op.as_str(): item }));
    }
    let count = items.len();
    Ok((json!({"took": 0, "errors": errors, "items": items}), count))
}

/// One action: its status and the item's other fields (`result`…, or `error`).
fn one(
    state: &mut State,
    op: &str,
    index: &str,
    id: Option<String>,
    source: Option<&[u8]>,
    today: &str,
) -> (u16, Value) {
    if state.faults.reject_items > 0 && op != "delete" {
        state.faults.reject_items -= 1;
        return (
            429,
            json!({"error": {
                "type": "es_rejected_execution_exception",
                "reason": "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1024, max_coordinating_and_primary_bytes=1024]",
            }}),
        );
    }
    if !state.streams.contains_key(index) {
        let data_stream = glob("logs-*-*", index);
        let mut stream = StoredStream {
            backing_index: if data_stream {
                format!(".ds-{index}-{today}-000001")
            } else {
                index.to_string()
            },
            data_stream,
            ..StoredStream::default()
        };
        let best = state
            .templates
            .values()
            .filter(|t| {
                t.get("index_patterns")
                    .and_then(Value::as_array)
                    .is_some_and(|ps| ps.iter().filter_map(Value::as_str).any(|p| glob(p, index)))
            })
            .max_by_key(|t| t.get("priority").and_then(Value::as_i64).unwrap_or(0));
        if let Some(template) = best {
            stream.mappings = template_types(template);
            stream.ignore_malformed = ignores_malformed(template);
        }
        state.streams.insert(index.to_string(), stream);
    }
    state.seq_no += 1;
    let seq_no = state.seq_no;
    let Some(stream) = state.streams.get_mut(index) else {
        return (
            500,
            json!({"error": {"type": "exception", "reason": "lost the stream"}}),
        );
    };
    let backing = stream.backing_index.clone();
    let fail = |status: u16, kind: &str, reason: &str| {
        (status, json!({"error": item_error(kind, reason, &backing)}))
    };
    match op {
        "create" | "index" => {}
        _ => {
            return fail(
                400,
                "illegal_argument_exception",
                &format!("the Elasticsearch double supports create and index, not {op}"),
            );
        }
    }
    if op == "index" && stream.data_stream {
        return fail(
            400,
            "illegal_argument_exception",
            "only write ops with an op_type of create are allowed in data streams",
        );
    }
    let id = id.unwrap_or_else(|| format!("auto{seq_no:016}"));
    let doc: Value = match source.map(serde_json::from_slice::<Value>) {
        Some(Ok(doc @ Value::Object(_))) => doc,
        Some(Ok(_)) => {
            return fail(
                400,
                "mapper_parsing_exception",
                "failed to parse, document is empty",
            );
        }
        Some(Err(e)) => {
            return fail(
                400,
                "mapper_parsing_exception",
                &format!("failed to parse: {e}"),
            );
        }
        None => {
            return fail(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: source is missing;",
            );
        }
    };
    if stream.data_stream && doc.get("@timestamp").is_none() {
        return fail(
            400,
            "mapper_parsing_exception",
            "data stream timestamp field [@timestamp] is missing",
        );
    }
    let exists = stream.contains(&id);
    if exists && op == "create" {
        return fail(
            409,
            "version_conflict_engine_exception",
            &format!("[{id}]: version conflict, document already exists (current version [1])"),
        );
    }
    let added = match check(&doc, &stream.mappings, &id, stream.ignore_malformed) {
        Ok(added) => added,
        Err((kind, reason)) => return fail(400, &kind, &reason),
    };
    stream.mappings.extend(added);
    let (status, result) = if exists {
        if let Some(slot) = stream.documents.iter_mut().find(|(i, _)| *i == id) {
            slot.1 = doc;
        }
        (200, "updated")
    } else {
        stream.insert(id.clone(), doc);
        (201, "created")
    };
    (
        status,
        json!({
            "_id": id,
            "_version": 1,
            "result": result,
            "_shards": {"total": 2, "successful": 1, "failed": 0},
            "_seq_no": seq_no - 1,
            "_primary_term": 1,
        }),
    )
}
