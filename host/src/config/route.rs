//! Which way a pipeline moves data: the source and sink pairings Ferry
//! supports, checked once when the file is read. Launching a pipeline
//! matches on the route, so a new pairing is one variant here and the
//! compiler finds every place that must handle it.

use super::change_stream::MongoSourceConfig;
use super::iggy::IggyConnection;
use super::sink::{IggySinkConfig, MongoSinkConfig, SinkConfig};
use super::source::{IggySourceConfig, SourceConfig};

#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// A consumer group's messages, written as documents.
    IggyToMongo { source: IggySourceConfig, sink: MongoSinkConfig },
    /// A consumer group's messages, acknowledged and dropped: Ferry's own
    /// ceiling.
    IggyToBlackhole { source: IggySourceConfig },
    /// A consumer group's messages, printed as JSON lines.
    IggyToConsole { source: IggySourceConfig },
    /// A change stream's events, produced as messages; the sink's topic
    /// also keeps the stream's position.
    ChangesToIggy { source: MongoSourceConfig, sink: IggySinkConfig },
}

impl Route {
    /// The route of a source and a sink, or why they do not pair.
    pub fn between(source: SourceConfig, sink: SinkConfig) -> Result<Self, &'static str> {
        match (source, sink) {
            (SourceConfig::Iggy(source), SinkConfig::Mongodb(sink)) => Ok(Self::IggyToMongo { source, sink }),
            (SourceConfig::Iggy(source), SinkConfig::Blackhole(_)) => Ok(Self::IggyToBlackhole { source }),
            (SourceConfig::Iggy(source), SinkConfig::Console(_)) => Ok(Self::IggyToConsole { source }),
            (SourceConfig::Mongodb(source), SinkConfig::Iggy(sink)) => Ok(Self::ChangesToIggy { source, sink }),
            (SourceConfig::Mongodb(_), SinkConfig::Blackhole(_) | SinkConfig::Console(_)) => {
                Err("a change-stream source keeps its position in its Iggy sink's topic; the blackhole and console \
                 sinks take an Iggy source")
            }
            (SourceConfig::Iggy(_), SinkConfig::Iggy(_)) | (SourceConfig::Mongodb(_), SinkConfig::Mongodb(_)) => {
                Err("Ferry moves Iggy to MongoDB or MongoDB to Iggy; this source and sink are the same kind")
            }
        }
    }

    /// The pipeline's Iggy server: every route has one at one end, and the
    /// dead-letter topic shares it unless it names another.
    pub fn iggy_connection(&self) -> IggyConnection {
        match self {
            Self::IggyToMongo { source, .. } | Self::IggyToBlackhole { source } | Self::IggyToConsole { source } => {
                source.connection()
            }
            Self::ChangesToIggy { sink, .. } => sink.connection(),
        }
    }

    /// The change stream's connection string, on the route that reads one.
    pub fn change_stream_uri(&self) -> Option<String> {
        match self {
            Self::ChangesToIggy { source, .. } => Some(source.uri.clone()),
            _ => None,
        }
    }

    /// The change stream's standby settings, when the pipeline has standbys.
    pub fn standby(&self) -> Option<&super::StandbyConfig> {
        match self {
            Self::ChangesToIggy { source, .. } => source.standby.as_ref(),
            _ => None,
        }
    }

    /// The Iggy source's settings, on the routes that read Iggy.
    pub fn iggy_source(&self) -> Option<&IggySourceConfig> {
        match self {
            Self::IggyToMongo { source, .. } | Self::IggyToBlackhole { source } | Self::IggyToConsole { source } => {
                Some(source)
            }
            Self::ChangesToIggy { .. } => None,
        }
    }
}
