//! Where a [`Collector`](crate::collect::Collector) remembers how far it got.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::collect::object_state::{BigObjectState, KeysetState};
use crate::error::Error;
use crate::event_log_file::{Cursor, IntervalFilter};

/// The format version written by this crate. Version 1 (one EventLogFile cursor for the whole
/// selection, no record of the output) is migrated on load; any other version is refused rather
/// than misread.
pub const CHECKPOINT_VERSION: u32 = 2;

/// The key of the EventLogFile source for every event type (a collector whose query selects no
/// event types).
pub const EVENT_LOG_FILE_ALL_TYPES: &str = "EventLogFile";

/// Where a version-1 checkpoint's EventLogFile position waits until a collector adopts it for
/// its selection (see [`Checkpoint::from_json`]).
pub const MIGRATED_V1_SOURCE: &str = "EventLogFile (migrated from version 1)";

/// The most entries [`Checkpoint::skipped`] keeps. Every checkpoint save writes the whole list,
/// so an org whose files keep failing (with `skip_failed_files`) must not make each save
/// larger; a thousand entries is weeks of a failing hourly event type, enough for a person to
/// notice and look.
pub const MAX_SKIPPED: usize = 1000;

/// A collector's durable state.
///
/// # Keyed by source
///
/// Every source of rows keeps its own position under its own key in
/// [`sources`](Self::sources), so that adding a source starts it from `since` without moving
/// the others, and removing one keeps its position for when it comes back. EventLogFile keeps
/// one position per event type (`EventLogFile/Login`, `EventLogFile/API`...), or one for all
/// types ([`EVENT_LOG_FILE_ALL_TYPES`]) when the query selects none. Per event type rather than
/// one cursor for the selection because an added type's files are older than the others'
/// cursor: with one cursor they would be skipped, and moving that cursor back would deliver the
/// others again. A pass still sends one query for the whole selection (from the lowest
/// position) and sorts each file to its type's position. Other sources (Real-Time Event
/// Monitoring objects by `EventDate`, SetupAuditTrail by `(CreatedDate, Id)`) get their own
/// [`SourceState`] variants under their own keys.
///
/// The output is not per source: rows of every source go to one sink, whose committed position
/// is [`sink_position`](Self::sink_position), and [`output`](Self::output) records which output
/// that position belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The format version.
    pub version: u32,
    /// The Salesforce org (`00D...`, as the token response's identity URL gives it) whose
    /// positions these are. Recorded by the first pass (a checkpoint written before org ids were
    /// recorded adopts the first org it meets); a pass whose credentials reach another org is
    /// refused with [`Error::CheckpointOrg`], so one org's positions never go on in another.
    #[serde(default)]
    pub org_id: Option<String>,
    /// Which output [`sink_position`](Self::sink_position) positions, as the sink names it
    /// ([`Sink::output`](crate::collect::Sink::output)), e.g. the output file's
    /// absolute path. Recorded by the first pass; a later pass (or
    /// [`NdjsonFileSink::resume`](crate::sink::NdjsonFileSink::resume)) with another
    /// output is refused, so a checkpoint is never applied to an unrelated file.
    #[serde(default)]
    pub output: Option<String>,
    /// How far the output reaches with the last unit confirmed (for example a file length). A
    /// restart goes on from there: an output file shorter than this gets the rest from its
    /// staging file.
    pub sink_position: Option<u64>,
    /// Each source's position, by key (see the type's documentation).
    pub sources: BTreeMap<String, SourceState>,
    /// Files given up on with [`skip_failed_files`](crate::collect::CollectorOptions::skip_failed_files),
    /// by Id, until a person removes them. Bounded, since every save writes the whole
    /// checkpoint: past [`MAX_SKIPPED`] entries the one with the oldest `CreatedDate` goes and
    /// [`skipped_dropped`](Self::skipped_dropped) counts it, so none is lost silently. Add to it
    /// with [`record_skipped`](Self::record_skipped).
    #[serde(default)]
    pub skipped: BTreeMap<String, SkippedFile>,
    /// Entries dropped from [`skipped`](Self::skipped) to keep it within [`MAX_SKIPPED`] (their
    /// errors were logged when they were skipped).
    #[serde(default)]
    pub skipped_dropped: u64,
    /// Files delivered since the checkpoint was created.
    pub files_delivered: u64,
    /// Rows delivered since the checkpoint was created.
    pub rows_delivered: u64,
}

