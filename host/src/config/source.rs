//! `[source.*]`: where a pipeline reads.

use std::time::Duration;

use serde::Deserialize;

use super::defaults;
use super::iggy::{CreateTopic, IggyConnection, IggyProtocol, IggyTls, validate_name};
use super::problems::Problems;

/// The one source of a pipeline, named by its table: `[source.iggy]` or
/// `[source.mongodb]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceConfig {
    Iggy(IggySourceConfig),
    Mongodb(super::change_stream::MongoSourceConfig),
}

/// Consume an Iggy topic as a member of a consumer group.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IggySourceConfig {
    #[serde(default = "defaults::iggy_address")]
    pub address: String,
    #[serde(default = "defaults::iggy_username")]
    pub username: String,
    #[serde(default = "defaults::iggy_password")]
    pub password: String,
    /// TLS settings; plain TCP when absent.
    #[serde(default)]
    pub tls: Option<IggyTls>,
    /// Which generation of Iggy's protocol to speak (asked of the server by default).
    #[serde(default)]
    pub protocol: IggyProtocol,
    pub stream: String,
    pub topic: String,
    /// Create the stream and topic if missing; without it a missing topic is
    /// an error (a typo should not conjure a topic).
    #[serde(default)]
    pub create: Option<CreateTopic>,
    /// Created if missing. Ferry processes sharing a group share the work.
    pub consumer_group: String,
    /// Where a group that has no stored offset starts.
    #[serde(default)]
    pub start: StartPosition,
    /// Messages per poll, transform call and write.
    #[serde(default = "defaults::batch_size")]
    pub batch_size: u32,
    /// The pause before polling again when no messages were waiting.
    #[serde(default = "defaults::poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How to read message payloads.
    #[serde(default)]
    pub format: PayloadFormat,
}

/// Where a new consumer group starts reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartPosition {
    /// Every message still in the topic.
    #[default]
    Earliest,
    /// Only messages produced after the group is created.
    Latest,
}

/// How message payloads are read, and so how they are stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    /// A JSON object (relaxed Extended JSON) that becomes the document.
    #[default]
    Json,
    /// UTF-8 text, stored as a string field `payload`.
    Text,
    /// Any bytes, stored as binary field `payload`.
    Binary,
}

impl IggySourceConfig {
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
        self.connection().validate("source.iggy", problems);
        validate_name(&self.stream, "source.iggy.stream", problems);
        validate_name(&self.topic, "source.iggy.topic", problems);
        validate_name(&self.consumer_group, "source.iggy.consumer_group", problems);
        if let Some(create) = &self.create {
            create.validate("source.iggy", problems);
        }
        if self.batch_size == 0 || self.batch_size > 100_000 {
            problems.add("source.iggy.batch_size", "must be between 1 and 100000");
        }
        if self.poll_interval > Duration::from_secs(60) {
            problems.add("source.iggy.poll_interval", "must be at most 60s");
        }
    }
}

impl SourceConfig {
    pub(crate) fn validate(&self, problems: &mut Problems) {
        match self {
            Self::Iggy(iggy) => iggy.validate(problems),
            Self::Mongodb(mongodb) => mongodb.validate(problems),
        }
    }
}
