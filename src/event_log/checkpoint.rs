//! Where a [`Collector`](crate::event_log::Collector) remembers how far it got.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::Error;
use crate::event_log::query::Cursor;

/// The format version written by this crate; a checkpoint of another version is refused rather
/// than misread.
const CHECKPOINT_VERSION: u32 = 1;

/// A collector's durable state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The format version.
    pub version: u32,
    /// The earliest `LogDate` collected, fixed by the first run (`now - since`), so every pass
    /// looks at the same range of days.
    #[serde(with = "time::serde::rfc3339")]
    pub log_date_floor: OffsetDateTime,
    /// The newest completed file in `(CreatedDate, Id)` order.
    pub cursor: Option<Cursor>,
    /// Files completed within the lookback window before the cursor, by Id, with their
    /// `CreatedDate`: a re-query of the window skips them.
    pub completed: BTreeMap<String, CompletedFile>,
    /// The earliest `CreatedDate` the completed set still covers. Passes never query below it,
    /// so files pruned from the set cannot come back, even if the lookback grows between runs.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub window_start: Option<OffsetDateTime>,
    /// Files given up on with [`skip_failed_files`](crate::event_log::CollectorOptions::skip_failed_files),
    /// by Id. Kept (never pruned) until a person removes them, so none is lost silently.
    #[serde(default)]
    pub skipped: BTreeMap<String, SkippedFile>,
    /// How far the output was durably written when the last file was confirmed (for example a
    /// file length). A restart truncates anything the output holds past it.
    pub sink_position: Option<u64>,
    /// Files delivered since the checkpoint was created.
    pub files_delivered: u64,
    /// Rows delivered since the checkpoint was created.
    pub rows_delivered: u64,
}

/// A completed file in [`Checkpoint::completed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletedFile {
    /// Its `CreatedDate`, to know when it leaves the lookback window.
    #[serde(with = "time::serde::rfc3339")]
    pub created_date: OffsetDateTime,
    /// Its row count.
    pub rows: u64,
}

impl Checkpoint {
    /// A fresh checkpoint collecting files from `log_date_floor` on.
    pub fn new(log_date_floor: OffsetDateTime) -> Checkpoint {
        Checkpoint {
            version: CHECKPOINT_VERSION,
            log_date_floor,
            cursor: None,
            completed: BTreeMap::new(),
            window_start: None,
            skipped: BTreeMap::new(),
            sink_position: None,
            files_delivered: 0,
            rows_delivered: 0,
        }
    }
}

/// A file in [`Checkpoint::skipped`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkippedFile {
    /// Its `EventType`.
    pub event_type: String,
    /// Its `CreatedDate`.
    #[serde(with = "time::serde::rfc3339")]
    pub created_date: OffsetDateTime,
    /// Why it was skipped.
    pub error: String,
}

/// Keeps a [`Checkpoint`] durable. Implement it to keep checkpoints where the service keeps its
/// state (a database row, a key-value store).
///
/// `save` must be atomic: after a crash, `load` returns either the previous checkpoint or the
/// new one, never a mix.
pub trait CheckpointStore: Send {
    /// Takes exclusive use of the checkpoint for as long as this store lives, or fails at once
    /// if another collector has it: two collectors moving one checkpoint would each deliver
    /// what the other already did. [`Collector::new`](crate::event_log::Collector::new) calls
    /// it before `load`. The default does nothing (a store that cannot be shared, or is
    /// guarded elsewhere).
    fn acquire(&mut self) -> Result<(), Error> {
        Ok(())
    }
    /// The saved checkpoint, `None` when there is none yet. A checkpoint that exists but cannot
    /// be read is an error, never `None`: starting over would deliver everything again.
    fn load(&self) -> Result<Option<Checkpoint>, Error>;
    /// Replaces the saved checkpoint.
    fn save(&mut self, checkpoint: &Checkpoint) -> Result<(), Error>;
}

/// A checkpoint in a JSON file, replaced atomically: written to a uniquely named temporary file
/// beside it, fsynced, renamed over it, and the directory fsynced.
///
/// While a collector uses it, the store holds an exclusive lock on `PATH.lock` (a file beside
/// the checkpoint, left in place: removing it would let two processes lock different files of
/// the same name), so a second collector on the same checkpoint fails at once. Reading with
/// [`load`](CheckpointStore::load) needs no lock.
#[derive(Debug, Clone)]
pub struct FileCheckpointStore {
    path: PathBuf,
    /// The locked `PATH.lock`, once acquired; clones share it.
    lock: Option<Arc<fs::File>>,
}

