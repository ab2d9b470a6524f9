//! Handing polled batches to transform instances.
//!
//! Each batch goes to the instance with the fewest batches queued, the
//! first such in instance order. A transform that keeps up on one instance
//! (a cheap Rust transform) then runs on the first alone and the others
//! stay parked, rather than waking in turn and sharing out its memory and
//! caches; one that cannot (Python, JavaScript) gets every instance busy.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use super::resequence::Sequenced;
use crate::source::Polled;

/// Polled batches, numbered.
type Batches<C> = Sequenced<Polled<C>>;

/// One instance's end: its batches, and how many are queued or running.
pub struct InstanceInput<C> {
    pub batches: mpsc::Receiver<Sequenced<Polled<C>>>,
    pub queued: Arc<AtomicUsize>,
}

impl<C> InstanceInput<C> {
    /// The next batch; `None` once the driver is gone.
    pub fn next(&mut self) -> Option<Sequenced<Polled<C>>> {
        self.batches.blocking_recv()
    }

    /// The batch taken last is finished (transformed and handed on).
    pub fn finished(&self) {
        self.queued.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The driver's end.
pub struct Dispatch<C> {
    /// Each instance's queue, and how many batches it holds or runs.
    instances: Vec<(mpsc::Sender<Batches<C>>, Arc<AtomicUsize>)>,
}

/// Every instance is gone.
#[derive(Debug)]
pub struct InstancesGone;

impl<C> Dispatch<C> {
    /// A dispatch to `instances` instances, and each one's input. `window`
    /// bounds the batches in flight, so no instance's queue holds more.
    pub fn new(instances: usize, window: usize) -> (Self, Vec<InstanceInput<C>>) {
        let (senders, inputs) = (0..instances)
            .map(|_| {
                let (sender, batches) = mpsc::channel(window.max(1));
                let queued = Arc::new(AtomicUsize::new(0));
                ((sender, queued.clone()), InstanceInput { batches, queued })
            })
            .unzip();
        (Self { instances: senders }, inputs)
    }

    /// Hands `batch` to the least busy instance.
    pub async fn send(&self, batch: Sequenced<Polled<C>>) -> Result<(), InstancesGone> {
        let (sender, queued) = self
            .instances
            .iter()
            .min_by_key(|(_, queued)| queued.load(Ordering::SeqCst))
            .expect("at least one instance");
        queued.fetch_add(1, Ordering::SeqCst);
        sender.send(batch).await.map_err(|_| InstancesGone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Batch, BatchSource};

    fn batch(number: u64) -> Sequenced<Polled<u64>> {
        Sequenced {
            number,
            item: Polled { batch: Batch { source: BatchSource::File, records: Vec::new() }, checkpoint: number },
        }
    }

    #[tokio::test]
    async fn given_instances_that_keep_up_then_the_first_takes_every_batch() {
        let (dispatch, mut inputs) = Dispatch::new(3, 4);
        for number in 0..5 {
            dispatch.send(batch(number)).await.unwrap();
            let taken = inputs[0].batches.try_recv().expect("the first instance has it");
            assert_eq!(taken.number, number);
            inputs[0].finished();
        }
        assert!(inputs[1].batches.try_recv().is_err() && inputs[2].batches.try_recv().is_err());
    }

    #[tokio::test]
    async fn given_a_busy_first_instance_then_the_next_idle_one_takes_the_batch() {
        let (dispatch, mut inputs) = Dispatch::new(2, 4);
        for number in 0..4 {
            dispatch.send(batch(number)).await.unwrap();
        }
        let first: Vec<u64> = std::iter::from_fn(|| inputs[0].batches.try_recv().ok()).map(|b| b.number).collect();
        let second: Vec<u64> = std::iter::from_fn(|| inputs[1].batches.try_recv().ok()).map(|b| b.number).collect();
        assert_eq!((first, second), (vec![0, 2], vec![1, 3]), "shared out while neither finishes");
    }

    #[tokio::test]
    async fn given_every_instance_gone_then_sending_says_so() {
        let (dispatch, inputs) = Dispatch::<u64>::new(2, 1);
        drop(inputs);
        assert!(dispatch.send(batch(0)).await.is_err());
    }
}
