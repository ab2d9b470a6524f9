//! `[source.mongodb]`: a MongoDB change stream.

use std::time::Duration;

use serde::Deserialize;

use super::defaults;
use super::problems::Problems;
use super::sink::collection_name_problem;
use super::standby::StandbyConfig;

/// Read a change stream of a collection, a database or the deployment.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongoSourceConfig {
    /// A MongoDB connection string (change streams need a replica set).
    pub uri: String,
    /// Omit to watch the whole deployment.
    #[serde(default)]
    pub database: Option<String>,
    /// Omit to watch the whole database.
    #[serde(default)]
    pub collection: Option<String>,
    /// Extra aggregation stages, written as a JSON (Extended JSON) array,
    /// e.g. `[{"$match": {"operationType": "insert"}}]`.
    #[serde(default, rename = "pipeline")]
    pub stages: Stages,
    #[serde(default)]
    pub full_document: FullDocument,
    #[serde(default)]
    pub full_document_before_change: FullDocumentBeforeChange,
    /// `now`, `copy-existing`, or `timestamp:<RFC 3339 time>`.
    #[serde(default)]
    pub start: StreamStart,
    /// What to do when the stored position is no longer in the oplog.
    #[serde(default)]
    pub on_history_lost: HistoryLost,
    /// Events per batch (and per transform call).
    #[serde(default = "defaults::batch_size")]
    pub batch_size: u32,
    /// How long the server waits for new events before answering empty.
    #[serde(default = "defaults::max_await", with = "humantime_serde")]
    pub max_await: Duration,
    /// How event payloads reach transforms: relaxed Extended JSON or BSON.
    #[serde(default)]
    pub format: EventFormat,
    /// Several processes run this pipeline, one at a time (see
    /// `crate::standby`); absent: this process alone runs it.
    #[serde(default)]
    pub standby: Option<StandbyConfig>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FullDocument {
    /// Inserts and replaces carry the document; updates only their delta.
    #[default]
    Default,
    /// Updates carry the document's current version too.
    UpdateLookup,
    /// The post-image when the collection records one.
    WhenAvailable,
    /// The post-image, or an error if the collection records none.
    Required,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FullDocumentBeforeChange {
    #[default]
    Off,
    WhenAvailable,
    Required,
}

/// The policy when the stored resume point has fallen off the oplog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HistoryLost {
    /// Stop with an error that says what happened and how to recover.
    #[default]
    Fail,
    /// Skip the lost changes (logged loudly) and stream from now.
    RestartFromNow,
    /// Copy the current documents again, then stream: the topic converges to
    /// the collection's state.
    CopyExisting,
}

/// How change events reach transforms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventFormat {
    /// Relaxed Extended JSON with every Int64 canonical
    /// (`{"$numberLong": "7"}`), so every BSON type reads back as itself.
    #[default]
    Json,
    /// Relaxed Extended JSON exactly: an Int64 is a bare number, so one that
    /// fits 32 bits reads back as an Int32. For transforms that read plain
    /// numbers.
    RelaxedJson,
    /// The event's BSON bytes.
    Bson,
}

impl EventFormat {
    /// The JSON dialect, unless events are BSON.
    pub fn dialect(self) -> Option<crate::encoding::relaxed_json::Dialect> {
        use crate::encoding::relaxed_json::Dialect;
        match self {
            Self::Json => Some(Dialect::TypePreserving),
            Self::RelaxedJson => Some(Dialect::Relaxed),
            Self::Bson => None,
        }
    }
}

/// Where a change stream with no stored position starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum StreamStart {
    #[default]
    Now,
    CopyExisting,
    /// Seconds since the Unix epoch.
    Timestamp(u32),
}

impl TryFrom<String> for StreamStart {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        match text.as_str() {
            "now" => Ok(Self::Now),
            "copy-existing" => Ok(Self::CopyExisting),
            other => {
                let time = other
                    .strip_prefix("timestamp:")
                    .ok_or_else(|| format!("{other:?} is not now, copy-existing or timestamp:<RFC 3339 time>"))?;
                let time = humantime::parse_rfc3339_weak(time)
                    .map_err(|error| format!("{time:?} is not an RFC 3339 time: {error}"))?;
                let seconds = time.duration_since(std::time::UNIX_EPOCH).map_err(|_| "the time is before 1970")?;
                u32::try_from(seconds.as_secs()).map(Self::Timestamp).map_err(|_| "the time is after 2106".into())
            }
        }
    }
}

