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
    /// It is not a BSON document, nor Extended JSON that makes one.
    #[cfg(feature = "bson")]
    Bson(String),
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(error) => write!(f, "payload is not the JSON expected: {error}"),
            Self::Encoding { expected, found } => write!(f, "expected a {expected} payload, got {found:?}"),
            Self::NotUtf8(error) => write!(f, "payload is not UTF-8 text: {error}"),
            #[cfg(feature = "bson")]
            Self::Bson(error) => write!(f, "payload is not a BSON document: {error}"),
        }
    }
}

impl std::error::Error for PayloadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Json(error) => Some(error),
            Self::NotUtf8(error) => Some(error),
            Self::Encoding { .. } => None,
            #[cfg(feature = "bson")]
            Self::Bson(_) => None,
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

    /// The payload as a BSON document: a `bson` payload as it is, a `json`
    /// one read as Extended JSON (so `{"$date": ...}` becomes a date).
    #[cfg(feature = "bson")]
    pub fn bson(&self) -> Result<bson::Document, PayloadError> {
        match self.0.encoding {
            Encoding::Bson => bson::Document::from_reader(self.0.payload.as_slice())
                .map_err(|error| PayloadError::Bson(error.to_string())),
            Encoding::Json | Encoding::Text => {
                let value: serde_json::Value = serde_json::from_slice(&self.0.payload).map_err(PayloadError::Json)?;
                match bson::Bson::try_from(value) {
                    Ok(bson::Bson::Document(document)) => Ok(document),
                    Ok(other) => Err(PayloadError::Bson(format!("found {:?}, not a document", other.element_type()))),
                    Err(error) => Err(PayloadError::Bson(error.to_string())),
                }
            }
            found => Err(PayloadError::Encoding { expected: "BSON or JSON", found }),
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

#[cfg(all(test, feature = "bson"))]
mod tests {
    use super::*;
    use crate::Outcome;

    #[test]
    fn given_extended_json_then_bson_keeps_its_types() {
        let record = Record::new(
            r#"{"n":{"$numberLong":"7"},"at":{"$date":"2026-11-26T03:00:00Z"},"id":{"$oid":"65f1a2b3c4d5e6f708192a3b"}}"#,
            Encoding::Json,
        );
        let document = record.bson().unwrap();
        assert_eq!(document.get_i64("n").unwrap(), 7);
        assert_eq!(document.get_datetime("at").unwrap().timestamp_millis(), 1_795_662_000_000);
        assert_eq!(document.get_object_id("id").unwrap().to_hex(), "65f1a2b3c4d5e6f708192a3b");
    }

    #[test]
    fn given_an_emitted_document_then_a_bson_record_reads_it_back() {
        let document = bson::doc! { "n": 7_i64, "small": 7_i32, "nested": { "list": [1.5, "x"] } };
        let outcome = Outcome::emit_document(&document);
        let output = &outcome.outputs()[0];
        assert_eq!(output.encoding, Encoding::Bson);
        let back = Record::new(output.payload.clone(), Encoding::Bson).bson().unwrap();
        assert_eq!(back, document);
        assert_eq!(back.get("n").unwrap().element_type(), bson::spec::ElementType::Int64);
    }

    #[test]
    fn given_a_payload_that_is_not_a_document_then_says_so() {
        let array = Record::new("[1,2]", Encoding::Json).bson().unwrap_err().to_string();
        assert_eq!(array, "payload is not a BSON document: found Array, not a document");
        let garbage = Record::new(vec![1, 2, 3], Encoding::Bson).bson().unwrap_err().to_string();
        assert!(garbage.starts_with("payload is not a BSON document: "), "{garbage}");
    }
}
