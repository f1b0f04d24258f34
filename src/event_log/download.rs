//! Streaming downloads of log files: body chunks -> gzip decoding (reqwest) -> incremental CSV
//! parsing -> [`LogRecord`]s. Memory is bounded by buffers, never by the file's size.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt as _, Stream, StreamExt as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::client::{InstanceRequest, JwtBearerClient};
use crate::error::Error;
use crate::event_log::model::EventLogFile;
use crate::event_log::record::{LogFileDecoder, LogRecord};
use crate::event_log::sink::{Encoders, append_row};
use crate::format::OutputFormat;

impl JwtBearerClient {
    /// Downloads a log file's CSV as a stream of byte chunks (gzip already decoded).
    ///
    /// The stream ends with [`Error::TruncatedLogFile`] (retryable) when fewer bytes than
    /// `LogFileLength` arrived, and with a retryable transport error when the connection broke:
    /// a partial file never looks complete.
    pub async fn download_log_file(&self, file: &EventLogFile) -> Result<LogFileBody, Error> {
        let request = InstanceRequest::get(&file.log_file)
            .context(format!("downloading EventLogFile {}", file.id));
        let response = self.send(&request).await?;
        if let Some(encoding) = response.headers().get(reqwest::header::CONTENT_ENCODING) {
            // reqwest removes the header when it decoded the body; still there means the
            // caller's HTTP client was built without gzip support.
            if !encoding.as_bytes().eq_ignore_ascii_case(b"identity") {
                return Err(Error::UnexpectedResponse(format!(
                    "EventLogFile {} arrived {:?}-encoded and was not decoded: build the \
                     reqwest client with gzip enabled",
                    file.id, encoding
                )));
            }
        }
        Ok(LogFileBody {
            id: file.id.clone(),
            expected: file.log_file_length,
            received: 0,
            body: response.bytes_stream().boxed(),
            done: false,
        })
    }

    /// Downloads a log file and streams its rows, in file order.
    ///
    /// Rows are yielded as the body arrives. If the stream ends with an error (a truncated
    /// body, a broken connection, a malformed row), the rows already yielded are part of an
    /// incomplete file: discard them or download the file again.
    pub async fn log_records(&self, file: &EventLogFile) -> Result<LogRecords, Error> {
        let body = self.download_log_file(file).await?;
        Ok(LogRecords::new(body, LogFileDecoder::for_file(file)))
    }

    /// Downloads several files at once, at most `concurrency` at a time, and yields them in
    /// the given order, each with its rows in file order.
    ///
    /// The `concurrency - 1` files after the one being consumed download meanwhile, each until
    /// a bounded number of bytes of its rows are buffered (16 MiB shared by the files, at least
    /// 1 MiB each), so memory stays bounded however large the files and their rows are.
    /// Dropping the stream (or a file's records) stops the downloads behind it. Needs a tokio
    /// runtime.
    pub fn download_concurrently(
        &self,
        files: Vec<EventLogFile>,
        concurrency: usize,
    ) -> impl Stream<Item = FileRecords> + Send + Unpin + 'static + use<> {
        self.download_files(files, concurrency, None)
    }

    /// [`download_concurrently`](Self::download_concurrently), with each file's rows encoded
    /// in `encoding` in its download task when given (read with [`FileRecords::next_encoded`]):
    /// the worker threads then decode and encode while the consumer only writes.
    pub(crate) fn download_files(
        &self,
        files: Vec<EventLogFile>,
        concurrency: usize,
        encoding: Option<OutputFormat>,
    ) -> impl Stream<Item = FileRecords> + Send + Unpin + 'static + use<> {
        let concurrency = concurrency.max(1);
        ConcurrentDownloads {
            files: files.into_iter(),
            ahead: VecDeque::with_capacity(concurrency),
            concurrency,
            starter: Starter {
                client: self.clone(),
                encoding,
                bytes_ahead: bytes_ahead_per_file(concurrency),
            },
        }
    }
}