/// Aggregation stages added after `$changeStream`, read from their Extended
/// JSON text when the file is.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub struct Stages(Vec<bson::Document>);

impl Stages {
    pub fn documents(&self) -> &[bson::Document] {
        &self.0
    }
}

impl TryFrom<String> for Stages {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|error| format!("is not JSON: {error}"))?;
        let serde_json::Value::Array(stages) = value else { return Err("must be a JSON array of stages".into()) };
        let stages = stages
            .into_iter()
            .enumerate()
            .map(|(index, stage)| match stage {
                serde_json::Value::Object(stage) => {
                    bson::Document::try_from(stage).map_err(|error| format!("stage {index}: {error}"))
                }
                _ => Err(format!("stage {index} is not an object")),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self(stages))
    }
}

impl MongoSourceConfig {
    /// The collection a copy of existing documents reads, when the source
    /// names one.
    pub fn copied_collection(&self) -> Option<(&str, &str)> {
        Some((self.database.as_deref()?, self.collection.as_deref()?))
    }

    pub(crate) fn validate(&self, problems: &mut Problems) {
        if !(self.uri.starts_with("mongodb://") || self.uri.starts_with("mongodb+srv://")) {
            problems.add("source.mongodb.uri", "must start with mongodb:// or mongodb+srv://");
        }
        if self.collection.is_some() && self.database.is_none() {
            problems.add("source.mongodb.collection", "needs `database` too");
        }
        if let Some(reason) = self.collection.as_deref().and_then(collection_name_problem) {
            problems.add("source.mongodb.collection", reason);
        }
        if self.start == StreamStart::CopyExisting && self.collection.is_none() {
            problems.add("source.mongodb.start", "copy-existing needs a `collection` to copy");
        }
        if self.on_history_lost == HistoryLost::CopyExisting && self.collection.is_none() {
            problems.add("source.mongodb.on_history_lost", "copy-existing needs a `collection` to copy");
        }
        if self.batch_size == 0 || self.batch_size > 100_000 {
            problems.add("source.mongodb.batch_size", "must be between 1 and 100000");
        }
        if self.max_await.is_zero() || self.max_await > Duration::from_secs(60) {
            problems.add("source.mongodb.max_await", "must be above 0 and at most 60s");
        }
        if let Some(standby) = &self.standby {
            standby.validate(problems);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> MongoSourceConfig {
        toml::from_str(&format!("uri = 'mongodb://localhost'\n{toml}")).unwrap()
    }

    fn problems(config: &MongoSourceConfig) -> Vec<String> {
        let mut problems = Problems::default();
        config.validate(&mut problems);
        problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn given_each_start_then_parses_it() {
        assert_eq!(config("").start, StreamStart::Now);
        assert_eq!(config("start = 'copy-existing'").start, StreamStart::CopyExisting);
        assert_eq!(config("start = 'timestamp:2026-11-26T03:00:00Z'").start, StreamStart::Timestamp(1_795_662_000));
        let error = toml::from_str::<MongoSourceConfig>("uri = 'mongodb://x'\nstart = 'yesterday'").unwrap_err();
        assert!(error.to_string().contains("\"yesterday\" is not now, copy-existing or timestamp:"), "{error}");
    }

    #[test]
    fn given_a_pipeline_then_stages_are_extended_json() {
        let config = config(r#"pipeline = '[{"$match": {"operationType": {"$in": ["insert"]}}}]'"#);
        assert_eq!(config.stages.documents(), [bson::doc! { "$match": { "operationType": { "$in": ["insert"] } } }]);
        for (text, why) in [("{}", "must be a JSON array of stages"), ("[1]", "stage 0 is not an object")] {
            let error = toml::from_str::<MongoSourceConfig>(&format!("uri = 'mongodb://x'\npipeline = '{text}'"));
            assert!(error.unwrap_err().to_string().contains(why), "{text}");
        }
    }

    #[test]
    fn given_inconsistent_settings_then_names_each_field() {
        let config = config("collection = 'c'\nstart = 'copy-existing'\nbatch_size = 0");
        let paths: Vec<String> = problems(&config).iter().map(|p| p.split(':').next().unwrap().to_owned()).collect();
        assert_eq!(paths, ["source.mongodb.collection", "source.mongodb.batch_size"]);
    }
}
