//! The output file's writer: whole blocks straight to the disk (`O_DIRECT`) where the
//! filesystem allows it, the page cache otherwise.
//!
//! Why: writing through the page cache costs a kernel copy of every output byte plus the
//! writeback's own work, and the output is two to three times the size of the CSV. Measured on
//! the 2-core CI machine, 1 GB with `dd`: buffered and fdatasync 0.6-0.8 s of system CPU,
//! `O_DIRECT` 0.1-0.2 s; in a profile of the ECS pass the kernel copy was a quarter of all
//! CPU. The collector is CPU-bound, so that quarter is the pass's speed.
//!
//! `O_DIRECT` writes must start at, and be a multiple of, the device's block size, from
//! aligned memory. Lines have no such shape, so:
//!
//! - bytes collect in a [`BLOCK`]-aligned buffer whose first byte belongs at `base`, a
//!   multiple of [`BLOCK`]; whole blocks go out through the direct handle;
//! - a flush (every commit) writes the tail, the part of a block that is not whole, through
//!   the ordinary handle at its place, and keeps it in the buffer: the next direct write
//!   rewrites that block with the same bytes and what follows. Linux writes back and drops
//!   cached pages of a range before a direct write to it, so the two handles agree. Nothing
//!   but the output's own bytes is ever written (no padding a reader could see);
//! - a cut back (restart, rollback) reads the partial block before the new end back into the
//!   buffer.
//!
//! A filesystem that refuses `O_DIRECT` (tmpfs on older kernels, some network filesystems)
//! refuses it at open or at the first write (`EINVAL`); the writer then goes on through the
//! page cache for good, as it always did elsewhere than on Linux.
//!
//! The price: a tailing reader (a shipper) reads the output from the disk, not the cache.

use std::fs::File;
use std::io::{self, Write};
#[cfg(unix)]
use std::os::unix::fs::FileExt as _;
use std::path::Path;

/// The alignment of direct writes: the page size, which covers every device's logical block
/// (512 or 4096 bytes) and ext4's and XFS's filesystem blocks.
const BLOCK: usize = 4096;

/// The buffer: direct writes of this size, a multiple of [`BLOCK`]. One MiB keeps a device
/// busy with few system calls and costs one MiB of memory.
const CAPACITY: usize = 1 << 20;

/// The output file, written at explicit offsets (no shared file cursor).
pub(super) struct OutputFile {
    /// Takes the tails, truncations, syncs and the lock.
    file: File,
    /// The same file opened with `O_DIRECT`, while direct writes work.
    direct: Option<File>,
    /// `room + BLOCK` bytes; the buffer is the aligned `storage[start..start + room]`.
    storage: Vec<u8>,
    /// The buffer's size now: [`CAPACITY`] at first, doubled as a unit needs it, up to
    /// `capacity` (see [`shrink`](Self::shrink)).
    room: usize,
    start: usize,
    /// Bytes in the buffer.
    len: usize,
    /// Of those, how many the file already holds (a tail written by a flush).
    in_file: usize,
    /// Where the buffer's first byte belongs in the file; a multiple of [`BLOCK`] while
    /// `direct` is set.
    base: u64,
    /// The buffer's size: [`CAPACITY`], or more for a staging file that keeps a whole unit
    /// in memory; a multiple of [`BLOCK`].
    capacity: usize,
}

impl OutputFile {
    /// Writes `file`, opened at `path`, after its first `position` bytes (which it must hold).
    pub(super) fn new(file: File, path: &Path, position: u64) -> io::Result<Self> {
        Self::with_capacity(file, path, position, CAPACITY)
    }

    /// [`new`](Self::new) with a buffer of `capacity` bytes (rounded up to a [`BLOCK`]).
    pub(super) fn with_capacity(
        file: File,
        path: &Path,
        position: u64,
        capacity: usize,
    ) -> io::Result<Self> {
        let capacity = capacity.max(BLOCK).div_ceil(BLOCK) * BLOCK;
        let direct = open_direct(path);
        let room = CAPACITY.min(capacity);
        let storage = vec![0u8; room + BLOCK];
        // Below BLOCK: the offset to the next BLOCK boundary of a byte pointer. (`min` only
        // keeps the slice in bounds should the standard library ever give up, as it may.)
        let start = storage.as_ptr().align_offset(BLOCK).min(BLOCK);
        let mut out = OutputFile {
            file,
            direct,
            storage,
            room,
            start,
            len: 0,
            in_file: 0,
            base: 0,
            capacity,
        };
        out.reload(position)?;
        Ok(out)
    }

