//! What a transform's calls cost, learned from the calls that succeeded, and
//! the deadline that gives a call on some number of records.
//!
//! A call costs a fixed overhead (crossing into the guest and back, a few
//! microseconds for Rust, more for an interpreter) plus a cost per record.
//! Deadlines should follow the cost per record: a hanging record then costs
//! a batch little more than twenty times its neighbours' work before the
//! batch is cut and retried record by record.
//!
//! Two averages are kept, because the two kinds of call measure different
//! things:
//! - calls on more than one record (whole batches, the rest of a batch after
//!   its first record) divide the overhead among their records, so their
//!   time per record is close to the cost per record. When known, this sets
//!   every deadline.
//! - calls on one record (the record-by-record retry after a cut batch, a
//!   batch's first record while nothing else is known, a trickle) are mostly
//!   overhead. Folded into the first average, a retry's thousand single calls
//!   would raise the next batch's deadline several-fold just when hanging
//!   records are about. Kept apart, they still bound the cost per record from
//!   above, which is enough to set a deadline while no call on more records
//!   has succeeded (every batch may hold a hanging record): a deadline that
//!   errs long, far below `timeout`.
//!
//! Until any call has succeeded nothing is known, and a call on many records
//! gets all of `timeout`; [`super::transform::Transform`] avoids that by
//! running a batch's first record alone first.

use std::time::Duration;

/// How many times its recent cost per record a batch may take before it is
/// cut short (and retried record by record, each with `record_timeout`).
/// Generous, so a slow moment costs a retry rarely; a hanging record costs
/// this, not the full `timeout`.
const SLOWDOWN_ALLOWED: f64 = 20.0;
/// The weight of the newest call in each moving average.
const NEWEST_WEIGHT: f64 = 0.2;

/// The recent cost of a transform's successful calls.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct CallCost {
    /// Seconds per record of recent calls on more than one record.
    per_record_in_batches: Option<f64>,
    /// Seconds of recent calls on one record: overhead and one record.
    single_call: Option<f64>,
}

impl CallCost {
    /// Folds a successful call on `records` records that took `elapsed` into
    /// the average it belongs to.
    pub(crate) fn learn(&mut self, elapsed: Duration, records: usize) {
        let (average, sample) = match records {
            0 => return,
            1 => (&mut self.single_call, elapsed.as_secs_f64()),
            _ => (&mut self.per_record_in_batches, elapsed.as_secs_f64() / records as f64),
        };
        *average = Some(match *average {
            None => sample,
            Some(recent) => recent + NEWEST_WEIGHT * (sample - recent),
        });
    }

    /// Whether any call has succeeded, so deadlines can be measured.
    pub(crate) fn is_known(&self) -> bool {
        self.per_record().is_some()
    }

    /// Seconds per record to set deadlines by: from calls on more than one
    /// record; while none has succeeded, from calls on one (which overstate
    /// it by the call's overhead, so the deadline errs long).
    fn per_record(&self) -> Option<f64> {
        self.per_record_in_batches.or(self.single_call)
    }

    /// How long a call on `records` records may run: `alone` for one; for
    /// more, [`SLOWDOWN_ALLOWED`] times their recent cost, at least `alone`
    /// and at most `timeout` (all of `timeout` while nothing is known).
    pub(crate) fn deadline(&self, records: usize, alone: Duration, timeout: Duration) -> Duration {
        match (records, self.per_record()) {
            (0 | 1, _) => alone,
            (_, None) => timeout,
            (_, Some(cost)) => Duration::from_secs_f64(cost * records as f64 * SLOWDOWN_ALLOWED).clamp(alone, timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALONE: Duration = Duration::from_millis(100);
    const TIMEOUT: Duration = Duration::from_secs(3600);

    fn micros(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn given_nothing_learned_then_a_batch_gets_the_whole_timeout_and_a_record_alone_its_own() {
        let cost = CallCost::default();
        assert!(!cost.is_known());
        assert_eq!(cost.deadline(1000, ALONE, TIMEOUT), TIMEOUT);
        assert_eq!(cost.deadline(1, ALONE, TIMEOUT), ALONE);
    }

    #[test]
    fn given_only_calls_on_one_record_then_they_set_the_deadline_of_a_batch() {
        let mut cost = CallCost::default();
        cost.learn(micros(100), 1);
        assert!(cost.is_known());
        // 20 × 1000 × 100 µs.
        assert_eq!(cost.deadline(1000, ALONE, TIMEOUT), Duration::from_secs(2));
    }

    #[test]
    fn given_a_cost_from_batches_then_calls_on_one_record_leave_it_alone() {
        let mut cost = CallCost::default();
        cost.learn(micros(50_000), 1000);
        let learned = cost.deadline(100_000, ALONE, TIMEOUT);
        assert_eq!(learned, Duration::from_secs(100));
        for _ in 0..1000 {
            cost.learn(micros(100), 1);
        }
        assert_eq!(cost.deadline(100_000, ALONE, TIMEOUT), learned);
    }

    #[test]
    fn given_calls_on_one_record_first_then_a_batch_replaces_their_bound() {
        let mut cost = CallCost::default();
        cost.learn(micros(100), 1);
        cost.learn(micros(50_000), 1000);
        assert_eq!(cost.deadline(100_000, ALONE, TIMEOUT), Duration::from_secs(100));
    }

    #[test]
    fn given_a_batch_cheaper_or_dearer_than_before_then_the_average_moves_a_fifth_of_the_way() {
        let mut cost = CallCost::default();
        cost.learn(micros(1000), 10); // 100 µs per record
        cost.learn(micros(6000), 10); // 600 µs per record
        // 100 + 0.2 × 500 = 200 µs per record, × 20 × 1000.
        let deadline = cost.deadline(1000, ALONE, TIMEOUT);
        assert!((deadline.as_secs_f64() - 4.0).abs() < 1e-9, "{deadline:?}");
    }

    #[test]
    fn given_a_cheap_transform_then_a_batch_still_gets_at_least_a_record_alone_and_at_most_the_timeout() {
        let mut cost = CallCost::default();
        cost.learn(micros(1), 1000);
        assert_eq!(cost.deadline(1000, ALONE, TIMEOUT), ALONE);
        cost.learn(Duration::from_secs(10), 2);
        assert_eq!(cost.deadline(1_000_000, ALONE, TIMEOUT), TIMEOUT);
    }
}
