//! One loaded transform: compiled once, instantiated lazily, reused across
//! batches, re-created after a trap (a trapped instance cannot be entered
//! again), and replaced between batches once its memory passes the recycle
//! threshold (some guest runtimes never free what they allocate).

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::Store;

use super::cache::CacheOutcome;
use super::call_cost::CallCost;
use super::epoch_clock::EpochClock;
use super::error::TransformError;
use super::host_state::HostState;
use super::limits::{Stop, classify};
use crate::config::TransformConfig;
use crate::contract as bindings;
use crate::record::{Batch, Outcome, Record};
use crate::telemetry::TransformTelemetry;

/// A transform ready to process batches.
pub struct Transform {
    name: Arc<str>,
    config: TransformConfig,
    pre: bindings::TransformPre<HostState>,
    /// Held so that deadlines keep firing while this transform lives.
    clock: Arc<EpochClock>,
    /// What recent successful calls cost: what deadlines are set by.
    cost: CallCost,
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
            cost: CallCost::default(),
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

    /// Another instance of this transform, for running batches beside it:
    /// the same compiled component and settings, its own memory, deadlines
    /// and recycling, reporting as instance `instance`. Not yet started.
    pub fn another_instance(&self, instance: usize) -> Self {
        let mut another = Self::new(
            self.config.clone(),
            self.pre.clone(),
            self.clock.clone(),
            self.cache_outcome,
            self.sha256.clone(),
        );
        another.telemetry = self.telemetry.as_ref().map(|telemetry| telemetry.for_instance(instance));
        another
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
    /// one; for more, twenty times what they recently cost, at least
    /// `record_timeout` and at most `timeout` (see [`CallCost`]).
    pub fn deadline(&self, records: usize) -> Duration {
        self.cost.deadline(records, self.config.single_record_deadline(), self.config.timeout)
    }

    /// Runs one batch, returning exactly one outcome per record.
    pub fn transform(&mut self, batch: &Batch) -> Result<Vec<Outcome>, TransformError> {
        match batch.records.split_first() {
            Some((first, rest)) if !rest.is_empty() && !self.cost.is_known() => {
                self.transform_first_alone(batch, first, rest)
            }
            _ => self.call(batch),
        }
    }

    /// While no call has succeeded there is nothing to judge a batch's
    /// running time by but all of `timeout`, and a hanging record in the
    /// first batches would cost that much: every batch, if each holds one,
    /// since a call that is cut short teaches nothing. So the first record
    /// runs alone (with `record_timeout`, as any record alone), and what it
    /// took sets the deadline of the rest.
    fn transform_first_alone(
        &mut self,
        batch: &Batch,
        first: &Record,
        rest: &[Record],
    ) -> Result<Vec<Outcome>, TransformError> {
        let part = |records: &[Record]| Batch { source: batch.source.clone(), records: records.to_vec() };
        let mut outcomes = self.call(&part(std::slice::from_ref(first)))?;
        outcomes.extend(self.call(&part(rest))?);
        Ok(outcomes)
    }

    /// Calls the guest on `batch` under the deadline its size earns.
    fn call(&mut self, batch: &Batch) -> Result<Vec<Outcome>, TransformError> {
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
        self.cost.learn(elapsed, records);
        self.recycle_if_above_threshold(memory);
        Ok(outcomes)
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
            Ok(Ok(())) => {
                // Every instance is in the status from its start, before
                // its first call.
                if let Some(telemetry) = &self.telemetry {
                    telemetry.memory(store.data().fence.size());
                }
                Ok(Live { store, bindings })
            }
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
