//! Starting a pipeline: its transforms loaded and configured first (so a
//! reload can check a new version while the old one still runs), then its
//! ends built, its probes started and its stages driven.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::driver::drive;
use super::writer::Writer;
use super::{Counts, PipelineError};
use crate::config::IggyConnection;
use crate::config::{PipelineConfig, Route};
use crate::error::ServiceError;
use crate::error::{error_chain, with_timeout};
use crate::resume::PositionStore;
use crate::sink::Sink;
use crate::sink::blackhole::BlackholeSink;
use crate::sink::console::ConsoleSink;
use crate::sink::dead_letter::IggyDeadLetters;
use crate::sink::iggy::IggySink;
use crate::sink::mongodb::MongoSink;
use crate::source::mongodb::watch_oplog;
use crate::source::{IggySource, MongoSource, Source, watch_lag};
use crate::standby::{Fence, FencedRelay, fenced_connection};
use crate::telemetry::events::{PipelineStarting, PipelineStopped};
use crate::telemetry::{PipelineTelemetry, TransformInfo};
use crate::wasm::{TransformChain, TransformError, WasmRuntime};

/// A pipeline whose transforms are loaded and configured: ready to run.
pub struct LoadedPipeline {
    pub(super) config: PipelineConfig,
    /// One chain per transform instance, each started.
    chains: Vec<TransformChain>,
    transforms: Vec<TransformInfo>,
    /// What loaded them, to load them again (a standby that stood down).
    pub(super) runtime: Arc<WasmRuntime>,
}

/// The two ends of a change-stream pipeline, built before it runs: a
/// standby builds them and keeps their connections open, so taking over
/// costs no start-up.
pub struct ChangeEnds {
    source: MongoSource,
    sink: IggySink,
    /// What the dead-letter topic is fenced by, too.
    fence: Option<Fence>,
    /// The relays the fenced Iggy traffic goes through, kept while it runs.
    relays: Vec<FencedRelay>,
}

impl ChangeEnds {
    /// Reaches both ends; a failure is only logged (running connects again,
    /// with retries).
    pub async fn reach(&mut self, limit: std::time::Duration) {
        let reached = async {
            with_timeout(limit, "reaching the change stream source", self.source.connect()).await?;
            with_timeout(limit, "reaching the Iggy topic", self.sink.connect()).await
        };
        if let Err(error) = reached.await {
            tracing::warn!("standing by without a connection yet: {}", error_chain(&error));
        }
    }

    /// Called on taking over: what the topic holds is read afresh before the
    /// first write, since another process produced until now.
    pub fn before_takeover(&mut self) {
        self.sink.forget_holds();
    }
}

impl LoadedPipeline {
    /// Loads the pipeline's transforms, configures them (a rejected
    /// configuration is an error here, before anything connects), and
    /// hands each its telemetry.
    pub async fn new(
        config: PipelineConfig,
        runtime: Arc<WasmRuntime>,
        telemetry: &PipelineTelemetry,
    ) -> Result<Self, PipelineError> {
        let transforms = config.transforms.clone();
        // A chain with no transforms does no work worth sharing out.
        let instances = match transforms.is_empty() {
            true => 1,
            false => config.delivery.transform_instances.resolve(),
        };
        let telemetry = telemetry.clone();
        let span = pipeline_span(&config.name);
        // Configuring a transform runs guest code, which must not block an
        // async worker thread.
        let loader = runtime.clone();
        let chains = tokio::task::spawn_blocking(move || -> Result<Vec<TransformChain>, TransformError> {
            let _span = span.enter();
            let mut loaded = Vec::with_capacity(transforms.len());
            for transform in &transforms {
                let mut transform = loader.load(transform)?;
                transform.observe(telemetry.transform(transform.name()));
                loaded.push(transform);
            }
            let first = TransformChain::new(loaded);
            let mut chains: Vec<TransformChain> =
                (1..instances).map(|instance| first.another_instance(instance)).collect();
            chains.insert(0, first);
            // Every instance configured before any data flows, so a reload
            // swaps in all of them or none.
            chains.iter_mut().try_for_each(TransformChain::start)?;
            Ok(chains)
        })
        .await
        .map_err(|_| PipelineError::StageLost)??;
        let transforms = chains[0]
            .transforms()
            .iter()
            .map(|transform| TransformInfo { name: transform.name().to_owned(), sha256: transform.sha256().to_owned() })
            .collect();
        Ok(Self { config, chains, transforms, runtime })
    }

    /// The transforms loaded, with their content hashes.
    pub fn transforms(&self) -> &[TransformInfo] {
        &self.transforms
    }

    /// Runs the pipeline until `shutdown` fires (then it finishes the batches
    /// in flight, commits them and returns) or a failure that waiting cannot
    /// fix; either way the telemetry says how it ended.
    pub async fn run(self, telemetry: PipelineTelemetry, shutdown: CancellationToken) -> Result<Counts, PipelineError> {
        let span = pipeline_span(&self.config.name);
        async move {
            PipelineStarting { transforms: &self.transforms }.emit(&telemetry);
            let outcome = match (self.config.route.change_stream_uri(), self.config.standby().cloned()) {
                (Some(uri), Some(standby)) => super::leadership::run(self, &uri, standby, &telemetry, shutdown).await,
                _ => self.drive(&telemetry, shutdown, None).await,
            };
            let error = outcome.as_ref().err().map(|error| error_chain(error));
            PipelineStopped { error: error.as_deref() }.emit(&telemetry);
            outcome
        }
        .instrument(span)
        .await
    }

