//! The token cache: single flight, refresh ahead, invalidate exactly the token that failed.
//!
//! The read path takes a std mutex for a few instructions (clone an `Arc`, compare two times)
//! and never across an `.await`. A refresh is a shared future stored in the cache: the first
//! caller that finds no usable token creates it, every later caller clones it, so N callers
//! cause one token request and all of them see its result, its error included. (A lock that
//! only serialises refreshes is not enough: after a failed request, each waiter would find the
//! cache still empty and send its own.) The future itself stores its result, so it does not
//! matter which caller polls it to completion, or whether the first caller is cancelled.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use time::OffsetDateTime;

use crate::error::Error;
use crate::token::AccessToken;

pub(crate) type Refresh = Shared<BoxFuture<'static, Result<AccessToken, Error>>>;

/// After a failed background refresh, callers keep the still-valid token and no new refresh
/// starts for this long, so a failing token endpoint is not hammered by every request.
const FAILED_REFRESH_PAUSE: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(crate) struct TokenCache {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    current: Option<AccessToken>,
    refresh: Option<Refresh>,
    /// Bumped by every started refresh, so a finishing refresh only clears its own slot.
    generation: u64,
    paused_until: Option<OffsetDateTime>,
    /// After the instance refused a fresh token: no new token until then, this error instead.
    refused: Option<(OffsetDateTime, Error)>,
    /// Refusals in a row, for the backoff.
    refusals: u32,
}

/// What a caller must do after looking at the cache.
pub(crate) enum Lookup {
    /// Use this token.
    Ready(AccessToken),
    /// Use this token, and drive this refresh in the background.
    ReadyRefreshing(AccessToken, Refresh),
    /// Wait for this refresh; `true` when this lookup started it.
    Wait(Refresh, bool),
    /// The instance refused the last fresh token and the backoff has not passed: fail with
    /// this error without a token request.
    Refused(Error),
}

impl TokenCache {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Looks the token up at `now`; when a refresh is needed and none runs, `start` makes one.
    /// `start` gets the refresh's generation, to hand to [`finish`](Self::finish).
    pub(crate) fn lookup(
        &self,
        now: OffsetDateTime,
        start: impl FnOnce(u64) -> BoxFuture<'static, Result<AccessToken, Error>>,
    ) -> Lookup {
        let mut state = self.lock();
        if let Some(token) = &state.current {
            if now < token.refresh_at() {
                return Lookup::Ready(token.clone());
            }
            if now < token.expires_at() {
                let token = token.clone();
                if state.refresh.is_some() || state.paused_until.is_some_and(|p| now < p) {
                    return Lookup::Ready(token);
                }
                let refresh = Self::start(&mut state, start);
                return Lookup::ReadyRefreshing(token, refresh);
            }
        }
        if let Some((until, error)) = &state.refused
            && now < *until
        {
            return Lookup::Refused(error.clone());
        }
        match &state.refresh {
            Some(refresh) => Lookup::Wait(refresh.clone(), false),
            None => Lookup::Wait(Self::start(&mut state, start), true),
        }
    }

    fn start(
        state: &mut State,
        start: impl FnOnce(u64) -> BoxFuture<'static, Result<AccessToken, Error>>,
    ) -> Refresh {
        state.generation += 1;
        let refresh = start(state.generation).shared();
        state.refresh = Some(refresh.clone());
        refresh
    }

    /// Called by the refresh future itself when its request finished.
    pub(crate) fn finish(
        &self,
        generation: u64,
        result: &Result<AccessToken, Error>,
        now: OffsetDateTime,
    ) {
        let mut state = self.lock();
        if state.generation == generation {
            state.refresh = None;
        }
        match result {
            Ok(token) => {
                state.current = Some(token.clone());
                state.paused_until = None;
            }
            Err(_) => state.paused_until = Some(now + FAILED_REFRESH_PAUSE),
        }
    }

    /// Forgets `token` if it is still the cached one. A caller holding an older token that
    /// failed does not throw away the fresh token another task already fetched.
    pub(crate) fn invalidate(&self, token: &AccessToken) -> bool {
        let mut state = self.lock();
        if state.current.as_ref().is_some_and(|c| c.same_as(token)) {
            state.current = None;
            state.paused_until = None;
            true
        } else {
            false
        }
    }

    /// The instance refused `token` on its first use: forget it, and send no token request for
    /// `backoff(n)` (n = refusals in a row), failing with `error` meanwhile. A token request per
    /// call would be refused the same way and spend the user's login allowance.
    pub(crate) fn refuse(
        &self,
        token: &AccessToken,
        error: Error,
        now: OffsetDateTime,
        backoff: impl FnOnce(u32) -> Duration,
    ) {
        let mut state = self.lock();
        // Tasks that shared the refused token all report it; only the first one counts.
        if state.current.as_ref().is_some_and(|c| c.same_as(token)) {
            state.current = None;
            state.paused_until = None;
            state.refusals = state.refusals.saturating_add(1);
            state.refused = Some((now + backoff(state.refusals), error));
        } else if state.refused.is_none() && state.current.is_none() {
            state.refusals = state.refusals.saturating_add(1);
            state.refused = Some((now + backoff(state.refusals), error));
        }
    }

    /// The instance accepted a token: the refusal backoff starts over.
    pub(crate) fn accepted(&self) {
        let mut state = self.lock();
        state.refusals = 0;
        state.refused = None;
    }

    /// The cached token, fresh or not.
    pub(crate) fn peek(&self) -> Option<AccessToken> {
        self.lock().current.clone()
    }
}
