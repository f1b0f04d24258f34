//! A unit's rows on their way into the output file: staged beside it, appended once the
//! checkpoint records them, so that the output only ever grows.
//!
//! Why: log shippers tail the output, and Filebeat reads a file again from its start when it
//! gets shorter. Writing rows straight into the output and cutting it back after a failed
//! download (or on a restart after a crash) delivered them twice downstream.
//!
//! The protocol, per unit (an EventLogFile, an object's window):
//!
//! 1. rows go to a *slot*: memory (up to [`MEMORY`]), then the slot's staging file
//!    (`.NAME.staging-N` beside the output) for what does not fit;
//! 2. the commit writes the slot to its staging file with a header naming where the unit
//!    starts in the output, how long it is and its generation (counting up across runs, so
//!    that of two units staged for the same bytes the later is known), and syncs it (on the
//!    append thread); the commit resolves then, and the collector saves its checkpoint with
//!    the unit's end;
//! 3. the save listener ([`crate::collect::Sink::save_listener`]) wakes the append thread,
//!    which appends the unit (from memory when it fitted, else read back from the staging
//!    file) and syncs the output before the slot is used again.
//!
//! A crash between 2 and 3 leaves the output shorter than the checkpoint says: opening it
//! again finds the staging file whose unit ends at the checkpoint's position and appends the
//! part that is missing ([`recover`]). A crash before the save leaves the output as the
//! checkpoint has it: the unit is collected again. Nothing is ever appended that the checkpoint
//! does not record, so nothing is ever cut back.
//!
//! [`SLOTS`] slots: the collector writes the next unit while the one before it commits and
//! appends, so with three, beginning a unit waits at most for an append already under way.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::output_file::{OutputFile, read_exact_at, write_all_at};
use crate::collect::SaveListener;
use crate::error::Error;

/// Slots: one being written, one committing, one appending.
pub(super) const SLOTS: usize = 3;

/// The staging file's header block: where the unit starts in the output, its length and its
/// generation. Rows start after it, block-aligned for direct writes.
const HEADER: u64 = 4096;

/// A slot keeps this much of a unit in memory, so that its append need not read it back from
/// the disk; a larger unit's rest is read back. Typical daily files of 5,000 rows encode to
/// 2-10 MB; three slots cost at most three times this.
const MEMORY: usize = 16 << 20;

/// The first line of a staging file's header. (v1, without the generation, was never released.)
const MAGIC: &str = "salesforce-jwt staged rows v2";

/// Where slot `index` of `output` stages its rows: a hidden file beside it, so that a shipper
/// reading `*.ndjson` in the directory does not take it for output.
pub(super) fn staging_path(output: &Path, index: usize) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    output.with_file_name(format!(".{name}.staging-{index}"))
}

/// One unit's rows: in memory, then in its staging file.
struct Slot {
    index: usize,
    out: OutputFile,
}

impl Slot {
    fn open(output: &Path, index: usize) -> io::Result<Slot> {
        let path = staging_path(output, index);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let out = OutputFile::with_capacity(file, &path, HEADER, MEMORY)?;
        Ok(Slot { index, out })
    }

    /// The unit's bytes so far.
    fn len(&self) -> u64 {
        self.out.position() - HEADER
    }

    /// Empties the slot for a unit (what the file holds past the header is overwritten, and
    /// the header says how much of it counts).
    fn reset(&mut self) -> io::Result<()> {
        self.out.discard();
        self.out.reload(HEADER)
    }

    /// Makes the unit durable in the staging file, with `start`, its place in the output, and
    /// `generation`, its place among every unit staged beside the output.
    fn stage(&mut self, start: u64, generation: u64) -> io::Result<()> {
        self.out.persist()?;
        let header = Header {
            start,
            length: self.len(),
            generation,
        };
        write_all_at(self.out.file(), &header.block(), 0)?;
        self.out.file().sync_data()
    }

    /// Appends the unit to `output` (which must end at its start): from memory when it fitted,
    /// else read back from the staging file.
    fn append_to(&self, output: &mut OutputFile) -> io::Result<()> {
        match self.out.memory_since(HEADER) {
            Some(bytes) => output.write_all(bytes)?,
            None => copy_range(self.out.file(), HEADER, self.len(), output)?,
        }
        output.flush()
    }
}

