//! Handing polled batches to transform instances.
//!
//! A batch goes to the first idle instance in instance order. When every
//! instance is busy it waits in one backlog, and whichever instance
//! finishes first takes the oldest there.
//!
//! Why one backlog and not a queue per instance: the writer takes batches
//! in poll order, so an instance that finishes a batch early cannot free
//! the window until the batches before it are done. A batch queued behind
//! a busy instance then left the other idle until that one finished — on
//! two instances a tenth of their time (measured in the scaling bench:
//! 1.67–1.87 of 2 cores busy). Taking from one backlog, an instance is
//! idle only while the next batch is being polled.
//!
//! Why the first idle instance: a transform that keeps up on one instance
//! (a cheap Rust transform) then runs on the first alone and the others
//! stay parked, rather than waking in turn and sharing out its memory and
//! caches; one that cannot (Python, JavaScript) gets every instance busy.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use super::resequence::Sequenced;
use crate::source::Polled;

/// A polled batch, numbered.
type Numbered<C> = Sequenced<Polled<C>>;

/// What the driver and the instances share.
struct Shared<C> {
    /// Batches polled while every instance was busy, oldest first.
    backlog: VecDeque<Numbered<C>>,
    /// Which instances wait for a batch.
    idle: Vec<bool>,
    /// Instances whose input is still held.
    alive: usize,
}

type Handle<C> = Arc<Mutex<Shared<C>>>;

fn lock<C>(shared: &Handle<C>) -> MutexGuard<'_, Shared<C>> {
    // Nothing panics while holding the lock, so it is never poisoned.
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One instance's end.
pub struct InstanceInput<C> {
    index: usize,
    /// A batch handed to this instance while it was idle.
    handed: mpsc::Receiver<Numbered<C>>,
    shared: Handle<C>,
}

impl<C> InstanceInput<C> {
    /// The next batch: the oldest in the backlog, else one handed over
    /// once polled. `None` once the driver is gone.
    pub fn next(&mut self) -> Option<Numbered<C>> {
        self.take_backlog_or_go_idle().or_else(|| self.handed.blocking_recv())
    }

    /// The oldest batch in the backlog; with none there, this instance is
    /// idle from now on, and the next batch polled is handed to it (or to
    /// an idle instance before it).
    fn take_backlog_or_go_idle(&mut self) -> Option<Numbered<C>> {
        let mut shared = lock(&self.shared);
        let batch = shared.backlog.pop_front();
        shared.idle[self.index] = batch.is_none();
        batch
    }
}

impl<C> Drop for InstanceInput<C> {
    fn drop(&mut self) {
        let mut shared = lock(&self.shared);
        shared.idle[self.index] = false;
        shared.alive -= 1;
    }
}

/// The driver's end.
pub struct Dispatch<C> {
    /// Each instance's hand-over slot (room for one batch: only an idle
    /// instance is handed one).
    slots: Vec<mpsc::Sender<Numbered<C>>>,
    shared: Handle<C>,
}

/// Every instance is gone.
#[derive(Debug)]
pub struct InstancesGone;

impl<C> Dispatch<C> {
    /// A dispatch to `instances` instances, and each one's input. (The
    /// driver's window bounds the backlog.)
    pub fn new(instances: usize) -> (Self, Vec<InstanceInput<C>>) {
        let shared =
            Arc::new(Mutex::new(Shared { backlog: VecDeque::new(), idle: vec![false; instances], alive: instances }));
        let (slots, inputs) = (0..instances)
            .map(|index| {
                let (slot, handed) = mpsc::channel(1);
                (slot, InstanceInput { index, handed, shared: shared.clone() })
            })
            .unzip();
        (Self { slots, shared }, inputs)
    }

    /// Hands `batch` to the first idle instance, or leaves it in the
    /// backlog for the first to finish.
    pub fn send(&self, batch: Numbered<C>) -> Result<(), InstancesGone> {
        let mut shared = lock(&self.shared);
        if shared.alive == 0 {
            return Err(InstancesGone);
        }
        match shared.idle.iter().position(|&idle| idle) {
            Some(index) => {
                shared.idle[index] = false;
                // The slot is empty: it was idle, and only this hands over.
                self.slots[index].try_send(batch).map_err(|_| InstancesGone)
            }
            None => {
                shared.backlog.push_back(batch);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Batch, BatchSource};

    fn batch(number: u64) -> Numbered<u64> {
        Sequenced {
            number,
            item: Polled { batch: Batch { source: BatchSource::File, records: Vec::new() }, checkpoint: number },
        }
    }

    fn handed(input: &mut InstanceInput<u64>) -> Option<u64> {
        input.handed.try_recv().ok().map(|batch| batch.number)
    }

    #[test]
    fn given_instances_that_keep_up_then_the_first_takes_every_batch() {
        let (dispatch, mut inputs) = Dispatch::new(3);
        inputs.iter_mut().for_each(|input| assert!(input.take_backlog_or_go_idle().is_none()));
        for number in 0..5 {
            dispatch.send(batch(number)).unwrap();
            assert_eq!(handed(&mut inputs[0]), Some(number), "the first instance has it");
            assert!(inputs[0].take_backlog_or_go_idle().is_none(), "and waits again");
        }
        assert_eq!((handed(&mut inputs[1]), handed(&mut inputs[2])), (None, None));
    }

    #[test]
    fn given_every_instance_busy_then_the_first_to_finish_takes_the_oldest_waiting_batch() {
        let (dispatch, mut inputs) = Dispatch::new(2);
        inputs.iter_mut().for_each(|input| assert!(input.take_backlog_or_go_idle().is_none()));
        for number in 0..4 {
            dispatch.send(batch(number)).unwrap();
        }
        assert_eq!((handed(&mut inputs[0]), handed(&mut inputs[1])), (Some(0), Some(1)));
        // The second finishes first (its batch waits for the first's to be
        // written): it does not sit idle while batch 2 waits.
        assert_eq!(inputs[1].take_backlog_or_go_idle().map(|batch| batch.number), Some(2));
        assert_eq!(inputs[0].take_backlog_or_go_idle().map(|batch| batch.number), Some(3));
        assert!(inputs[0].take_backlog_or_go_idle().is_none());
        dispatch.send(batch(4)).unwrap();
        assert_eq!(handed(&mut inputs[0]), Some(4), "handed to the instance that went idle");
    }

    #[test]
    fn given_an_instance_gone_then_it_is_handed_nothing() {
        let (dispatch, mut inputs) = Dispatch::new(2);
        inputs.iter_mut().for_each(|input| assert!(input.take_backlog_or_go_idle().is_none()));
        let mut second = inputs.pop().unwrap();
        drop(inputs);
        dispatch.send(batch(0)).unwrap();
        assert_eq!(handed(&mut second), Some(0));
    }

    #[test]
    fn given_every_instance_gone_then_sending_says_so() {
        let (dispatch, inputs) = Dispatch::<u64>::new(2);
        drop(inputs);
        assert!(dispatch.send(batch(0)).is_err());
    }
}