    /// The file, for syncs, truncations and the lock.
    pub(super) fn file(&self) -> &File {
        &self.file
    }

    /// Whether whole blocks bypass the page cache.
    #[cfg(test)]
    pub(super) fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Goes on through the page cache, as where the filesystem refuses direct writes.
    #[cfg(test)]
    pub(super) fn without_direct(&mut self) -> io::Result<()> {
        self.flush()?;
        let position = self.position();
        self.direct = None;
        self.reload(position)
    }

    /// Where the next byte goes: the output's length once flushed.
    pub(super) fn position(&self) -> u64 {
        self.base + self.len as u64
    }

    /// Forgets what the buffer holds that the file does not, before a truncation: unlike
    /// `BufWriter`, nothing is written only to be cut.
    pub(super) fn discard(&mut self) {
        self.len = self.in_file;
    }

    /// Moves the buffer to storage of `room` bytes (at least what it holds), aligned anew.
    fn resize(&mut self, room: usize) {
        let mut storage = vec![0u8; room + BLOCK];
        let start = storage.as_ptr().align_offset(BLOCK).min(BLOCK);
        storage[start..start + self.len]
            .copy_from_slice(&self.storage[self.start..self.start + self.len]);
        self.storage = storage;
        self.start = start;
        self.room = room;
    }

    /// The buffer's size now.
    #[cfg(test)]
    pub(super) fn room(&self) -> usize {
        self.room
    }

    /// Gives back the memory a large unit took, once the buffer holds no more than the first
    /// [`CAPACITY`] bytes: an idle staging slot keeps one MiB, not its largest unit.
    pub(super) fn shrink(&mut self) {
        if self.room > CAPACITY && self.len <= CAPACITY {
            self.resize(CAPACITY);
        }
    }

    /// The bytes written since `from`, when the buffer still holds all of them (nothing was
    /// written out of it since the writer started at `from`).
    pub(super) fn memory_since(&self, from: u64) -> Option<&[u8]> {
        (self.base == from).then(|| &self.storage[self.start..self.start + self.len])
    }