/// Writes `length` bytes of `from` at `offset` to `to`, a MiB at a time.
fn copy_range(from: &File, offset: u64, length: u64, to: &mut impl Write) -> io::Result<()> {
    let mut piece = vec![0u8; 1 << 20];
    let mut done = 0u64;
    while done < length {
        let n = piece.len().min((length - done) as usize);
        read_exact_at(from, &mut piece[..n], offset + done)?;
        to.write_all(&piece[..n])?;
        done += n as u64;
    }
    Ok(())
}

/// What a staging file's first block says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    /// Where the unit's first byte goes in the output.
    start: u64,
    length: u64,
    /// Counts up with every unit staged beside this output, across runs: when a run that
    /// crashed before its checkpoint save left a unit in one slot, and a later run staged
    /// another unit for the same bytes of the output in another slot, the later one is what
    /// the checkpoint records. (The order in which slots are taken also implies it; the
    /// generation makes recovery check it instead of relying on that order.)
    generation: u64,
}

impl Header {
    fn block(&self) -> Vec<u8> {
        let mut block = format!(
            "{MAGIC}\nstart={}\nlength={}\ngeneration={}\nend\n",
            self.start, self.length, self.generation
        )
        .into_bytes();
        block.resize(HEADER as usize, 0);
        block
    }

    fn parse(block: &[u8]) -> Option<Header> {
        let text = std::str::from_utf8(block.split(|&b| b == 0).next()?).ok()?;
        let mut lines = text.lines();
        if lines.next()? != MAGIC {
            return None;
        }
        let start: u64 = lines.next()?.strip_prefix("start=")?.parse().ok()?;
        let length: u64 = lines.next()?.strip_prefix("length=")?.parse().ok()?;
        let generation = lines.next()?.strip_prefix("generation=")?.parse().ok()?;
        // A unit whose end or file size does not fit in a u64 is no unit (a damaged header).
        start.checked_add(length)?;
        HEADER.checked_add(length)?;
        (lines.next()? == "end").then_some(Header {
            start,
            length,
            generation,
        })
    }

    /// The header of the staging file `handle`, if it has one.
    fn read(handle: &File) -> Option<Header> {
        let mut block = vec![0u8; HEADER as usize];
        read_exact_at(handle, &mut block, 0).ok()?;
        Header::parse(&block)
    }
}

/// Finishes the appends a crash interrupted: the output (`file`, `len` bytes) is shorter than
/// the `committed` length the checkpoint records, and the staging files hold the units that
/// end there (several, when the checkpoint recorded units faster than they were appended).
/// Returns whether they covered the gap (the output then ends at `committed`, synced); when
/// they do not, nothing is written.
pub(super) fn recover(output: &Path, file: &File, len: u64, committed: u64) -> io::Result<bool> {
    let mut staged = Vec::new();
    for index in 0..SLOTS {
        let path = staging_path(output, index);
        let handle = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let Some(header) = Header::read(&handle) else {
            continue;
        };
        if handle.metadata()?.len() >= HEADER + header.length {
            staged.push((header, handle));
        }
    }
    // The chain of units from the one the output ends inside to the one ending at `committed`.
    let mut chain = Vec::new();
    let mut at = len;
    while at < committed {
        // The latest staged of the units holding this byte: an older one is left from a run
        // that stopped before its checkpoint recorded it. (Equal generations, which only a
        // damaged header can give, go to the lowest slot: the one a run takes first.)
        let Some(next) = staged
            .iter()
            .filter(|(h, _)| h.start <= at && at < h.start + h.length)
            .min_by_key(|(h, _)| std::cmp::Reverse(h.generation))
        else {
            return Ok(false);
        };
        chain.push((at, next));
        at = next.0.start + next.0.length;
    }
    if at != committed {
        return Ok(false);
    }
    for (from, (header, handle)) in chain {
        let done = from - header.start;
        let mut to = AtOffset { file, at: from };
        copy_range(handle, HEADER + done, header.length - done, &mut to)?;
    }
    file.sync_data()?;
    tracing::info!(output = %output.display(), appended = committed - len, "finished appending rows the checkpoint records, from their staging files");
    Ok(true)
}

/// Writes at a moving offset of a file (no shared cursor).
struct AtOffset<'f> {
    file: &'f File,
    at: u64,
}

impl Write for AtOffset<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        write_all_at(self.file, bytes, self.at)?;
        self.at += bytes.len() as u64;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A committed unit on its way to the output.
struct Job {
    slot: Slot,
    start: u64,
    end: u64,
    /// Told once the unit is durable in its staging file.
    durable: oneshot::Sender<Result<(), Error>>,
}

