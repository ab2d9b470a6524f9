//! `ferry run --watch`: a change to a pipeline file, a file in a watched
//! folder, or a component a pipeline loads asks for a reload.
//!
//! Folders are watched rather than files: editors and build tools replace
//! a file by renaming a new one over it, which a watch on the old file
//! would miss. Changes come in bursts (a build writes a component in
//! several steps), so a reload waits until the files have been quiet for a
//! moment ([`Quiet`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// How long the files must stay quiet before a reload.
const QUIET: Duration = Duration::from_millis(300);

/// The watcher, and what it watches: per folder, the files that matter
/// (none listed: every `*.toml`).
pub struct FileWatcher {
    watcher: RecommendedWatcher,
    folders: BTreeMap<PathBuf, Vec<PathBuf>>,
}

impl FileWatcher {
    /// A watcher sending every file event to `events`; `None` (after saying
    /// why) when the system gives none.
    pub fn new(events: mpsc::UnboundedSender<notify::Event>) -> Option<Self> {
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                let _ = events.send(event);
            }
        });
        match watcher {
            Ok(watcher) => Some(Self { watcher, folders: BTreeMap::new() }),
            Err(error) => {
                tracing::error!(%error, "cannot watch files; reload with SIGHUP instead");
                None
            }
        }
    }

    /// Watches exactly `folders` from now on.
    pub fn watch(&mut self, folders: BTreeMap<PathBuf, Vec<PathBuf>>) {
        if folders.keys().ne(self.folders.keys()) {
            let names: Vec<String> = folders.keys().map(|folder| folder.display().to_string()).collect();
            tracing::info!(folders = ?names, "watching for changes");
        }
        for old in self.folders.keys().filter(|folder| !folders.contains_key(*folder)) {
            let _ = self.watcher.unwatch(old);
        }
        for folder in folders.keys().filter(|folder| !self.folders.contains_key(*folder)) {
            if let Err(error) = self.watcher.watch(folder, RecursiveMode::NonRecursive) {
                tracing::warn!(folder = %folder.display(), %error, "cannot watch this folder for changes");
            }
        }
        self.folders = folders;
    }

    /// Whether `event` touches a file that matters.
    pub fn matters(&self, event: &notify::Event) -> bool {
        if event.kind.is_access() {
            return false;
        }
        event.paths.iter().any(|path| {
            let Some(folder) = path.parent() else { return false };
            self.folders.iter().any(|(watched, files)| {
                same_folder(watched, folder)
                    && match files.is_empty() {
                        true => path.extension().is_some_and(|extension| extension == "toml"),
                        false => files.iter().any(|file| file.file_name() == path.file_name()),
                    }
            })
        })
    }
}

/// Whether two paths name one folder (the watcher reports absolute paths).
fn same_folder(watched: &std::path::Path, reported: &std::path::Path) -> bool {
    watched == reported || std::fs::canonicalize(watched).is_ok_and(|watched| watched == reported)
}

/// A reload waiting for the files to go quiet: each change that matters
/// moves it [`QUIET`] later.
#[derive(Debug, Default)]
pub struct Quiet {
    due: Option<tokio::time::Instant>,
}

impl Quiet {
    /// A change came: the reload is due once none has come for a moment.
    pub fn changed(&mut self) {
        self.due = Some(tokio::time::Instant::now() + QUIET);
    }

    /// Resolves when the reload is due (never, with none waiting). Safe to
    /// drop and call again: the due time stays until `take`.
    pub async fn due(&self) {
        match self.due {
            Some(due) => tokio::time::sleep_until(due).await,
            None => std::future::pending().await,
        }
    }

    /// The reload is being made.
    pub fn take(&mut self) {
        self.due = None;
    }
}
