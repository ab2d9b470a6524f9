//! The epoch clock that enforces transform deadlines: wasmtime interrupts a
//! guest when the engine's epoch passes its deadline, and this advances it.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::Engine;

/// How often the epoch advances; deadlines are rounded up to whole ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// A thread that advances the engine's epoch every [`EPOCH_TICK`] while
/// guest code runs, and sleeps otherwise: an idle pipeline should not wake
/// a hundred times a second. Each transform holds it, so deadlines keep
/// firing as long as any transform lives, and the thread stops with the
/// last one.
pub(crate) struct EpochClock {
    shared: Arc<ClockShared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct ClockShared {
    state: Mutex<ClockState>,
    changed: Condvar,
}

#[derive(Default)]
struct ClockState {
    /// Guest calls in progress (several transforms may run at once).
    running: usize,
    stopping: bool,
}

/// Keeps the clock ticking while guest code runs; see [`EpochClock::running`].
pub(crate) struct Ticking(Arc<ClockShared>);

impl EpochClock {
    pub(crate) fn start(engine: Engine) -> Self {
        let shared = Arc::new(ClockShared::default());
        let clock = shared.clone();
        let thread = std::thread::Builder::new()
            .name("ferry-epoch".into())
            .spawn(move || clock.tick(&engine))
            .expect("the OS can start a thread");
        Self { shared, thread: Some(thread) }
    }

    /// Ticks until the returned guard is dropped. A deadline counts ticks
    /// from when it is set, so a clock that starts with the call is exact.
    pub(crate) fn running(&self) -> Ticking {
        let mut state = self.shared.lock();
        state.running += 1;
        if state.running == 1 {
            self.shared.changed.notify_one();
        }
        Ticking(self.shared.clone())
    }

    /// The number of ticks that covers `timeout`, plus the tick in progress.
    pub(crate) fn ticks_for(timeout: Duration) -> u64 {
        timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64 + 1
    }
}

impl ClockShared {
    fn lock(&self) -> MutexGuard<'_, ClockState> {
        // The state stays consistent even if a holder panicked.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn tick(&self, engine: &Engine) {
        let mut state = self.lock();
        while !state.stopping {
            if state.running == 0 {
                state = self.changed.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            drop(state);
            std::thread::sleep(EPOCH_TICK);
            engine.increment_epoch();
            state = self.lock();
        }
    }
}

impl Drop for Ticking {
    fn drop(&mut self) {
        self.0.lock().running -= 1;
    }
}

impl Drop for EpochClock {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.changed.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::Config;

    use super::*;

    #[test]
    fn given_calls_come_and_go_then_the_clock_counts_them_and_stops_cleanly() {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let clock = EpochClock::start(Engine::new(&config).unwrap());
        let (first, second) = (clock.running(), clock.running());
        assert_eq!(clock.shared.lock().running, 2);
        drop(first);
        drop(second);
        assert_eq!(clock.shared.lock().running, 0);
        // Dropping the clock wakes the idle thread and joins it (a missed
        // wake-up would hang here).
        drop(clock);
    }

    #[test]
    fn given_a_timeout_then_ticks_cover_it_and_the_current_tick() {
        assert_eq!(EpochClock::ticks_for(Duration::from_millis(10)), 2);
        assert_eq!(EpochClock::ticks_for(Duration::from_millis(11)), 3);
        assert_eq!(EpochClock::ticks_for(Duration::from_secs(1)), 101);
    }
}
