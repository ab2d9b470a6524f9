//! `ferry run` as a library: many pipelines in one process, each in its own
//! task, sharing one WebAssembly engine and compile cache; reloaded on
//! request without loss.
//!
//! A pipeline that cannot start, or stops on a permanent error, stops
//! alone: its error is in its status and the others go on. The run ends
//! when every pipeline has stopped (unless it watches its files, when a
//! fixed file can start a pipeline again) or on shutdown, which drains them
//! all.
//!
//! Reload (SIGHUP, or a change to a watched file) reads and validates every
//! file again. A changed pipeline's new version is loaded and configured
//! first, while the old one runs; only then is the old one drained (its
//! batches in flight finished and committed) and the new one started from
//! the committed position. An invalid new version keeps the old one
//! running. Unchanged pipelines are not touched; new files start; removed
//! files stop gracefully.

mod files;
mod progress;
mod reload;
mod watch;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use files::{FilesError, PipelineFile, Version, load_all, pipeline_files, watched_files};

use crate::config::PipelineConfig;
use crate::error::error_chain;
use crate::pipeline::{Counts, LoadedPipeline, PipelineError};
use crate::telemetry::Telemetry;
use crate::wasm::WasmRuntime;

/// What `ferry run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Pipeline files and folders of them.
    pub paths: Vec<PathBuf>,
    /// Reload when a pipeline file or a component changes.
    pub watch: bool,
    /// How often each pipeline logs a progress line; `None`: never.
    pub progress_every: Option<Duration>,
}

/// What made the runner reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadCause {
    Signal,
    FileChanged,
}

/// How each pipeline ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// By name: `None` when it stopped on request, else its error.
    pub pipelines: BTreeMap<String, Option<String>>,
}

impl RunReport {
    /// Whether every pipeline stopped on request.
    pub fn all_stopped_cleanly(&self) -> bool {
        self.pipelines.values().all(Option::is_none)
    }
}

/// A pipeline the runner knows, running or ended.
struct Entry {
    file: PathBuf,
    version: Version,
    /// Which start of this pipeline the task is; stale end notices are
    /// told apart by it.
    generation: u64,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<Counts, PipelineError>>>,
    /// How it ended, once it has.
    ended: Option<Option<String>>,
}

/// A pipeline task's end, sent by the task itself.
struct Ended {
    name: String,
    generation: u64,
    error: Option<String>,
}

/// Runs the pipelines in `files` until `shutdown` fires (then drains them
/// all) or, unless watching, until every one has stopped. `reloads` asks
/// for a reload.
pub async fn run(
    files: Vec<PipelineFile>,
    options: RunOptions,
    runtime: Arc<WasmRuntime>,
    telemetry: Telemetry,
    shutdown: CancellationToken,
    mut reloads: mpsc::Receiver<ReloadCause>,
) -> RunReport {
    let (ended_sender, mut ended) = mpsc::unbounded_channel();
    let mut runner = Runner { options, runtime, telemetry, pipelines: BTreeMap::new(), ended: ended_sender, next: 0 };
    for file in files {
        runner.start_unloaded(file);
    }
    let (watch_sender, mut file_changes) = mpsc::unbounded_channel();
    let mut watcher = match runner.options.watch {
        true => watch::FileWatcher::new(watch_sender),
        false => None,
    };
    runner.update_watches(watcher.as_mut());
    let mut progress = progress::Progress::new(runner.options.progress_every);
    let mut quiet = watch::Quiet::default();
    loop {
        if !runner.options.watch && runner.pipelines.values().all(|entry| entry.ended.is_some()) {
            break;
        }
        // Every branch can be cut short by another without losing anything:
        // a file change only moves the reload's due time.
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(cause) = reloads.recv() => {
                runner.reload(cause).await;
                runner.update_watches(watcher.as_mut());
            }
            Some(event) = file_changes.recv() => {
                if watcher.as_ref().is_some_and(|watcher| watcher.matters(&event)) {
                    quiet.changed();
                }
            }
            () = quiet.due() => {
                quiet.take();
                runner.reload(ReloadCause::FileChanged).await;
                runner.update_watches(watcher.as_mut());
            }
            Some(notice) = ended.recv() => runner.ended(notice),
            () = progress.tick() => progress.report(&runner.telemetry),
        }
    }
    runner.stop_all().await
}

