//! The org's mutable state: files, real-time object rows, issued tokens, open query cursors,
//! queued faults, counters and the log of received requests.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use jsonwebtoken::DecodingKey;
use time::OffsetDateTime;

use super::fault::{FaultId, QueuedFault};
use super::file_meta::FileMeta;
use super::generate::with_checksum;
use super::objects::{ObjectStore, Row};
use super::requests::ReceivedRequest;
use super::soql::Field;
use super::soql::objects::ObjectPlan;
use super::{Fault, Received};
use salesforce_jwt::clock::Clock;

/// The org's 15-character Id unless the builder chooses another; the access token starts with
/// it, as Salesforce's do.
pub(crate) const ORG_ID_15: &str = "00D000000000001";
/// The integration user's 15-character Id.
pub(crate) const USER_ID_15: &str = "005000000000001";
/// The daily API request allowance reported in `Sforce-Limit-Info`.
pub(crate) const API_DAILY_LIMIT: u64 = 15_000;
/// Salesforce drops a query cursor after 15 minutes without use.
const CURSOR_IDLE: Duration = Duration::from_secs(15 * 60);
/// Open cursors kept at most; the oldest goes first (Salesforce caps open cursors per user too).
const MAX_CURSORS: usize = 64;

pub(crate) struct StoredFile {
    pub(crate) meta: Arc<FileMeta>,
    pub(crate) csv: Bytes,
    /// The CSV gzipped, made on the first download that asks for gzip (or by
    /// `MockOrg::precompress_downloads`) and served from here after: compressing a large file
    /// on every request would make the double, not the client, the slowest part of a benchmark.
    /// Behind its own `Arc` so that it is filled outside the state's lock.
    pub(crate) gzip: Arc<OnceLock<Option<Bytes>>>,
}

struct TokenRecord {
    issued_at: OffsetDateTime,
    uses: u32,
}

/// The result set of a query, kept for `nextRecordsUrl` requests: a snapshot, so files added
/// meanwhile do not shift the pages.
pub(crate) struct Cursor {
    pub(crate) rows: CursorRows,
    pub(crate) page_size: usize,
    last_used: OffsetDateTime,
}

/// What a cursor pages through.
#[derive(Clone)]
pub(crate) enum CursorRows {
    /// EventLogFile records, rendered page by page.
    Files {
        fields: Arc<[Field]>,
        rows: Arc<[Arc<FileMeta>]>,
    },
    /// Real-time object rows, rendered page by page (a big-object result can hold 50,000).
    Records {
        plan: Arc<ObjectPlan>,
        rows: Arc<[Arc<Row>]>,
    },
}

impl CursorRows {
    pub(crate) fn len(&self) -> usize {
        match self {
            CursorRows::Files { rows, .. } => rows.len(),
            CursorRows::Records { rows, .. } => rows.len(),
        }
    }
}

/// Settings fixed when the org starts.
pub(crate) struct Settings {
    /// The org's 15-character Id (`00D...`).
    pub(crate) org_id: String,
    pub(crate) client_id: String,
    pub(crate) username: String,
    pub(crate) audience: String,
    pub(crate) token_lifetime: Duration,
    pub(crate) token_max_uses: Option<u32>,
    pub(crate) page_size: usize,
    pub(crate) event_log_access: bool,
    pub(crate) api_enabled: bool,
    pub(crate) realtime_access: bool,
    pub(crate) event_log_object_access: crate::EventLogObjectAccess,
    pub(crate) big_object_timeout_rows: Option<usize>,
    /// Chooses the `n`th (1-based) access token; `None`: a random Salesforce-shaped one.
    pub(crate) access_token: Option<TokenFn>,
    /// Every token response is held back this long.
    pub(crate) token_latency: Duration,
    /// Received requests kept at most; the oldest go first.
    pub(crate) request_log_capacity: usize,
}

