//! The dead-letter destination: records Ferry cannot process, kept with the
//! reason, so nothing is ever skipped in silence.
//!
//! A dead letter is the original message — payload and headers as read —
//! with Ferry's headers added: `ferry-reason`, `ferry-stage`,
//! `ferry-pipeline` and `ferry-source`. Its message id is derived from the
//! pipeline and source position, so if a crash replays a batch, Iggy's
//! message deduplication (when enabled on the server) drops the repeat.

use std::future::Future;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::config::IggyConnection;
use crate::error::ServiceError;
use crate::iggy_link::{Headers, IggyLink, KEY_HEADER, Message};
use crate::record::{Batch, DeadLetter, Record, describe_position, position_id};
use crate::standby::Fence;

/// Iggy refuses empty payloads; an empty record is sent as this, flagged.
const EMPTY_PAYLOAD_STAND_IN: &[u8] = b" ";

/// Somewhere dead letters can be kept.
pub trait DeadLetterSink: Send {
    fn send(
        &mut self,
        pipeline: &str,
        batch: &Batch,
        letters: &[DeadLetter],
    ) -> impl Future<Output = Result<(), ServiceError>> + Send;
}

/// Dead letters produced to an Iggy topic (created if missing).
pub struct IggyDeadLetters {
    link: IggyLink,
    stream: String,
    topic: String,
    topic_ready: bool,
    /// With standbys: the lease this process must hold to send.
    fence: Option<Fence>,
}

impl IggyDeadLetters {
    pub fn new(connection: IggyConnection, stream: &str, topic: &str) -> Result<Self, ServiceError> {
        Ok(Self {
            link: IggyLink::new(connection),
            stream: stream.to_owned(),
            topic: topic.to_owned(),
            topic_ready: false,
            fence: None,
        })
    }

    /// Sends only while `fence` proves the lease held (see `crate::standby`).
    pub fn fenced(mut self, fence: Option<Fence>) -> Self {
        self.fence = fence;
        self
    }
}

impl DeadLetterSink for IggyDeadLetters {
    async fn send(&mut self, pipeline: &str, batch: &Batch, letters: &[DeadLetter]) -> Result<(), ServiceError> {
        if letters.is_empty() {
            return Ok(());
        }
        let messages = letters.iter().map(|letter| message(pipeline, batch, letter)).collect::<Result<Vec<_>, _>>()?;
        let (session, _) = self.link.session().await?;
        if !self.topic_ready {
            session.ensure_topic(&self.stream, &self.topic, 1).await?;
            self.topic_ready = true;
        }
        if let Some(fence) = &self.fence {
            fence.check(|| format!("dead-lettering to {}/{}", self.stream, self.topic))?;
        }
        if let Err(error) = session.send(&self.stream, &self.topic, None, messages).await {
            if error.transient {
                self.link.reset().await;
                self.topic_ready = false;
            }
            return Err(error);
        }
        Ok(())
    }
}

/// The dead-letter message for one input.
pub fn message(pipeline: &str, batch: &Batch, letter: &DeadLetter) -> Result<Message, ServiceError> {
    let record = &batch.records[letter.input];
    let mut headers = Headers::with_capacity(8);
    for header in record.headers.iter().flatten() {
        headers.add(&header.name, header.value.as_str());
    }
    if let Some(key) = &record.key {
        headers.add(KEY_HEADER, String::from_utf8_lossy(key));
    }
    headers.add("ferry-reason", letter.reason.as_str());
    headers.add("ferry-stage", letter.stage.as_str());
    headers.add("ferry-pipeline", pipeline);
    headers.add("ferry-source", describe_position(&batch.source, &record.origin));
    let payload = if record.payload.is_empty() {
        headers.add("ferry-empty-payload", "true");
        Bytes::from_static(EMPTY_PAYLOAD_STAND_IN)
    } else {
        Bytes::from(record.payload.clone())
    };
    headers
        .message(letter_id(pipeline, batch, record), payload)
        .map_err(|error| ServiceError::fatal(format!("building the dead letter for {}", letter.stage), error))
}

/// The same id for the same pipeline and source position, every time.
fn letter_id(pipeline: &str, batch: &Batch, record: &Record) -> u128 {
    let digest = Sha256::new()
        .chain_update(pipeline.as_bytes())
        .chain_update([0])
        .chain_update(position_id(&batch.source, &record.origin).as_bytes())
        .finalize();
    u128::from_be_bytes(digest[..16].try_into().expect("a SHA-256 digest has 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iggy_link::MAX_HEADER_VALUE;
    use crate::record::{BatchSource, Encoding, Header, IggyPosition, IggyTopic, MessageId, Origin};

    fn batch(payload: &[u8]) -> Batch {
        Batch {
            source: BatchSource::Iggy(IggyTopic { stream: "sensors".into(), topic: "readings".into() }),
            records: vec![Record {
                payload: payload.to_vec(),
                encoding: Encoding::Json,
                key: Some(b"s1".to_vec()),
                headers: Some(vec![Header { name: "plant".into(), value: "7".into() }]),
                timestamp: 0,
                origin: Origin::Iggy(IggyPosition {
                    partition: 2,
                    offset: 9,
                    message_id: MessageId { high: 0, low: 1 },
                    timestamp: 0,
                }),
            }],
        }
    }

    fn header(message: &Message, name: &str) -> Option<String> {
        message.header(name)
    }

    #[test]
    fn given_a_failed_record_then_the_letter_keeps_payload_headers_and_says_why() {
        let letter = DeadLetter { input: 0, stage: "transform:enrich".into(), reason: "bad ts".into() };
        let message = message("p", &batch(b"{oops"), &letter).unwrap();
        assert_eq!(message.payload.as_ref(), b"{oops");
        assert_eq!(header(&message, "plant").as_deref(), Some("7"));
        assert_eq!(header(&message, KEY_HEADER).as_deref(), Some("s1"));
        assert_eq!(header(&message, "ferry-reason").as_deref(), Some("bad ts"));
        assert_eq!(header(&message, "ferry-stage").as_deref(), Some("transform:enrich"));
        assert_eq!(header(&message, "ferry-pipeline").as_deref(), Some("p"));
        assert_eq!(header(&message, "ferry-source").as_deref(), Some("sensors/readings partition 2 offset 9"));
    }

    #[test]
    fn given_a_replay_then_the_letter_id_repeats_and_differs_per_pipeline() {
        let letter = DeadLetter { input: 0, stage: "sink".into(), reason: "x".into() };
        let first = message("p", &batch(b"1"), &letter).unwrap().id;
        assert_eq!(first, message("p", &batch(b"1"), &letter).unwrap().id);
        assert_ne!(first, message("q", &batch(b"1"), &letter).unwrap().id);
    }

    #[test]
    fn given_a_long_reason_or_empty_payload_then_the_letter_still_sends() {
        let letter = DeadLetter { input: 0, stage: "sink".into(), reason: "é".repeat(300) };
        let message = message("p", &batch(b""), &letter).unwrap();
        assert!(header(&message, "ferry-reason").unwrap().len() <= MAX_HEADER_VALUE);
        assert_eq!(header(&message, "ferry-empty-payload").as_deref(), Some("true"));
    }
}