/// What the sink and the append thread share, under one lock (never held across an await or
/// an I/O call).
struct State {
    /// The highest output position a checkpoint records: units ending there may be appended.
    saved: u64,
    /// The output's length: units appended so far end here.
    appended: u64,
    /// Where the last committed unit ends.
    committed: u64,
    jobs: VecDeque<Job>,
    /// Units durable in their staging files, oldest first.
    staged: VecDeque<Staged>,
    /// Where each committed unit whose slot is not free again ends, oldest first.
    unfinished: VecDeque<u64>,
    free: Vec<Slot>,
    /// The sink is being dropped: append what is recorded, drop the rest.
    closing: bool,
    /// An append failed: the output's end is unknown, so nothing more is appended; the
    /// checkpoint's units are appended from their staging files on the next open.
    failed: Option<Error>,
    /// The generation of the next unit staged: past every header found at the start.
    generation: u64,
    /// Makes the next append fail (`Some(true)`) or its sync (`Some(false)`), for tests.
    #[cfg(test)]
    fail_append: Option<bool>,
    /// Holds recorded units back from the output, for tests.
    #[cfg(test)]
    hold_appends: bool,
}

impl State {
    /// Whether no slot will come free without the caller: every slot but the one it needs
    /// holds a committed unit that only the caller's save could record.
    fn waits_for_the_caller(&self) -> bool {
        let unrecorded = self.unfinished.iter().filter(|&&end| end > self.saved);
        unrecorded.count() >= SLOTS - 1
    }
}

pub(super) struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned one still holds a sound state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(guard).unwrap_or_else(|e| e.into_inner())
    }
}

/// The sink's side: the slot being written, and the append thread.
pub(super) struct Stager {
    shared: Arc<Shared>,
    current: Option<Slot>,
    /// Where the current unit starts in the output.
    start: u64,
    thread: Option<JoinHandle<()>>,
    output: PathBuf,
}

/// How a commit goes on.
pub(super) enum Committed {
    /// Nothing to stage (no rows): the position is final at once.
    Empty(u64),
    /// The unit ends at this position once the receiver says it is durable.
    Staging(u64, oneshot::Receiver<Result<(), Error>>),
}