/// The stream of [`JwtBearerClient::download_concurrently`]: each file's task is spawned as soon
/// as the file is among the `concurrency - 1` files after the one being consumed. They are spawned
/// here, synchronously, and not from futures inside a buffered stream: those make progress only
/// while the stream itself is polled, which the consumer does once per file, so each download
/// started only when its file was asked for and nothing ran ahead.
struct ConcurrentDownloads {
    files: std::vec::IntoIter<EventLogFile>,
    /// Files whose tasks are spawned, in order, not yet handed out.
    ahead: VecDeque<FileRecords>,
    concurrency: usize,
    starter: Starter,
}

impl Stream for ConcurrentDownloads {
    type Item = FileRecords;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<FileRecords>> {
        let this = &mut *self;
        // The one handed out now and `concurrency - 1` behind it: `concurrency` files download
        // at once (a consumer reads one file at a time), each within its budget. No semaphore
        // decides which of them may download: with one, files behind the head could take every
        // slot and wait for room in their full budgets while the head waited for a slot.
        while this.ahead.len() < this.concurrency {
            let Some(file) = this.files.next() else {
                break;
            };
            this.ahead.push_back(this.starter.start(file));
        }
        Poll::Ready(this.ahead.pop_front())
    }
}

/// Starts download tasks.
struct Starter {
    client: JwtBearerClient,
    encoding: Option<OutputFormat>,
    bytes_ahead: usize,
}

impl Starter {
    fn start(&self, file: EventLogFile) -> FileRecords {
        let (records, mut sender) = channel(file.clone(), self.bytes_ahead);
        let client = self.client.clone();
        match self.encoding {
            Some(format) => {
                // Two tasks: one receives and inflates, the other decodes and encodes, so that
                // a large file keeps both worker threads busy. What crosses between them is a
                // few large chunks of CSV, not rows (freeing a row on another thread costs more
                // than making it).
                let inflated = spawn_inflate(client, file.clone());
                tokio::spawn(async move {
                    let decoder = LogFileDecoder::for_file(&file);
                    let body = inflated_stream(inflated, &file.id);
                    // Stopped early only when the consumer is gone.
                    let _ = send_encoded(body, decoder, &mut sender, format, &file).await;
                });
            }
            None => {
                tokio::spawn(async move {
                    match client.download_log_file(&file).await {
                        Ok(body) => {
                            let decoder = LogFileDecoder::for_file(&file);
                            // Stopped early only when the consumer is gone.
                            let _ = send_rows(body, decoder, &mut sender).await;
                        }
                        Err(e) => {
                            let _ = sender.tx.send(Piece::Failed(e));
                        }
                    }
                });
            }
        }
        records
    }
}

/// A file's two ends: the consumer's [`FileRecords`], and the sender its download task writes
/// to, sharing a budget of `bytes_ahead` bytes.
fn channel(file: EventLogFile, bytes_ahead: usize) -> (FileRecords, BatchSender) {
    let (tx, rx) = mpsc::unbounded_channel();
    let budget = Arc::new(Semaphore::new(bytes_ahead));
    let sender = BatchSender {
        tx,
        budget: Arc::clone(&budget),
        capacity: u32::try_from(bytes_ahead).unwrap_or(u32::MAX),
    };
    let records = FileRecords {
        file,
        batches: rx,
        budget,
        current: Vec::new().into_iter(),
        held: None,
        ended: false,
    };
    (records, sender)
}

/// The inflated CSV crosses from the receiving task to the decoding task in chunks of about
/// this size (reqwest hands over 4 KiB at a time)...
const INFLATED_CHUNK: usize = 256 << 10;

/// ...at most this many waiting: the receiving task runs ahead of the decoder by about 512 KiB.
const INFLATED_AHEAD: usize = 2;

/// What the receiving task hands the decoding task: CSV bytes, then `End` once the body arrived
/// whole (its length checked), or the error that ended it.
enum Inflated {
    Chunk(Bytes),
    End,
}

