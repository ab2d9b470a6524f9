//! The records a transform is handed, and the batch they come in.

use std::fmt;

use serde::Deserialize;

use crate::bindings::ferry::transform::types as wit;
pub use wit::{
    BatchSource, ClusterTime, Encoding, Header, IggyPosition, IggyTopic, MessageId, MongodbChange, Namespace,
    Operation, Origin,
};

/// One input record: its payload and how to read it, its key and headers,
/// and where it came from.
#[derive(Debug, Clone)]
#[repr(transparent)]
pub struct Record(pub(crate) wit::Record);

/// A payload that cannot be read the way the transform asked.
#[derive(Debug)]
pub enum PayloadError {
    /// It is not JSON, or not the JSON the transform expects.
    Json(serde_json::Error),
    /// Its encoding is not one the reading accepts.
    Encoding { expected: &'static str, found: Encoding },
    /// Text that is not UTF-8.
    NotUtf8(std::str::Utf8Error),
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(error) => write!(f, "payload is not the JSON expected: {error}"),
            Self::Encoding { expected, found } => write!(f, "expected a {expected} payload, got {found:?}"),
            Self::NotUtf8(error) => write!(f, "payload is not UTF-8 text: {error}"),
        }
    }
}

impl std::error::Error for PayloadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Json(error) => Some(error),
            Self::NotUtf8(error) => Some(error),
            Self::Encoding { .. } => None,
        }
    }
}

impl Record {
    /// A record, as `ferry test` or a native unit test would make it.
    pub fn new(payload: impl Into<Vec<u8>>, encoding: Encoding) -> Self {
        Self(wit::Record {
            payload: payload.into(),
            encoding,
            key: None,
            headers: None,
            timestamp: 0,
            origin: Origin::File(1),
        })
    }

    /// The payload's bytes, read as [`encoding`](Self::encoding) says.
    pub fn payload(&self) -> &[u8] {
        &self.0.payload
    }

    /// The payload, moved out (no copy).
    pub fn into_payload(self) -> Vec<u8> {
        self.0.payload
    }

    pub fn encoding(&self) -> Encoding {
        self.0.encoding
    }

    /// The payload as JSON, into any `Deserialize` type (which may borrow
    /// from the payload). Extended JSON wrappers such as `{"$date": ...}`
    /// read into [`extjson`](crate::extjson) types.
    pub fn json<'a, T: Deserialize<'a>>(&'a self) -> Result<T, PayloadError> {
        match self.0.encoding {
            Encoding::Json | Encoding::Text => serde_json::from_slice(&self.0.payload).map_err(PayloadError::Json),
            found => Err(PayloadError::Encoding { expected: "JSON", found }),
        }
    }

    /// The payload as text.
    pub fn text(&self) -> Result<&str, PayloadError> {
        match self.0.encoding {
            Encoding::Json | Encoding::Text => std::str::from_utf8(&self.0.payload).map_err(PayloadError::NotUtf8),
            found => Err(PayloadError::Encoding { expected: "text", found }),
        }
    }

    /// The record's key: an Iggy message's `ferry-key` header, or a change's
    /// document key as relaxed Extended JSON.
    pub fn key(&self) -> Option<&[u8]> {
        self.0.key.as_deref()
    }

    /// The key as text, when it is UTF-8.
    pub fn key_text(&self) -> Option<&str> {
        self.key().and_then(|key| std::str::from_utf8(key).ok())
    }

    /// The record's headers, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.headers.iter().flatten().map(|header| (header.name.as_str(), header.value.as_str()))
    }

    /// The value of header `name`, if the record has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers().find(|(each, _)| *each == name).map(|(_, value)| value)
    }

    /// When the record was made, in microseconds since the Unix epoch.
    pub fn timestamp_micros(&self) -> u64 {
        self.0.timestamp
    }

    pub fn origin(&self) -> &Origin {
        &self.0.origin
    }

    /// The MongoDB change this record describes, if it came from a change
    /// stream: namespace, operation, document key, cluster time.
    pub fn change(&self) -> Option<&MongodbChange> {
        match &self.0.origin {
            Origin::Mongodb(change) => Some(change),
            _ => None,
        }
    }

    /// Where in Iggy the record was read, if it was.
    pub fn iggy(&self) -> Option<&IggyPosition> {
        match &self.0.origin {
            Origin::Iggy(position) => Some(position),
            _ => None,
        }
    }
}

/// One call's records, and what they share.
#[derive(Debug)]
pub struct Batch {
    source: BatchSource,
    records: Vec<Record>,
}

impl Batch {
    /// Where every record of the batch was read: an Iggy stream and topic,
    /// a change stream, or a `ferry test` file.
    pub fn source(&self) -> &BatchSource {
        &self.source
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The records, moved out.
    pub fn into_records(self) -> Vec<Record> {
        self.records
    }
}

impl From<wit::Batch> for Batch {
    fn from(batch: wit::Batch) -> Self {
        // Collected in place: a `Record` is its contract record.
        Self { source: batch.source, records: batch.records.into_iter().map(Record).collect() }
    }
}
