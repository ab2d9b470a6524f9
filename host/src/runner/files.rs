//! Which pipeline files `ferry run` (and `validate`) was given: files as
//! named, folders as the `*.toml` files in them; and what each one holds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::{ConfigError, PipelineConfig};

/// Why the set of pipeline files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("cannot read the folder {}", path.display())]
    Folder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} does not exist", path.display())]
    Missing { path: PathBuf },
    #[error("no pipeline files found (name files, or folders holding *.toml files)")]
    Empty,
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("pipeline {name:?} is defined twice: in {} and in {}", first.display(), second.display())]
    DuplicateName { name: String, first: PathBuf, second: PathBuf },
}

/// The pipeline files `paths` name, in a stable order: each file as given,
/// each folder's `*.toml` files sorted by name.
pub fn pipeline_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, FilesError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries =
                std::fs::read_dir(path).map_err(|source| FilesError::Folder { path: path.clone(), source })?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|file| file.extension().is_some_and(|extension| extension == "toml") && file.is_file())
                .collect();
            found.sort();
            files.extend(found);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            return Err(FilesError::Missing { path: path.clone() });
        }
    }
    Ok(files)
}

/// A pipeline file, read and validated.
#[derive(Debug, Clone)]
pub struct PipelineFile {
    pub path: PathBuf,
    pub config: PipelineConfig,
}

/// Loads every file, failing on the first invalid one or on a pipeline
/// name used twice: what `ferry run` and `ferry validate` check before
/// anything starts.
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<PipelineFile>, FilesError> {
    let files = pipeline_files(paths)?;
    let mut loaded: Vec<PipelineFile> = Vec::with_capacity(files.len());
    for path in files {
        let config = PipelineConfig::load(&path)?;
        if let Some(first) = loaded.iter().find(|file| file.config.name == config.name) {
            return Err(FilesError::DuplicateName { name: config.name, first: first.path.clone(), second: path });
        }
        loaded.push(PipelineFile { path, config });
    }
    Ok(loaded)
}

/// What makes two versions of a pipeline the same: its configuration and
/// the bytes of every component it loads.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    config: PipelineConfig,
    /// Per transform, the SHA-256 of its component (`None`: unreadable).
    components: Vec<Option<String>>,
}

impl Version {
    /// The version `config` describes, reading its components now.
    pub fn of(config: &PipelineConfig) -> Self {
        let components = config
            .transforms
            .iter()
            .map(|transform| std::fs::read(&transform.wasm).ok().map(|bytes| hex::encode(Sha256::digest(bytes))))
            .collect();
        Self { config: config.clone(), components }
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }
}

/// The files a set of pipelines depends on, by folder: what `--watch`
/// watches.
pub fn watched_files<'a>(
    paths: &[PathBuf],
    configs: impl IntoIterator<Item = &'a PipelineConfig>,
) -> BTreeMap<PathBuf, Vec<PathBuf>> {
    fn add(folders: &mut BTreeMap<PathBuf, Vec<PathBuf>>, file: &Path) {
        let folder = file.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
        folders.entry(folder.to_owned()).or_default().push(file.to_owned());
    }
    let mut folders: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for path in paths {
        if path.is_dir() {
            // Every *.toml in it counts, including files not there yet.
            folders.entry(path.clone()).or_default();
        } else {
            add(&mut folders, path);
        }
    }
    for config in configs {
        for transform in &config.transforms {
            add(&mut folders, &transform.wasm);
        }
    }
    folders
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENDS: &str = "[source.iggy]\nstream = 's'\ntopic = 't'\nconsumer_group = 'g'\n\
                        [sink.mongodb]\nuri = 'mongodb://localhost'\ndatabase = 'd'\ncollection = 'c'\n";

    fn write(dir: &Path, file: &str, name: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, format!("name = '{name}'\n{ENDS}")).unwrap();
        path
    }

    #[test]
    fn given_a_folder_and_a_file_then_the_folders_toml_files_come_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let (b, a) = (write(dir.path(), "b.toml", "b"), write(dir.path(), "a.toml", "a"));
        std::fs::write(dir.path().join("notes.txt"), "not a pipeline").unwrap();
        let other = tempfile::tempdir().unwrap();
        let c = write(other.path(), "c.conf", "c");
        let files = pipeline_files(&[dir.path().to_owned(), c.clone()]).unwrap();
        assert_eq!(files, [a, b, c]);
    }

    #[test]
    fn given_one_name_in_two_files_then_both_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let first = write(dir.path(), "a.toml", "same");
        let second = write(dir.path(), "b.toml", "same");
        let error = load_all(&[dir.path().to_owned()]).unwrap_err();
        assert!(
            matches!(&error, FilesError::DuplicateName { name, first: f, second: s } if name == "same" && *f == first && *s == second),
            "{error}"
        );
    }

    #[test]
    fn given_a_missing_path_then_it_is_named() {
        let error = pipeline_files(&[PathBuf::from("/no/such/pipeline.toml")]).unwrap_err();
        assert_eq!(error.to_string(), "/no/such/pipeline.toml does not exist");
    }

    #[test]
    fn given_a_changed_component_then_the_version_differs() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("t.wasm");
        std::fs::write(&wasm, b"one").unwrap();
        let text = format!("name = 'p'\n[[transforms]]\nname = 't'\nwasm = 't.wasm'\n{ENDS}");
        let config = PipelineConfig::parse(&text, &dir.path().join("p.toml"), &|_| None).unwrap();
        let before = Version::of(&config);
        assert_eq!(before, Version::of(&config));
        std::fs::write(&wasm, b"two").unwrap();
        assert_ne!(before, Version::of(&config));
    }
}
