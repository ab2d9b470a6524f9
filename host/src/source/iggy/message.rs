//! An Iggy message as a Ferry record.

use crate::config::PayloadFormat;
use crate::iggy_link::{KEY_HEADER, Message};
use crate::record::{Encoding, Header, IggyPosition, MessageId, Origin, Record};

/// Converts one polled message of `partition`.
pub fn to_record(message: &Message, partition: u32, format: PayloadFormat) -> Record {
    let mut key = None;
    // Undecodable headers are dropped rather than failing the record: the
    // payload is what the pipeline exists to move.
    let headers: Option<Vec<Header>> = message.headers().map(|headers| {
        headers
            .into_iter()
            .filter_map(|header| {
                if header.name == KEY_HEADER {
                    key = Some(header.raw);
                    return None;
                }
                Some(Header { name: header.name, value: header.value })
            })
            .collect()
    });
    let (high, low) = message_id_parts(message.id);
    Record {
        payload: message.payload.to_vec(),
        encoding: match format {
            PayloadFormat::Json => Encoding::Json,
            PayloadFormat::Text => Encoding::Text,
            PayloadFormat::Binary => Encoding::Binary,
        },
        key,
        headers: headers.filter(|headers| !headers.is_empty()),
        timestamp: message.timestamp,
        origin: Origin::Iggy(IggyPosition {
            partition,
            offset: message.offset,
            message_id: MessageId { high, low },
            timestamp: message.timestamp,
        }),
    }
}

/// A 128-bit message id as the contract's two halves.
pub fn message_id_parts(id: u128) -> (u64, u64) {
    ((id >> 64) as u64, id as u64)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::iggy_link::Headers;

    fn message(pairs: &[(&'static str, &'static str)]) -> Message {
        let mut headers = Headers::default();
        for (name, value) in pairs {
            headers.add(name, *value);
        }
        let mut message = headers.message(7u128 << 64 | 9, Bytes::from_static(b"{\"a\":1}")).unwrap();
        message.offset = 42;
        message.timestamp = 1_000;
        message
    }

    #[test]
    fn given_a_message_then_the_record_carries_its_position() {
        let record = to_record(&message(&[]), 3, PayloadFormat::Json);
        assert_eq!(record.payload, b"{\"a\":1}");
        assert_eq!(record.encoding, Encoding::Json);
        assert_eq!(record.headers, None);
        assert_eq!(
            record.origin,
            Origin::Iggy(IggyPosition {
                partition: 3,
                offset: 42,
                message_id: MessageId { high: 7, low: 9 },
                timestamp: 1_000
            })
        );
    }

    #[test]
    fn given_headers_then_the_key_header_becomes_the_key() {
        let record = to_record(&message(&[(KEY_HEADER, "s1"), ("source", "plant-7")]), 1, PayloadFormat::Text);
        assert_eq!(record.key.as_deref(), Some(&b"s1"[..]));
        assert_eq!(record.headers, Some(vec![Header { name: "source".into(), value: "plant-7".into() }]));
        assert_eq!(record.encoding, Encoding::Text);
    }
}