    /// Writes what the buffer holds that the file does not, like [`flush`](Write::flush), but
    /// keeps every byte in the buffer (a flush lets whole blocks go): a staging file's unit
    /// stays in memory for its append.
    pub(super) fn persist(&mut self) -> io::Result<()> {
        let start = self.start;
        let mut from = self.in_file;
        if let Some(direct) = &self.direct {
            let first = from - from % BLOCK;
            let whole = self.len - self.len % BLOCK;
            if whole > first {
                match write_all_at(
                    direct,
                    &self.storage[start + first..start + whole],
                    self.base + first as u64,
                ) {
                    Ok(()) => from = from.max(whole),
                    Err(e) if refuses_direct(&e) => {
                        tracing::debug!(error = %e, "the filesystem refuses direct writes to a staging file; writing through the page cache");
                        self.direct = None;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if from < self.len {
            write_all_at(
                &self.file,
                &self.storage[start + from..start + self.len],
                self.base + from as u64,
            )?;
        }
        self.in_file = self.len;
        Ok(())
    }

    /// Goes on after the first `position` bytes of the file, once it was cut there: the
    /// partial block before `position` is read back, since the next direct write covers it.
    pub(super) fn reload(&mut self, position: u64) -> io::Result<()> {
        self.len = 0;
        self.in_file = 0;
        if self.direct.is_none() {
            self.base = position;
            return Ok(());
        }
        let partial = (position % BLOCK as u64) as usize;
        self.base = position - partial as u64;
        let start = self.start;
        read_exact_at(
            &self.file,
            &mut self.storage[start..start + partial],
            self.base,
        )?;
        self.len = partial;
        self.in_file = partial;
        Ok(())
    }

    /// Writes the buffer's whole blocks (direct), or all of it (page cache), and keeps the
    /// rest at the buffer's start.
    fn write_blocks(&mut self) -> io::Result<()> {
        let start = self.start;
        if let Some(direct) = &self.direct {
            let whole = self.len - self.len % BLOCK;
            if whole == 0 {
                return Ok(());
            }
            match write_all_at(direct, &self.storage[start..start + whole], self.base) {
                Ok(()) => {
                    self.storage
                        .copy_within(start + whole..start + self.len, start);
                    self.base += whole as u64;
                    self.len -= whole;
                    self.in_file = self.in_file.saturating_sub(whole);
                    return Ok(());
                }
                Err(e) if refuses_direct(&e) => {
                    tracing::debug!(error = %e, "the filesystem refuses direct writes to the output; writing through the page cache");
                    self.direct = None;
                    // A refused write may have written a part (a short write, then EINVAL
                    // for the rest): all of it is written again below.
                    self.in_file = 0;
                }
                Err(e) => return Err(e),
            }
        }
        let pending = &self.storage[start + self.in_file..start + self.len];
        write_all_at(&self.file, pending, self.base + self.in_file as u64)?;
        self.base += self.len as u64;
        self.len = 0;
        self.in_file = 0;
        Ok(())
    }
}

impl Write for OutputFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.len == self.room && self.room < self.capacity {
                self.resize((self.room * 2).min(self.capacity));
            }
            let take = rest.len().min(self.room - self.len);
            let at = self.start + self.len;
            self.storage[at..at + take].copy_from_slice(&rest[..take]);
            self.len += take;
            rest = &rest[take..];
            if self.len == self.capacity {
                self.write_blocks()?;
            }
        }
        Ok(bytes.len())
    }

    /// Everything written so far is in the file (the page cache's, for the tail) once this
    /// returns; a sync makes it durable.
    fn flush(&mut self) -> io::Result<()> {
        self.write_blocks()?;
        if self.in_file < self.len {
            let start = self.start;
            let tail = &self.storage[start + self.in_file..start + self.len];
            write_all_at(&self.file, tail, self.base + self.in_file as u64)?;
            self.in_file = self.len;
        }
        Ok(())
    }
}

impl Drop for OutputFile {
    /// Writes what is buffered, as `BufWriter` does, ignoring errors: rows past the last
    /// commit are cut back on the next open anyway.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl std::fmt::Debug for OutputFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputFile")
            .field("direct", &self.direct.is_some())
            .field("base", &self.base)
            .field("buffered", &self.len)
            .finish()
    }
}

/// Whether a direct write failed for being direct: `EINVAL` (alignment or no support).
fn refuses_direct(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidInput
}

#[cfg(unix)]
pub(super) fn write_all_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    file.write_all_at(bytes, offset)
}

#[cfg(unix)]
pub(super) fn read_exact_at(file: &File, bytes: &mut [u8], offset: u64) -> io::Result<()> {
    file.read_exact_at(bytes, offset)
}

#[cfg(windows)]
pub(super) fn write_all_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt as _;
    in_parts(bytes.len(), offset, io::ErrorKind::WriteZero, |done, at| {
        file.seek_write(&bytes[done..], at)
    })
}

#[cfg(windows)]
pub(super) fn read_exact_at(file: &File, bytes: &mut [u8], offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt as _;
    in_parts(
        bytes.len(),
        offset,
        io::ErrorKind::UnexpectedEof,
        |done, at| file.seek_read(&mut bytes[done..], at),
    )
}

