//! A change event (or a copied document) as a Ferry record.

use std::borrow::Cow;
use std::ops::Range;

use bson::raw::RawBsonRef;
use bson::{Document, RawDocument, RawDocumentBuf, doc};

use crate::config::EventFormat;
use crate::encoding::relaxed_json::{Dialect, json_buffer, to_relaxed_json, to_relaxed_json_text, write_member};
use crate::error::error_chain;
use crate::record::{ClusterTime, Encoding, Header, MongodbChange, Namespace, Operation, Origin, Record};
use crate::resume::{ChangePosition, pieces};

/// The record for one change event. The event stays in its BSON bytes: its
/// fields are found in the same pass that writes the JSON payload, and the
/// token's and document key's JSON are cut from that payload.
pub fn change_record(event: &RawDocument, format: EventFormat) -> Result<Record, String> {
    // Keys and positions are JSON in the event's dialect (Ferry's, for BSON
    // events), so a key reads the same whatever the payload format.
    let dialect = format.dialect().unwrap_or(Dialect::TypePreserving);
    let mut json = format.dialect().map(|_| json_buffer(event));
    let fields = EventFields::read(event, json.as_mut(), dialect)?;
    let token = fields.token.ok_or("the event has no resume token `_id`")?;
    let position_json = ChangePosition::stream_json(
        &cut_or_write(json.as_deref(), fields.token_json.clone(), token, dialect)?,
        fields.cluster_time,
    );
    let operation = match fields.operation.ok_or("the event has no operationType")? {
        "insert" => Operation::Insert,
        "update" => Operation::Update,
        "replace" => Operation::Replace,
        "delete" => Operation::Delete,
        "drop" => Operation::Drop,
        "rename" => Operation::Rename,
        "dropDatabase" => Operation::DropDatabase,
        "invalidate" => Operation::Invalidate,
        other => Operation::Other(other.to_owned()),
    };
    let namespace = match fields.namespace {
        Some(ns) => Namespace {
            database: ns.get_str("db").unwrap_or_default().to_owned(),
            collection: ns.get_str("coll").ok().map(str::to_owned),
        },
        None => Namespace { database: String::new(), collection: None },
    };
    let document_key = fields
        .document_key
        .map(|key| cut_or_write(json.as_deref(), fields.document_key_json.clone(), key, dialect).map(Cow::into_owned))
        .transpose()?;
    let micros = match fields.wall_time {
        // Saturating: a wall time past the year 586 912 has no microseconds
        // in a u64 (and overflowed here).
        Some(wall) => (wall.timestamp_millis().max(0) as u64).saturating_mul(1000),
        None => fields.cluster_time.map_or(0, |(seconds, _)| u64::from(seconds) * 1_000_000),
    };
    let (seconds, increment) = fields.cluster_time.unwrap_or((0, 0));
    let change = MongodbChange {
        namespace,
        operation,
        document_key: document_key.clone(),
        cluster_time: ClusterTime { seconds, increment },
    };
    let payload = match json {
        Some(json) => (json, Encoding::Json),
        None => (event.as_bytes().to_vec(), Encoding::Bson),
    };
    Ok(record(payload, document_key, micros, change, position_json))
}

/// The JSON of `document`: cut from the event's JSON where it was written
/// there (borrowed), else written now.
fn cut_or_write<'j>(
    json: Option<&'j [u8]>,
    span: Option<Range<usize>>,
    document: &RawDocument,
    dialect: Dialect,
) -> Result<Cow<'j, str>, String> {
    match (json, span) {
        (Some(json), Some(span)) => {
            std::str::from_utf8(&json[span]).map(Cow::Borrowed).map_err(|error| error.to_string())
        }
        _ => json_text(document, dialect).map(Cow::Owned),
    }
}

/// The position after a change event: built for the last event of a batch
/// only, since a batch commits as a whole.
pub fn change_position(event: &RawDocument) -> Result<ChangePosition, String> {
    let fields = EventFields::read(event, None, Dialect::Relaxed)?;
    let token = fields.token.ok_or("the event has no resume token `_id`")?;
    let token = Document::try_from(token).map_err(|error| format!("the resume token is not a document: {error}"))?;
    Ok(ChangePosition::Stream { token, cluster_time: fields.cluster_time })
}

