//! The records Ferry moves, as the WIT contract defines them, and what the
//! transform chain makes of each (`result`).
//!
//! Sources build records, transforms see them, sinks write what comes out.
//! They are the generated contract types themselves, so a batch crosses into
//! the WebAssembly guest without being copied into another shape first.

mod dead_letter;
mod result;

pub use crate::contract::types::{
    Batch, BatchSource, ClusterTime, Encoding, Header, IggyPosition, IggyTopic, MessageId, MongodbChange, Namespace,
    Operation, Origin, Outcome, Output, Record, Write,
};
pub use dead_letter::DeadLetter;
pub use result::{Emitted, Failure, OutputRef, RecordResult};

/// A record's position as Ferry writes it into ids: for Iggy
/// `stream:topic:partition:offset`, for a change stream
/// `database.collection:seconds.increment`, for a file `file:line`.
pub fn position_id(source: &BatchSource, origin: &Origin) -> String {
    // Written piece by piece rather than with `format!`: this runs for every
    // record on the hot paths, and the formatting machinery was a tenth of
    // planning a batch.
    let mut numbers = itoa::Buffer::new();
    let mut id = String::with_capacity(64);
    match (source, origin) {
        (BatchSource::Iggy(topic), Origin::Iggy(position)) => {
            for piece in
                [topic.stream.as_str(), ":", topic.topic.as_str(), ":", numbers.format(position.partition), ":"]
            {
                id.push_str(piece);
            }
            id.push_str(numbers.format(position.offset));
        }
        (_, Origin::Iggy(position)) => {
            id.push_str(numbers.format(position.partition));
            id.push(':');
            id.push_str(numbers.format(position.offset));
        }
        (_, Origin::Mongodb(change)) => {
            id.push_str(&change.namespace.database);
            if let Some(collection) = &change.namespace.collection {
                id.push('.');
                id.push_str(collection);
            }
            id.push(':');
            id.push_str(numbers.format(change.cluster_time.seconds));
            id.push('.');
            id.push_str(numbers.format(change.cluster_time.increment));
        }
        (_, Origin::File(line)) => {
            id.push_str("file:");
            id.push_str(numbers.format(*line));
        }
    }
    id
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
        assert_eq!(position_id(&BatchSource::File, &origin), "1:42");
    }

    #[test]
    fn given_a_change_or_a_line_then_positions_name_them() {
        let change = |collection: Option<&str>| {
            Origin::Mongodb(MongodbChange {
                namespace: Namespace { database: "iot".into(), collection: collection.map(str::to_owned) },
                operation: Operation::Insert,
                document_key: None,
                cluster_time: ClusterTime { seconds: 1_764_126_000, increment: 7 },
            })
        };
        assert_eq!(position_id(&BatchSource::Mongodb, &change(Some("readings"))), "iot.readings:1764126000.7");
        assert_eq!(position_id(&BatchSource::Mongodb, &change(None)), "iot:1764126000.7");
        assert_eq!(position_id(&BatchSource::File, &Origin::File(12)), "file:12");
    }
}
