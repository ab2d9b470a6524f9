//! Putting batches back in source order after transform instances finished
//! them in whatever order their work took.
//!
//! The driver numbers each batch as it polls it; the writer takes them in
//! that numbering, so what is written, and the order positions are
//! committed in, is exactly what one instance would have produced.

use std::collections::BTreeMap;

/// A batch and its place in poll order.
pub struct Sequenced<T> {
    pub number: u64,
    pub item: T,
}

/// Holds batches that arrive early until every batch before them has.
/// (The driver's window bounds how many can wait.)
pub struct Resequencer<T> {
    next: u64,
    waiting: BTreeMap<u64, T>,
}

impl<T> Default for Resequencer<T> {
    fn default() -> Self {
        Self { next: 0, waiting: BTreeMap::new() }
    }
}

impl<T> Resequencer<T> {
    pub fn push(&mut self, sequenced: Sequenced<T>) {
        debug_assert!(sequenced.number >= self.next, "batch {} arrived twice", sequenced.number);
        self.waiting.insert(sequenced.number, sequenced.item);
    }

    /// The next batch in poll order, if it has arrived.
    pub fn pop(&mut self) -> Option<T> {
        let item = self.waiting.remove(&self.next)?;
        self.next += 1;
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrive(order: &[u64]) -> Vec<u64> {
        let mut resequencer = Resequencer::default();
        let mut out = Vec::new();
        for &number in order {
            resequencer.push(Sequenced { number, item: number });
            while let Some(item) = resequencer.pop() {
                out.push(item);
            }
        }
        out
    }

    #[test]
    fn given_batches_out_of_order_then_they_leave_in_poll_order() {
        assert_eq!(arrive(&[1, 0, 3, 2, 4]), [0, 1, 2, 3, 4]);
        assert_eq!(arrive(&[4, 3, 2, 1, 0]), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn given_a_gap_then_nothing_after_it_leaves() {
        assert_eq!(arrive(&[0, 2, 3]), [0]);
        let mut resequencer = Resequencer::default();
        resequencer.push(Sequenced { number: 1, item: "b" });
        assert_eq!(resequencer.pop(), None);
        resequencer.push(Sequenced { number: 0, item: "a" });
        assert_eq!((resequencer.pop(), resequencer.pop(), resequencer.pop()), (Some("a"), Some("b"), None));
    }
}