    /// The ends of a change-stream pipeline, reading with `client` (made
    /// for its source's URI) and, with `fence`, writing only while it proves
    /// the lease held; `None` for any other route.
    pub(super) fn change_ends(
        &self,
        client: crate::mongo_client::Client,
        fence: Option<Fence>,
        telemetry: &PipelineTelemetry,
    ) -> Result<Option<ChangeEnds>, PipelineError> {
        let Route::ChangesToIggy { source, sink } = &self.config.route else { return Ok(None) };
        let mut sink = sink.clone();
        let mut relays = Vec::new();
        if let Some(fence) = &fence {
            let (connection, relay) = fenced(&sink.connection(), fence)?;
            (sink.address, sink.tls) = (connection.address, connection.tls);
            relays.push(relay);
        }
        let mut store = PositionStore::new(sink.connection(), &sink.stream, &sink.topic);
        let mut iggy = IggySink::new(sink.clone(), self.chains[0].lineage(), telemetry);
        if let Some(fence) = &fence {
            store = store.fenced(fence.clone());
            iggy = iggy.fenced(fence.clone());
        }
        let source = MongoSource::new(source.clone(), &self.config.name, store, client, telemetry);
        Ok(Some(ChangeEnds { source, sink: iggy, fence, relays }))
    }

    /// Runs the stages; a change-stream pipeline uses `ends` when given
    /// (built by [`Self::change_ends`]).
    pub(super) async fn drive(
        self,
        telemetry: &PipelineTelemetry,
        shutdown: CancellationToken,
        ends: Option<ChangeEnds>,
    ) -> Result<Counts, PipelineError> {
        let mut ends = match (ends, self.config.route.change_stream_uri()) {
            (Some(ends), _) => Some(ends),
            (None, Some(uri)) => {
                let client = crate::mongo_client::client(&uri).await?;
                self.change_ends(client, None, telemetry)?
            }
            (None, None) => None,
        };
        let Self { config, chains, .. } = self;
        // Every output says which transform versions made it.
        let lineage = chains[0].lineage();
        let dead_letters = match &config.dead_letter {
            Some(dead_letter) => {
                let mut connection = dead_letter.connection(&config.iggy_connection());
                let fence = ends.as_ref().and_then(|ends| ends.fence.clone());
                if let (Some(fence), Some(ends)) = (&fence, &mut ends) {
                    let relay;
                    (connection, relay) = fenced(&connection, fence)?;
                    ends.relays.push(relay);
                }
                Some(IggyDeadLetters::new(connection, &dead_letter.stream, &dead_letter.topic)?.fenced(fence))
            }
            None => None,
        };
        let delivery = config.delivery.clone();
        // Probes read how far behind the pipeline is, beside the data path;
        // they stop with it.
        let probes = shutdown.child_token();
        let _stop_probes = probes.clone().drop_guard();
        match config.route {
            Route::IggyToMongo { source, sink } => {
                tokio::spawn(watch_lag(source.clone(), telemetry.clone(), probes).in_current_span());
                let source = IggySource::new(source, telemetry)?;
                let sink = MongoSink::new(sink, telemetry, lineage).await?;
                drive(source, chains, Writer::new(sink, dead_letters, &delivery, telemetry), delivery, shutdown).await
            }
            Route::IggyToBlackhole { source } => {
                tokio::spawn(watch_lag(source.clone(), telemetry.clone(), probes).in_current_span());
                let source = IggySource::new(source, telemetry)?;
                let writer = Writer::new(BlackholeSink, dead_letters, &delivery, telemetry);
                drive(source, chains, writer, delivery, shutdown).await
            }
            Route::IggyToConsole { source } => {
                tokio::spawn(watch_lag(source.clone(), telemetry.clone(), probes).in_current_span());
                let source = IggySource::new(source, telemetry)?;
                let writer = Writer::new(ConsoleSink::stdout(), dead_letters, &delivery, telemetry);
                drive(source, chains, writer, delivery, shutdown).await
            }
            Route::ChangesToIggy { .. } => {
                let ChangeEnds { source, sink, relays, .. } = ends.expect("built above for this route");
                // The relays carry the fenced traffic until the stages end.
                let _relays = relays;
                tokio::spawn(watch_oplog(source.client(), telemetry.clone(), probes).in_current_span());
                drive(source, chains, Writer::new(sink, dead_letters, &delivery, telemetry), delivery, shutdown).await
            }
        }
    }
}

/// `connection` through a new fenced relay (see `crate::standby`).
fn fenced(connection: &IggyConnection, fence: &Fence) -> Result<(IggyConnection, FencedRelay), ServiceError> {
    fenced_connection(connection, fence)
        .map_err(|error| ServiceError::fatal("starting the fenced relay to Iggy", error))
}

/// Loads, configures and runs the pipeline `config` describes (see
/// [`LoadedPipeline::run`]).
pub async fn run(
    config: PipelineConfig,
    runtime: Arc<WasmRuntime>,
    telemetry: PipelineTelemetry,
    shutdown: CancellationToken,
) -> Result<Counts, PipelineError> {
    let span = pipeline_span(&config.name);
    match LoadedPipeline::new(config, runtime, &telemetry).await {
        Ok(prepared) => prepared.run(telemetry, shutdown).await,
        Err(error) => {
            span.in_scope(|| PipelineStopped { error: Some(&error_chain(&error)) }.emit(&telemetry));
            Err(error)
        }
    }
}

/// The span every log line of a pipeline is written in: it names the
/// pipeline, in text and JSON logs alike.
fn pipeline_span(name: &str) -> tracing::Span {
    tracing::info_span!("pipeline", pipeline = %name)
}