struct Runner {
    options: RunOptions,
    runtime: Arc<WasmRuntime>,
    telemetry: Telemetry,
    pipelines: BTreeMap<String, Entry>,
    ended: mpsc::UnboundedSender<Ended>,
    next: u64,
}

impl Runner {
    /// Starts a pipeline whose transforms are loaded in its own task, so
    /// one slow or failing pipeline holds up no other.
    fn start_unloaded(&mut self, file: PipelineFile) {
        let (runtime, telemetry) = (self.runtime.clone(), self.telemetry.pipeline(&file.config.name));
        let config = file.config.clone();
        self.spawn(file, move |shutdown| crate::pipeline::run(config, runtime, telemetry, shutdown));
    }

    /// Starts a pipeline whose new version is already loaded.
    fn start_loaded(&mut self, file: PipelineFile, loaded: LoadedPipeline) {
        let telemetry = self.telemetry.pipeline(&file.config.name);
        self.spawn(file, move |shutdown| loaded.run(telemetry, shutdown));
    }

    fn spawn<F, Fut>(&mut self, file: PipelineFile, run: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<Counts, PipelineError>> + Send + 'static,
    {
        let name = file.config.name.clone();
        self.next += 1;
        let (generation, shutdown) = (self.next, CancellationToken::new());
        let ended = self.ended.clone();
        let pipeline = run(shutdown.clone());
        let notice_name = name.clone();
        let task = tokio::spawn(async move {
            let outcome = pipeline.await;
            let error = outcome.as_ref().err().map(|error| error_chain(error));
            let _ = ended.send(Ended { name: notice_name, generation, error });
            outcome
        });
        let version = Version::of(&file.config);
        let entry = Entry { file: file.path, version, generation, shutdown, task: Some(task), ended: None };
        self.pipelines.insert(name, entry);
    }

    fn ended(&mut self, notice: Ended) {
        if let Some(entry) = self.pipelines.get_mut(&notice.name)
            && entry.generation == notice.generation
        {
            entry.ended = Some(notice.error);
            entry.task = None;
        }
    }

    /// Stops a pipeline and waits until its batches in flight are written
    /// and committed.
    async fn drain(entry: &mut Entry) {
        entry.shutdown.cancel();
        if let Some(task) = entry.task.take() {
            let _ = task.await;
        }
    }

    /// Drains every pipeline and says how each ended.
    async fn stop_all(mut self) -> RunReport {
        for entry in self.pipelines.values() {
            entry.shutdown.cancel();
        }
        let mut pipelines = BTreeMap::new();
        for (name, entry) in &mut self.pipelines {
            let outcome = match entry.task.take() {
                Some(task) => match task.await {
                    Ok(Ok(_)) => None,
                    Ok(Err(error)) => Some(error_chain(&error)),
                    Err(error) => Some(format!("the pipeline's task ended abnormally: {error}")),
                },
                None => entry.ended.clone().flatten(),
            };
            pipelines.insert(name.clone(), outcome);
        }
        RunReport { pipelines }
    }

    /// The configurations of the pipelines it knows.
    fn configs(&self) -> Vec<PipelineConfig> {
        self.pipelines.values().map(|entry| entry.version.config().clone()).collect()
    }

    fn update_watches(&self, watcher: Option<&mut watch::FileWatcher>) {
        if let Some(watcher) = watcher {
            watcher.watch(watched_files(&self.options.paths, self.configs().iter()));
        }
    }
}