/// Spawns the task that downloads `file` and passes its inflated CSV on in large chunks.
fn spawn_inflate(
    client: JwtBearerClient,
    file: EventLogFile,
) -> mpsc::Receiver<Result<Inflated, Error>> {
    let (tx, rx) = mpsc::channel(INFLATED_AHEAD);
    tokio::spawn(async move {
        let mut body = match client.download_log_file(&file).await {
            Ok(body) => body,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        let mut chunk = bytes::BytesMut::with_capacity(INFLATED_CHUNK);
        while let Some(piece) = body.next().await {
            match piece {
                Ok(piece) => chunk.extend_from_slice(&piece),
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
            if chunk.len() >= INFLATED_CHUNK {
                let full =
                    std::mem::replace(&mut chunk, bytes::BytesMut::with_capacity(INFLATED_CHUNK));
                if tx.send(Ok(Inflated::Chunk(full.freeze()))).await.is_err() {
                    return;
                }
            }
        }
        if !chunk.is_empty() && tx.send(Ok(Inflated::Chunk(chunk.freeze()))).await.is_err() {
            return;
        }
        // Sent only here: a task that dies without it ends the file with `DownloadAborted`.
        let _ = tx.send(Ok(Inflated::End)).await;
    });
    rx
}

/// The inflated chunks as a body stream: ends at `End`, and with [`Error::DownloadAborted`]
/// when the receiving task died without it.
fn inflated_stream(
    mut rx: mpsc::Receiver<Result<Inflated, Error>>,
    id: &str,
) -> impl Stream<Item = Result<Bytes, Error>> + Unpin + use<> {
    let id = id.to_string();
    let mut ended = false;
    futures_util::stream::poll_fn(move |cx| {
        if ended {
            return Poll::Ready(None);
        }
        let item = match ready!(rx.poll_recv(cx)) {
            Some(Ok(Inflated::Chunk(chunk))) => return Poll::Ready(Some(Ok(chunk))),
            Some(Ok(Inflated::End)) => None,
            Some(Err(e)) => Some(Err(e)),
            None => Some(Err(Error::DownloadAborted { id: id.clone() })),
        };
        ended = true;
        Poll::Ready(item)
    })
}

/// Bytes of decoded rows (text and field index, see [`LogRecord::buffered_size`]) or encoded
/// lines buffered ahead of the consumer by all the files of
/// [`JwtBearerClient::download_concurrently`] together. Large enough that a typical file behind
/// the one being written is decoded whole meanwhile (a download stalled at a small budget leaves
/// the consumer waiting on one file's work at every file change); small enough that, with each
/// download's own buffers, a collector stays under 64 MiB whatever the file sizes (measured:
/// about 38 MiB for NDJSON and 43 MiB for ECS with files of 116 MB, concurrency 4).
const BYTES_AHEAD_TOTAL: usize = 16 << 20;

/// Each file's share of [`BYTES_AHEAD_TOTAL`] (`concurrency` files, the one being consumed
/// included, hold rows at once), at least [`BYTES_AHEAD_MIN`].
fn bytes_ahead_per_file(concurrency: usize) -> usize {
    (BYTES_AHEAD_TOTAL / concurrency.max(1)).max(BYTES_AHEAD_MIN)
}

/// The least a download may buffer ahead, however many run at once: enough to keep it busy.
const BYTES_AHEAD_MIN: usize = 1 << 20;

/// Rows are handed from a download task to its [`FileRecords`] in batches of at most this many
/// bytes (one row at least, however large)...
const BATCH_BYTES: usize = 128 << 10;

/// ...or this many rows, whichever comes first: one channel message and one wakeup per batch
/// instead of per row.
const BATCH_ROWS: usize = 512;

/// The sending half of a [`FileRecords`]: batches wait for room in the file's byte budget.
struct BatchSender {
    tx: mpsc::UnboundedSender<Piece>,
    budget: Arc<Semaphore>,
    /// The budget's size in bytes: what one batch larger than it waits for.
    capacity: u32,
}

/// The consumer is gone (it dropped the [`FileRecords`]): the download stops.
#[derive(Debug)]
struct Gone;

impl BatchSender {
    /// Sends `rows` in batches of at most [`BATCH_BYTES`] / [`BATCH_ROWS`], each once the
    /// budget has room for it.
    async fn send(&mut self, rows: &mut Vec<LogRecord>) -> Result<(), Gone> {
        let mut rest = rows.drain(..).peekable();
        while rest.peek().is_some() {
            let mut batch = Vec::with_capacity(BATCH_ROWS.min(rest.len()));
            let mut bytes = 0usize;
            while let Some(row) = rest.next_if(|_| bytes < BATCH_BYTES && batch.len() < BATCH_ROWS)
            {
                bytes += row.buffered_size();
                batch.push(row);
            }
            let permit = self.reserve(bytes).await?;
            self.tx.send(Piece::Rows(batch, permit)).map_err(|_| Gone)?;
        }
        Ok(())
    }

    /// Waits until the budget has room for `bytes`. A piece larger than the whole budget (one
    /// huge row) waits until nothing else of this file is buffered, so the bound is the budget
    /// or one piece. Fails when the consumer's drop closed the budget: nobody wants the rows.
    async fn reserve(&self, bytes: usize) -> Result<OwnedSemaphorePermit, Gone> {
        let permits = u32::try_from(bytes)
            .unwrap_or(u32::MAX)
            .clamp(1, self.capacity);
        Arc::clone(&self.budget)
            .acquire_many_owned(permits)
            .await
            .map_err(|_| Gone)
    }

    /// Sends encoded lines holding `rows` rows once the budget has room for them.
    async fn send_lines(&mut self, lines: Vec<u8>, rows: u64) -> Result<(), Gone> {
        let permit = self.reserve(lines.len()).await?;
        self.tx
            .send(Piece::Encoded(lines, rows, permit))
            .map_err(|_| Gone)
    }
}

/// Encoded lines are handed over in pieces of about this many bytes (a row's line is never
/// split), or sooner when the body has nothing more for now.
const ENCODED_BATCH_BYTES: usize = 256 << 10;

/// A batch's buffer: the batch and the row that takes it past the mark, without growing, for
/// rows of usual size.
const LINES_CAPACITY: usize = ENCODED_BATCH_BYTES + (64 << 10);

/// As [`send_rows`], with every row encoded in `format` (as the sink would write it) before it
/// is sent: decoding and encoding both happen here, on the runtime's worker threads.
async fn send_encoded(
    mut body: impl Stream<Item = Result<Bytes, Error>> + Unpin,
    mut decoder: LogFileDecoder,
    sender: &mut BatchSender,
    format: OutputFormat,
    file: &EventLogFile,
) -> Result<(), Gone> {
    let mut encoders = Encoders::default();
    let mut rows: Vec<LogRecord> = Vec::new();
    let mut lines: Vec<u8> = Vec::with_capacity(LINES_CAPACITY);
    let mut count = 0u64;
    loop {
        let next = match body.next().now_or_never() {
            Some(next) => next,
            None => {
                if count > 0 {
                    let full = std::mem::replace(&mut lines, Vec::with_capacity(LINES_CAPACITY));
                    sender.send_lines(full, std::mem::take(&mut count)).await?;
                }
                body.next().await
            }
        };
        let end = next.is_none();
        let step = match next {
            Some(Ok(chunk)) => decoder.feed(&chunk, &mut rows),
            Some(Err(e)) => Err(e),
            None => decoder.finish(&mut rows),
        };
        // The rows of a chunk that failed are dropped, as in `send_rows`: the lines before it
        // go first, so the error comes after them.
        let step = step.and_then(|()| {
            for row in rows.drain(..) {
                append_row(&mut lines, &mut encoders, format, file, &row)?;
                count += 1;
            }
            Ok(())
        });
        if let Err(e) = step {
            rows.clear();
            return sender.tx.send(Piece::Failed(e)).map_err(|_| Gone);
        }
        if end {
            if count > 0 {
                sender.send_lines(lines, count).await?;
            }
            // Sent only here, as in `send_rows`.
            return sender.tx.send(Piece::End).map_err(|_| Gone);
        }
        if lines.len() >= ENCODED_BATCH_BYTES {
            let full = std::mem::replace(&mut lines, Vec::with_capacity(LINES_CAPACITY));
            sender.send_lines(full, std::mem::take(&mut count)).await?;
        }
    }
}

/// Decodes `body` and sends its rows through `sender`, then [`Piece::End`] or the error that
/// ended the file. Rows go out when a batch is full or when the body has nothing more for now,
/// so a slow download still hands its rows over as they arrive.
async fn send_rows(
    mut body: LogFileBody,
    mut decoder: LogFileDecoder,
    sender: &mut BatchSender,
) -> Result<(), Gone> {
    let mut rows: Vec<LogRecord> = Vec::new();
    let mut bytes = 0usize;
    loop {
        let next = match body.next().now_or_never() {
            Some(next) => next,
            None => {
                if !rows.is_empty() {
                    sender.send(&mut rows).await?;
                    bytes = 0;
                }
                body.next().await
            }
        };
        let before = rows.len();
        let end = next.is_none();
        let step = match next {
            Some(Ok(chunk)) => decoder.feed(&chunk, &mut rows),
            Some(Err(e)) => Err(e),
            None => decoder.finish(&mut rows),
        };
        if let Err(e) = step {
            // The rows of the chunk that failed are dropped, as `LogRecords` does; the rows
            // before it go first, so the error comes after them.
            rows.truncate(before);
            sender.send(&mut rows).await?;
            return sender.tx.send(Piece::Failed(e)).map_err(|_| Gone);
        }
        if end {
            sender.send(&mut rows).await?;
            // Sent only here: a task that panics or is aborted drops `tx` without it, and the
            // consumer reports an error instead of a clean end of file.
            return sender.tx.send(Piece::End).map_err(|_| Gone);
        }
        bytes += rows[before..]
            .iter()
            .map(LogRecord::buffered_size)
            .sum::<usize>();
        if bytes >= BATCH_BYTES || rows.len() >= BATCH_ROWS {
            sender.send(&mut rows).await?;
            bytes = 0;
        }
    }
}

/// A log file's CSV bytes, checked against `LogFileLength` at the end.
pub struct LogFileBody {
    id: String,
    expected: u64,
    received: u64,
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    done: bool,
}

impl fmt::Debug for LogFileBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogFileBody")
            .field("id", &self.id)
            .field("expected", &self.expected)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl LogFileBody {
    /// Bytes received so far (decoded).
    pub fn received(&self) -> u64 {
        self.received
    }
}

impl Stream for LogFileBody {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match ready!(self.body.as_mut().poll_next(cx)) {
            Some(Ok(chunk)) => {
                self.received += chunk.len() as u64;
                Poll::Ready(Some(Ok(chunk)))
            }
            Some(Err(e)) => {
                self.done = true;
                let context = format!(
                    "downloading EventLogFile {} (broken after {} of {} bytes)",
                    self.id, self.received, self.expected
                );
                Poll::Ready(Some(Err(Error::transport(context, e))))
            }
            None => {
                self.done = true;
                if self.received < self.expected {
                    return Poll::Ready(Some(Err(Error::TruncatedLogFile {
                        id: self.id.clone(),
                        received: self.received,
                        expected: self.expected,
                    })));
                }
                if self.received > self.expected {
                    tracing::warn!(id = %self.id, received = self.received, expected = self.expected, "log file is longer than its LogFileLength");
                }
                Poll::Ready(None)
            }
        }
    }
}

/// The rows of one log file, decoded as its body arrives.
pub struct LogRecords {
    body: LogFileBody,
    decoder: LogFileDecoder,
    ready: VecDeque<LogRecord>,
    scratch: Vec<LogRecord>,
    finished: bool,
}

impl fmt::Debug for LogRecords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogRecords")
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

impl LogRecords {
    fn new(body: LogFileBody, decoder: LogFileDecoder) -> Self {
        LogRecords {
            body,
            decoder,
            ready: VecDeque::new(),
            scratch: Vec::new(),
            finished: false,
        }
    }

    /// Decoded bytes received so far.
    pub fn bytes_received(&self) -> u64 {
        self.body.received()
    }
}

impl Stream for LogRecords {
    type Item = Result<LogRecord, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(record) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(record)));
            }
            if this.finished {
                return Poll::Ready(None);
            }
            let step = match ready!(Pin::new(&mut this.body).poll_next(cx)) {
                Some(Ok(chunk)) => this.decoder.feed(&chunk, &mut this.scratch),
                Some(Err(e)) => Err(e),
                None => {
                    this.finished = true;
                    this.decoder.finish(&mut this.scratch)
                }
            };
            if let Err(e) = step {
                this.finished = true;
                this.ready.clear();
                this.scratch.clear();
                return Poll::Ready(Some(Err(e)));
            }
            this.ready.extend(this.scratch.drain(..));
        }
    }
}

