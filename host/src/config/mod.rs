//! Pipeline files: read, substitute `${VAR}`s, parse, validate — no network
//! or WebAssembly I/O happens here, so every mistake in a file is reported
//! before anything is started.

mod change_stream;
mod dead_letter;
mod defaults;
mod delivery;
mod iggy;
mod parallelism;
mod problems;
mod route;
mod sink;
mod source;
mod standby;
mod substitute;
mod syntax;
mod transform;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::is_credential_key;

pub use change_stream::{
    EventFormat, FullDocument, FullDocumentBeforeChange, HistoryLost, MongoSourceConfig, StreamStart,
};
pub use dead_letter::DeadLetterConfig;
pub use delivery::{DeliveryConfig, OnBrokenTransform};
pub use iggy::{CreateTopic, IggyConnection, IggyProtocol, IggyTls};
pub use parallelism::{MAX_TRANSFORM_INSTANCES, TransformInstances};
pub use problems::{Problem, Problems};
pub use route::Route;
pub use sink::{IggySinkConfig, MongoSinkConfig, PartitionBy, SinkConfig, WriteMode, collection_name_problem};
pub use source::{IggySourceConfig, PayloadFormat, SourceConfig, StartPosition};
pub use standby::StandbyConfig;
pub use syntax::SyntaxError;
pub use transform::{DirGrant, Grants, TransformConfig};

/// A whole pipeline file, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    /// Names the pipeline in logs and dead-letter records.
    pub name: String,
    /// The source and the sink, of a pairing Ferry supports.
    pub route: Route,
    /// The transform chain, run in file order.
    pub transforms: Vec<TransformConfig>,
    /// Where records that cannot be processed go. Without it, such a record
    /// stops the pipeline (never a silent skip).
    pub dead_letter: Option<DeadLetterConfig>,
    pub delivery: DeliveryConfig,
}