impl Stager {
    /// Stages units for `output` (`file`, opened and locked), which ends at `position`.
    pub(super) fn start(output: &Path, file: File, position: u64) -> Result<Stager, Error> {
        let context = |e| {
            Error::io(
                format!("opening the staging files of {}", output.display()),
                e,
            )
        };
        let mut free = Vec::with_capacity(SLOTS);
        let mut generation = 0;
        for index in (0..SLOTS).rev() {
            let slot = Slot::open(output, index).map_err(context)?;
            if let Some(header) = Header::read(slot.out.file()) {
                generation = generation.max(header.generation.saturating_add(1));
            }
            free.push(slot);
        }
        // Recovery after a power loss needs the staging files' entries, not only their blocks.
        let dir = match output.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        crate::collect::checkpoint::sync_dir(dir).map_err(context)?;
        let out = OutputFile::new(file, output, position)
            .map_err(|e| Error::io(format!("reading the end of {}", output.display()), e))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                saved: position,
                appended: position,
                committed: position,
                jobs: VecDeque::new(),
                staged: VecDeque::new(),
                unfinished: VecDeque::new(),
                free,
                closing: false,
                failed: None,
                generation,
                #[cfg(test)]
                fail_append: None,
                #[cfg(test)]
                hold_appends: false,
            }),
            changed: Condvar::new(),
        });
        let name = output.display().to_string();
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("output-append".into())
                .spawn(move || append_loop(&shared, out, &name))
                .map_err(|e| {
                    Error::io(
                        format!("starting the append thread of {}", output.display()),
                        e,
                    )
                })?
        };
        Ok(Stager {
            shared,
            current: None,
            start: position,
            thread: Some(thread),
            output: output.to_path_buf(),
        })
    }

    /// The state shared with the append thread, for tests.
    #[cfg(test)]
    pub(super) fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Fails when an append failed.
    pub(super) fn check(&self) -> Result<(), Error> {
        match &self.shared.lock().failed {
            None => Ok(()),
            Some(e) => Err(e.clone()),
        }
    }

    /// An empty slot for the next unit. Waits, if all are taken, for the append under way
    /// (a disk write, which never needs this thread); refuses to wait for a save that only the
    /// caller could make.
    fn slot(&mut self) -> io::Result<&mut Slot> {
        if self.current.is_none() {
            let mut state = self.shared.lock();
            let slot = loop {
                // Before any free slot: a begin that waited while an append failed must not
                // go on (the sink's own check ran before it waited).
                if let Some(e) = &state.failed {
                    return Err(io::Error::other(e.to_string()));
                }
                if let Some(slot) = state.free.pop() {
                    break slot;
                }
                if state.waits_for_the_caller() {
                    return Err(io::Error::other(
                        "every staging slot holds a committed unit that no checkpoint recorded: \
                         tell the sink's save listener each committed position once it is saved \
                         before beginning another unit",
                    ));
                }
                state = self.shared.wait(state);
            };
            drop(state);
            let mut slot = slot;
            slot.reset()?;
            self.current = Some(slot);
        }
        match self.current.as_mut() {
            Some(slot) => Ok(slot),
            None => Err(io::Error::other("no staging slot")),
        }
    }

    /// Returns once [`begin`](Self::begin) will not wait: a slot is free, or it has an error to
    /// give. All slots are taken while the append thread appends one (a disk write and sync):
    /// that wait happens on the blocking pool, not on the runtime worker the caller runs on,
    /// which other collectors' downloads and timers share.
    pub(super) async fn slot_ready(&self) -> Result<(), Error> {
        let ready = |state: &State| {
            !state.free.is_empty() || state.failed.is_some() || state.waits_for_the_caller()
        };
        if self.current.is_some() || ready(&self.shared.lock()) {
            return Ok(());
        }
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let mut state = shared.lock();
            while !ready(&state) {
                state = shared.wait(state);
            }
        })
        .await
        .map_err(|e| Error::Internal(format!("waiting for a staging slot failed: {e}")))
    }

    /// Begins a unit: an empty slot (a slot is emptied when taken; one kept from before is
    /// emptied here).
    pub(super) fn begin(&mut self) -> Result<(), Error> {
        let kept = self.current.is_some();
        let path = self.output.display().to_string();
        let slot = self
            .slot()
            .map_err(|e| Error::io(format!("staging rows for {path}"), e))?;
        if kept {
            slot.reset()
                .map_err(|e| Error::io(format!("staging rows for {path}"), e))?;
        }
        Ok(())
    }

    /// Forgets the current unit's rows: nothing of them reached the output.
    pub(super) fn rollback(&mut self) -> Result<(), Error> {
        if let Some(slot) = self.current.as_mut() {
            slot.reset()
                .map_err(|e| Error::io(format!("staging rows for {}", self.output.display()), e))?;
        }
        Ok(())
    }

    /// Commits the current unit: hands it to the append thread to be staged, and, with
    /// `recorded` (no save listener), counts it as recorded at once. The sink checked for a
    /// failed append before ([`check`](Self::check)).
    pub(super) fn commit(&mut self, recorded: bool) -> Committed {
        let slot = match self.current.take() {
            Some(slot) if slot.len() > 0 => slot,
            // No rows: nothing to stage, and the slot (if any) serves the next unit.
            kept => {
                self.current = kept;
                return Committed::Empty(self.start);
            }
        };
        let (start, end) = (self.start, self.start + slot.len());
        let (durable, staged) = oneshot::channel();
        let mut state = self.shared.lock();
        state.jobs.push_back(Job {
            slot,
            start,
            end,
            durable,
        });
        state.committed = end;
        state.unfinished.push_back(end);
        if recorded {
            state.saved = state.saved.max(end);
        }
        drop(state);
        self.shared.changed.notify_all();
        self.start = end;
        Committed::Staging(end, staged)
    }

    /// What the collector tells after each checkpoint save: the append thread appends the
    /// units the checkpoint now records, while the collector goes on (waiting here would put
    /// every append on the pass's critical path). The pass's end waits for them.
    pub(super) fn listener(&self) -> SaveListener {
        let shared = Arc::clone(&self.shared);
        let settled = Arc::clone(&self.shared);
        let output = self.output.display().to_string();
        SaveListener::new(move |position| {
            let mut state = shared.lock();
            state.saved = state.saved.max(position);
            drop(state);
            shared.changed.notify_all();
            Ok(())
        })
        .with_settle(move || appended(&settled, &output))
    }
}

