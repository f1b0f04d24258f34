//! Token requests of many orgs' collectors spaced out: hundreds of orgs started at once must
//! not ask the same login host for hundreds of tokens in the same instant.

use std::time::Duration;

/// The least time between two token requests of the orgs' collectors: hundreds of orgs
/// started at once would send hundreds of token requests to the same login host in the same
/// instant. At 10 ms, 200 orgs have their tokens within 2 seconds.
const TOKEN_STEP: Duration = Duration::from_millis(10);

/// The longest the first token requests are spread over, however many orgs: with more orgs
/// than this allows at [`TOKEN_STEP`], the step shrinks.
const MAX_TOKEN_SPREAD: Duration = Duration::from_secs(10);

/// Spaces the token requests of new collectors (every org's first pass, and its first after a
/// failure) at least a step apart, process-wide, in the order they ask (the lock is fair).
/// The step is measured from when the turn before was taken, not from a schedule fixed at
/// the start: a start slowed by blocking work (checkpoints written, files opened) must not
/// leave many deadlines passed at once, to be taken in a burst.
#[derive(Debug)]
pub struct TokenPacer {
    step: Duration,
    next: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

impl TokenPacer {
    /// A step for `count` collectors: [`TOKEN_STEP`], smaller if needed to have them all
    /// within [`MAX_TOKEN_SPREAD`] and, with `--follow`, within half an interval, so every
    /// org starts within its first interval.
    pub fn new(count: usize, follow: Option<Duration>) -> Self {
        let spread = follow.map_or(MAX_TOKEN_SPREAD, |every| MAX_TOKEN_SPREAD.min(every / 2));
        let count = u32::try_from(count.max(1)).unwrap_or(u32::MAX);
        TokenPacer {
            step: TOKEN_STEP.min(spread / count),
            next: tokio::sync::Mutex::new(None),
        }
    }

    /// Waits until at least a step has passed since the turn before.
    pub async fn turn(&self) {
        // A tokio lock, held across the wait on purpose: the next caller waits behind it.
        let mut next = self.next.lock().await;
        if let Some(at) = *next {
            tokio::time::sleep_until(at).await;
        }
        *next = Some(tokio::time::Instant::now() + self.step);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_token_step_keeps_every_start_within_a_bounded_period() {
        let step = |count, follow| TokenPacer::new(count, follow).step;
        assert_eq!(step(200, None), TOKEN_STEP);
        assert_eq!(step(1, None), TOKEN_STEP);
        // Thousands of orgs: the step shrinks, the spread stays bounded.
        assert_eq!(step(5000, None), MAX_TOKEN_SPREAD / 5000);
        // With --follow every org has its token within half its first interval.
        let every = Duration::from_secs(1);
        assert_eq!(step(200, Some(every)), every / 2 / 200);
    }

    // Paused time: the pacer's sleeps advance the clock instead of waiting.
    #[tokio::test(start_paused = true)]
    async fn turns_are_a_step_apart_even_when_taken_all_at_once() {
        let pacer = Arc::new(TokenPacer::new(5, None));
        let started = tokio::time::Instant::now();
        let turns: Vec<_> = (0..5)
            .map(|_| {
                let pacer = Arc::clone(&pacer);
                tokio::spawn(async move {
                    pacer.turn().await;
                    tokio::time::Instant::now()
                })
            })
            .collect();
        let mut at = Vec::new();
        for turn in turns {
            at.push(turn.await.unwrap());
        }
        at.sort();
        assert!(at[0] - started < TOKEN_STEP);
        for pair in at.windows(2) {
            assert!(pair[1] - pair[0] >= TOKEN_STEP, "{:?}", pair[1] - pair[0]);
        }
    }
}
