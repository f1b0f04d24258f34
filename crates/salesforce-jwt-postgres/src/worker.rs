//! A [`PgStore`] driven by a thread of its own, so that synchronous callers (the library's
//! [`CheckpointStore`](salesforce_jwt::collect::CheckpointStore) trait) can wait for it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use salesforce_jwt::clock::Clock;

use crate::connect::PgTarget;
use crate::error::PgError;
use crate::store::PgStore;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A [`PgStore`] whose statements run on a dedicated thread with its own single-threaded tokio
/// runtime. Clones share the thread and the connection pool; the thread ends when the last
/// clone is dropped.
///
/// Why a thread: the library's `CheckpointStore::save` is synchronous and is called on the
/// collector's runtime thread. Blocking that thread in `block_on` would panic (a runtime cannot
/// be entered from inside another) and `block_in_place` would break on a current-thread
/// runtime. Handing the statement to another runtime and waiting on a plain channel is correct
/// on any runtime flavour; it only holds the caller's thread for the commit's round trips, as a
/// file store's fsync would. The pool's connections live on this thread's runtime too, so they
/// are never driven by a runtime that may be shut down under them.
#[derive(Clone)]
pub struct PgWorker {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
    store: PgStore,
}

impl std::fmt::Debug for PgWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgWorker")
            .field("store", &self.inner.store)
            .finish()
    }
}

impl PgWorker {
    /// Starts the thread and connects there ([`PgStore::connect`]: pool and schema).
    pub async fn connect(
        target: &PgTarget,
        clock: Arc<dyn Clock>,
        holder: impl Into<String>,
    ) -> Result<PgWorker, PgError> {
        let (jobs, mut queue) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PgError::Worker {
                message: format!("cannot start its runtime: {e}"),
            })?;
        std::thread::Builder::new()
            .name("salesforce-jwt-postgres".into())
            .spawn(move || {
                runtime.block_on(async move {
                    // Spawned, not awaited one by one: a slow commit must not hold up a lease
                    // renewal of another org.
                    while let Some(job) = queue.recv().await {
                        tokio::spawn(job);
                    }
                });
            })
            .map_err(|e| PgError::Worker {
                message: format!("cannot start its thread: {e}"),
            })?;
        let target = target.clone();
        let holder = holder.into();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::pin(async move {
            let _ = tx.send(PgStore::connect(&target, clock, holder).await);
        });
        jobs.send(job).map_err(|_| gone())?;
        let store = rx.await.map_err(|_| gone())??;
        Ok(PgWorker {
            inner: Arc::new(Inner { jobs, store }),
        })
    }

    /// The store (for its holder name and plain accessors). Await its methods through
    /// [`run`](Self::run) so that its connections stay on the worker's runtime.
    pub fn store(&self) -> &PgStore {
        &self.inner.store
    }

    /// Runs `f` on the worker's runtime and awaits its result from any runtime.
    pub async fn run<T, F, Fut>(&self, f: F) -> Result<T, PgError>
    where
        F: FnOnce(PgStore) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, PgError>> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let fut = f(self.inner.store.clone());
        let job: Job = Box::pin(async move {
            let _ = tx.send(fut.await);
        });
        self.inner.jobs.send(job).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Runs `f` on the worker's runtime and blocks the calling thread until it is done. Safe to
    /// call from inside another tokio runtime (see the type's documentation); never from the
    /// worker's own thread.
    pub fn run_blocking<T, F, Fut>(&self, f: F) -> Result<T, PgError>
    where
        F: FnOnce(PgStore) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, PgError>> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let fut = f(self.inner.store.clone());
        let job: Job = Box::pin(async move {
            let _ = tx.send(fut.await);
        });
        self.inner.jobs.send(job).map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?
    }
}

fn gone() -> PgError {
    PgError::Worker {
        message: "its thread ended (the process is shutting down)".into(),
    }
}