/// What [`MockOrgBuilder::access_token`](super::MockOrgBuilder::access_token) takes.
pub(crate) type TokenFn = Arc<dyn Fn(u64) -> String + Send + Sync>;

/// What the responder and the [`MockOrg`](super::MockOrg) handle share.
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) key: DecodingKey,
    pub(crate) base_uri: String,
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn new(
        settings: Settings,
        clock: Arc<dyn Clock>,
        key: DecodingKey,
        base_uri: String,
    ) -> Self {
        Self {
            settings,
            clock,
            key,
            base_uri,
            state: Mutex::new(State::default()),
        }
    }

    /// Runs `f` under the state lock. Callers never `.await` inside: the lock is synchronous.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut state)
    }
}

pub(crate) struct State {
    pub(crate) files: BTreeMap<String, StoredFile>,
    pub(crate) objects: ObjectStore,
    next_file: u64,
    tokens: HashMap<String, TokenRecord>,
    pub(crate) faults: VecDeque<QueuedFault>,
    /// Times each fault has fired, indexed by its [`FaultId`].
    fired: Vec<u64>,
    tokens_issued: u64,
    requests_received: u64,
    pub(crate) requests: VecDeque<ReceivedRequest>,
    cursors: HashMap<u64, Cursor>,
    next_cursor: u64,
    pub(crate) api_usage: u64,
    pub(crate) received: Received,
    pub(crate) rng: fastrand::Rng,
}

impl Default for State {
    fn default() -> Self {
        Self {
            files: BTreeMap::new(),
            objects: ObjectStore::default(),
            next_file: 1,
            tokens: HashMap::new(),
            faults: VecDeque::new(),
            fired: Vec::new(),
            tokens_issued: 0,
            requests_received: 0,
            requests: VecDeque::new(),
            cursors: HashMap::new(),
            next_cursor: 1,
            api_usage: 0,
            received: Received::default(),
            rng: fastrand::Rng::new(),
        }
    }
}

impl State {
    /// Stores a file under the next counter-based Id (`0AT` + 12 digits + checksum), so Ids sort in
    /// insertion order.
    pub(crate) fn insert_file(&mut self, mut meta: FileMeta, csv: Bytes) -> String {
        let id = with_checksum(&format!("0AT{:012}", self.next_file));
        self.next_file += 1;
        meta.id.clone_from(&id);
        self.files.insert(
            id.clone(),
            StoredFile {
                meta: Arc::new(meta),
                csv,
                gzip: Arc::default(),
            },
        );
        id
    }

    /// The file with this Id; a 15-character Id matches its 18-character form, as in Salesforce.
    pub(crate) fn file(&self, id: &str) -> Option<&StoredFile> {
        if id.len() == 15 {
            return self
                .files
                .range(id.to_owned()..)
                .next()
                .filter(|(key, _)| key.starts_with(id))
                .map(|(_, file)| file);
        }
        self.files.get(id)
    }

    pub(crate) fn snapshot(&self) -> Vec<Arc<FileMeta>> {
        self.files.values().map(|f| Arc::clone(&f.meta)).collect()
    }

    /// Queues `fault` to fire `times` times (`None`: until cleared).
    pub(crate) fn queue_fault(&mut self, fault: Fault, times: Option<u64>) -> FaultId {
        let id = FaultId(self.fired.len());
        self.fired.push(0);
        if times != Some(0) {
            self.faults.push_back(QueuedFault {
                id,
                fault,
                remaining: times,
            });
        }
        id
    }