/// Waits until the units the checkpoint records are appended, or an append failed; then the
/// free slots give back what large units took (with hundreds of orgs, an idle output must not
/// hold three of its largest units in memory).
fn appended(shared: &Shared, output: &str) -> Result<(), Error> {
    let mut state = shared.lock();
    let wanted = state.saved.min(state.committed);
    while state.appended < wanted && state.failed.is_none() {
        state = shared.wait(state);
    }
    for slot in &mut state.free {
        if slot.reset().is_ok() {
            slot.out.shrink();
        }
    }
    match &state.failed {
        None => Ok(()),
        Some(e) => Err(Error::sink(
            format!(
                "appending recorded rows to {output} failed; the checkpoint records them, and \
                 they are appended from their staging file when the output is opened again"
            ),
            e.clone(),
            true,
        )),
    }
}

impl Drop for Stager {
    /// Appends what the checkpoint records, drops what it does not (collected again on the
    /// next run), and removes the staging files once nothing needs them: only when every
    /// committed unit is in the output. A unit left out may still be recorded: a checkpoint
    /// save can fail after the store kept it (a directory sync, a lost commit acknowledgement),
    /// and then the next open appends it from its staging file.
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let state = self.shared.lock();
        let done = state.failed.is_none() && state.appended == state.committed;
        drop(state);
        if done {
            for index in 0..SLOTS {
                let _ = std::fs::remove_file(staging_path(&self.output, index));
            }
        }
    }
}

impl Write for Stager {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.slot()?.out.write_all(bytes)?;
        Ok(bytes.len())
    }

    /// Rows stay in the slot until the commit.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for Stager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stager")
            .field("start", &self.start)
            .field(
                "current",
                &self.current.as_ref().map(|s| (s.index, s.len())),
            )
            .finish()
    }
}

/// The append thread's next piece of work.
enum Work {
    Stage(Job),
    Append(Staged),
}

/// A unit durable in its staging file, waiting for the checkpoint to record it.
struct Staged {
    slot: Slot,
    start: u64,
    end: u64,
}

/// The append thread: stages each committed unit at once, in order, and appends each staged
/// one once the checkpoint records it. Staging never waits for a save, so a caller that
/// commits without saving gets its commits (and is refused a slot later, not left hanging).
fn append_loop(shared: &Shared, mut output: OutputFile, name: &str) {
    loop {
        let work = {
            let mut state = shared.lock();
            loop {
                if let Some(job) = state.jobs.pop_front() {
                    break Work::Stage(job);
                }
                let recorded = state.staged.front().is_some_and(|s| s.end <= state.saved);
                #[cfg(test)]
                let recorded = recorded && !state.hold_appends;
                if recorded
                    && state.failed.is_none()
                    && let Some(staged) = state.staged.pop_front()
                {
                    break Work::Append(staged);
                }
                if state.closing {
                    // What the checkpoint does not record is collected again by the next run.
                    let left: Vec<Staged> = state.staged.drain(..).collect();
                    drop(state);
                    for staged in left {
                        free(shared, staged.slot, staged.end);
                    }
                    return;
                }
                state = shared.wait(state);
            }
        };
        match work {
            Work::Stage(job) => stage(shared, job, name),
            Work::Append(staged) => append(shared, staged, &mut output, name),
        }
    }
}

/// Makes a committed unit durable in its staging file and tells the commit.
fn stage(shared: &Shared, job: Job, name: &str) {
    let Job {
        mut slot,
        start,
        end,
        durable,
    } = job;
    let (failed, generation) = {
        // Staged one at a time, in commit order, on this thread: the generations count up.
        let mut state = shared.lock();
        let generation = state.generation;
        state.generation = generation.saturating_add(1);
        (state.failed.clone(), generation)
    };
    let staged = match failed {
        Some(e) => Err(e),
        None => slot
            .stage(start, generation)
            .map_err(|e| Error::io(format!("staging rows for {name}"), e)),
    };
    let ok = staged.is_ok();
    // The receiver is gone when the collector stopped waiting; the unit then is not saved.
    let _ = durable.send(staged);
    if ok {
        shared.lock().staged.push_back(Staged { slot, start, end });
        shared.changed.notify_all();
    } else {
        free(shared, slot, end);
    }
}