impl FileCheckpointStore {
    /// A store at `path` (created on the first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileCheckpointStore {
            path: path.into(),
            lock: None,
        }
    }

    /// The checkpoint's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, message: String) -> Error {
        Error::Checkpoint {
            path: self.path.clone(),
            message,
        }
    }

    fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// `PATH.lock`.
    pub fn lock_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_os_string();
        name.push(".lock");
        PathBuf::from(name)
    }
}

impl CheckpointStore for FileCheckpointStore {
    fn acquire(&mut self) -> Result<(), Error> {
        if self.lock.is_some() {
            return Ok(());
        }
        let lock_path = self.lock_path();
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                self.error(format!(
                    "cannot open its lock file {} ({e}); check that its directory exists and \
                     is writable",
                    lock_path.display()
                ))
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(self.error(format!(
                    "is in use by another collector (it holds {}). Run one collector per \
                     checkpoint, or give this one its own --state",
                    lock_path.display()
                )));
            }
            // Some network filesystems have no locks; collecting matters more than the guard.
            Err(fs::TryLockError::Error(e)) => {
                tracing::warn!(path = %lock_path.display(), error = %e, "cannot lock the checkpoint; make sure only one collector uses it");
            }
        }
        self.lock = Some(Arc::new(file));
        Ok(())
    }

    fn load(&self) -> Result<Option<Checkpoint>, Error> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(self.error(format!("cannot be read ({e}); check its permissions")));
            }
        };
        let checkpoint: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| {
            self.error(format!(
                "is corrupted ({e}). It was not written by this collector or was damaged; \
                 restore it from a backup, or delete it to start over from --since (rows \
                 already delivered would be delivered again)"
            ))
        })?;
        if checkpoint.version != CHECKPOINT_VERSION {
            return Err(self.error(format!(
                "has format version {}, this collector reads version {CHECKPOINT_VERSION}",
                checkpoint.version
            )));
        }
        Ok(Some(checkpoint))
    }

    fn save(&mut self, checkpoint: &Checkpoint) -> Result<(), Error> {
        self.acquire()?;
        let json = serde_json::to_vec_pretty(checkpoint)
            .map_err(|e| self.error(format!("cannot be encoded ({e})")))?;
        let dir = self.dir();
        // A unique name: a leftover of a crashed save, or anything else that happens to sit at
        // a fixed name, can never block or corrupt this one.
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(self.path.file_name().unwrap_or_default());
        tmp_name.push(format!(
            ".{}.{:016x}.tmp",
            std::process::id(),
            fastrand::u64(..)
        ));
        let tmp = dir.join(tmp_name);
        let write = || -> std::io::Result<()> {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()?;
            fs::rename(&tmp, &self.path)
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(self.error(format!(
                "cannot be written ({e}); check the space and permissions of {}",
                dir.display()
            )));
        }
        // The rename is durable only once the directory entry is.
        sync_dir(&dir).map_err(|e| {
            self.error(format!(
                "was written but its directory {} cannot be synced ({e}); the new checkpoint \
                 may not survive a power loss",
                dir.display()
            ))
        })
    }
}

/// Makes a directory's entries (a rename, a new file) durable. Only Unix can open a directory
/// for that; elsewhere the filesystem keeps entries durable itself (NTFS journals them).
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// A checkpoint kept in memory (tests, or a service that persists it itself through
/// [`MemoryCheckpointStore::get`]). Clones share the checkpoint.
#[derive(Debug, Clone, Default)]
pub struct MemoryCheckpointStore {
    saved: Arc<Mutex<Option<Checkpoint>>>,
}

impl MemoryCheckpointStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last saved checkpoint.
    pub fn get(&self) -> Option<Checkpoint> {
        self.saved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl CheckpointStore for MemoryCheckpointStore {
    fn load(&self) -> Result<Option<Checkpoint>, Error> {
        Ok(self.get())
    }

    fn save(&mut self, checkpoint: &Checkpoint) -> Result<(), Error> {
        *self.saved.lock().unwrap_or_else(PoisonError::into_inner) = Some(checkpoint.clone());
        Ok(())
    }
}

impl<T: CheckpointStore + ?Sized> CheckpointStore for Box<T> {
    fn acquire(&mut self) -> Result<(), Error> {
        (**self).acquire()
    }

    fn load(&self) -> Result<Option<Checkpoint>, Error> {
        (**self).load()
    }

    fn save(&mut self, checkpoint: &Checkpoint) -> Result<(), Error> {
        (**self).save(checkpoint)
    }
}