/// What a download task hands to its [`FileRecords`].
#[derive(Debug)]
enum Piece {
    /// Rows, in file order, and their share of the file's byte budget, given back once the
    /// consumer has taken them.
    Rows(Vec<LogRecord>, OwnedSemaphorePermit),
    /// Encoded lines of this many rows, and their share of the budget.
    Encoded(Vec<u8>, u64, OwnedSemaphorePermit),
    /// The error that ends the file.
    Failed(Error),
    /// The body ended and every row was sent.
    End,
}

/// One file of [`JwtBearerClient::download_concurrently`] and its rows, in file order.
///
/// The stream ends cleanly only when the whole body arrived and was decoded; a download that
/// ended any other way (its task panicked or was aborted) ends the stream with a retryable
/// [`Error::DownloadAborted`].
#[derive(Debug)]
pub struct FileRecords {
    /// The file.
    pub file: EventLogFile,
    batches: mpsc::UnboundedReceiver<Piece>,
    /// The file's byte budget; closed on drop so that a download waiting for room stops.
    budget: Arc<Semaphore>,
    /// The batch being yielded...
    current: std::vec::IntoIter<LogRecord>,
    /// ...and its share of the budget, held until it is fully yielded.
    held: Option<OwnedSemaphorePermit>,
    /// Whether the stream has ended (cleanly or with an error).
    ended: bool,
}