/// The fields of a change event that Ferry reads.
#[derive(Default)]
struct EventFields<'a> {
    token: Option<&'a RawDocument>,
    operation: Option<&'a str>,
    cluster_time: Option<(u32, u32)>,
    wall_time: Option<bson::DateTime>,
    namespace: Option<&'a RawDocument>,
    document_key: Option<&'a RawDocument>,
    /// Where the token's and the document key's JSON lie in the event's
    /// JSON, when that was written.
    token_json: Option<Range<usize>>,
    document_key_json: Option<Range<usize>>,
}

impl<'a> EventFields<'a> {
    /// One pass over the event, writing it as relaxed JSON into `json` if
    /// given: looking each field up by name would walk the whole event (full
    /// document included) once per field, and a second walk to write it
    /// cost as much again.
    fn read(event: &'a RawDocument, mut json: Option<&mut Vec<u8>>, dialect: Dialect) -> Result<Self, String> {
        let unreadable =
            |error: &dyn std::error::Error| format!("cannot read the change event: {}", error_chain(error));
        let mut fields = Self::default();
        if let Some(json) = json.as_deref_mut() {
            json.push(b'{');
        }
        for (index, element) in event.iter().enumerate() {
            let (name, value) = element.map_err(|error| unreadable(&error))?;
            let span = match json.as_deref_mut() {
                Some(json) => Some(
                    write_member(index == 0, name.as_str(), value, dialect, json)
                        .map_err(|error| unreadable(&error))?,
                ),
                None => None,
            };
            match (name.as_str(), value) {
                ("_id", RawBsonRef::Document(token)) => (fields.token, fields.token_json) = (Some(token), span),
                ("operationType", RawBsonRef::String(operation)) => fields.operation = Some(operation),
                ("clusterTime", RawBsonRef::Timestamp(time)) => fields.cluster_time = Some((time.time, time.increment)),
                ("wallTime", RawBsonRef::DateTime(time)) => fields.wall_time = Some(time),
                ("ns", RawBsonRef::Document(namespace)) => fields.namespace = Some(namespace),
                ("documentKey", RawBsonRef::Document(key)) => {
                    (fields.document_key, fields.document_key_json) = (Some(key), span);
                }
                _ => {}
            }
        }
        if let Some(json) = json {
            json.push(b'}');
        }
        Ok(fields)
    }
}

/// The record for one document of a copy of existing documents: shaped like
/// an insert event, so transforms handle both alike.
pub fn copy_record(
    document: Document,
    database: &str,
    collection: &str,
    position: &ChangePosition,
    format: EventFormat,
) -> Result<Record, String> {
    let ChangePosition::Copy { started, .. } = position else { unreachable!("copies have copy positions") };
    let id = document.get("_id").cloned().ok_or("a copied document has no _id")?;
    let document_key = doc! { "_id": id };
    let dialect = format.dialect().unwrap_or(Dialect::TypePreserving);
    let key = json_text(&encode(&document_key)?, dialect)?;
    let event = encode(&doc! {
        "operationType": "insert",
        "ns": { "db": database, "coll": collection },
        "documentKey": document_key,
        "fullDocument": document,
        "copyExisting": true,
    })?;
    let change = MongodbChange {
        namespace: Namespace { database: database.to_owned(), collection: Some(collection.to_owned()) },
        operation: Operation::Insert,
        document_key: Some(key.clone()),
        cluster_time: ClusterTime { seconds: started.0, increment: started.1 },
    };
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |time| time.as_micros() as u64);
    let payload = match format.dialect() {
        Some(dialect) => (to_relaxed_json(&event, dialect).map_err(|error| error_chain(&error))?, Encoding::Json),
        None => (event.into_bytes(), Encoding::Bson),
    };
    Ok(record(payload, Some(key), now, change, position.to_json()))
}

fn encode(document: &Document) -> Result<RawDocumentBuf, String> {
    RawDocumentBuf::try_from(document).map_err(|error| format!("cannot encode a document: {error}"))
}