/// Appends a recorded unit and syncs the output before its slot is used again (and before
/// the pass's end may count it as appended).
///
/// When either fails, the slot is never given back: its staging file is then the only copy of
/// rows the checkpoint records, which the next open appends from it.
fn append(shared: &Shared, staged: Staged, output: &mut OutputFile, name: &str) {
    let Staged { slot, start, end } = staged;
    #[cfg(test)]
    let injected = shared.lock().fail_append.take();
    #[cfg(not(test))]
    let injected: Option<bool> = None;
    let appended = if injected == Some(true) {
        Err(io::Error::other("an append failure the test asked for"))
    } else if output.position() == start {
        slot.append_to(output)
    } else {
        Err(io::Error::other(format!(
            "the output ends at byte {} where the unit starts at {start}",
            output.position()
        )))
    }
    .map_err(|e| Error::io(format!("appending rows to {name}"), e))
    .and_then(|()| {
        let synced = if injected == Some(false) {
            Err(io::Error::other("a sync failure the test asked for"))
        } else {
            output.file().sync_data()
        };
        synced.map_err(|e| Error::io(format!("syncing {name}"), e))
    });
    match appended {
        Ok(()) => {
            shared.lock().appended = end;
            free(shared, slot, end);
        }
        Err(e) => {
            shared.lock().failed = Some(e);
            shared.changed.notify_all();
        }
    }
}

