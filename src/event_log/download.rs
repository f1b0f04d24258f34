//! Streaming downloads of log files: body chunks -> gzip decoding (reqwest) -> incremental CSV
//! parsing -> [`LogRecord`]s. Memory is bounded by buffers, never by the file's size.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::stream::{self, BoxStream};
use futures_util::{Stream, StreamExt as _};
use tokio::sync::{Semaphore, mpsc};

use crate::client::{InstanceRequest, JwtBearerClient};
use crate::error::Error;
use crate::event_log::model::EventLogFile;
use crate::event_log::record::{LogFileDecoder, LogRecord};

/// Rows buffered per file ahead of the consumer in [`JwtBearerClient::download_concurrently`]:
/// enough to keep a download busy, small enough that N files stay within a few MiB.
const ROWS_AHEAD: usize = 1024;

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
    /// Files ahead of the one being consumed keep downloading until a bounded number of their
    /// rows are buffered, so memory stays bounded however large the files are. Dropping the
    /// stream (or a file's records) stops the downloads behind it. Needs a tokio runtime.
    pub fn download_concurrently(
        &self,
        files: Vec<EventLogFile>,
        concurrency: usize,
    ) -> impl Stream<Item = FileRecords> + Send + Unpin + 'static + use<> {
        let concurrency = concurrency.max(1);
        let permits = Arc::new(Semaphore::new(concurrency));
        let client = self.clone();
        stream::iter(files)
            .map(move |file| {
                let client = client.clone();
                let permits = Arc::clone(&permits);
                async move {
                    let (tx, rx) = mpsc::channel(ROWS_AHEAD);
                    // The permit lives as long as the download task, not as long as the
                    // consumer's handle, so at most `concurrency` downloads run at once.
                    let permit = permits.acquire_owned().await;
                    let task_file = file.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        match client.log_records(&task_file).await {
                            Ok(mut records) => {
                                while let Some(item) = records.next().await {
                                    if tx.send(Piece::Row(item)).await.is_err() {
                                        return;
                                    }
                                }
                                // Sent only here: a task that panics or is aborted drops `tx`
                                // without it, and the consumer reports an error instead of a
                                // clean end of file.
                                let _ = tx.send(Piece::End).await;
                            }
                            Err(e) => {
                                let _ = tx.send(Piece::Row(Err(e))).await;
                            }
                        }
                    });
                    FileRecords {
                        file,
                        rows: rx,
                        ended: false,
                    }
                }
            })
            .buffered(concurrency)
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
    /// A row, or the error that ends the file.
    Row(Result<LogRecord, Error>),
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
    rows: mpsc::Receiver<Piece>,
    /// Whether the stream has ended (cleanly or with an error).
    ended: bool,
}

impl Stream for FileRecords {
    type Item = Result<LogRecord, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match ready!(self.rows.poll_recv(cx)) {
            Some(Piece::Row(Ok(row))) => Poll::Ready(Some(Ok(row))),
            Some(Piece::Row(Err(e))) => {
                self.ended = true;
                Poll::Ready(Some(Err(e)))
            }
            Some(Piece::End) => {
                self.ended = true;
                Poll::Ready(None)
            }
            None => {
                self.ended = true;
                Poll::Ready(Some(Err(Error::DownloadAborted {
                    id: self.file.id.clone(),
                })))
            }
        }
    }
}
