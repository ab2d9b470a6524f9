//! Pipeline files: read, substitute `${VAR}`s, parse, validate — no network
//! or WebAssembly I/O happens here, so every mistake in a file is reported
//! before anything is started.

mod defaults;
mod problems;
mod substitute;
mod transform;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use problems::{Problem, Problems};
pub use transform::{DirGrant, Grants, TransformConfig};

/// A whole pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Names the pipeline in logs and dead-letter records.
    pub name: String,
    /// The transform chain, run in file order.
    #[serde(default)]
    pub transforms: Vec<TransformConfig>,
}

/// Why a pipeline file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read pipeline file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not valid TOML", path.display())]
    Syntax {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{}: {field}: {message}", path.display())]
    Shape { path: PathBuf, field: String, message: String },
    #[error("{} has problems:\n{problems}", path.display())]
    Invalid { path: PathBuf, problems: Problems },
}

impl PipelineConfig {
    /// Reads and validates the pipeline file at `path`, substituting
    /// variables from the process environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(&text, path, &|name| std::env::var(name).ok())
    }

    /// Parses and validates pipeline text that was read from `path`. Relative
    /// file paths in it are resolved against `path`'s directory.
    pub fn parse(text: &str, path: &Path, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|source| ConfigError::Syntax { path: path.to_owned(), source })?;
        let mut problems = Problems::default();
        substitute::substitute_table(&mut table, lookup, &mut problems);
        if !problems.is_empty() {
            return Err(ConfigError::Invalid { path: path.to_owned(), problems });
        }
        let mut config: Self = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|error| {
            // toml appends "in `table`" lines that repeat what the path says.
            let message = error.inner().to_string().lines().next().unwrap_or_default().to_owned();
            ConfigError::Shape { path: path.to_owned(), field: error.path().to_string(), message }
        })?;
        config.validate(&mut problems);
        if !problems.is_empty() {
            return Err(ConfigError::Invalid { path: path.to_owned(), problems });
        }
        config.resolve_paths(path.parent().unwrap_or(Path::new("")));
        Ok(config)
    }

    fn validate(&self, problems: &mut Problems) {
        if self.name.trim().is_empty() {
            problems.add("name", "must not be empty");
        }
        transform::validate_chain(&self.transforms, problems);
    }

    /// Makes relative file paths relative to the pipeline file's directory.
    fn resolve_paths(&mut self, base: &Path) {
        for transform in &mut self.transforms {
            transform.wasm = base.join(&transform.wasm);
            for dir in &mut transform.grants.dirs {
                dir.host = base.join(&dir.host);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PipelineConfig, ConfigError> {
        PipelineConfig::parse(text, Path::new("pipelines/p.toml"), &|name| (name == "DIR").then(|| "guests".to_owned()))
    }

    #[test]
    fn given_a_chain_then_keeps_file_order_and_resolves_paths() {
        let config = parse(
            "name = 'p'\n[[transforms]]\nname = 'b'\nwasm = '${DIR}/b.wasm'\ntimeout = '250ms'\n\
             [[transforms]]\nname = 'a'\nwasm = '/abs/a.wasm'\nmemory_limit = '16 MiB'",
        )
        .unwrap();
        let names: Vec<&str> = config.transforms.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(config.transforms[0].wasm, Path::new("pipelines/guests/b.wasm"));
        assert_eq!(config.transforms[0].timeout, std::time::Duration::from_millis(250));
        assert_eq!(config.transforms[1].wasm, Path::new("/abs/a.wasm"));
        assert_eq!(config.transforms[1].memory_limit, bytesize::ByteSize::mib(16));
    }

    #[test]
    fn given_an_unknown_field_then_names_its_path() {
        let error = parse("name = 'p'\n[[transforms]]\nname = 'a'\nwasm = 'a.wasm'\ntimeout_ms = 5").unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with("pipelines/p.toml: transforms[0].timeout_ms: unknown field `timeout_ms`"), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn given_a_bad_duration_then_names_the_field() {
        let error = parse("name = 'p'\n[[transforms]]\nname = 'a'\nwasm = 'a.wasm'\ntimeout = 'fast'").unwrap_err();
        assert!(error.to_string().starts_with("pipelines/p.toml: transforms[0].timeout: "), "{error}");
    }

    #[test]
    fn given_invalid_toml_then_names_the_file_and_line() {
        let error = parse("name = \n").unwrap_err();
        assert!(matches!(error, ConfigError::Syntax { .. }));
        let source = std::error::Error::source(&error).unwrap().to_string();
        assert!(source.contains("line 1"), "{source}");
    }

    #[test]
    fn given_several_problems_then_reports_them_all() {
        let error = parse("name = ''\n[[transforms]]\nname = 'a'\nwasm = 'a.wasm'\ntimeout = '0s'").unwrap_err();
        let ConfigError::Invalid { problems, .. } = error else { panic!("expected Invalid, got {error:?}") };
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["name", "transforms[0].timeout"]);
    }
}
