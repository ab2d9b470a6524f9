//! Starting a pipeline: its transforms loaded and configured first (so a
//! reload can check a new version while the old one still runs), then its
//! ends built, its probes started and its stages driven.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::driver::drive;
use super::writer::Writer;
use super::{Counts, PipelineError};
use crate::config::{PipelineConfig, Route};
use crate::error::error_chain;
use crate::resume::PositionStore;
use crate::sink::blackhole::BlackholeSink;
use crate::sink::console::ConsoleSink;
use crate::sink::dead_letter::IggyDeadLetters;
use crate::sink::iggy::IggySink;
use crate::sink::mongodb::MongoSink;
use crate::source::mongodb::watch_oplog;
use crate::source::{IggySource, MongoSource, watch_lag};
use crate::telemetry::events::{PipelineStarting, PipelineStopped};
use crate::telemetry::{PipelineTelemetry, TransformInfo};
use crate::wasm::{TransformChain, TransformError, WasmRuntime};

/// A pipeline whose transforms are loaded and configured: ready to run.
pub struct LoadedPipeline {
    config: PipelineConfig,
    /// One chain per transform instance, each started.
    chains: Vec<TransformChain>,
    transforms: Vec<TransformInfo>,
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
        let chains = tokio::task::spawn_blocking(move || -> Result<Vec<TransformChain>, TransformError> {
            let _span = span.enter();
            let mut loaded = Vec::with_capacity(transforms.len());
            for transform in &transforms {
                let mut transform = runtime.load(transform)?;
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
        Ok(Self { config, chains, transforms })
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
            let outcome = self.drive(&telemetry, shutdown).await;
            let error = outcome.as_ref().err().map(|error| error_chain(error));
            PipelineStopped { error: error.as_deref() }.emit(&telemetry);
            outcome
        }
        .instrument(span)
        .await
    }

    async fn drive(self, telemetry: &PipelineTelemetry, shutdown: CancellationToken) -> Result<Counts, PipelineError> {
        let Self { config, chains, .. } = self;
        // Every output says which transform versions made it.
        let lineage = chains[0].lineage();
        let dead_letters = match &config.dead_letter {
            Some(dead_letter) => {
                let connection = dead_letter.connection(&config.iggy_connection());
                Some(IggyDeadLetters::new(connection, &dead_letter.stream, &dead_letter.topic)?)
            }
            None => None,
        };
        let (name, delivery) = (config.name.clone(), config.delivery.clone());
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
            Route::ChangesToIggy { source, sink } => {
                let store = PositionStore::new(sink.connection(), &sink.stream, &sink.topic);
                let source = MongoSource::new(source, &name, store, telemetry).await?;
                tokio::spawn(watch_oplog(source.client(), telemetry.clone(), probes).in_current_span());
                let sink = IggySink::new(sink, lineage, telemetry);
                drive(source, chains, Writer::new(sink, dead_letters, &delivery, telemetry), delivery, shutdown).await
            }
        }
    }
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
