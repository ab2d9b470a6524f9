//! The leader's own proof that it still holds its lease, checked before
//! anything is produced.
//!
//! A renewal sent at instant `t` (by this process's monotonic clock) that
//! the server acknowledged made the lease run until the server's now plus
//! the lease, and the server's now was after `t`: so the lease runs at least
//! until `t + lease` by this process's clock (clock rates differ by parts
//! per million). A write may start only while that leaves `margin` to
//! spare; otherwise the process stands down. A process frozen (SIGSTOP, a
//! long pause) finds its proof gone when it wakes, before it writes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::error::ServiceError;

/// Shared by the lease keeper (which extends it) and the writers (which
/// check it).
#[derive(Clone)]
pub struct Fence {
    inner: Arc<Inner>,
}

struct Inner {
    margin: Duration,
    /// Until when the lease is proven to run; `None` before it is taken.
    held_until: Mutex<Option<Instant>>,
    /// Cancelled once the lease is lost, for good: this fence never opens
    /// again (a new term gets a new fence).
    lost: CancellationToken,
}

impl Fence {
    pub fn new(margin: Duration) -> Self {
        Self { inner: Arc::new(Inner { margin, held_until: Mutex::new(None), lost: CancellationToken::new() }) }
    }

    /// Records a grant or renewal sent at `sent` for a lease of `lease`.
    pub fn held(&self, sent: Instant, lease: Duration) {
        if self.is_lost() {
            return;
        }
        let mut held_until = self.lock();
        let until = sent + lease;
        if held_until.is_none_or(|held| held < until) {
            *held_until = Some(until);
        }
    }

    /// Whether traffic may reach the server: while the lease has not been
    /// taken yet (a standby reaching its ends, which produces nothing), or
    /// while it is proven.
    pub fn permits_traffic(&self) -> bool {
        !self.is_lost() && self.lock().is_none_or(|until| Instant::now() + self.inner.margin <= until)
    }

    /// Whether the lease is proven to run for the margin yet.
    pub fn proven(&self) -> bool {
        !self.is_lost() && self.lock().is_some_and(|until| Instant::now() + self.inner.margin <= until)
    }

    /// Before producing: fails (and marks the lease lost) unless the lease
    /// is proven to run for the margin yet. `what` is written only then: the
    /// check runs before every request.
    pub fn check(&self, what: impl FnOnce() -> String) -> Result<(), ServiceError> {
        if self.proven() {
            return Ok(());
        }
        self.lose();
        Err(ServiceError::fatal(
            what(),
            "this process cannot prove it still holds the pipeline's lease (it was paused, or could not renew it in \
             time), so it produces nothing more and stands by",
        ))
    }

    pub fn lose(&self) {
        *self.lock() = None;
        self.inner.lost.cancel();
    }

    pub fn is_lost(&self) -> bool {
        self.inner.lost.is_cancelled()
    }

    /// Resolves once the lease is lost.
    pub async fn lost(&self) {
        self.inner.lost.cancelled().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.inner.held_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(10);
    const MARGIN: Duration = Duration::from_millis(2500);

    #[test]
    fn given_no_grant_then_nothing_may_be_produced() {
        let fence = Fence::new(MARGIN);
        assert!(!fence.proven());
        assert!(fence.check(|| "producing".into()).is_err());
        assert!(fence.is_lost(), "a failed check stands the process down");
    }

    #[test]
    fn given_a_fresh_renewal_then_writes_pass() {
        let fence = Fence::new(MARGIN);
        fence.held(Instant::now(), LEASE);
        assert!(fence.check(|| "producing".into()).is_ok());
    }

    #[test]
    fn given_a_renewal_older_than_the_lease_less_the_margin_then_the_check_fails() {
        let fence = Fence::new(MARGIN);
        // As a process frozen for eight seconds after its last renewal
        // finds it on waking: 2 s left, less than the margin.
        fence.held(Instant::now() - Duration::from_secs(8), LEASE);
        assert!(!fence.proven());
        let error = fence.check(|| "producing to s/t".into()).unwrap_err();
        assert!(!error.transient, "standing down is not retried");
        assert!(fence.is_lost());
    }

    #[test]
    fn given_a_lease_not_taken_yet_then_traffic_passes_but_no_write_may_start() {
        let fence = Fence::new(MARGIN);
        assert!(fence.permits_traffic(), "a standby reaches its ends");
        assert!(!fence.proven());
        fence.held(Instant::now() - Duration::from_secs(8), LEASE);
        assert!(!fence.permits_traffic(), "a lease that ran out stops traffic");
        fence.lose();
        assert!(!fence.permits_traffic());
    }

    #[test]
    fn given_a_lost_lease_then_a_late_renewal_does_not_reopen_it() {
        let fence = Fence::new(MARGIN);
        fence.held(Instant::now(), LEASE);
        fence.lose();
        fence.held(Instant::now(), LEASE);
        assert!(!fence.proven());
    }

    #[test]
    fn given_an_older_renewal_answered_late_then_the_later_proof_stands() {
        let fence = Fence::new(MARGIN);
        let now = Instant::now();
        fence.held(now, LEASE);
        fence.held(now - Duration::from_secs(9), LEASE);
        assert!(fence.proven());
    }
}