/// Gives a slot back once its unit (ending at `end`) was appended or given up.
fn free(shared: &Shared, slot: Slot, end: u64) {
    let mut state = shared.lock();
    if let Some(i) = state.unfinished.iter().position(|&e| e == end) {
        state.unfinished.remove(i);
    }
    state.free.push(slot);
    drop(state);
    shared.changed.notify_all();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_header_reads_back_and_anything_else_is_no_header() {
        let header = Header {
            start: 12_345,
            length: 678,
            generation: 9,
        };
        assert_eq!(Header::parse(&header.block()), Some(header));
        // Without a generation (the unreleased v1), or a unit ending past what a u64 holds.
        let v1 = "salesforce-jwt staged rows v1\nstart=12345\nlength=678\nend\n";
        assert_eq!(Header::parse(v1.as_bytes()), None);
        let past = Header {
            start: u64::MAX - 10,
            ..header
        };
        assert_eq!(Header::parse(&past.block()), None);
        assert_eq!(Header::parse(&[0u8; 4096]), None);
        let mut other = header.block();
        other[0] = b'X';
        assert_eq!(Header::parse(&other), None);
    }

    /// A staging file for slot `index` of `output` holding `rows`, staged at `start` with
    /// `generation`.
    fn write_staged(output: &Path, index: usize, start: u64, generation: u64, rows: &[u8]) {
        let header = Header {
            start,
            length: rows.len() as u64,
            generation,
        };
        let mut staged = header.block();
        staged.extend_from_slice(rows);
        std::fs::write(staging_path(output, index), &staged).unwrap();
    }

    /// What a crash between the checkpoint's save and the end of the append leaves: an output
    /// holding part of the unit (or none of it), the unit whole in a staging file.
    fn crashed_mid_append(dir: &Path, appended: usize) -> PathBuf {
        let path = dir.join("events.ndjson");
        let unit = b"{\"b\":2}\n{\"c\":3}\n";
        let mut output = b"{\"a\":1}\n".to_vec();
        output.extend_from_slice(&unit[..appended]);
        std::fs::write(&path, &output).unwrap();
        // Another slot holds an older unit, which must not be taken for this one.
        write_staged(&path, 0, 0, 1, b"{\"a\":1}\n");
        write_staged(&path, 2, 8, 2, unit);
        path
    }

    /// Two recorded units not yet appended (the checkpoint moves on while the append thread
    /// works): the restart appends the rest of the first and the whole second, in order.
    #[test]
    fn opening_finishes_every_append_the_checkpoint_got_ahead_of() {
        let dir = tempfile::tempdir().unwrap();
        let path = crashed_mid_append(dir.path(), 3);
        write_staged(&path, 1, 24, 3, b"{\"d\":4}\n");
        drop(crate::sink::NdjsonFileSink::open(&path, Some(32)).unwrap());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n{\"d\":4}\n"
        );
    }

    /// A unit larger than the first MiB grows its slot's buffer; the pass's end gives it back.
    #[tokio::test]
    async fn a_large_unit_s_memory_is_given_back_when_the_pass_ends() {
        use crate::collect::{Sink, Unit};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let mut sink = crate::sink::NdjsonFileSink::open(&path, None).unwrap();
        let listener = sink.save_listener().unwrap();
        let file = crate::event_log_file::test_file();
        let unit = Unit::LogFile(&file);
        sink.begin(&unit).await.unwrap();
        sink.write_encoded(&file, &vec![b'x'; 5 << 20])
            .await
            .unwrap();
        let end = sink.commit(&unit).await.unwrap().unwrap();
        listener.saved(end).unwrap();
        let rooms = |shared: &Shared| -> Vec<usize> {
            shared.lock().free.iter().map(|s| s.out.room()).collect()
        };
        listener.settle().unwrap();
        let shared = sink.stager_shared();
        assert!(
            rooms(&shared).iter().all(|&room| room <= 1 << 20),
            "{:?}",
            rooms(&shared)
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 5 << 20);
    }

    /// A unit `{"a":1}` in the output, then `{"b":2}` committed: the sink, its listener and
    /// where each unit ends.
    async fn one_unit_appended_one_committed(
        path: &Path,
    ) -> (crate::sink::NdjsonFileSink, SaveListener, u64, u64) {
        use crate::collect::{Sink, Unit};
        let mut sink = crate::sink::NdjsonFileSink::open(path, None).unwrap();
        let listener = sink.save_listener().unwrap();
        let file = crate::event_log_file::test_file();
        let unit = Unit::LogFile(&file);
        sink.begin(&unit).await.unwrap();
        sink.write_encoded(&file, b"{\"a\":1}\n").await.unwrap();
        let a = sink.commit(&unit).await.unwrap().unwrap();
        listener.saved(a).unwrap();
        listener.settle().unwrap();
        sink.begin(&unit).await.unwrap();
        sink.write_encoded(&file, b"{\"b\":2}\n").await.unwrap();
        let b = sink.commit(&unit).await.unwrap().unwrap();
        (sink, listener, a, b)
    }

    fn staging_files(path: &Path) -> Vec<PathBuf> {
        (0..SLOTS)
            .map(|i| staging_path(path, i))
            .filter(|p| p.exists())
            .collect()
    }

    /// An append (or its sync) that fails after the checkpoint recorded the unit: the pass's
    /// end says so, no later unit may take the unit's slot (its staging file is the only copy
    /// of rows the checkpoint records), and the next open appends the unit from it.
    #[tokio::test]
    async fn a_failed_append_keeps_its_unit_for_the_next_open() {
        for append_fails in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("out.ndjson");
            let (mut sink, listener, a, b) = one_unit_appended_one_committed(&path).await;
            sink.stager_shared().lock().fail_append = Some(append_fails);
            listener.saved(b).unwrap();
            let settled = listener.settle();
            assert!(settled.is_err(), "append fails: {append_fails}");
            // What a begin that was waiting for a slot when the append failed does next (the
            // sink's own check ran before it waited).
            assert!(
                sink.ndjson.out.begin().is_err(),
                "append fails: {append_fails}"
            );
            drop(sink);
            // A failed sync leaves the bytes written, unsynced; a failed append leaves none.
            let expected_len = if append_fails { a } else { b };
            assert_eq!(std::fs::metadata(&path).unwrap().len(), expected_len);
            drop(crate::sink::NdjsonFileSink::open(&path, Some(b)).unwrap());
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                "{\"a\":1}\n{\"b\":2}\n",
                "append fails: {append_fails}"
            );
            assert_eq!(staging_files(&path), Vec::<PathBuf>::new());
        }
    }

    /// A checkpoint save can fail after the store kept the position (a directory sync, a lost
    /// commit acknowledgement): the listener never hears it and the sink is dropped with the
    /// unit unappended. Its staging file stays, so opening with the kept checkpoint appends it.
    #[tokio::test]
    async fn a_unit_whose_save_was_not_reported_survives_the_sink() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let (sink, _listener, a, b) = one_unit_appended_one_committed(&path).await;
        drop(sink);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), a);
        assert!(!staging_files(&path).is_empty());
        drop(crate::sink::NdjsonFileSink::open(&path, Some(b)).unwrap());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n{\"b\":2}\n"
        );
        // The save really failed: the checkpoint still says `a`, and the unit is collected again.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let (sink, _listener, a, _) = one_unit_appended_one_committed(&path).await;
        drop(sink);
        drop(crate::sink::NdjsonFileSink::open(&path, Some(a)).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n");
        assert_eq!(staging_files(&path), Vec::<PathBuf>::new());
    }

    /// Every slot taken while the append thread works: beginning the next unit waits for it
    /// off the runtime's thread. On this one-thread runtime the task that lets the append go
    /// on runs only if the wait leaves the thread free; a watchdog thread ends a wait that
    /// does not, and the test fails.
    #[tokio::test]
    async fn a_begin_waiting_for_a_slot_leaves_the_runtime_free() {
        use crate::collect::{Sink, Unit};
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let mut sink = crate::sink::NdjsonFileSink::open(&path, None).unwrap();
        let listener = sink.save_listener().unwrap();
        let shared = sink.stager_shared();
        shared.lock().hold_appends = true;
        let file = crate::event_log_file::test_file();
        let unit = Unit::LogFile(&file);
        for line in [&b"{\"a\":1}\n"[..], b"{\"b\":2}\n", b"{\"c\":3}\n"] {
            sink.begin(&unit).await.unwrap();
            sink.write_encoded(&file, line).await.unwrap();
            let end = sink.commit(&unit).await.unwrap().unwrap();
            listener.saved(end).unwrap();
        }
        let release = |shared: &Shared| {
            shared.lock().hold_appends = false;
            shared.changed.notify_all();
        };
        let by_watchdog = Arc::new(AtomicBool::new(false));
        let watchdog = {
            let (shared, by_watchdog) = (Arc::clone(&shared), Arc::clone(&by_watchdog));
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_secs(10));
                if shared.lock().hold_appends {
                    by_watchdog.store(true, Ordering::SeqCst);
                    release(&shared);
                }
            })
        };
        let task_shared = Arc::clone(&shared);
        tokio::spawn(async move { release(&task_shared) });
        sink.begin(&unit).await.unwrap();
        assert!(
            !by_watchdog.load(Ordering::SeqCst),
            "the wait for a slot held the runtime's thread"
        );
        sink.write_encoded(&file, b"{\"d\":4}\n").await.unwrap();
        let end = sink.commit(&unit).await.unwrap().unwrap();
        listener.saved(end).unwrap();
        listener.settle().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n{\"d\":4}\n"
        );
        drop(sink);
        drop(watchdog);
    }

    /// Two staged units for the same bytes: one left by a run that crashed before its
    /// checkpoint save, and the later one the checkpoint records. Opening appends the later
    /// one, wherever the two are. (Until headers had generations, recovery took the first in
    /// slot order, right only because a run takes slots in that order, so that a later run's
    /// unit is always in a lower slot than an earlier run's unit for the same bytes; this test
    /// puts them the other way round.)
    #[test]
    fn opening_takes_the_latest_of_two_units_staged_for_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = crashed_mid_append(dir.path(), 0);
        write_staged(&path, 0, 8, 1, b"{\"x\":0}\n{\"y\":0}\n");
        drop(crate::sink::NdjsonFileSink::open(&path, Some(24)).unwrap());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n"
        );
    }

    /// Units staged after an open count on from the highest generation found beside the
    /// output, so that they are later than anything a run before left.
    #[tokio::test]
    async fn units_staged_after_an_open_are_later_than_every_unit_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        write_staged(&path, 1, 0, 41, b"{\"x\":0}\n");
        let (sink, _listener, _, b) = one_unit_appended_one_committed(&path).await;
        drop(sink);
        let generations: Vec<(u64, u64)> = staging_files(&path)
            .iter()
            .filter_map(|p| Header::read(&File::open(p).unwrap()))
            .map(|h| (h.start + h.length, h.generation))
            .collect();
        // `{"a":1}` (appended; its slot free again) then `{"b":2}` (committed, unrecorded).
        assert!(generations.contains(&(b, 43)), "{generations:?}");
    }

    #[test]
    fn opening_finishes_an_append_a_crash_interrupted() {
        for appended in [0, 5, 15] {
            let dir = tempfile::tempdir().unwrap();
            let path = crashed_mid_append(dir.path(), appended);
            let sink = crate::sink::NdjsonFileSink::open(&path, Some(24)).unwrap();
            drop(sink);
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n",
                "after {appended} bytes of the unit"
            );
        }
    }

    /// A checkpoint past the output with no staging file holding the rest: the output lost
    /// rows; it is refused and left as it was.
    #[test]
    fn an_output_shorter_than_any_staged_unit_explains_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = crashed_mid_append(dir.path(), 5);
        let error = crate::sink::NdjsonFileSink::open(&path, Some(30))
            .unwrap_err()
            .to_string();
        assert!(error.contains("truncated or replaced"), "{error}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 13);
    }
}
