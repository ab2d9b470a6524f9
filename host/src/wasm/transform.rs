//! One loaded transform: compiled once, instantiated lazily, reused across
//! batches, re-created after a trap (a trapped instance cannot be entered
//! again), and replaced between batches once its memory passes the recycle
//! threshold (some guest runtimes never free what they allocate).

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::Store;

use super::bindings;
use super::cache::CacheOutcome;
use super::engine::EpochClock;
use super::error::TransformError;
use super::host_state::HostState;
use super::limits::{Stop, classify};
use crate::config::TransformConfig;
use crate::record::{Batch, Outcome};
use crate::telemetry::TransformTelemetry;

/// How many times its recent cost per record a batch may take before it is
/// cut short (and retried record by record, each with `record_timeout`).
/// Generous, so a slow moment costs a retry rarely; a hanging record costs
/// this, not the full `timeout`.
const SLOWDOWN_ALLOWED: f64 = 20.0;
/// The weight of the newest call in the recent cost per record.
const COST_WEIGHT: f64 = 0.2;

/// A transform ready to process batches.
pub struct Transform {
    name: Arc<str>,
    config: TransformConfig,
    pre: bindings::TransformPre<HostState>,
    /// Held so that deadlines keep firing while this transform lives.
    clock: Arc<EpochClock>,
    /// Seconds per record of recent successful calls (a moving average);
    /// `None` until one succeeds.
    recent_cost: Option<f64>,
    cache_outcome: CacheOutcome,
    /// The SHA-256 of the component file, in hex.
    sha256: String,
    live: Option<Live>,
    instantiations: u64,
    /// Instances replaced between batches to give their memory back.
    recycles: u64,
    /// Whether the next instantiation replaces a recycled instance rather
    /// than one that stopped.
    recycling: bool,
    /// Where calls, stops and restarts are counted, in a pipeline.
    telemetry: Option<TransformTelemetry>,
}

/// An instance that has been configured and has not trapped.
struct Live {
    store: Store<HostState>,
    bindings: bindings::Transform,
}

impl Transform {
    pub(crate) fn new(
        config: TransformConfig,
        pre: bindings::TransformPre<HostState>,
        clock: Arc<EpochClock>,
        cache_outcome: CacheOutcome,
        sha256: String,
    ) -> Self {
        Self {
            name: Arc::from(config.name.as_str()),
            recent_cost: None,
            config,
            pre,
            clock,
            cache_outcome,
            sha256,
            live: None,
            instantiations: 0,
            recycles: 0,
            recycling: false,
            telemetry: None,
        }
    }

    /// Counts this transform's calls, stops and restarts into `telemetry`.
    pub fn observe(&mut self, telemetry: TransformTelemetry) {
        self.telemetry = Some(telemetry);
    }

    /// The SHA-256 of the component file, in hex: which version this is.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// `name@<first 12 hex digits of the SHA-256>`: the version as logs and
    /// outputs name it.
    pub fn version(&self) -> String {
        format!("{}@{}", self.name, &self.sha256[..12])
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the compiled form came from the cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.cache_outcome
    }

    /// How many instances have been created so far: one more for each
    /// restart after a trap and each recycle.
    pub fn instantiations(&self) -> u64 {
        self.instantiations
    }

    /// How many instances were replaced between batches because their memory
    /// passed `recycle_memory_above`.
    pub fn recycles(&self) -> u64 {
        self.recycles
    }

    /// Instantiates and configures the transform unless an instance is live.
    pub fn start(&mut self) -> Result<(), TransformError> {
        self.live_instance().map(|_| ())
    }

    /// How long a call on `records` records may run: `record_timeout` for
    /// one; for more, [`SLOWDOWN_ALLOWED`] times the recent cost, at least
    /// `record_timeout` and at most `timeout` (all of `timeout` until a call
    /// has succeeded).
    pub fn deadline(&self, records: usize) -> Duration {
        let alone = self.config.single_record_deadline();
        match (records, self.recent_cost) {
            (0 | 1, _) => alone,
            (_, None) => self.config.timeout,
            (_, Some(cost)) => {
                Duration::from_secs_f64(cost * records as f64 * SLOWDOWN_ALLOWED).clamp(alone, self.config.timeout)
            }
        }
    }

    /// Runs one batch, returning exactly one outcome per record.
    pub fn transform(&mut self, batch: &Batch) -> Result<Vec<Outcome>, TransformError> {
        let _ticking = self.clock.running();
        let records = batch.records.len();
        let deadline = self.deadline(records);
        let live = self.live_instance()?;
        live.store.set_epoch_deadline(EpochClock::ticks_for(deadline));
        live.store.data_mut().fence.reset();
        let started = Instant::now();
        let result = live.bindings.ferry_transform_transformer().call_transform(&mut live.store, batch);
        let elapsed = started.elapsed();
        live.store.data().flush_output();
        let memory = live.store.data().fence.size();
        if let Some(telemetry) = &self.telemetry {
            telemetry.called(elapsed);
            telemetry.memory(memory);
        }
        let answer = match result {
            Ok(answer) => answer,
            Err(error) => return Err(self.stopped(error, records, deadline)),
        };
        let outcomes = checked_answer(&self.name, records, answer)?;
        self.learn_cost(elapsed, records);
        self.recycle_if_above_threshold(memory);
        Ok(outcomes)
    }