impl Drop for FileRecords {
    fn drop(&mut self) {
        self.budget.close();
    }
}

impl Stream for FileRecords {
    type Item = Result<LogRecord, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(row) = this.current.next() {
                return Poll::Ready(Some(Ok(row)));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            // The batch is used up: its bytes no longer count against the budget.
            this.held = None;
            match ready!(this.batches.poll_recv(cx)) {
                Some(Piece::Rows(rows, permit)) => {
                    this.current = rows.into_iter();
                    this.held = Some(permit);
                }
                Some(Piece::Encoded(..)) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(encoded_as_rows(&this.file))));
                }
                Some(Piece::Failed(e)) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Some(Piece::End) => {
                    this.ended = true;
                    return Poll::Ready(None);
                }
                None => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(Error::DownloadAborted {
                        id: this.file.id.clone(),
                    })));
                }
            }
        }
    }
}

/// Lines of rows already encoded, from [`FileRecords::next_encoded`]; their bytes count against
/// the file's budget until dropped.
#[derive(Debug)]
pub(crate) struct EncodedLines {
    /// Whole lines, newline-terminated.
    pub(crate) lines: Vec<u8>,
    /// How many rows they hold.
    pub(crate) rows: u64,
    _permit: OwnedSemaphorePermit,
}

impl FileRecords {
    /// The next lines of a file downloaded with an encoding (see
    /// [`JwtBearerClient::download_files`]); `None` at the clean end of the file. Ends as the
    /// row stream does: the file's error, or [`Error::DownloadAborted`] when the task died.
    pub(crate) async fn next_encoded(&mut self) -> Option<Result<EncodedLines, Error>> {
        std::future::poll_fn(|cx| self.poll_encoded(cx)).await
    }