/// Repeats `part(done, offset + done)` until `len` bytes are done; a part of 0 is `short`.
#[cfg(windows)]
fn in_parts(
    len: usize,
    offset: u64,
    short: io::ErrorKind,
    mut part: impl FnMut(usize, u64) -> io::Result<usize>,
) -> io::Result<()> {
    let mut done = 0;
    while done < len {
        match part(done, offset + done as u64)? {
            0 => return Err(short.into()),
            n => done += n,
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Ok(file) => Some(file),
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "no direct writes to the output; writing through the page cache");
            None
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> Option<File> {
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// Writes this many bytes (of a running pattern).
        Write(usize),
        /// Flushes and checks the file against the model.
        Flush,
        /// Cuts the file back to the last flush, as a rollback does.
        CutBack,
        /// Drops the writer and opens a new one at the last flush, as a restart does.
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1usize..3 * BLOCK).prop_map(Op::Write),
            1 => (CAPACITY - BLOCK..2 * CAPACITY + 3 * BLOCK).prop_map(Op::Write),
            2 => Just(Op::Flush),
            1 => Just(Op::CutBack),
            1 => Just(Op::Reopen),
        ]
    }

    fn open(path: &Path, position: u64, direct: bool) -> OutputFile {
        open_with(path, position, direct, CAPACITY)
    }

    fn open_with(path: &Path, position: u64, direct: bool, capacity: usize) -> OutputFile {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap();
        let mut out = OutputFile::with_capacity(file, path, position, capacity).unwrap();
        if !direct {
            out.without_direct().unwrap();
        }
        out
    }

    /// Runs `ops` against a file and a model of what it must hold.
    fn check(ops: &[Op], direct: bool) {
        check_with(ops, direct, CAPACITY);
    }

    /// [`check`] with a buffer that grows up to `capacity` (a staging slot's), shrinking back
    /// at each cut back.
    fn check_with(ops: &[Op], direct: bool, capacity: usize) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let mut out = open_with(&path, 0, direct, capacity);
        let mut model: Vec<u8> = Vec::new();
        let mut committed = 0usize;
        let mut next = 0u8;
        for op in ops {
            match op {
                Op::Write(n) => {
                    let bytes: Vec<u8> = (0..*n)
                        .map(|_| {
                            next = next.wrapping_add(7);
                            next
                        })
                        .collect();
                    out.write_all(&bytes).unwrap();
                    model.extend_from_slice(&bytes);
                    assert_eq!(out.position(), model.len() as u64);
                }
                Op::Flush => {
                    out.flush().unwrap();
                    committed = model.len();
                    let file = std::fs::read(&path).unwrap();
                    assert!(file == model, "the file differs after a flush");
                }
                Op::CutBack => {
                    out.discard();
                    out.file().set_len(committed as u64).unwrap();
                    out.reload(committed as u64).unwrap();
                    out.shrink();
                    model.truncate(committed);
                }
                Op::Reopen => {
                    // Drop writes the buffer, as BufWriter's does; the open cuts it back.
                    drop(out);
                    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                    file.set_len(committed as u64).unwrap();
                    out = open_with(&path, committed as u64, direct, capacity);
                    model.truncate(committed);
                }
            }
        }
        out.flush().unwrap();
        assert!(
            std::fs::read(&path).unwrap() == model,
            "the file differs at the end"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn the_file_holds_what_was_written_up_to_each_flush(
            ops in proptest::collection::vec(op(), 1..24),
        ) {
            check(&ops, true);
        }

        #[test]
        fn the_same_with_a_buffer_that_grows_and_shrinks(
            ops in proptest::collection::vec(op(), 1..16),
        ) {
            check_with(&ops, true, 4 * CAPACITY);
        }

        #[test]
        fn the_same_through_the_page_cache(ops in proptest::collection::vec(op(), 1..12)) {
            check(&ops, false);
        }
    }

    /// A writer of a new file in `dir` with direct writes, or `None` where the temporary
    /// directory's filesystem refuses them (ext4, XFS and tmpfs on recent kernels take them;
    /// the tests cannot demand it of every machine).
    fn direct_output(dir: &tempfile::TempDir) -> Option<(std::path::PathBuf, OutputFile)> {
        let path = dir.path().join("out.ndjson");
        let out = open(&path, 0, true);
        out.is_direct().then_some((path, out))
    }

    #[test]
    fn whole_blocks_go_direct_where_the_filesystem_allows() {
        let dir = tempfile::tempdir().unwrap();
        let Some((path, mut out)) = direct_output(&dir) else {
            return;
        };
        out.write_all(&vec![b'x'; CAPACITY + 10]).unwrap();
        assert!(out.is_direct(), "a whole buffer went out directly");
        assert_eq!((out.base, out.len), (CAPACITY as u64, 10));
        out.flush().unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            CAPACITY as u64 + 10
        );
    }

    /// A direct write the filesystem refuses (`EINVAL`, forced here with memory off the block
    /// alignment) is written through the page cache, and so is everything after it.
    #[test]
    fn a_refused_direct_write_falls_back_to_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let Some((path, mut out)) = direct_output(&dir) else {
            return;
        };
        out.start += 1;
        let bytes: Vec<u8> = (0..CAPACITY + 5).map(|i| i as u8).collect();
        out.write_all(&bytes).unwrap();
        assert!(!out.is_direct(), "fell back");
        out.write_all(b"more").unwrap();
        out.flush().unwrap();
        let mut expected = bytes;
        expected.extend_from_slice(b"more");
        assert!(std::fs::read(&path).unwrap() == expected);
    }
}