    /// Folds a successful call into the recent cost per record. Calls on one
    /// record teach nothing: they are the record-by-record retry after a cut
    /// batch, or a trickle, and a call's fixed overhead divided by one record
    /// would raise the deadline of the next full batch — exactly when a
    /// hanging record should cost little.
    fn learn_cost(&mut self, elapsed: Duration, records: usize) {
        if records < 2 {
            return;
        }
        let cost = elapsed.as_secs_f64() / records as f64;
        self.recent_cost = Some(match self.recent_cost {
            None => cost,
            Some(recent) => recent + COST_WEIGHT * (cost - recent),
        });
    }

    /// Drops the instance when `memory` is past the threshold, so the next
    /// batch starts on a fresh one. The batch's outcomes are already out of
    /// the guest, so nothing is lost; a transform keeps no state across
    /// batches that Ferry promises to preserve.
    fn recycle_if_above_threshold(&mut self, memory: u64) {
        let threshold = self.config.recycle_threshold();
        if memory <= threshold.as_u64() {
            return;
        }
        self.live = None;
        self.recycles += 1;
        self.recycling = true;
        if let Some(telemetry) = &self.telemetry {
            telemetry.recycled();
        }
        tracing::debug!(
            transform = %self.name,
            memory = %bytesize::ByteSize::b(memory),
            %threshold,
            "transform instance replaced: its memory passed recycle_memory_above"
        );
    }

    fn live_instance(&mut self) -> Result<&mut Live, TransformError> {
        if self.live.is_none() {
            let live = self.instantiate()?;
            self.live = Some(live);
        }
        Ok(self.live.as_mut().expect("set above"))
    }

    fn instantiate(&mut self) -> Result<Live, TransformError> {
        // Instantiating runs the guest's start code, then its configure.
        let _ticking = self.clock.running();
        self.instantiations += 1;
        let restart = self.instantiations > 1 && !std::mem::take(&mut self.recycling);
        if let (Some(telemetry), true) = (&self.telemetry, restart) {
            telemetry.restarted();
        }
        let state = HostState::new(&self.name, &self.config)?;
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.fence);
        // Start code and configure may take the whole of `timeout`.
        let (records, deadline) = (0, self.config.timeout);
        store.set_epoch_deadline(EpochClock::ticks_for(deadline));
        let bindings =
            self.pre.instantiate(&mut store).map_err(|error| self.stopped_in(&store, error, records, deadline))?;
        let configured = bindings.ferry_transform_transformer().call_configure(&mut store, &self.config.config_json());
        store.data().flush_output();
        match configured {
            Ok(Ok(())) => Ok(Live { store, bindings }),
            Ok(Err(message)) => Err(TransformError::ConfigRejected { transform: self.name.to_string(), message }),
            Err(error) => Err(self.stopped_in(&store, error, records, deadline)),
        }
    }

    /// Turns a trap of the live instance into an error, dropping the
    /// instance so the next call starts a fresh one.
    fn stopped(&mut self, error: wasmtime::Error, records: usize, deadline: Duration) -> TransformError {
        let live = self.live.take().expect("a call was made on the live instance");
        self.stopped_in(&live.store, error, records, deadline)
    }

    fn stopped_in(
        &self,
        store: &Store<HostState>,
        error: wasmtime::Error,
        records: usize,
        deadline: Duration,
    ) -> TransformError {
        let transform = self.name.to_string();
        let stop = classify(&error, store.data().fence.refused());
        if let Some(telemetry) = &self.telemetry {
            telemetry.stopped(match stop {
                Stop::Timeout => "timeout",
                Stop::OutOfMemory => "out_of_memory",
                Stop::Trap => "trap",
            });
        }
        match stop {
            Stop::Timeout => TransformError::Timeout { transform, records, deadline },
            Stop::OutOfMemory => TransformError::OutOfMemory { transform, limit: store.data().fence.limit() },
            Stop::Trap => TransformError::Trap {
                transform,
                message: error.root_cause().to_string(),
                source: error.into_boxed_dyn_error(),
            },
        }
    }
}

/// What a guest's answer to a call on `records` records means: its outcomes
/// if it kept the contract (exactly one per record), else the error naming
/// the transform. Whatever a guest returns, this is where the host first
/// reads it.
pub(crate) fn checked_answer(
    transform: &str,
    records: usize,
    answer: Result<Vec<Outcome>, String>,
) -> Result<Vec<Outcome>, TransformError> {
    match answer {
        Ok(outcomes) if outcomes.len() == records => Ok(outcomes),
        Ok(outcomes) => Err(TransformError::OutcomeCount {
            transform: transform.to_owned(),
            expected: records,
            returned: outcomes.len(),
        }),
        Err(message) => Err(TransformError::BatchRejected { transform: transform.to_owned(), message }),
    }
}
