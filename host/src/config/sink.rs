//! `[sink.*]`: where a pipeline writes.

use serde::Deserialize;

use super::defaults;
use super::iggy::{CreateTopic, IggyConnection, IggyProtocol, IggyTls, validate_name};
use super::problems::Problems;

/// The most MongoDB write commands one pipeline may have in flight.
pub const MAX_CONCURRENT_WRITES: usize = 64;

/// The one sink of a pipeline, named by its table: `[sink.mongodb]`,
/// `[sink.iggy]`, `[sink.blackhole]` or `[sink.console]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkConfig {
    Mongodb(MongoSinkConfig),
    Iggy(IggySinkConfig),
    /// Writes nothing and acknowledges everything: Ferry's own ceiling.
    Blackhole(NoSettings),
    /// Prints each output as a JSON line on standard output, to watch a
    /// pipeline on live data.
    Console(NoSettings),
}

/// A table with no keys (`[sink.blackhole]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}

/// Produce messages to an Iggy topic.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IggySinkConfig {
    #[serde(default = "defaults::iggy_address")]
    pub address: String,
    #[serde(default = "defaults::iggy_username")]
    pub username: String,
    #[serde(default = "defaults::iggy_password")]
    pub password: String,
    #[serde(default)]
    pub tls: Option<IggyTls>,
    /// Which generation of Iggy's protocol to speak (asked of the server by default).
    #[serde(default)]
    pub protocol: IggyProtocol,
    pub stream: String,
    pub topic: String,
    /// Create the stream and topic if missing.
    #[serde(default)]
    pub create: Option<CreateTopic>,
    /// How messages are spread over partitions.
    #[serde(default)]
    pub partition_by: PartitionBy,
}

/// Which partition a message goes to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionBy {
    /// By the record's key (a change's document key, unless a transform set
    /// another): every change of one document lands in one partition, in
    /// order.
    #[default]
    DocumentKey,
    /// Round robin; no per-document order.
    Balanced,
    /// By the key a transform set on each output (required).
    Key,
}

impl IggySinkConfig {
    pub fn connection(&self) -> IggyConnection {
        IggyConnection {
            address: self.address.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            tls: self.tls.clone(),
            protocol: self.protocol,
        }
    }

    pub(crate) fn validate(&self, problems: &mut Problems) {
        self.connection().validate("sink.iggy", problems);
        validate_name(&self.stream, "sink.iggy.stream", problems);
        validate_name(&self.topic, "sink.iggy.topic", problems);
        if let Some(create) = &self.create {
            create.validate("sink.iggy", problems);
        }
    }
}

/// Write documents to MongoDB.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongoSinkConfig {
    /// A MongoDB connection string.
    pub uri: String,
    pub database: String,
    /// The collection outputs go to unless a transform names another.
    pub collection: String,
    /// The write outputs get unless a transform sets one.
    #[serde(default)]
    pub write: WriteMode,
    /// The fields that identify a document for upsert, replace and delete.
    #[serde(default = "defaults::filter_key")]
    pub key: Vec<String>,
    /// Take an inserted document's `_id` from this field instead of the
    /// source position.
    #[serde(default)]
    pub id_field: Option<String>,
    /// Add the source position (stream, topic, partition, offset, message
    /// id, timestamp) to each document under this field.
    #[serde(default)]
    pub metadata_field: Option<String>,
    /// Write commands in flight at once. Batches that touch a common document
    /// are still written one after the other (see `sink::footprint`).
    #[serde(default = "defaults::max_concurrent_writes")]
    pub max_concurrent_writes: usize,
}

/// The pipeline-wide write kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteMode {
    #[default]
    Insert,
    Upsert,
    Replace,
    Delete,
}

impl MongoSinkConfig {
    pub(crate) fn validate(&self, problems: &mut Problems) {
        if self.max_concurrent_writes == 0 || self.max_concurrent_writes > MAX_CONCURRENT_WRITES {
            problems
                .add("sink.mongodb.max_concurrent_writes", format!("must be between 1 and {MAX_CONCURRENT_WRITES}"));
        }
        if !(self.uri.starts_with("mongodb://") || self.uri.starts_with("mongodb+srv://")) {
            problems.add("sink.mongodb.uri", "must start with mongodb:// or mongodb+srv://");
        }
        if self.database.is_empty() || self.database.contains(['/', '\\', '.', ' ', '"', '$', '\0']) {
            problems.add("sink.mongodb.database", format!("{:?} is not a database name", self.database));
        }
        if let Some(reason) = collection_name_problem(&self.collection) {
            problems.add("sink.mongodb.collection", reason);
        }
        if self.key.is_empty() || self.key.iter().any(|field| field.is_empty()) {
            problems.add("sink.mongodb.key", "must name at least one field, none empty");
        }
        if self.id_field.as_deref() == Some("") {
            problems.add("sink.mongodb.id_field", "must not be empty");
        }
        match self.metadata_field.as_deref() {
            Some("" | "_id") => problems.add("sink.mongodb.metadata_field", "must be a field name other than _id"),
            Some(field) if field.starts_with('$') || field.contains('.') => {
                problems.add("sink.mongodb.metadata_field", "must not start with $ or contain a dot")
            }
            _ => {}
        }
    }
}

/// Why `name` cannot be a MongoDB collection, if it cannot.
pub fn collection_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("a collection name must not be empty".to_owned())
    } else if name.contains(['$', '\0']) || name.starts_with("system.") {
        Some(format!("{name:?} is not a collection name (no $, no NUL, no system. prefix)"))
    } else {
        None
    }
}

impl SinkConfig {
    pub(crate) fn validate(&self, problems: &mut Problems) {
        match self {
            Self::Mongodb(mongodb) => mongodb.validate(problems),
            Self::Iggy(iggy) => iggy.validate(problems),
            Self::Blackhole(_) | Self::Console(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_bad_collection_names_then_says_why() {
        assert!(collection_name_problem("readings").is_none());
        assert!(collection_name_problem("").is_some());
        assert!(collection_name_problem("a$b").is_some());
        assert!(collection_name_problem("system.users").is_some());
    }
}