/// One source's position in a [`Checkpoint`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
#[non_exhaustive]
pub enum SourceState {
    /// EventLogFile, for one event type or all of them.
    EventLogFile(EventLogFileState),
    /// A Real-Time Event Monitoring big object (`LoginEvent`...), by `EventDate` window, under
    /// the object's API name.
    BigObject(BigObjectState),
    /// A standard object (`SetupAuditTrail`, the threat-detection stores), by
    /// `(CreatedDate, Id)` keyset, under the object's API name.
    Keyset(KeysetState),
    /// An Event Log Object (`LoginEventLog`...), by `Timestamp` window, under the object's API
    /// name.
    EventLogObject(crate::collect::EventLogObjectState),
}

/// Where EventLogFile collection stands for one event type (or all of them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventLogFileState {
    /// Which files by `Interval` this position covers. A collector selecting another interval
    /// is refused: the files it adds lie before the cursor and would be skipped.
    pub interval: IntervalFilter,
    /// The earliest `LogDate` collected, fixed when the source was added (`now - since`), so
    /// every pass looks at the same range of days.
    #[serde(with = "time::serde::rfc3339")]
    pub log_date_floor: OffsetDateTime,
    /// The newest completed file in `(CreatedDate, Id)` order.
    pub cursor: Option<Cursor>,
    /// Files completed within the lookback window before the cursor, by Id, with their
    /// `CreatedDate`: a re-query of the window skips them.
    pub completed: BTreeMap<String, CompletedFile>,
    /// The earliest `CreatedDate` the completed set still covers. Files created before it are
    /// never collected again, so files pruned from the set cannot come back, even if the
    /// lookback grows between runs.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub window_start: Option<OffsetDateTime>,
    /// With [`IntervalFilter::Auto`]: which `Interval` each day was collected with, under
    /// `"{EventType} {YYYY-MM-DD}"` of the file's `LogDate`, so that the other copy of the
    /// day's events, published later, is left out. Days before the window are pruned.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub days: BTreeMap<String, IntervalFilter>,
}

impl EventLogFileState {
    /// A source that starts at `log_date_floor` with nothing collected.
    pub fn new(interval: IntervalFilter, log_date_floor: OffsetDateTime) -> Self {
        EventLogFileState {
            interval,
            log_date_floor,
            cursor: None,
            completed: BTreeMap::new(),
            window_start: None,
            days: BTreeMap::new(),
        }
    }
}

/// A completed file in [`EventLogFileState::completed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletedFile {
    /// Its `CreatedDate`, to know when it leaves the lookback window.
    #[serde(with = "time::serde::rfc3339")]
    pub created_date: OffsetDateTime,
    /// Its row count.
    pub rows: u64,
}

impl Default for Checkpoint {
    fn default() -> Self {
        Checkpoint::new()
    }
}

impl Checkpoint {
    /// A fresh checkpoint: no source, nothing delivered.
    pub fn new() -> Checkpoint {
        Checkpoint {
            version: CHECKPOINT_VERSION,
            org_id: None,
            output: None,
            sink_position: None,
            sources: BTreeMap::new(),
            skipped: BTreeMap::new(),
            skipped_dropped: 0,
            files_delivered: 0,
            rows_delivered: 0,
        }
    }

    /// The key of the EventLogFile source of `event_type` (`None`: all types).
    pub fn event_log_file_key(event_type: Option<&str>) -> String {
        match event_type {
            Some(t) => format!("{EVENT_LOG_FILE_ALL_TYPES}/{t}"),
            None => EVENT_LOG_FILE_ALL_TYPES.to_string(),
        }
    }

    /// The EventLogFile position of `event_type` (`None`: the one for all types).
    pub fn event_log_file(&self, event_type: Option<&str>) -> Option<&EventLogFileState> {
        match self.sources.get(&Self::event_log_file_key(event_type))? {
            SourceState::EventLogFile(state) => Some(state),
            _ => None,
        }
    }

    /// Lists `id` in [`skipped`](Self::skipped), keeping the list within [`MAX_SKIPPED`]: the
    /// entries with the oldest `CreatedDate` (this one, if it is the oldest) go first and are
    /// counted in [`skipped_dropped`](Self::skipped_dropped).
    pub fn record_skipped(&mut self, id: String, file: SkippedFile) {
        self.skipped.insert(id, file);
        while self.skipped.len() > MAX_SKIPPED {
            let oldest = self
                .skipped
                .iter()
                .min_by(|a, b| (a.1.created_date, a.0).cmp(&(b.1.created_date, b.0)))
                .map(|(id, _)| id.clone());
            let Some(oldest) = oldest else { break };
            self.skipped.remove(&oldest);
            self.skipped_dropped += 1;
        }
    }

    /// Whether the org the credentials reach (`org_id`, from the token response) may go on from
    /// this checkpoint: `Ok(true)` when the checkpoint records no org yet and adopts this one,
    /// `Ok(false)` when it is the same org, [`Error::CheckpointOrg`] for another. A 15-character
    /// Id and its 18-character form are the same org.
    pub fn check_org(&self, org_id: &str) -> Result<bool, Error> {
        match &self.org_id {
            None => Ok(true),
            Some(recorded) if same_org(recorded, org_id) => Ok(false),
            Some(recorded) => Err(Error::CheckpointOrg {
                checkpoint_org: recorded.clone(),
                org: org_id.to_string(),
            }),
        }
    }