    fn poll_encoded(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<EncodedLines, Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let next = match ready!(self.batches.poll_recv(cx)) {
            Some(Piece::Encoded(lines, rows, permit)) => {
                return Poll::Ready(Some(Ok(EncodedLines {
                    lines,
                    rows,
                    _permit: permit,
                })));
            }
            Some(Piece::Rows(..)) => Some(Err(Error::Internal(format!(
                "EventLogFile {}: rows arrived where encoded lines were asked for",
                self.file.id
            )))),
            Some(Piece::Failed(e)) => Some(Err(e)),
            Some(Piece::End) => None,
            None => Some(Err(Error::DownloadAborted {
                id: self.file.id.clone(),
            })),
        };
        self.ended = true;
        Poll::Ready(next)
    }
}

fn encoded_as_rows(file: &EventLogFile) -> Error {
    Error::Internal(format!(
        "EventLogFile {}: encoded lines arrived where rows were asked for",
        file.id
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// `n` rows of one field holding `size` bytes each.
    fn rows(n: usize, size: usize) -> Vec<LogRecord> {
        let mut decoder = LogFileDecoder::new("0AT000000000001AAA", None, None);
        let mut csv = String::from("\"A\"\n");
        for i in 0..n {
            let number = i.to_string();
            let text = "0".repeat(size - number.len()) + &number;
            csv.push_str(&format!("\"{text}\"\n"));
        }
        let mut out = Vec::new();
        decoder.feed(csv.as_bytes(), &mut out).unwrap();
        decoder.finish(&mut out).unwrap();
        assert_eq!(out.len(), n);
        out
    }

    /// The budget of the tests' senders.
    const BYTES_AHEAD: u32 = 1 << 20;

    fn sender() -> (BatchSender, mpsc::UnboundedReceiver<Piece>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let budget = Arc::new(Semaphore::new(BYTES_AHEAD as usize));
        (
            BatchSender {
                tx,
                budget,
                capacity: BYTES_AHEAD,
            },
            rx,
        )
    }

    fn received(piece: Piece) -> (Vec<LogRecord>, OwnedSemaphorePermit) {
        match piece {
            Piece::Rows(rows, permit) => (rows, permit),
            other => panic!("expected rows, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn batches_are_bounded_by_bytes_and_rows_and_keep_the_order() {
        let (mut sender, mut rx) = sender();
        // Small rows: the row count closes batches.
        let mut small = rows(BATCH_ROWS * 2 + 7, 10);
        sender.send(&mut small).await.unwrap();
        assert!(small.is_empty());
        let mut sizes = Vec::new();
        let mut lines = Vec::new();
        while let Ok(piece) = rx.try_recv() {
            let (batch, _permit) = received(piece);
            sizes.push(batch.len());
            lines.extend(batch.iter().map(LogRecord::line));
        }
        assert_eq!(sizes, [BATCH_ROWS, BATCH_ROWS, 7]);
        assert_eq!(
            lines,
            (2..2 + BATCH_ROWS as u64 * 2 + 7).collect::<Vec<_>>()
        );
        // Rows of 50 KiB: the bytes close batches, after the row that reaches the limit.
        let mut large = rows(8, 50 << 10);
        sender.send(&mut large).await.unwrap();
        let mut sizes = Vec::new();
        let mut pending = Vec::new();
        while let Ok(piece) = rx.try_recv() {
            let (batch, permit) = received(piece);
            sizes.push(batch.len());
            pending.push(permit);
        }
        assert_eq!(sizes, [3, 3, 2]);
    }

    fn file() -> EventLogFile {
        EventLogFile {
            id: "0AT000000000001AAA".into(),
            event_type: "Login".into(),
            log_date: time::OffsetDateTime::UNIX_EPOCH,
            created_date: time::OffsetDateTime::UNIX_EPOCH,
            interval: None,
            sequence: 0,
            log_file_length: 0,
            log_file: String::new(),
            api_version: None,
            log_file_content_type: None,
            log_file_field_names: None,
            log_file_field_types: None,
        }
    }

    #[tokio::test]
    async fn encoded_lines_arrive_in_order_and_a_dead_task_ends_them_aborted() {
        let (mut records, mut sender) = channel(file(), BYTES_AHEAD as usize);
        sender.send_lines(b"{\"a\":1}\n".to_vec(), 1).await.unwrap();
        sender
            .send_lines(b"{\"a\":2}\n{\"a\":3}\n".to_vec(), 2)
            .await
            .unwrap();
        // The task dies without sending End.
        drop(sender);
        let first = records.next_encoded().await.unwrap().unwrap();
        assert_eq!(
            (first.lines.as_slice(), first.rows),
            (&b"{\"a\":1}\n"[..], 1)
        );
        let second = records.next_encoded().await.unwrap().unwrap();
        assert_eq!(second.rows, 2);
        assert!(matches!(
            records.next_encoded().await,
            Some(Err(Error::DownloadAborted { .. }))
        ));
        assert!(records.next_encoded().await.is_none(), "ended");
    }

    #[tokio::test]
    async fn encoded_lines_end_cleanly_only_with_end() {
        let (mut records, mut sender) = channel(file(), BYTES_AHEAD as usize);
        sender.send_lines(b"x\n".to_vec(), 1).await.unwrap();
        sender.tx.send(Piece::End).unwrap();
        assert_eq!(records.next_encoded().await.unwrap().unwrap().rows, 1);
        assert!(records.next_encoded().await.is_none());
    }

    #[tokio::test]
    async fn inflated_chunks_end_cleanly_only_with_end() {
        let (tx, rx) = mpsc::channel(2);
        tx.send(Ok(Inflated::Chunk(Bytes::from_static(b"a"))))
            .await
            .unwrap();
        tx.send(Ok(Inflated::End)).await.unwrap();
        let mut body = inflated_stream(rx, "0AT000000000001AAA");
        assert_eq!(
            body.next().await.unwrap().unwrap(),
            Bytes::from_static(b"a")
        );
        assert!(body.next().await.is_none());

        // The receiving task died after a chunk: never a clean end of the body.
        let (tx, rx) = mpsc::channel(2);
        tx.send(Ok(Inflated::Chunk(Bytes::from_static(b"a"))))
            .await
            .unwrap();
        drop(tx);
        let mut body = inflated_stream(rx, "0AT000000000001AAA");
        assert!(body.next().await.unwrap().is_ok());
        assert!(matches!(
            body.next().await,
            Some(Err(Error::DownloadAborted { .. }))
        ));
        assert!(body.next().await.is_none());
    }

    #[test]
    fn the_budget_is_shared_by_the_downloads_with_a_floor() {
        assert_eq!(bytes_ahead_per_file(4), 4 << 20);
        assert_eq!(bytes_ahead_per_file(0), 16 << 20);
        assert_eq!(bytes_ahead_per_file(64), 1 << 20);
    }

    #[tokio::test]
    async fn rows_larger_than_the_budget_wait_until_nothing_else_of_the_file_is_buffered() {
        let (mut sender, mut rx) = sender();
        let mut huge = rows(2, 3 << 20);
        let mut first = vec![huge.remove(0)];
        sender.send(&mut first).await.unwrap();
        assert_eq!(sender.budget.available_permits(), 0);
        let (batch, permit) = received(rx.try_recv().unwrap());
        assert_eq!(batch.len(), 1);
        // The second row has to wait while the first is held...
        let mut rest = huge;
        {
            let mut sending = Box::pin(sender.send(&mut rest));
            assert!((&mut sending).now_or_never().is_none());
            assert!(rx.try_recv().is_err());
            // ...and goes once the consumer has taken the first.
            drop(permit);
            assert!(matches!((&mut sending).now_or_never(), Some(Ok(()))));
        }
        let (batch, _permit) = received(rx.try_recv().unwrap());
        assert_eq!(batch.len(), 1);
    }

    #[tokio::test]
    async fn a_closed_budget_stops_a_download_waiting_for_room() {
        let (mut sender, mut rx) = sender();
        let budget = Arc::clone(&sender.budget);
        let mut huge = rows(2, 3 << 20);
        let mut sending = Box::pin(sender.send(&mut huge));
        assert!((&mut sending).now_or_never().is_none());
        let (_batch, _permit) = received(rx.try_recv().unwrap());
        // What dropping the `FileRecords` does: the download waiting for room ends.
        budget.close();
        assert!(matches!(sending.now_or_never(), Some(Err(Gone))));
    }
}