/// A pipeline file as written, before its source and sink are paired (the
/// runner's `PipelineFile` is a loaded file and where it came from).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AsWritten {
    name: String,
    source: SourceConfig,
    #[serde(default)]
    transforms: Vec<TransformConfig>,
    sink: SinkConfig,
    #[serde(default)]
    dead_letter: Option<DeadLetterConfig>,
    #[serde(default)]
    delivery: DeliveryConfig,
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
        source: SyntaxError,
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
        let mut table =
            syntax::parse_table(text).map_err(|source| ConfigError::Syntax { path: path.to_owned(), source })?;
        let mut problems = Problems::default();
        substitute::substitute_table(&mut table, lookup, &mut problems);
        if !problems.is_empty() {
            return Err(ConfigError::Invalid { path: path.to_owned(), problems });
        }
        let file: AsWritten = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|error| {
            // toml appends "in `table`" lines that repeat what the path says.
            let message = error.inner().to_string().lines().next().unwrap_or_default().to_owned();
            let field = error.path().to_string();
            // serde quotes the value it could not take; not when it is a credential.
            let message = if is_credential_key(&field) {
                "must be a string (the value given is not shown: it is a credential)".to_owned()
            } else {
                message
            };
            ConfigError::Shape { path: path.to_owned(), field, message }
        })?;
        match file.validate(&mut problems) {
            Some(mut config) if problems.is_empty() => {
                config.resolve_paths(path.parent().unwrap_or(Path::new("")));
                Ok(config)
            }
            _ => Err(ConfigError::Invalid { path: path.to_owned(), problems }),
        }
    }

    /// The pipeline's own Iggy connection (its source's or its sink's), which
    /// the dead-letter topic shares unless it names another.
    pub fn iggy_connection(&self) -> IggyConnection {
        self.route.iggy_connection()
    }

    /// The standby settings, when several processes run this pipeline.
    pub fn standby(&self) -> Option<&StandbyConfig> {
        self.route.standby()
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

impl AsWritten {
    /// Every problem of the file, section by section; the pipeline, if its
    /// source and sink pair (it is usable only when no problem was found).
    fn validate(self, problems: &mut Problems) -> Option<PipelineConfig> {
        if self.name.trim().is_empty() {
            problems.add("name", "must not be empty");
        }
        self.source.validate(problems);
        transform::validate_chain(&self.transforms, problems);
        self.sink.validate(problems);
        let route = Route::between(self.source, self.sink).map_err(|why| problems.add("sink", why)).ok();
        if let (Some(dead_letter), Some(route)) = (&self.dead_letter, &route) {
            dead_letter.validate(&route.iggy_connection(), problems);
        }
        self.delivery.validate(problems);
        Some(PipelineConfig {
            name: self.name,
            route: route?,
            transforms: self.transforms,
            dead_letter: self.dead_letter,
            delivery: self.delivery,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid source and sink, for tests about other sections.
    const ENDS: &str = "[source.iggy]\nstream = 's'\ntopic = 't'\nconsumer_group = 'g'\n\
                        [sink.mongodb]\nuri = 'mongodb://localhost'\ndatabase = 'd'\ncollection = 'c'\n";

    fn parse(text: &str) -> Result<PipelineConfig, ConfigError> {
        let text = format!("{text}\n{ENDS}");
        PipelineConfig::parse(&text, Path::new("pipelines/p.toml"), &|name| {
            (name == "DIR").then(|| "guests".to_owned())
        })
    }

    fn parse_whole(text: &str) -> Result<PipelineConfig, ConfigError> {
        PipelineConfig::parse(text, Path::new("pipelines/p.toml"), &|_| None)
    }

    #[test]
    fn given_a_blackhole_or_console_sink_then_it_takes_an_iggy_source_and_no_keys() {
        let iggy = "name = 'p'\n[source.iggy]\nstream = 's'\ntopic = 't'\nconsumer_group = 'g'\n";
        let mongo = "name = 'p'\n[source.mongodb]\nuri = 'mongodb://localhost'\ndatabase = 'd'\n";
        for sink in ["blackhole", "console"] {
            let config = parse_whole(&format!("{iggy}[sink.{sink}]\n")).unwrap();
            assert!(matches!(config.route, Route::IggyToBlackhole { .. } | Route::IggyToConsole { .. }));
            let error = parse_whole(&format!("{mongo}[sink.{sink}]\n")).unwrap_err().to_string();
            assert!(
                error.contains("sink: a change-stream source keeps its position in its Iggy sink's topic"),
                "{error}"
            );
            let error = parse_whole(&format!("{iggy}[sink.{sink}]\nfast = true\n")).unwrap_err().to_string();
            assert!(error.contains("unknown field `fast`"), "{error}");
        }
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
    fn given_an_iggy_protocol_then_it_pins_the_generation_and_the_dead_letters_follow_it() {
        let iggy = |protocol: &str| {
            format!(
                "name = 'p'\n[source.iggy]\nstream = 's'\ntopic = 't'\nconsumer_group = 'g'\n{protocol}\n\
                 [sink.mongodb]\nuri = 'mongodb://localhost'\ndatabase = 'd'\ncollection = 'c'\n\
                 [dead_letter]\nstream = 's'\ntopic = 'dlq'\n"
            )
        };
        let source = |config: PipelineConfig| match config.route {
            Route::IggyToMongo { source, .. } => source,
            other => panic!("{other:?}"),
        };
        assert_eq!(source(parse_whole(&iggy("")).unwrap()).protocol, IggyProtocol::Auto);
        let pinned = parse_whole(&iggy("protocol = '0.9'")).unwrap();
        let letters = pinned.dead_letter.as_ref().unwrap().connection(&pinned.iggy_connection());
        assert_eq!(letters.protocol, IggyProtocol::V0_9, "same server, same generation");
        assert_eq!(source(pinned).protocol, IggyProtocol::V0_9);
        assert_eq!(source(parse_whole(&iggy("protocol = '0.8'")).unwrap()).protocol, IggyProtocol::V0_8);
        let error = parse_whole(&iggy("protocol = '0.10'")).unwrap_err().to_string();
        assert!(error.starts_with("pipelines/p.toml: source.iggy.protocol: unknown variant `0.10`"), "{error}");
        assert!(error.contains("expected one of `auto`, `0.8`, `0.9`"), "{error}");
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

#[cfg(test)]
mod pipeline_tests {
    use super::*;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<PipelineConfig, ConfigError> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        PipelineConfig::parse(text, Path::new("p.toml"), &move |name| {
            env.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone())
        })
    }

    const FULL: &str = r#"
name = "sensors-to-mongo"
[source.iggy]
address = "${IGGY_ADDRESS:-127.0.0.1:8090}"
stream = "sensors"
topic = "readings"
create = { partitions = 3 }
consumer_group = "sensors-to-mongo"
start = "latest"
batch_size = 500
poll_interval = "5ms"
format = "text"
[sink.mongodb]
uri = "${MONGODB_URI:-mongodb://127.0.0.1:27017}"
database = "iot"
collection = "readings"
write = "upsert"
key = ["sensor_id", "ts"]
metadata_field = "_source"
[dead_letter]
stream = "sensors"
topic = "readings-dlq"
[delivery]
max_in_flight = 3
retry_max = "2s"
"#;

    #[test]
    fn given_a_full_file_then_every_key_lands_and_variables_substitute() {
        let config = parse(FULL, &[("MONGODB_URI", "mongodb://db:27017")]).unwrap();
        let Route::IggyToMongo { source, sink } = &config.route else { panic!("Iggy to MongoDB") };
        assert_eq!(source.address, "127.0.0.1:8090");
        assert_eq!((source.username.as_str(), source.password.as_str()), ("iggy", "iggy"));
        assert_eq!(source.start, StartPosition::Latest);
        assert_eq!(source.create, Some(CreateTopic { partitions: 3 }));
        assert_eq!(source.batch_size, 500);
        assert_eq!(source.poll_interval, std::time::Duration::from_millis(5));
        assert_eq!(source.format, PayloadFormat::Text);
        assert_eq!(sink.uri, "mongodb://db:27017");
        assert_eq!(sink.write, WriteMode::Upsert);
        assert_eq!(sink.key, ["sensor_id", "ts"]);
        assert_eq!(sink.metadata_field.as_deref(), Some("_source"));
        let dead_letter = config.dead_letter.as_ref().unwrap();
        assert_eq!(dead_letter.connection(&config.iggy_connection()).address, "127.0.0.1:8090");
        assert_eq!(config.delivery.max_in_flight, Some(3));
        assert_eq!(config.delivery.retry_initial, std::time::Duration::from_millis(100));
    }

    #[test]
    fn given_bad_values_everywhere_then_reports_each_path() {
        let text = FULL
            .replace("${IGGY_ADDRESS:-127.0.0.1:8090}", "nowhere")
            .replace("batch_size = 500", "batch_size = 0")
            .replace("${MONGODB_URI:-mongodb://127.0.0.1:27017}", "postgres://x")
            .replace("key = [\"sensor_id\", \"ts\"]", "key = []")
            .replace("topic = \"readings-dlq\"", "topic = \"\"")
            .replace("max_in_flight = 3", "max_in_flight = 0");
        let Err(ConfigError::Invalid { problems, .. }) = parse(&text, &[]) else { panic!("expected problems") };
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "source.iggy.address",
                "source.iggy.batch_size",
                "sink.mongodb.uri",
                "sink.mongodb.key",
                "dead_letter.topic",
                "delivery.max_in_flight"
            ]
        );
    }

    #[test]
    fn given_an_unknown_source_kind_then_says_which_exist() {
        let text = FULL.replace("[source.iggy]", "[source.kafka]");
        let error = parse(&text, &[]).unwrap_err().to_string();
        assert!(error.contains("source: unknown variant `kafka`, expected `iggy` or `mongodb`"), "{error}");
    }

    #[test]
    fn given_a_missing_sink_then_names_it() {
        let text = FULL.split("[sink.mongodb]").next().unwrap();
        let error = parse(text, &[]).unwrap_err().to_string();
        assert!(error.contains("missing field `sink`"), "{error}");
    }
}
