//! Streaming downloads of log files: body chunks -> gzip decoding (reqwest) -> incremental CSV
//! parsing -> [`LogRecord`]s. Memory is bounded by buffers, never by the file's size.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt as _, Stream, StreamExt as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, oneshot};

use crate::client::{InstanceRequest, JwtBearerClient};
use crate::error::Error;
use crate::event_log_file::model::EventLogFile;
use crate::event_log_file::record::split::{RowSplitter, Segment};
use crate::event_log_file::record::{LogFileDecoder, LogRecord};
use crate::format::OutputFormat;
use crate::format::ecs::EcsOptions;
use crate::format::encoders::{Encoders, append_row};

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
        self.download_files(files, concurrency, None, EcsOptions::default(), None)
    }

    /// [`download_concurrently`](Self::download_concurrently), with each file's rows encoded
    /// in `encoding` in its download task when given (read with [`FileRecords::next_encoded`]):
    /// the worker threads then decode and encode while the consumer only writes.
    ///
    /// With `slots`, each file's download also takes one of them (see [`SlotTurn`]) before its
    /// request is sent, and keeps it until the file is downloaded and its [`FileRecords`]
    /// dropped: the slots bound what downloads or waits to be written across every stream
    /// that shares them.
    pub(crate) fn download_files(
        &self,
        files: Vec<EventLogFile>,
        concurrency: usize,
        encoding: Option<OutputFormat>,
        ecs: EcsOptions,
        slots: Option<Arc<Semaphore>>,
    ) -> impl Stream<Item = FileRecords> + Send + Unpin + 'static + use<> {
        let concurrency = concurrency.max(1);
        ConcurrentDownloads {
            files: files.into_iter(),
            ahead: VecDeque::with_capacity(concurrency),
            concurrency,
            starter: Starter {
                client: self.clone(),
                encoding,
                ecs: Arc::new(ecs),
                bytes_ahead: bytes_ahead_per_file(concurrency),
                pool: LinePool::default(),
                slots,
                previous: None,
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
    /// The options of ECS documents.
    ecs: Arc<EcsOptions>,
    bytes_ahead: usize,
    /// The line buffers of all the files.
    pool: LinePool,
    /// The caller's download slots, shared with other streams (other orgs), if any.
    slots: Option<Arc<Semaphore>>,
    /// Resolves once the file started last has its slot.
    previous: Option<oneshot::Receiver<()>>,
}

impl Starter {
    fn start(&mut self, file: EventLogFile) -> FileRecords {
        let (mut records, mut sender) = channel(file.clone(), self.bytes_ahead, self.pool.clone());
        let turn = self.slots.as_ref().map(|slots| {
            let (after, next) = oneshot::channel();
            let held = Arc::new(OnceLock::new());
            records.slot = Some(Arc::clone(&held));
            SlotTurn {
                slots: Arc::clone(slots),
                file_id: file.id.clone(),
                before: self.previous.replace(next),
                after,
                held,
            }
        });
        let pool = self.pool.clone();
        let client = self.client.clone();
        let ecs = Arc::clone(&self.ecs);
        match self.encoding {
            Some(format) => {
                // One task receives and inflates; the other cuts the CSV into segments and has
                // them decoded and encoded, two at once for the file being written
                // (`send_encoded`), so that a large file keeps both worker threads busy. What
                // crosses between tasks is large chunks of CSV and of lines, not rows (freeing a
                // row on another thread costs more than making it).
                tokio::spawn(async move {
                    // Kept until the file is sent whole (and its records dropped).
                    let Ok(_slot) = SlotTurn::wait(turn, &sender.tx).await else {
                        return;
                    };
                    let inflated = spawn_inflate(client, file.clone());
                    let decoder = LogFileDecoder::for_file(&file);
                    let body = inflated_stream(inflated, &file.id);
                    // Stopped early only when the consumer is gone.
                    let _ = send_encoded(
                        body,
                        decoder,
                        &mut sender,
                        format,
                        &ecs,
                        Arc::new(file),
                        pool,
                    )
                    .await;
                });
            }
            None => {
                tokio::spawn(async move {
                    let Ok(_slot) = SlotTurn::wait(turn, &sender.tx).await else {
                        return;
                    };
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

/// A file's place in the line for one of the caller's download slots, shared by every stream
/// of [`JwtBearerClient::download_files`] given them (an org each, in sf-ingest).
///
/// The files of one stream take their slots in the stream's order: each waits until the file
/// before it has one. A slot is kept until its file is downloaded and consumed, so buffered
/// rows too are bounded by the slots. Taken out of order, the slots could all go to files
/// behind the ones being written, which wait for their consumers while those wait for a slot:
/// in order, the first file of a stream that holds any slot is the one its consumer reads,
/// which always moves. A file downloaded again after a failure (by the consumer itself) takes
/// no slot for the same reason: the files behind it may hold them all.
struct SlotTurn {
    slots: Arc<Semaphore>,
    /// The file's `Id`, for the log line of a wait.
    file_id: String,
    /// Resolves (or fails, the file before gone) once the file before this one has its slot.
    before: Option<oneshot::Receiver<()>>,
    /// Tells the file after this one that this one has its slot (dropped unsent: gone).
    after: oneshot::Sender<()>,
    /// Where the slot is kept, shared with the file's [`FileRecords`]: it goes back when both
    /// the download task and the records are done.
    held: Arc<OnceLock<OwnedSemaphorePermit>>,
}

impl SlotTurn {
    /// Waits for this file's turn and a slot (at once without `turn`); the handle that keeps
    /// the slot. Fails when the consumer dropped the file meanwhile.
    async fn wait(
        turn: Option<SlotTurn>,
        tx: &mpsc::UnboundedSender<Piece>,
    ) -> Result<Option<Arc<OnceLock<OwnedSemaphorePermit>>>, Gone> {
        let Some(turn) = turn else {
            return Ok(None);
        };
        let SlotTurn {
            slots,
            file_id,
            before,
            after,
            held,
        } = turn;
        let acquire = async {
            if let Some(before) = before {
                let _ = before.await;
            }
            match Arc::clone(&slots).try_acquire_owned() {
                Ok(permit) => Ok(permit),
                Err(TryAcquireError::Closed) => slots.acquire_owned().await,
                Err(TryAcquireError::NoPermits) => {
                    // Said once per file, when its turn comes: with hundreds of orgs on a few
                    // slots, this is why an org's pass stands still.
                    tracing::debug!(id = %file_id, "EventLogFile download waits for a download slot: every slot is in use");
                    slots.acquire_owned().await
                }
            }
        };
        tokio::select! {
            permit = acquire => {
                // A closed semaphore bounds nothing: the download goes ahead.
                if let Ok(permit) = permit {
                    let _ = held.set(permit);
                }
                let _ = after.send(());
                Ok(Some(held))
            }
            () = tx.closed() => Err(Gone),
        }
    }
}

/// A file's two ends: the consumer's [`FileRecords`], and the sender its download task writes
/// to, sharing a budget of `bytes_ahead` bytes.
fn channel(file: EventLogFile, bytes_ahead: usize, pool: LinePool) -> (FileRecords, BatchSender) {
    let (tx, rx) = mpsc::unbounded_channel();
    let budget = Arc::new(Semaphore::new(bytes_ahead));
    let consumed = Arc::new(AtomicBool::new(false));
    let sender = BatchSender {
        tx,
        consumed: Arc::clone(&consumed),
        budget: Arc::clone(&budget),
        capacity: u32::try_from(bytes_ahead).unwrap_or(u32::MAX),
    };
    let records = FileRecords {
        file,
        batches: rx,
        consumed,
        pool,
        budget,
        current: Vec::new().into_iter(),
        held: None,
        ended: false,
        slot: None,
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
/// download's own buffers and segments in flight, a collector stays under 64 MiB whatever the
/// file sizes (measured with files of 116 MB, concurrency 4: 40-50 MiB for NDJSON, 42-57 MiB
/// for ECS, the spread being the allocator's).
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
    /// Set once the consumer reads the file: it is the one being written.
    consumed: Arc<AtomicBool>,
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

/// Segments of the file being written decoded and encoded at once, on the worker threads,
/// beside the task that cuts them. Each holds a segment (about [`INFLATED_CHUNK`] of CSV) and
/// its lines outside the file's budget. Two should keep two cores busy, but segments finish
/// out of order and are sent in order: a core whose segment finished first waited for the
/// other's. Three, measured on the 2-core VM with six 116 MB files in ECS: 190-205 MB/s
/// against 144-173 with two, peak RSS 50-56 MiB against 50-53 (four gained less in its own
/// paired run: 136-150 against 130-141). The files behind it run one segment at a time: they
/// stop at their budgets anyway, and should not take the cores from the file being written.
const SEGMENTS_IN_FLIGHT: usize = 3;

/// Bytes without a probable row boundary after which the rest of a file is decoded in order
/// on one task: CSV the splitter misreads (an unbalanced quote) must not make it hold the
/// rest of the file.
const MAX_PENDING_BYTES: usize = 4 << 20;

/// As [`send_rows`], with every row encoded in `format` (as the sink would write it) before it
/// is sent. The file is cut into segments at probable row boundaries
/// ([`RowSplitter`]) and up to [`SEGMENTS_IN_FLIGHT`] of them are decoded and encoded at once
/// by their own tasks, each with a decoder that starts at its segment
/// ([`LogFileDecoder::continuation`]). Their lines are sent in file order. A segment's
/// work is kept only if the decoder of everything before it ended at a row start, which makes
/// its rows exactly those a single decoder would produce; otherwise the segment is decoded
/// again, in order, here, and so is the rest of the file.
async fn send_encoded(
    mut body: impl Stream<Item = Result<Bytes, Error>> + Unpin,
    decoder: LogFileDecoder,
    sender: &mut BatchSender,
    format: OutputFormat,
    ecs: &Arc<EcsOptions>,
    file: Arc<EventLogFile>,
    pool: LinePool,
) -> Result<SegmentStats, Gone> {
    let mut stats = SegmentStats::default();
    let mut splitter = RowSplitter::default();
    let mut speculate = true;
    // The decoder of everything sent so far, in file order.
    let mut current = decoder;
    let mut encoders = Encoders::new(ecs);
    let mut spare: Vec<Encoders> = Vec::new();
    let mut queue: VecDeque<Slot> = VecDeque::new();
    // How the body ended, once it has.
    let mut body_end: Option<Result<(), Error>> = None;
    let outcome = loop {
        // Segments are handled in file order; one to decode here is done at once.
        if queue.front().is_some_and(|slot| slot.task.is_none()) {
            if let Some(slot) = queue.pop_front() {
                stats.in_order += 1;
                match decode_here(
                    &mut current,
                    &slot.segment,
                    &mut encoders,
                    format,
                    &file,
                    &pool,
                ) {
                    Ok((lines, rows)) => {
                        if rows > 0 {
                            sender.send_lines(lines, rows).await?;
                        }
                    }
                    Err(e) => break Err(e),
                }
            }
            continue;
        }
        let running = queue.iter().filter(|slot| slot.task.is_some()).count();
        // Read at every turn: a file behind becomes the one being written.
        let limit = if sender.consumed.load(Ordering::Relaxed) {
            SEGMENTS_IN_FLIGHT
        } else {
            1
        };
        let event = if body_end.is_none() && running < limit {
            match queue.front_mut().and_then(|slot| slot.task.as_mut()) {
                None => Event::Input(body.next().await),
                Some(task) => match futures_util::future::select(body.next(), task).await {
                    futures_util::future::Either::Left((input, _)) => Event::Input(input),
                    futures_util::future::Either::Right((done, _)) => Event::Done(done),
                },
            }
        } else if let Some(task) = queue.front_mut().and_then(|slot| slot.task.as_mut()) {
            Event::Done(task.await)
        } else {
            // The body has ended (nothing runs and nothing waits, so the `if` above did not
            // hold for its first half) and every segment is sent.
            match body_end.take() {
                Some(Ok(())) => {
                    // The decoder of the last bytes knows whether the file ended cleanly.
                    let (mut lines, mut count) = (Vec::new(), 0);
                    let finished = current.finish_each(&mut encode_each(
                        &mut lines,
                        &mut encoders,
                        format,
                        &file,
                        &mut count,
                    ));
                    match finished.map(|()| (lines, count)) {
                        Ok((lines, count)) => {
                            if count > 0 {
                                sender.send_lines(lines, count).await?;
                            }
                            break Ok(());
                        }
                        Err(e) => break Err(e),
                    }
                }
                Some(Err(e)) => break Err(e),
                None => {
                    break Err(Error::Internal(format!(
                        "EventLogFile {}: the decoding of its segments lost track of the body",
                        file.id
                    )));
                }
            }
        };
        match event {
            Event::Input(Some(Ok(chunk))) => {
                if !speculate {
                    // Decoded in order by `current`, which counts its own lines: `line` is
                    // not read.
                    queue.push_back(Slot::here(Segment {
                        pieces: vec![chunk],
                        line: 0,
                    }));
                    continue;
                }
                if let Some(segment) = splitter.push(chunk) {
                    let task =
                        spawn_segment(&current, &segment, &mut spare, format, ecs, &file, &pool);
                    stats.spawned += usize::from(task.is_some());
                    stats.most_at_once = stats
                        .most_at_once
                        .max(running + usize::from(task.is_some()));
                    queue.push_back(Slot { task, segment });
                }
                if splitter.pending_len() > MAX_PENDING_BYTES {
                    speculate = false;
                    queue.extend(splitter.take_pending().map(Slot::here));
                }
            }
            Event::Input(end) => {
                // The bytes after the last cut are decoded, here, before the file ends: a row
                // error in them comes before an error of the body, as with one decoder.
                queue.extend(splitter.take_pending().map(Slot::here));
                body_end = Some(match end {
                    Some(Err(e)) => Err(e),
                    _ => Ok(()),
                });
            }
            Event::Done(done) => {
                let Some(slot) = queue.pop_front() else {
                    break Err(Error::Internal(format!(
                        "EventLogFile {}: a segment finished that was not awaited",
                        file.id
                    )));
                };
                let Ok(done) = done else {
                    // The task panicked: as for a download task that dies.
                    break Err(Error::DownloadAborted {
                        id: file.id.clone(),
                    });
                };
                if current.at_row_start() {
                    // The cut was a row boundary: the segment's rows are exactly those of
                    // decoding in order, and so is how the decoder stands after them.
                    let done = *done;
                    current = done.decoder;
                    spare.push(done.encoders);
                    match done.outcome {
                        Ok(rows) => {
                            if rows > 0 {
                                sender.send_lines(done.lines, rows).await?;
                            }
                        }
                        Err(e) => break Err(e),
                    }
                } else {
                    // A misread cut: decode the segment again after what precedes it, and
                    // the rest of the file in order.
                    tracing::debug!(id = %file.id, line = slot.segment.line, "a probable row boundary was not one; decoding the rest of the file in order");
                    stats.redone += 1;
                    spare.push(done.encoders);
                    if speculate {
                        speculate = false;
                        queue.extend(splitter.take_pending().map(Slot::here));
                    }
                    queue.push_front(Slot::here(slot.segment));
                    for slot in queue.iter_mut() {
                        if let Some(task) = slot.task.take() {
                            task.abort();
                        }
                    }
                }
            }
        }
    };
    for slot in &queue {
        if let Some(task) = &slot.task {
            task.abort();
        }
    }
    let last = match outcome {
        Ok(()) => Piece::End,
        // The lines before the error are sent; the consumer drops the whole file anyway.
        Err(e) => Piece::Failed(e),
    };
    sender.tx.send(last).map_err(|_| Gone)?;
    Ok(stats)
}

/// How [`send_encoded`] decoded a file's segments (read by tests).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct SegmentStats {
    /// Segments decoded by their own tasks.
    spawned: usize,
    /// The most of those that ran at once.
    most_at_once: usize,
    /// Of those, segments whose cut was not a row boundary, decoded again.
    redone: usize,
    /// Segments decoded in order by the sending task (the first, the last bytes, the redone,
    /// and all after a miss).
    in_order: usize,
}

/// A segment of [`send_encoded`], decoded by its own task or, with no task, to be decoded by
/// the sending task when its turn comes.
struct Slot {
    task: Option<tokio::task::JoinHandle<Box<SegmentDone>>>,
    segment: Segment,
}

impl Slot {
    fn here(segment: Segment) -> Slot {
        Slot {
            task: None,
            segment,
        }
    }
}

/// What [`send_encoded`] waits for next.
enum Event {
    Input(Option<Result<Bytes, Error>>),
    Done(Result<Box<SegmentDone>, tokio::task::JoinError>),
}

/// What a segment's task hands back: its decoder after the segment, its lines and their row
/// count or the error that ended it, and its encoders, reused by a later segment (they keep
/// what they worked out for the file's columns).
struct SegmentDone {
    decoder: LogFileDecoder,
    lines: Vec<u8>,
    outcome: Result<u64, Error>,
    encoders: Encoders,
}

/// Spawns the task of a segment that starts at a probable row boundary; `None` (decode it in
/// order) before the header row was read.
fn spawn_segment(
    current: &LogFileDecoder,
    segment: &Segment,
    spare: &mut Vec<Encoders>,
    format: OutputFormat,
    ecs: &EcsOptions,
    file: &Arc<EventLogFile>,
    pool: &LinePool,
) -> Option<tokio::task::JoinHandle<Box<SegmentDone>>> {
    let mut decoder = current.continuation(segment.line)?;
    let mut encoders = spare.pop().unwrap_or_else(|| Encoders::new(ecs));
    let pieces = segment.pieces.clone();
    let file = Arc::clone(file);
    let mut lines = pool.take(lines_capacity(&pieces, format));
    Some(tokio::spawn(async move {
        let outcome = decode_pieces(
            &mut decoder,
            &pieces,
            &mut encoders,
            format,
            &file,
            &mut lines,
        );
        // Boxed: the decoder holds csv-core's transition table.
        Box::new(SegmentDone {
            decoder,
            lines,
            outcome,
            encoders,
        })
    }))
}

/// Decodes and encodes a segment on the sending task, after everything before it.
fn decode_here(
    decoder: &mut LogFileDecoder,
    segment: &Segment,
    encoders: &mut Encoders,
    format: OutputFormat,
    file: &EventLogFile,
    pool: &LinePool,
) -> Result<(Vec<u8>, u64), Error> {
    let mut lines = pool.take(lines_capacity(&segment.pieces, format));
    let rows = decode_pieces(decoder, &segment.pieces, encoders, format, file, &mut lines)?;
    Ok((lines, rows))
}

/// Room for the lines of `pieces` of CSV without growing, for rows of usual size: NDJSON
/// repeats every column name, ECS adds its own fields.
fn lines_capacity(pieces: &[Bytes], format: OutputFormat) -> usize {
    let csv: usize = pieces.iter().map(Bytes::len).sum();
    match format {
        OutputFormat::Ndjson => csv * 5 / 2,
        OutputFormat::Ecs => csv * 3,
    }
}

/// Feeds `pieces` to `decoder` and appends the lines of the rows they complete to `lines`;
/// the number of rows. Each row is encoded as soon as it is decoded, from the decoder's own
/// buffers (no allocation per row), while its text is in cache.
fn decode_pieces(
    decoder: &mut LogFileDecoder,
    pieces: &[Bytes],
    encoders: &mut Encoders,
    format: OutputFormat,
    file: &EventLogFile,
    lines: &mut Vec<u8>,
) -> Result<u64, Error> {
    let mut count = 0;
    {
        let mut each = encode_each(lines, encoders, format, file, &mut count);
        for piece in pieces {
            decoder.feed_each(piece, &mut each)?;
        }
    }
    Ok(count)
}

/// A row callback for [`LogFileDecoder::feed_each`]: appends each row's line to `lines` and
/// counts it in `count`.
fn encode_each<'a>(
    lines: &'a mut Vec<u8>,
    encoders: &'a mut Encoders,
    format: OutputFormat,
    file: &'a EventLogFile,
    count: &'a mut u64,
) -> impl FnMut(&LogRecord) -> Result<(), Error> + 'a {
    move |row| {
        append_row(lines, encoders, format, file, row)?;
        *count += 1;
        Ok(())
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
    /// Set on the first read (see [`SEGMENTS_IN_FLIGHT`]).
    consumed: Arc<AtomicBool>,
    /// Where the buffers of the lines handed out go back.
    pool: LinePool,
    /// The file's byte budget; closed on drop so that a download waiting for room stops.
    budget: Arc<Semaphore>,
    /// The batch being yielded...
    current: std::vec::IntoIter<LogRecord>,
    /// ...and its share of the budget, held until it is fully yielded.
    held: Option<OwnedSemaphorePermit>,
    /// Whether the stream has ended (cleanly or with an error).
    ended: bool,
    /// The caller's download slot this file holds, if the stream was given slots (see
    /// [`SlotTurn`]).
    slot: Option<Arc<OnceLock<OwnedSemaphorePermit>>>,
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
        this.consumed.store(true, Ordering::Relaxed);
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
    /// Where the buffer goes back once the lines are written.
    pool: LinePool,
}

impl Drop for EncodedLines {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.lines));
    }
}

/// Line buffers given back once their lines were written, for the download tasks to fill
/// again. Without it every segment's lines were a new allocation of most of a MiB, made on a
/// worker thread and freed on the consumer's, and glibc's per-thread arenas let the peak RSS
/// of the same pass (six 116 MB files, ECS) wander between 43 and 61 MiB; 41-42 MiB with a
/// single arena.
#[derive(Debug, Clone, Default)]
pub(crate) struct LinePool(Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

/// Buffers a [`LinePool`] keeps at most: about what the look-ahead holds, so the pool never
/// keeps more than a pass had in use at once.
const POOLED_BUFFERS: usize = 16;

/// Larger buffers (grown for huge rows) are freed rather than kept.
const POOLED_CAPACITY_MAX: usize = 4 << 20;

impl LinePool {
    /// An empty buffer with room for `capacity` bytes.
    fn take(&self, capacity: usize) -> Vec<u8> {
        // A poisoned lock only means a panic elsewhere while pushing or popping; the pool is
        // an optimization, so it is then bypassed.
        let pooled = self.0.lock().ok().and_then(|mut pool| pool.pop());
        let mut lines = pooled.unwrap_or_default();
        lines.reserve(capacity);
        lines
    }

    fn give(&self, mut lines: Vec<u8>) {
        if lines.capacity() == 0 || lines.capacity() > POOLED_CAPACITY_MAX {
            return;
        }
        lines.clear();
        if let Ok(mut pool) = self.0.lock()
            && pool.len() < POOLED_BUFFERS
        {
            pool.push(lines);
        }
    }
}

impl FileRecords {
    /// The next lines of a file downloaded with an encoding (see
    /// [`JwtBearerClient::download_files`]); `None` at the clean end of the file. Ends as the
    /// row stream does: the file's error, or [`Error::DownloadAborted`] when the task died.
    pub(crate) async fn next_encoded(&mut self) -> Option<Result<EncodedLines, Error>> {
        std::future::poll_fn(|cx| self.poll_encoded(cx)).await
    }

    fn poll_encoded(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<EncodedLines, Error>>> {
        self.consumed.store(true, Ordering::Relaxed);
        if self.ended {
            return Poll::Ready(None);
        }
        let next = match ready!(self.batches.poll_recv(cx)) {
            Some(Piece::Encoded(lines, rows, permit)) => {
                return Poll::Ready(Some(Ok(EncodedLines {
                    lines,
                    rows,
                    _permit: permit,
                    pool: self.pool.clone(),
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
                consumed: Arc::new(AtomicBool::new(true)),
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
        crate::event_log_file::model::test_file()
    }

    #[tokio::test]
    async fn encoded_lines_arrive_in_order_and_a_dead_task_ends_them_aborted() {
        let (mut records, mut sender) = channel(file(), BYTES_AHEAD as usize, LinePool::default());
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
        let (mut records, mut sender) = channel(file(), BYTES_AHEAD as usize, LinePool::default());
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

    /// Everything `csv` gives through one decoder: its lines in `format`, or the error's text.
    fn encoded_in_order(csv: &[u8], format: OutputFormat) -> Result<Vec<u8>, String> {
        let file = file();
        let mut decoder = LogFileDecoder::for_file(&file);
        let (mut rows, mut encoders, mut lines) = (Vec::new(), Encoders::default(), Vec::new());
        // Rows taken whole (`feed`), not lent (`feed_each` as the segments are): the two
        // ways are compared too.
        decoder
            .feed(csv, &mut rows)
            .and_then(|()| decoder.finish(&mut rows))
            .and_then(|()| {
                rows.iter()
                    .try_for_each(|row| append_row(&mut lines, &mut encoders, format, &file, row))
            })
            .map_err(|e| e.to_string())?;
        Ok(lines)
    }

    /// The same through [`send_encoded`], the body in chunks of `sizes` bytes (cycled).
    async fn encoded_in_segments(
        csv: &[u8],
        sizes: &[usize],
        format: OutputFormat,
    ) -> (Result<Vec<u8>, String>, SegmentStats) {
        encoded_in_segments_of(csv, sizes, format, true).await
    }

    /// [`encoded_in_segments`] for the file being written (`consumed`) or one behind it.
    async fn encoded_in_segments_of(
        csv: &[u8],
        sizes: &[usize],
        format: OutputFormat,
        consumed: bool,
    ) -> (Result<Vec<u8>, String>, SegmentStats) {
        let file = file();
        // Room for every line: nobody reads until the file is done.
        let pool = LinePool::default();
        let (mut records, mut sender) = channel(file.clone(), 256 << 20, pool.clone());
        sender.consumed.store(consumed, Ordering::Relaxed);
        let chunks = crate::event_log_file::record::testing::chunked(csv, sizes);
        let body = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
                .collect::<Vec<_>>(),
        );
        let decoder = LogFileDecoder::for_file(&file);
        let stats = send_encoded(
            body,
            decoder,
            &mut sender,
            format,
            &Arc::new(EcsOptions::default()),
            Arc::new(file),
            pool,
        )
        .await
        .unwrap();
        drop(sender);
        let mut lines = Vec::new();
        while let Some(piece) = records.next_encoded().await {
            match piece {
                Ok(piece) => lines.extend_from_slice(&piece.lines),
                Err(e) => return (Err(e.to_string()), stats),
            }
        }
        (Ok(lines), stats)
    }

    /// A Login file of `n` rows as Salesforce writes it, every field quoted, the last column
    /// holding doubled quotes, a comma and a line break; `note(i)` replaces row `i`'s last
    /// field as written (quotes included) when it returns one.
    fn login_csv(n: usize, note: impl Fn(usize) -> Option<String>) -> Vec<u8> {
        let mut csv = String::from("\"EVENT_TYPE\",\"TIMESTAMP\",\"USER_ID\",\"NOTE\"\n");
        for i in 0..n {
            let note = note(i).unwrap_or_else(|| {
                format!("\"note {i} with \"\"quotes\"\", a comma\nand a line\"")
            });
            // Both line ends Salesforce's files have been seen with.
            let end = if i % 3 == 0 { "\r\n" } else { "\n" };
            csv.push_str(&format!(
                "\"Login\",\"20250608{:06}.000\",\"00500000000{i:04}\",{note}{end}",
                i % 240_000
            ));
        }
        csv.into_bytes()
    }

    #[tokio::test]
    async fn segments_decoded_at_once_give_the_lines_of_one_decoder() {
        let csv = login_csv(3_000, |_| None);
        for format in [OutputFormat::Ndjson, OutputFormat::Ecs] {
            let expected = encoded_in_order(&csv, format).unwrap();
            let (lines, stats) = encoded_in_segments(&csv, &[4096, 1000, 7919], format).await;
            assert!(lines.unwrap() == expected, "{format}: same bytes");
            assert!(
                stats.spawned >= 40,
                "{format}: decoded in parallel: {stats:?}"
            );
            assert_eq!(
                stats.most_at_once, SEGMENTS_IN_FLIGHT,
                "{format}: {stats:?}"
            );
            assert_eq!(stats.redone, 0, "{format}: every cut was a row boundary");
        }
    }

    #[test]
    fn written_line_buffers_are_filled_again_within_bounds() {
        let pool = LinePool::default();
        let mut lines = pool.take(1000);
        assert!(lines.capacity() >= 1000);
        lines.extend_from_slice(b"{}\n");
        let address = lines.as_ptr();
        pool.give(lines);
        let again = pool.take(10);
        assert_eq!(again.as_ptr(), address, "the same buffer");
        assert!(again.is_empty(), "emptied");
        // A buffer grown past the bound is freed, and the pool keeps at most its count.
        pool.give(Vec::with_capacity(POOLED_CAPACITY_MAX + 1));
        for _ in 0..POOLED_BUFFERS + 3 {
            pool.give(Vec::with_capacity(64));
        }
        let kept = pool.0.lock().unwrap();
        assert_eq!(kept.len(), POOLED_BUFFERS);
        assert!(kept.iter().all(|b| b.capacity() <= POOLED_CAPACITY_MAX));
    }

    #[tokio::test]
    async fn a_file_behind_the_one_being_written_decodes_one_segment_at_a_time() {
        let csv = login_csv(3_000, |_| None);
        let expected = encoded_in_order(&csv, OutputFormat::Ndjson).unwrap();
        let (lines, stats) =
            encoded_in_segments_of(&csv, &[4096], OutputFormat::Ndjson, false).await;
        assert!(lines.unwrap() == expected, "same bytes");
        assert!(
            stats.spawned >= 40,
            "still beside the cutting task: {stats:?}"
        );
        assert_eq!(stats.most_at_once, 1, "{stats:?}");
    }

    #[tokio::test]
    async fn a_cut_that_was_not_a_row_boundary_is_decoded_again_in_order() {
        // A stray quote in an unquoted field (row 100) makes every quote count after it odd,
        // so the splitter cuts inside a quoted field's line break.
        let csv = login_csv(3_000, |i| (i == 100).then(|| "no\"te".to_string()));
        for format in [OutputFormat::Ndjson, OutputFormat::Ecs] {
            let expected = encoded_in_order(&csv, format).unwrap();
            let (lines, stats) = encoded_in_segments(&csv, &[4096], format).await;
            assert!(lines.unwrap() == expected, "{format}: same bytes");
            assert_eq!(stats.redone, 1, "{format}: {stats:?}");
            assert!(
                stats.in_order > 20,
                "{format}: the rest in order: {stats:?}"
            );
        }
    }

    #[tokio::test]
    async fn without_a_probable_row_boundary_the_rest_is_decoded_in_order() {
        // After the stray quote no line break looks like a row end: the splitter would hold
        // the rest of the file. Past `MAX_PENDING_BYTES` it is decoded in order.
        let csv = login_csv(90_000, |i| match i {
            3 => Some("no\"te".to_string()),
            _ => Some("\"note\"".to_string()),
        });
        assert!(csv.len() > MAX_PENDING_BYTES + (256 << 10));
        let expected = encoded_in_order(&csv, OutputFormat::Ndjson).unwrap();
        let (lines, stats) =
            encoded_in_segments(&csv, &[INFLATED_CHUNK], OutputFormat::Ndjson).await;
        assert!(lines.unwrap() == expected, "same bytes");
        assert_eq!((stats.spawned, stats.redone), (0, 0), "{stats:?}");
        // The first bytes, the pending 4 MiB, and each chunk after them.
        assert!(stats.in_order >= 3, "{stats:?}");
    }

    #[tokio::test]
    async fn a_bad_row_in_a_segment_ends_the_file_with_the_error_of_one_decoder() {
        let csv = login_csv(3_000, |i| (i == 2_500).then(|| "\"a\",\"b\"".to_string()));
        let expected = encoded_in_order(&csv, OutputFormat::Ecs).unwrap_err();
        assert!(expected.contains("fields but the header has"), "{expected}");
        let (lines, stats) = encoded_in_segments(&csv, &[4096], OutputFormat::Ecs).await;
        assert_eq!(lines.unwrap_err(), expected);
        assert!(stats.spawned >= 40, "{stats:?}");
    }

    mod segments {
        use super::*;
        use crate::event_log_file::record::testing::chunked_csv;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn decoding_in_segments_never_changes_the_lines_or_the_error(
                (csv, sizes) in chunked_csv(1..120, 400),
            ) {
                let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
                let expected = encoded_in_order(csv.as_bytes(), OutputFormat::Ndjson);
                let (lines, _) = runtime.block_on(encoded_in_segments(
                    csv.as_bytes(),
                    &sizes,
                    OutputFormat::Ndjson,
                ));
                prop_assert_eq!(lines, expected);
            }
        }
    }
}
