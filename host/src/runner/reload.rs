//! Reloading: every file read and validated again, each pipeline compared
//! with what runs, and only the changed ones swapped — each after its new
//! version loaded and configured, so an invalid one never replaces a
//! working one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use super::files::{PipelineFile, Version, pipeline_files};
use super::{ReloadCause, Runner};
use crate::config::PipelineConfig;
use crate::error::error_chain;
use crate::pipeline::LoadedPipeline;
use crate::telemetry::events::{ReloadRefused, ReloadSwapped, ReloadUnchanged};

/// What a reload found in one file.
enum Found {
    Valid(Box<PipelineConfig>),
    /// The file cannot be used now; what it ran before runs on.
    Invalid(String),
}

impl Runner {
    pub(super) async fn reload(&mut self, cause: ReloadCause) {
        tracing::info!(?cause, "reloading the pipeline files");
        let mut files = match pipeline_files(&self.options.paths) {
            Ok(files) => files,
            Err(error) => {
                tracing::error!("reload refused, every pipeline goes on as it was: {}", error_chain(&error));
                return;
            }
        };
        // Files of running pipelines first: if a new file repeats a running
        // pipeline's name, the running one keeps it.
        files.sort_by_key(|path| !self.pipelines.values().any(|entry| &entry.file == path));
        let found = self.read(files);
        // Pipelines whose file is gone, or now holds another name, stop.
        let wanted: Vec<&str> = found
            .iter()
            .filter_map(|(_, found)| match found {
                Found::Valid(config) => Some(config.name.as_str()),
                Found::Invalid(_) => None,
            })
            .collect();
        let kept_files: Vec<&PathBuf> =
            found.iter().filter(|(_, found)| matches!(found, Found::Invalid(_))).map(|(path, _)| path).collect();
        let removed: Vec<String> = self
            .pipelines
            .iter()
            .filter(|(name, entry)| !wanted.contains(&name.as_str()) && !kept_files.contains(&&entry.file))
            .map(|(name, _)| name.clone())
            .collect();
        for name in removed {
            if let Some(mut entry) = self.pipelines.remove(&name) {
                tracing::info!(pipeline = %name, "its file no longer defines it: stopping it");
                Self::drain(&mut entry).await;
                self.telemetry.forget(&name);
            }
        }
        for (path, found) in found {
            match found {
                Found::Valid(config) => self.apply(PipelineFile { path, config: *config }).await,
                Found::Invalid(error) => self.refuse_file(&path, &error),
            }
        }
    }

    /// Reads every file; a name used twice keeps only its first file.
    fn read(&self, files: Vec<PathBuf>) -> Vec<(PathBuf, Found)> {
        let mut names: BTreeMap<String, PathBuf> = BTreeMap::new();
        files
            .into_iter()
            .map(|path| {
                let found = match PipelineConfig::load(&path) {
                    Ok(config) => match names.get(&config.name) {
                        Some(first) => Found::Invalid(format!(
                            "pipeline {:?} is already defined in {}",
                            config.name,
                            first.display()
                        )),
                        None => {
                            names.insert(config.name.clone(), path.clone());
                            Found::Valid(Box::new(config))
                        }
                    },
                    Err(error) => Found::Invalid(error_chain(&error)),
                };
                (path, found)
            })
            .collect()
    }

    /// Starts, swaps or leaves alone the pipeline `file` defines.
    async fn apply(&mut self, file: PipelineFile) {
        let name = file.config.name.clone();
        let version = Version::of(&file.config);
        let telemetry = self.telemetry.pipeline(&name);
        let Some(entry) = self.pipelines.get(&name) else {
            tracing::info!(pipeline = %name, file = %file.path.display(), "new pipeline file: starting it");
            self.start_unloaded(file);
            return;
        };
        if entry.version == version && entry.file == file.path {
            ReloadUnchanged.emit(&telemetry);
            return;
        }
        // Loaded and configured while the running version goes on.
        let loaded = match LoadedPipeline::new(file.config.clone(), self.runtime.clone(), &telemetry).await {
            Ok(loaded) => loaded,
            Err(error) => {
                ReloadRefused { error: &error_chain(&error) }.emit(&telemetry);
                return;
            }
        };
        let mut entry = self.pipelines.remove(&name).expect("looked up above");
        let draining = Instant::now();
        Self::drain(&mut entry).await;
        ReloadSwapped { draining_since: draining, drained_in: draining.elapsed() }.emit(&telemetry);
        self.start_loaded(file, loaded);
    }

    /// A file that cannot be used now: the pipeline it defined runs on.
    fn refuse_file(&self, path: &PathBuf, error: &str) {
        let running = self.pipelines.iter().find(|(_, entry)| &entry.file == path);
        match running {
            Some((name, _)) => ReloadRefused { error }.emit(&self.telemetry.pipeline(name)),
            None => tracing::error!(file = %path.display(), "cannot start the pipeline in this file: {error}"),
        }
    }
}
