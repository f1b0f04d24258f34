//! [`EsSink`]: rows in, `_bulk` `create` actions out, a commit only once every item was
//! acknowledged.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use salesforce_jwt::Error;
use salesforce_jwt::collect::{Row, Sink, Unit};
use salesforce_jwt::event_log_file::EventLogFile;
use salesforce_jwt::format::OutputFormat;
use salesforce_jwt::format::ecs::{EcsOptions, EcsRow, object_document_with};

use crate::client::{EsClient, ItemResult, SendError};
use crate::config::{EsConfig, MAX_REQUEST_BYTES, RetryPolicy};
use crate::error::EsError;
use crate::route::route;

/// What a sink did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Items answered 201.
    pub created: u64,
    /// Items answered 409: delivered before (by an earlier run, or a request whose answer was
    /// lost).
    pub already_delivered: u64,
    /// Documents written to the dead-letter file.
    pub dead_lettered: u64,
    /// `_bulk` requests sent (retries included).
    pub requests: u64,
    /// Items sent again after a 429 or 5xx of their own.
    pub item_retries: u64,
    /// Uncompressed bytes of documents handed to the sink.
    pub document_bytes: u64,
}

/// One `create` action in the batch: its two lines are `body[start..end]`.
#[derive(Debug)]
struct Item {
    start: usize,
    end: usize,
    id: String,
    index: String,
}

/// An exactly-once sink into Elasticsearch or OpenSearch data streams (see the crate's docs).
///
/// Rows are sent as the batch fills ([`EsConfig::max_batch_bytes`]), and at the commit of the
/// file or window; the commit returns once every item was answered 201 or 409. A rollback drops
/// the items not sent yet: what was sent is harmless, since the file's redelivery meets 409s.
#[derive(Debug)]
pub struct EsSink {
    client: Arc<EsClient>,
    output: String,
    namespace: String,
    max_batch_bytes: usize,
    retry: RetryPolicy,
    body: Vec<u8>,
    items: Vec<Item>,
    dead_letter: Option<DeadLetter>,
    stats: SinkStats,
    /// A document line of `write_row`/`write`, reused.
    scratch: Vec<u8>,
    /// `data_stream.namespace`, `salesforce.instance_url` and `organization.id` of the
    /// documents this sink encodes itself, and of those the download tasks encode for it.
    ecs: EcsOptions,
}

#[derive(Debug)]
struct DeadLetter {
    path: PathBuf,
    file: Option<File>,
    /// Written since the last sync.
    dirty: bool,
}

impl EsSink {
    /// A sink for `config`'s cluster.
    pub fn new(config: &EsConfig) -> Result<EsSink, EsError> {
        config.check()?;
        let client = EsClient::new(config)?;
        Ok(EsSink {
            client: Arc::new(client),
            output: config.output_name(),
            namespace: config.namespace.clone(),
            max_batch_bytes: config.max_batch_bytes,
            retry: config.retry,
            body: Vec::new(),
            items: Vec::new(),
            dead_letter: config.dead_letter.clone().map(|path| DeadLetter {
                path,
                file: None,
                dirty: false,
            }),
            stats: SinkStats::default(),
            scratch: Vec::new(),
            ecs: EcsOptions::default(),
        })
    }

    /// The options of the ECS documents: namespace, instance URL, org Id (see [`EcsOptions`]).
    pub fn with_ecs_options(mut self, options: EcsOptions) -> Self {
        self.ecs = options;
        self
    }

    /// What the sink did so far.
    pub fn stats(&self) -> SinkStats {
        self.stats
    }

    /// The client, for other requests to the same cluster.
    pub fn client(&self) -> &EsClient {
        &self.client
    }