    /// Reads a checkpoint in this crate's JSON, migrating version 1: its single EventLogFile
    /// position goes to [`MIGRATED_V1_SOURCE`], and the next
    /// [`Collector::new`](crate::collect::Collector::new) adopts it for the event types it
    /// selects (run it with the same event types and interval as before the upgrade). The
    /// error says what is wrong, for a store to put in its own error.
    pub fn from_json(bytes: &[u8]) -> Result<Checkpoint, String> {
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let version = serde_json::from_slice::<Version>(bytes)
            .map_err(|e| e.to_string())?
            .version;
        match version {
            CHECKPOINT_VERSION => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
            1 => {
                let v1: CheckpointV1 = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
                Ok(v1.migrate())
            }
            other => Err(format!(
                "has format version {other}, this collector reads versions 1 and \
                 {CHECKPOINT_VERSION}; use the collector version that wrote it"
            )),
        }
    }
}

/// Salesforce Ids are 15 characters, case-sensitive, or 18 with a case-safe suffix.
fn same_org(a: &str, b: &str) -> bool {
    a == b
        || ((a.len() == 15 || b.len() == 15) && a.get(..15).is_some_and(|x| b.get(..15) == Some(x)))
}

/// The start of every pass, before anything touches the output: the org the client's token
/// reaches must be the checkpoint's (one recorded by no pass yet is recorded now, and saved).
/// A token response without an identity URL names no org, and is let through.
pub(crate) async fn begin_org<S: CheckpointStore + ?Sized>(
    client: &crate::client::JwtBearerClient,
    checkpoint: &mut Checkpoint,
    store: &mut S,
) -> Result<(), Error> {
    let token = client.access_token().await?;
    let Some(org) = token.org_id() else {
        return Ok(());
    };
    if checkpoint.check_org(org)? {
        let mut next = checkpoint.clone();
        next.org_id = Some(org.to_string());
        store.save(&next)?;
        *checkpoint = next;
    }
    Ok(())
}

/// The version-1 format, read only to migrate it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointV1 {
    #[allow(dead_code)]
    version: u32,
    #[serde(with = "time::serde::rfc3339")]
    log_date_floor: OffsetDateTime,
    cursor: Option<Cursor>,
    completed: BTreeMap<String, CompletedFile>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    window_start: Option<OffsetDateTime>,
    #[serde(default)]
    skipped: BTreeMap<String, SkippedFile>,
    sink_position: Option<u64>,
    files_delivered: u64,
    rows_delivered: u64,
}

