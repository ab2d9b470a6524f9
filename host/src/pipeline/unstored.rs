//! Written batches whose positions are not yet committed to the source.
//!
//! The driver commits them together, after `delivery.commit_interval` or
//! when the pipeline goes idle or stops. Only positions that no later one
//! covers are kept, so what is held is one position per partition (one in
//! all for a change stream), however many batches were written meanwhile.

use std::time::{Duration, Instant};

use super::Counts;
use super::writer::Ack;

/// One position to commit, and what the batches it covers carried.
pub struct Position<C> {
    pub checkpoint: C,
    pub counts: Counts,
}

/// The positions waiting, oldest first, and since when the oldest waits.
pub struct Unstored<C> {
    positions: Vec<Position<C>>,
    since: Option<Instant>,
}

impl<C> Default for Unstored<C> {
    fn default() -> Self {
        Self { positions: Vec::new(), since: None }
    }
}

impl<C> Unstored<C> {
    /// Holds a written batch's position. `covers(later, earlier)` is the
    /// source's rule: positions the new one covers are folded into it.
    pub fn hold(&mut self, ack: Ack<C>, covers: impl Fn(&C, &C) -> bool) {
        let mut position = Position { checkpoint: ack.checkpoint, counts: ack.counts };
        self.positions.retain(|earlier| {
            let covered = covers(&position.checkpoint, &earlier.checkpoint);
            if covered {
                position.counts.add(earlier.counts);
            }
            !covered
        });
        self.positions.push(position);
        self.since.get_or_insert_with(Instant::now);
    }

    /// When the positions held must be committed, if any are held.
    pub fn due_at(&self, interval: Duration) -> Option<Instant> {
        self.since.map(|since| since + interval)
    }

    pub fn is_due(&self, interval: Duration) -> bool {
        self.due_at(interval).is_some_and(|due| due <= Instant::now())
    }

    /// Batches written and not yet committed.
    pub fn batches(&self) -> usize {
        self.positions.iter().map(|position| position.counts.batches as usize).sum()
    }

    /// Everything held, oldest first, leaving nothing.
    pub fn take(&mut self) -> Vec<Position<C>> {
        self.since = None;
        std::mem::take(&mut self.positions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (partition, offset); a later offset in the same partition covers.
    type Checkpoint = (u32, u64);

    fn covers(later: &Checkpoint, earlier: &Checkpoint) -> bool {
        later.0 == earlier.0 && later.1 >= earlier.1
    }

    fn ack(partition: u32, offset: u64, records: u64) -> Ack<Checkpoint> {
        Ack { checkpoint: (partition, offset), counts: Counts { batches: 1, records, ..Counts::default() } }
    }

    #[test]
    fn given_batches_from_two_partitions_then_one_position_each_carries_all_their_counts() {
        let mut unstored = Unstored::default();
        for (partition, offset) in [(1, 9), (2, 4), (1, 19), (1, 29), (2, 9)] {
            unstored.hold(ack(partition, offset, 10), covers);
        }
        assert_eq!(unstored.batches(), 5);
        let positions = unstored.take();
        let kept: Vec<(Checkpoint, u64, u64)> =
            positions.iter().map(|p| (p.checkpoint, p.counts.records, p.counts.batches)).collect();
        assert_eq!(kept, [((1, 29), 30, 3), ((2, 9), 20, 2)]);
        assert_eq!(unstored.batches(), 0);
        assert_eq!(unstored.due_at(Duration::ZERO), None, "nothing held, nothing due");
    }

    #[test]
    fn given_positions_that_never_cover_then_each_is_kept_in_order() {
        let mut unstored = Unstored::default();
        for offset in [3, 1, 2] {
            unstored.hold(ack(0, offset, 1), |_: &Checkpoint, _: &Checkpoint| false);
        }
        let kept: Vec<u64> = unstored.take().iter().map(|p| p.checkpoint.1).collect();
        assert_eq!(kept, [3, 1, 2]);
    }

    #[test]
    fn given_a_held_position_then_it_is_due_after_the_interval_from_the_oldest() {
        let mut unstored = Unstored::default();
        assert!(!unstored.is_due(Duration::ZERO));
        unstored.hold(ack(0, 1, 1), covers);
        assert!(unstored.is_due(Duration::ZERO));
        assert!(!unstored.is_due(Duration::from_secs(3600)));
        let first_due = unstored.due_at(Duration::from_secs(1));
        unstored.hold(ack(0, 2, 1), covers);
        assert_eq!(unstored.due_at(Duration::from_secs(1)), first_due, "the oldest sets the deadline");
    }
}