    /// The first queued fault `applies` accepts: counts it as fired, drops it from the queue if
    /// that was its last time, and returns it.
    pub(crate) fn fire_first(&mut self, applies: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let index = self.faults.iter().position(|q| applies(&q.fault))?;
        let queued = self.faults.get_mut(index)?;
        let fault = queued.fault.clone();
        if let Some(count) = self.fired.get_mut(queued.id.0) {
            *count += 1;
        }
        self.received.faults_fired += 1;
        if let Some(remaining) = &mut queued.remaining {
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                self.faults.remove(index);
            }
        }
        Some(fault)
    }

    pub(crate) fn times_fired(&self, id: FaultId) -> u64 {
        self.fired.get(id.0).copied().unwrap_or(0)
    }

    /// Keeps `request`, dropping the oldest beyond `capacity`.
    pub(crate) fn record_request(&mut self, mut request: ReceivedRequest, capacity: usize) {
        self.requests_received += 1;
        request.sequence = self.requests_received;
        if capacity == 0 {
            return;
        }
        while self.requests.len() >= capacity {
            self.requests.pop_front();
        }
        self.requests.push_back(request);
    }

    /// Issues a new access token at `now`, dropping tokens that have expired anyway.
    pub(crate) fn issue_token(&mut self, now: OffsetDateTime, settings: &Settings) -> String {
        let lifetime = settings.token_lifetime;
        self.tokens
            .retain(|_, record| now < record.issued_at + lifetime);
        self.tokens_issued += 1;
        let token = match &settings.access_token {
            Some(choose) => choose(self.tokens_issued),
            None => {
                let mut token = format!("{}!AR", settings.org_id);
                const ALPHABET: &[u8] =
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._";
                for _ in 0..96 {
                    token.push(char::from(ALPHABET[self.rng.usize(0..ALPHABET.len())]));
                }
                token
            }
        };
        self.tokens.insert(
            token.clone(),
            TokenRecord {
                issued_at: now,
                uses: 0,
            },
        );
        token
    }

    /// Counts one use of `token` if it is live, returning whether it was.
    pub(crate) fn use_token(
        &mut self,
        token: &str,
        now: OffsetDateTime,
        settings: &Settings,
    ) -> bool {
        let Some(record) = self.tokens.get_mut(token) else {
            return false;
        };
        if now >= record.issued_at + settings.token_lifetime {
            return false;
        }
        if settings
            .token_max_uses
            .is_some_and(|max| record.uses >= max)
        {
            return false;
        }
        record.uses += 1;
        true
    }

    /// Whether `token` is live, without counting a use.
    pub(crate) fn token_is_live(
        &self,
        token: &str,
        now: OffsetDateTime,
        settings: &Settings,
    ) -> bool {
        self.tokens.get(token).is_some_and(|record| {
            now < record.issued_at + settings.token_lifetime
                && settings.token_max_uses.is_none_or(|max| record.uses < max)
        })
    }

    pub(crate) fn revoke_all_tokens(&mut self) {
        self.tokens.clear();
    }

    /// Opens a cursor over `rows` and returns its number.
    pub(crate) fn open_cursor(
        &mut self,
        rows: CursorRows,
        page_size: usize,
        now: OffsetDateTime,
    ) -> u64 {
        self.cursors
            .retain(|_, cursor| now < cursor.last_used + CURSOR_IDLE);
        while self.cursors.len() >= MAX_CURSORS {
            let oldest = self
                .cursors
                .iter()
                .min_by_key(|(n, cursor)| (cursor.last_used, **n))
                .map(|(n, _)| *n);
            match oldest {
                Some(n) => self.cursors.remove(&n),
                None => break,
            };
        }
        let n = self.next_cursor;
        self.next_cursor += 1;
        self.cursors.insert(
            n,
            Cursor {
                rows,
                page_size,
                last_used: now,
            },
        );
        n
    }

    /// The cursor numbered `n`, if it exists and has not idled out; touching it keeps it alive.
    pub(crate) fn cursor(&mut self, n: u64, now: OffsetDateTime) -> Option<&Cursor> {
        let idle = now >= self.cursors.get(&n)?.last_used + CURSOR_IDLE;
        if idle {
            self.cursors.remove(&n);
            return None;
        }
        let cursor = self.cursors.get_mut(&n)?;
        cursor.last_used = now;
        Some(cursor)
    }
}
