//! The records Ferry moves, as the WIT contract defines them.
//!
//! Sources build these, transforms see them, sinks write what comes out. They
//! are the generated contract types themselves, so a batch crosses into the
//! WebAssembly guest without being copied into another shape first.

pub use crate::wasm::bindings::types::{
    Batch, BatchSource, ClusterTime, Encoding, Header, IggyPosition, IggyTopic, MessageId, MongodbChange, Namespace,
    Operation, Origin, Outcome, Output, Record, Write,
};

/// A record's position as Ferry writes it into ids: for Iggy
/// `stream:topic:partition:offset`, for a change stream
/// `database.collection:seconds.increment`, for a file `file:line`.
pub fn position_id(source: &BatchSource, origin: &Origin) -> String {
    match (source, origin) {
        (BatchSource::Iggy(topic), Origin::Iggy(position)) => {
            format!("{}:{}:{}:{}", topic.stream, topic.topic, position.partition, position.offset)
        }
        (_, Origin::Iggy(position)) => format!("{}:{}", position.partition, position.offset),
        (_, Origin::Mongodb(change)) => {
            let namespace = match &change.namespace.collection {
                Some(collection) => format!("{}.{collection}", change.namespace.database),
                None => change.namespace.database.clone(),
            };
            format!("{namespace}:{}.{}", change.cluster_time.seconds, change.cluster_time.increment)
        }
        (_, Origin::File(line)) => format!("file:{line}"),
    }
}

/// A record's position for people: "sensors/readings partition 1 offset 42".
pub fn describe_position(source: &BatchSource, origin: &Origin) -> String {
    match (source, origin) {
        (BatchSource::Iggy(topic), Origin::Iggy(position)) => {
            format!("{}/{} partition {} offset {}", topic.stream, topic.topic, position.partition, position.offset)
        }
        (_, Origin::Iggy(position)) => format!("partition {} offset {}", position.partition, position.offset),
        (_, Origin::Mongodb(_)) => format!("change {}", position_id(source, origin)),
        (_, Origin::File(line)) => format!("line {line}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_an_iggy_record_then_positions_name_stream_topic_partition_offset() {
        let source = BatchSource::Iggy(IggyTopic { stream: "sensors".into(), topic: "readings".into() });
        let origin = Origin::Iggy(IggyPosition {
            partition: 1,
            offset: 42,
            message_id: MessageId { high: 0, low: 0 },
            timestamp: 0,
        });
        assert_eq!(position_id(&source, &origin), "sensors:readings:1:42");
        assert_eq!(describe_position(&source, &origin), "sensors/readings partition 1 offset 42");
    }
}