fn record(
    (payload, encoding): (Vec<u8>, Encoding),
    document_key: Option<String>,
    timestamp: u64,
    change: MongodbChange,
    position_json: String,
) -> Record {
    let headers = pieces(position_json).into_iter().map(|(name, value)| Header { name, value }).collect();
    Record {
        payload,
        encoding,
        key: document_key.map(String::into_bytes),
        headers: Some(headers),
        timestamp,
        origin: Origin::Mongodb(change),
    }
}

/// A (small) document as Extended JSON text in `dialect`.
fn json_text(document: &RawDocument, dialect: Dialect) -> Result<String, String> {
    to_relaxed_json_text(document, dialect).map_err(|error| error_chain(&error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{Bson, Timestamp};

    fn raw(document: Document) -> RawDocumentBuf {
        RawDocumentBuf::try_from(&document).unwrap()
    }

    fn event() -> Document {
        doc! {
            "_id": { "_data": "8263" },
            "operationType": "update",
            "clusterTime": Timestamp { time: 1_764_126_000, increment: 4 },
            "wallTime": bson::DateTime::from_millis(1_764_126_000_123),
            "ns": { "db": "iot", "coll": "readings" },
            "documentKey": { "_id": 7 },
            "updateDescription": { "updatedFields": { "temp": 21.5 }, "removedFields": [] },
        }
    }

    #[test]
    fn given_an_update_event_then_the_record_carries_its_origin_key_and_position() {
        let record = change_record(&raw(event()), EventFormat::Json).unwrap();
        let position = change_position(&raw(event())).unwrap();
        assert_eq!(
            position,
            ChangePosition::Stream { token: doc! { "_data": "8263" }, cluster_time: Some((1_764_126_000, 4)) }
        );
        assert_eq!(record.key.as_deref(), Some(&br#"{"_id":7}"#[..]));
        assert_eq!(record.timestamp, 1_764_126_000_123_000);
        let Origin::Mongodb(change) = &record.origin else { panic!("a MongoDB origin") };
        assert_eq!(change.operation, Operation::Update);
        assert_eq!(change.namespace, Namespace { database: "iot".into(), collection: Some("readings".into()) });
        assert_eq!(change.cluster_time, ClusterTime { seconds: 1_764_126_000, increment: 4 });
        let payload: serde_json::Value = serde_json::from_slice(&record.payload).unwrap();
        assert_eq!(payload["updateDescription"]["updatedFields"]["temp"], 21.5);
        let headers = record.headers.unwrap();
        let as_text = headers.iter().map(|header| (header.name.as_str(), header.value.as_str()));
        assert_eq!(ChangePosition::from_text_headers(as_text), Some(position));
    }

    #[test]
    fn given_a_wall_time_past_what_microseconds_hold_then_the_timestamp_saturates() {
        let mut event = event();
        event.insert("wallTime", bson::DateTime::MAX);
        let record = change_record(&raw(event), EventFormat::Json).unwrap();
        assert_eq!(record.timestamp, u64::MAX);
    }

    #[test]
    fn given_bson_format_then_the_payload_is_the_event_itself() {
        let record = change_record(&raw(event()), EventFormat::Bson).unwrap();
        assert_eq!(record.encoding, Encoding::Bson);
        assert_eq!(Document::from_reader(record.payload.as_slice()).unwrap(), event());
        // JSON records cut the key and token from the event's JSON; BSON
        // ones write them on their own. Both must agree.
        let json = change_record(&raw(event()), EventFormat::Json).unwrap();
        assert_eq!((&record.key, &record.headers), (&json.key, &json.headers));
    }

    #[test]
    fn given_a_copied_document_then_it_reads_like_an_insert() {
        let position = ChangePosition::Copy { started: (5, 1), copied: 3, last_id: Bson::Int32(9), stream_token: None };
        let record = copy_record(doc! { "_id": 9, "a": 1 }, "iot", "readings", &position, EventFormat::Json).unwrap();
        let payload: serde_json::Value = serde_json::from_slice(&record.payload).unwrap();
        assert_eq!(payload["operationType"], "insert");
        assert_eq!(payload["fullDocument"], serde_json::json!({ "_id": 9, "a": 1 }));
        assert_eq!(payload["copyExisting"], true);
        assert_eq!(record.key.as_deref(), Some(&br#"{"_id":9}"#[..]));
    }
}