    /// Adds one ECS document (JSON text, no newline) to the batch, sending the batch first if
    /// the document would take it over its bound.
    pub async fn add_document(&mut self, doc: &[u8]) -> Result<(), Error> {
        let route = route(doc, &self.namespace)
            .map_err(|e| Error::sink(self.context(), EsError::Document(e), false))?;
        let mut action = Vec::with_capacity(route.index.len() + route.id.len() + 40);
        action.extend_from_slice(br#"{"create":{"_index":"#);
        json_string(&mut action, &route.index);
        action.extend_from_slice(br#","_id":"#);
        json_string(&mut action, &route.id);
        action.extend_from_slice(b"}}\n");
        let size = action.len() + doc.len() + 1;
        self.stats.document_bytes += doc.len() as u64;
        if size > MAX_REQUEST_BYTES {
            // Over the request bound on its own: no request may carry it. (A document over
            // `max_batch_bytes` but within the bound goes in a request of its own.)
            let error = serde_json::json!({
                "type": "document_too_large",
                "reason": format!("the document and its action take {size} bytes, over the {MAX_REQUEST_BYTES}-byte bound of a request"),
            });
            return self.refused(&route.id, &route.index, 413, &error, doc);
        }
        if !self.body.is_empty() && self.body.len() + size > self.max_batch_bytes {
            self.flush().await?;
        }
        if self.body.capacity() == 0 {
            // Once, at its bound: growing by doubling would copy megabytes and leave the
            // smaller buffers behind in the allocator.
            self.body.reserve_exact(self.max_batch_bytes.max(size));
        }
        let start = self.body.len();
        self.body.extend_from_slice(&action);
        self.body.extend_from_slice(doc);
        self.body.push(b'\n');
        self.items.push(Item {
            start,
            end: self.body.len(),
            id: route.id,
            index: route.index,
        });
        Ok(())
    }

    /// Sends every batched item until each was answered 201 or 409 (or went to the dead-letter
    /// file), and syncs the dead-letter file.
    pub async fn flush(&mut self) -> Result<(), Error> {
        let items = self.items.len();
        let sent = self.send_all().await;
        self.body.clear();
        self.items.clear();
        sent?;
        self.sync_dead_letter()?;
        if items > 0 {
            let s = self.stats;
            tracing::debug!(
                output = %self.output,
                items,
                created = s.created,
                already_delivered = s.already_delivered,
                dead_lettered = s.dead_lettered,
                "every item acknowledged"
            );
        }
        Ok(())
    }

    async fn send_all(&mut self) -> Result<(), Error> {
        if self.items.is_empty() {
            return Ok(());
        }
        // Groups of item indexes still to send; a 413 splits a group in halves.
        let mut groups: Vec<Vec<usize>> = vec![(0..self.items.len()).collect()];
        while let Some(group) = groups.pop() {
            self.send_group(group, &mut groups).await?;
        }
        Ok(())
    }

    async fn send_group(
        &mut self,
        mut pending: Vec<usize>,
        groups: &mut Vec<Vec<usize>>,
    ) -> Result<(), Error> {
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let subset;
            let body: &[u8] = if pending.len() == self.items.len() {
                &self.body
            } else {
                subset = self.body_of(&pending);
                &subset
            };
            self.stats.requests += 1;
            let last = match self.client.bulk(body).await {
                Ok(answer) => {
                    if answer.items.len() != pending.len() {
                        return Err(self.fatal(EsError::Request {
                            what: "_bulk".into(),
                            problem: format!(
                                "the answer holds {} items for {} actions",
                                answer.items.len(),
                                pending.len()
                            ),
                        }));
                    }
                    let mut again = Vec::new();
                    let mut last = String::new();
                    for (&i, item) in pending.iter().zip(answer.items) {
                        let Some(result) = item.into_values().next() else {
                            return Err(self.fatal(EsError::Request {
                                what: "_bulk".into(),
                                problem: "an item of the answer is empty".into(),
                            }));
                        };
                        match result.status {
                            200 | 201 => self.stats.created += 1,
                            409 => self.stats.already_delivered += 1,
                            429 | 500..=599 => {
                                last = describe(&result);
                                again.push(i);
                            }
                            _ => self.refused_item(i, &result)?,
                        }
                    }
                    if again.is_empty() {
                        return Ok(());
                    }
                    self.stats.item_retries += again.len() as u64;
                    tracing::debug!(items = again.len(), reason = %last, "items to send again");
                    pending = again;
                    last
                }
                Err(SendError::TooLarge) => {
                    if let [i] = pending[..] {
                        let error = serde_json::json!({
                            "type": "request_entity_too_large",
                            "reason": "413 Request Entity Too Large for this document alone",
                        });
                        let item = &self.items[i];
                        let (id, index) = (item.id.clone(), item.index.clone());
                        let doc = self.doc_of(i).to_vec();
                        return self.refused(&id, &index, 413, &error, &doc);
                    }
                    tracing::debug!(items = pending.len(), "413: sending the batch in halves");
                    let second = pending.split_off(pending.len() / 2);
                    groups.push(second);
                    groups.push(pending);
                    return Ok(());
                }
                Err(SendError::Retry(why)) => {
                    tracing::warn!(output = %self.output, reason = %why, attempt, "a _bulk request failed; sending it again");
                    why
                }
                Err(SendError::Fatal(e)) => return Err(self.fatal(e)),
            };
            if attempt >= self.retry.attempts {
                return Err(self.fatal(EsError::Exhausted {
                    what: format!("_bulk to {}", self.output),
                    attempts: attempt,
                    last,
                }));
            }
            tokio::time::sleep(self.retry.backoff(attempt)).await;
        }
    }

    /// The body of the items `pending`, a part of the batch.
    fn body_of(&self, pending: &[usize]) -> Vec<u8> {
        let mut body = Vec::with_capacity(
            pending
                .iter()
                .map(|&i| self.items[i].end - self.items[i].start)
                .sum(),
        );
        for &i in pending {
            body.extend_from_slice(&self.body[self.items[i].start..self.items[i].end]);
        }
        body
    }

    /// The document line of item `i` (without its action and newline).
    fn doc_of(&self, i: usize) -> &[u8] {
        let lines = &self.body[self.items[i].start..self.items[i].end - 1];
        match lines.iter().position(|&b| b == b'\n') {
            Some(n) => &lines[n + 1..],
            None => lines,
        }
    }

    fn refused_item(&mut self, i: usize, result: &ItemResult) -> Result<(), Error> {
        let error = result
            .error
            .clone()
            .unwrap_or_else(|| serde_json::json!({"type": "unknown", "reason": "no error given"}));
        let (id, index) = (self.items[i].id.clone(), self.items[i].index.clone());
        let doc = self.doc_of(i).to_vec();
        self.refused(&id, &index, result.status, &error, &doc)
    }

    /// A document refused for good: to the dead-letter file, or the commit's error.
    fn refused(
        &mut self,
        id: &str,
        index: &str,
        status: u16,
        error: &serde_json::Value,
        doc: &[u8],
    ) -> Result<(), Error> {
        let text = |key: &str| {
            error
                .get(key)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let Some(dead) = &mut self.dead_letter else {
            return Err(self.fatal(EsError::Refused {
                id: id.to_string(),
                index: index.to_string(),
                status,
                kind: text("type"),
                reason: text("reason"),
            }));
        };
        let document: serde_json::Value =
            serde_json::from_slice(doc).unwrap_or_else(|_| String::from_utf8_lossy(doc).into());
        let line = serde_json::json!({
            "_index": index,
            "_id": id,
            "status": status,
            "error": error,
            "document": document,
        });
        let path = dead.path.display().to_string();
        let io = |e: std::io::Error| EsError::DeadLetter {
            path: path.clone(),
            problem: e.to_string(),
        };
        let written = (|| {
            if dead.file.is_none() {
                dead.file = Some(
                    OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&dead.path)
                        .map_err(io)?,
                );
            }
            let mut bytes = serde_json::to_vec(&line).map_err(|e| EsError::DeadLetter {
                path: path.clone(),
                problem: e.to_string(),
            })?;
            bytes.push(b'\n');
            if let Some(file) = &mut dead.file {
                file.write_all(&bytes).map_err(io)?;
            }
            dead.dirty = true;
            Ok::<(), EsError>(())
        })();
        if let Err(e) = written {
            return Err(self.fatal(e));
        }
        tracing::warn!(id, index, status, reason = %text("reason"), dead_letter = %dead.path.display(), "a document was refused for good; written to the dead-letter file");
        self.stats.dead_lettered += 1;
        Ok(())
    }

    fn sync_dead_letter(&mut self) -> Result<(), Error> {
        let Some(dead) = &mut self.dead_letter else {
            return Ok(());
        };
        if !dead.dirty {
            return Ok(());
        }
        if let Some(file) = &dead.file
            && let Err(e) = file.sync_data()
        {
            let e = EsError::DeadLetter {
                path: dead.path.display().to_string(),
                problem: format!("cannot sync: {e}"),
            };
            return Err(self.fatal(e));
        }
        dead.dirty = false;
        Ok(())
    }

    fn context(&self) -> String {
        format!("sending documents to {}", self.output)
    }

    fn fatal(&self, e: EsError) -> Error {
        Error::sink(self.context(), e, false)
    }

    /// Drops what was not sent yet.
    fn discard(&mut self) {
        self.body.clear();
        self.items.clear();
    }
}

/// `s` as a JSON string.
fn json_string(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail, and a str always serializes.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn describe(result: &ItemResult) -> String {
    let field = |key: &str| {
        result
            .error
            .as_ref()
            .and_then(|e| e.get(key))
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    format!("{} {}: {}", result.status, field("type"), field("reason"))
}

/// Log-file and object rows take the same path: a unit's documents are all acknowledged
/// before its `commit` returns.
impl Sink for EsSink {
    async fn begin(&mut self, _unit: &Unit<'_>) -> Result<(), Error> {
        self.discard();
        Ok(())
    }

    async fn write(&mut self, row: Row<'_>) -> Result<(), Error> {
        let mut doc = std::mem::take(&mut self.scratch);
        doc.clear();
        let added = match row {
            Row::LogFile { file, record } => {
                let encoded = serde_json::to_writer(
                    &mut doc,
                    &EcsRow {
                        file,
                        row: record,
                        options: &self.ecs,
                    },
                );
                match encoded {
                    Ok(()) => self.add_document(&doc).await,
                    Err(e) => Err(Error::sink(
                        self.context(),
                        EsError::Document(format!(
                            "cannot encode row {} of EventLogFile {}: {e}",
                            record.line(),
                            file.id
                        )),
                        false,
                    )),
                }
            }
            Row::Object { object, record } => {
                let document = object_document_with(object.name(), record.fields(), &self.ecs);
                match serde_json::to_writer(&mut doc, &document) {
                    Ok(()) => self.add_document(&doc).await,
                    Err(e) => Err(Error::sink(
                        self.context(),
                        EsError::Document(format!("cannot encode a {} row: {e}", object.name())),
                        false,
                    )),
                }
            }
            // A source this sink does not know yet: refused rather than dropped.
            _ => Err(Error::sink(
                self.context(),
                EsError::Document("a row of a source this sink does not know".to_string()),
                false,
            )),
        };
        self.scratch = doc;
        added
    }

    fn encoded_format(&self) -> Option<OutputFormat> {
        Some(OutputFormat::Ecs)
    }

    fn ecs_options(&self) -> EcsOptions {
        self.ecs.clone()
    }

    async fn write_encoded(&mut self, _file: &EventLogFile, lines: &[u8]) -> Result<(), Error> {
        for line in lines.split(|&b| b == b'\n') {
            if !line.is_empty() {
                self.add_document(line).await?;
            }
        }
        Ok(())
    }

    async fn commit(&mut self, _unit: &Unit<'_>) -> Result<Option<u64>, Error> {
        self.flush().await?;
        Ok(None)
    }

    fn output(&self) -> Option<String> {
        Some(self.output.clone())
    }

    async fn rollback(&mut self, _unit: &Unit<'_>) -> Result<(), Error> {
        self.discard();
        Ok(())
    }
}