impl CheckpointV1 {
    fn migrate(self) -> Checkpoint {
        let state = EventLogFileState {
            // Unknown in version 1; the adopting collector sets its own.
            interval: IntervalFilter::All,
            log_date_floor: self.log_date_floor,
            cursor: self.cursor,
            completed: self.completed,
            window_start: self.window_start,
            days: BTreeMap::new(),
        };
        Checkpoint {
            version: CHECKPOINT_VERSION,
            // Version 1 did not record it; the next pass records the org it reaches.
            org_id: None,
            // Version 1 did not record it; the next pass records the sink's.
            output: None,
            sink_position: self.sink_position,
            sources: BTreeMap::from([(
                MIGRATED_V1_SOURCE.to_string(),
                SourceState::EventLogFile(state),
            )]),
            skipped: self.skipped,
            skipped_dropped: 0,
            files_delivered: self.files_delivered,
            rows_delivered: self.rows_delivered,
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
/// # Contract
///
/// - `save` must be atomic: after a crash, `load` returns either the previous checkpoint or the
///   new one, never a mix. Persist it whole (`serde_json::to_vec`) and read it back with
///   [`Checkpoint::from_json`], which migrates older format versions.
/// - `load` returns `None` only when no checkpoint was ever saved; one that cannot be read is
///   an error, since starting over would deliver everything again.
/// - `acquire` keeps a second collector off the same checkpoint, where the store can (a row
///   lock, a lease).
/// - A failed `save` leaves the collector at its previous checkpoint. The store may still have
///   persisted the new one (the write arrived, its acknowledgement did not): that is safe,
///   because a restart compares the sink's position with whatever `load` returns and cuts the
///   output back to it (see [`Sink`](crate::collect::Sink)'s restart protocol).
/// - Return the store's own failures with [`Error::checkpoint_store`], saying whether a retry
///   may help.
pub trait CheckpointStore: Send {
    /// Takes exclusive use of the checkpoint for as long as this store lives, or fails at once
    /// if another collector has it: two collectors moving one checkpoint would each deliver
    /// what the other already did. [`Collector::new`](crate::collect::Collector::new) calls
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
/// [`load`](CheckpointStore::load) needs no lock. A clone starts without the lock, so it cannot
/// serve a second collector either.
#[derive(Debug)]
pub struct FileCheckpointStore {
    path: PathBuf,
    /// The locked `PATH.lock`, once acquired.
    lock: Option<fs::File>,
}

impl Clone for FileCheckpointStore {
    fn clone(&self) -> Self {
        FileCheckpointStore::new(self.path.clone())
    }
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
                     checkpoint, or give this one its own checkpoint file",
                    lock_path.display()
                )));
            }
            // Some network filesystems have no locks; collecting matters more than the guard.
            Err(fs::TryLockError::Error(e)) => {
                tracing::warn!(path = %lock_path.display(), error = %e, "cannot lock the checkpoint; make sure only one collector uses it");
            }
        }
        self.lock = Some(file);
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
        if bytes.is_empty() {
            return Err(self.error(
                "is corrupted (it is empty). It was not written by this collector or was \
                 damaged; restore it from a backup, or delete it to start over from `since` \
                 (rows already delivered would be delivered again)"
                    .to_string(),
            ));
        }
        let checkpoint = Checkpoint::from_json(&bytes).map_err(|e| {
            if e.starts_with("has format version") {
                return self.error(e);
            }
            self.error(format!(
                "is corrupted ({e}). It was not written by this collector or was damaged; \
                 restore it from a backup, or delete it to start over from `since` (rows \
                 already delivered would be delivered again)"
            ))
        })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn skipped(minute: i64) -> SkippedFile {
        SkippedFile {
            event_type: "Login".into(),
            created_date: OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(minute),
            error: "EventLogFile 0AT..., line 2: malformed".into(),
        }
    }

    #[test]
    fn the_skipped_list_keeps_the_newest_entries_and_counts_the_dropped_ones() {
        let mut checkpoint = Checkpoint::new();
        // Recorded out of CreatedDate order, as retries and late hourly files make them.
        for i in 0..(MAX_SKIPPED as i64 + 5) {
            let minute = if i % 2 == 0 { i } else { 10_000 - i };
            checkpoint.record_skipped(format!("0AT{i:015}"), skipped(minute));
        }
        assert_eq!(checkpoint.skipped.len(), MAX_SKIPPED);
        assert_eq!(checkpoint.skipped_dropped, 5);
        // The five oldest CreatedDates went: minutes 0, 2, 4, 6, 8.
        let oldest = checkpoint
            .skipped
            .values()
            .map(|s| s.created_date)
            .min()
            .unwrap();
        assert_eq!(
            oldest,
            OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(10)
        );
        // An entry older than every kept one is dropped at once, and counted.
        checkpoint.record_skipped("0ATold".into(), skipped(-1));
        assert!(!checkpoint.skipped.contains_key("0ATold"));
        assert_eq!(
            (checkpoint.skipped.len(), checkpoint.skipped_dropped),
            (MAX_SKIPPED, 6)
        );
        // The counter survives a save and a load.
        let json = serde_json::to_vec(&checkpoint).unwrap();
        assert_eq!(Checkpoint::from_json(&json).unwrap().skipped_dropped, 6);
    }

    #[test]
    fn a_checkpoint_knows_its_org_and_an_older_one_adopts_the_first_it_meets() {
        // Written before org ids were recorded: no `org_id`, no `skipped_dropped`.
        let mut old = serde_json::to_value(Checkpoint::new()).unwrap();
        let fields = old.as_object_mut().unwrap();
        fields.remove("org_id");
        fields.remove("skipped_dropped");
        let mut checkpoint = Checkpoint::from_json(&serde_json::to_vec(&old).unwrap()).unwrap();
        assert_eq!(checkpoint.org_id, None);
        assert!(checkpoint.check_org("00D000000000001AAA").unwrap());

        checkpoint.org_id = Some("00D000000000001AAA".into());
        assert!(!checkpoint.check_org("00D000000000001AAA").unwrap());
        // The 15-character form of the same Id.
        assert!(!checkpoint.check_org("00D000000000001").unwrap());
        let error = checkpoint.check_org("00D000000000002AAA").unwrap_err();
        assert!(matches!(error, Error::CheckpointOrg { .. }), "{error:?}");
        let text = error.to_string();
        assert!(
            text.contains("00D000000000001AAA")
                && text.contains("00D000000000002AAA")
                && text.contains("own checkpoint"),
            "{text}"
        );
        // Ids differing only in case are different orgs.
        assert!(checkpoint.check_org("00d000000000001").is_err());
    }
}
