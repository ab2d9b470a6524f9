//! Turning a batch's outputs into MongoDB writes, with no I/O: documents,
//! their ids, filters and size checks. An input whose outputs cannot all be
//! written is rejected whole, so a record is never half-delivered.

use std::borrow::Cow;
use std::sync::Arc;

use bson::raw::cstr;
use bson::spec::BinarySubtype;
use bson::{Binary, Bson, DateTime, Document, RawBson, RawDocumentBuf, doc};

use crate::config::{MongoSinkConfig, WriteMode, collection_name_problem};
use crate::encoding::bson_frame::{close, elements, open};
use crate::encoding::document::to_raw_document;
use crate::record::{Batch, BatchSource, Encoding, Origin, Record, Write, position_id};
use crate::record::{OutputRef, RecordResult};
use crate::sink::Rejection;

/// MongoDB's limit on one document.
const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// One write against one collection.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Insert(RawDocumentBuf),
    /// `update` holds `$set` (and `$setOnInsert` for a carried `_id`).
    Upsert {
        filter: Document,
        update: Document,
    },
    Replace {
        filter: Document,
        replacement: Document,
    },
    Delete {
        filter: Document,
    },
}

impl Op {
    /// The op's place in [`WRITE_KINDS`](crate::telemetry::events::WRITE_KINDS):
    /// insert, upsert, replace, delete.
    pub fn kind_index(&self) -> usize {
        match self {
            Op::Insert(_) => 0,
            Op::Upsert { .. } => 1,
            Op::Replace { .. } => 2,
            Op::Delete { .. } => 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedWrite {
    /// Index of the input record it came from.
    pub input: usize,
    /// Shared by consecutive writes to one collection, so a batch does not
    /// allocate the name once per document.
    pub collection: Arc<str>,
    pub op: Op,
}

/// The writes for every emitted output, in source order, and the inputs
/// that cannot be written at all.
pub fn plan(
    batch: &Batch,
    results: &[RecordResult],
    config: &MongoSinkConfig,
    lineage: Option<&str>,
) -> (Vec<PlannedWrite>, Vec<Rejection>) {
    let mut writes: Vec<PlannedWrite> = Vec::with_capacity(results.len());
    let mut rejections = Vec::new();
    for (input, (record, result)) in batch.records.iter().zip(results).enumerate() {
        let first_of_input = writes.len();
        let several = result.output_count() > 1;
        for (n, output) in result.outputs(record).enumerate() {
            let id_suffix = several.then_some(n);
            match plan_output(&batch.source, record, id_suffix, output, config, lineage) {
                Ok((name, op)) => {
                    let collection = match writes.last() {
                        Some(previous) if *previous.collection == *name => previous.collection.clone(),
                        _ => Arc::from(name),
                    };
                    writes.push(PlannedWrite { input, collection, op });
                }
                Err(reason) => {
                    writes.truncate(first_of_input);
                    rejections.push(Rejection { input, reason });
                    break;
                }
            }
        }
    }
    (writes, rejections)
}

fn plan_output<'a>(
    source: &BatchSource,
    record: &Record,
    id_suffix: Option<usize>,
    output: OutputRef<'a>,
    config: &'a MongoSinkConfig,
    lineage: Option<&str>,
) -> Result<(&'a str, Op), String> {
    let collection = output.collection.unwrap_or(&config.collection);
    if let Some(problem) = collection_name_problem(collection) {
        return Err(problem);
    }
    let mut raw = document(output)?;
    if let Some(field) = &config.metadata_field {
        raw = with_fields_appended(&raw, &doc! { field: metadata(source, record, lineage) })?;
    }
    let write = output.write.cloned().unwrap_or_else(|| default_write(config));
    if write == Write::Insert {
        // The hot path stays in BSON bytes from the payload to the driver.
        if raw.get("_id").ok().flatten().is_none() {
            let id = insert_id(&raw, source, record, id_suffix, config)?;
            raw = with_id_first(raw, id)?;
        }
        return Ok((collection, Op::Insert(within_limit(raw)?)));
    }
    let document = Document::try_from(raw.as_ref()).map_err(|error| format!("cannot read the document: {error}"))?;
    let op = match write {
        Write::Insert => unreachable!("handled above"),
        Write::Upsert(key) => {
            let key = key_or_default(key, config);
            let filter = filter(&document, &key)?;
            let mut set = document;
            let id = set.remove("_id");
            let mut update = Document::new();
            if !set.is_empty() {
                update.insert("$set", set);
            }
            match id {
                Some(id) if !key.iter().any(|field| field == "_id") => {
                    update.insert("$setOnInsert", doc! { "_id": id });
                }
                _ if update.is_empty() => {
                    update.insert("$setOnInsert", filter.clone());
                }
                _ => {}
            }
            checked_raw(&update)?;
            Op::Upsert { filter, update }
        }
        Write::Replace(key) => {
            let filter = filter(&document, &key_or_default(key, config))?;
            checked_raw(&document)?;
            Op::Replace { filter, replacement: document }
        }
        Write::Delete(key) => Op::Delete { filter: filter(&document, &key_or_default(key, config))? },
    };
    Ok((collection, op))
}

/// An output's payload as a document: JSON and BSON become the document
/// itself; text and bytes are stored in a `payload` field.
fn document(output: OutputRef) -> Result<RawDocumentBuf, String> {
    match output.encoding {
        Encoding::Json | Encoding::Bson => {
            to_raw_document(output.payload, output.encoding).map_err(|error| crate::error::error_chain(&error))
        }
        Encoding::Text => match String::from_utf8(output.payload.to_vec()) {
            Ok(text) => checked_raw(&doc! { "payload": text }),
            Err(error) => Err(format!("a text payload is not UTF-8: {error}")),
        },
        Encoding::Binary => {
            checked_raw(&doc! { "payload": Binary { subtype: BinarySubtype::Generic, bytes: output.payload.to_vec() } })
        }
    }
}

/// The `_id` of an inserted document: the configured field's value, or the
/// source position (plus `:n` for the n-th of several outputs), so that a
/// replay inserts the same ids and is recognised as already written.
fn insert_id(
    document: &RawDocumentBuf,
    source: &BatchSource,
    record: &Record,
    id_suffix: Option<usize>,
    config: &MongoSinkConfig,
) -> Result<RawBson, String> {
    if let Some(field) = &config.id_field {
        let value = document.get(field).map_err(|error| format!("cannot read `{field}`: {error}"))?;
        let value = value.ok_or_else(|| format!("document has no `{field}` field to take its _id from"))?;
        return Ok(RawBson::from(value));
    }
    let position = position_id(source, &record.origin);
    Ok(RawBson::String(match id_suffix {
        Some(n) => format!("{position}:{n}"),
        None => position,
    }))
}

fn default_write(config: &MongoSinkConfig) -> Write {
    match config.write {
        WriteMode::Insert => Write::Insert,
        WriteMode::Upsert => Write::Upsert(Vec::new()),
        WriteMode::Replace => Write::Replace(Vec::new()),
        WriteMode::Delete => Write::Delete(Vec::new()),
    }
}

/// A transform's key, or the pipeline's when it gave none (the pipeline's
/// is never empty: validated).
fn key_or_default(key: Vec<String>, config: &MongoSinkConfig) -> Cow<'_, [String]> {
    if key.is_empty() { Cow::Borrowed(&config.key) } else { Cow::Owned(key) }
}

/// `{field: value, ...}` for the key fields (dotted paths reach into
/// sub-documents).
fn filter(document: &Document, key: &[String]) -> Result<Document, String> {
    let mut filter = Document::new();
    for field in key {
        let value = lookup(document, field).ok_or_else(|| format!("document has no key field `{field}`"))?;
        filter.insert(field, value.clone());
    }
    Ok(filter)
}

fn lookup<'a>(document: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut parts = path.split('.');
    let mut value = document.get(parts.next()?)?;
    for part in parts {
        value = value.as_document()?.get(part)?;
    }
    Some(value)
}

fn metadata(source: &BatchSource, record: &Record, lineage: Option<&str>) -> Document {
    let mut metadata = Document::new();
    if let BatchSource::Iggy(topic) = source {
        metadata.insert("stream", &topic.stream);
        metadata.insert("topic", &topic.topic);
    }
    if let Origin::Iggy(position) = &record.origin {
        metadata.insert("partition", i64::from(position.partition));
        metadata.insert("offset", position.offset as i64);
        let id = (u128::from(position.message_id.high) << 64) | u128::from(position.message_id.low);
        metadata.insert("message_id", id.to_string());
    }
    metadata.insert("timestamp", DateTime::from_millis((record.timestamp / 1000) as i64));
    if let Some(lineage) = lineage {
        metadata.insert("transforms", lineage);
    }
    metadata
}

/// `document` with `_id` as its first field, as MongoDB stores it: the
/// element is appended, then rotated to the front of the encoded fields in
/// the document's own buffer, rather than re-inserting every field.
fn with_id_first(mut document: RawDocumentBuf, id: RawBson) -> Result<RawDocumentBuf, String> {
    let fields_end = document.as_bytes().len() - 1;
    document.append(cstr!("_id"), id);
    let mut bytes = document.into_bytes();
    let id_end = bytes.len() - 1;
    bytes[4..id_end].rotate_right(id_end - fields_end);
    RawDocumentBuf::from_bytes(bytes).map_err(|error| format!("cannot encode the document: {error}"))
}

/// `document` with the fields of `extra` added at its end.
fn with_fields_appended(document: &RawDocumentBuf, extra: &Document) -> Result<RawDocumentBuf, String> {
    join(document, &checked_raw(extra)?)
}

/// One document holding the fields of `first`, then those of `second`.
fn join(first: &RawDocumentBuf, second: &RawDocumentBuf) -> Result<RawDocumentBuf, String> {
    let (first, second) = (elements(first.as_bytes()), elements(second.as_bytes()));
    let mut bytes = Vec::with_capacity(4 + first.len() + second.len() + 1);
    let start = open(&mut bytes);
    bytes.extend_from_slice(first);
    bytes.extend_from_slice(second);
    close(&mut bytes, start).map_err(|error| error.to_string())?;
    RawDocumentBuf::from_bytes(bytes).map_err(|error| format!("cannot encode the document: {error}"))
}

/// The document, if MongoDB will take its size.
fn within_limit(document: RawDocumentBuf) -> Result<RawDocumentBuf, String> {
    match document.as_bytes().len() {
        size if size > MAX_DOCUMENT_BYTES => Err(format!("document is {size} bytes, above MongoDB's limit of 16 MiB")),
        _ => Ok(document),
    }
}

fn checked_raw(document: &Document) -> Result<RawDocumentBuf, String> {
    within_limit(RawDocumentBuf::try_from(document).map_err(|error| format!("cannot encode the document: {error}"))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Emitted, Failure};
    use crate::record::{Header, IggyPosition, IggyTopic, MessageId};

    fn config() -> MongoSinkConfig {
        MongoSinkConfig {
            uri: "mongodb://localhost".into(),
            database: "iot".into(),
            collection: "readings".into(),
            write: WriteMode::Insert,
            key: vec!["_id".into()],
            id_field: None,
            metadata_field: None,
            max_concurrent_writes: 4,
        }
    }

    fn batch(n: usize) -> Batch {
        let records = (0..n)
            .map(|i| Record {
                payload: Vec::new(),
                encoding: Encoding::Json,
                key: None,
                headers: Some(vec![Header { name: "h".into(), value: "v".into() }]),
                timestamp: 1_764_126_000_000_000,
                origin: Origin::Iggy(IggyPosition {
                    partition: 1,
                    offset: 40 + i as u64,
                    message_id: MessageId { high: 0, low: 5 },
                    timestamp: 0,
                }),
            })
            .collect();
        Batch { source: BatchSource::Iggy(IggyTopic { stream: "sensors".into(), topic: "readings".into() }), records }
    }

    fn json(payload: &str) -> Emitted {
        Emitted {
            payload: payload.as_bytes().to_vec(),
            encoding: Encoding::Json,
            key: None,
            headers: Vec::new(),
            collection: None,
            write: None,
        }
    }

    fn inserted(op: &Op) -> Document {
        match op {
            Op::Insert(raw) => Document::try_from(raw.as_ref()).unwrap(),
            other => panic!("expected an insert, got {other:?}"),
        }
    }

    #[test]
    fn given_inserts_then_ids_come_from_the_position_and_nth_output() {
        let results = vec![
            RecordResult::Emitted(vec![json(r#"{"a":1}"#)]),
            RecordResult::Emitted(vec![json(r#"{"a":2}"#), json(r#"{"a":3}"#)]),
            RecordResult::Dropped,
        ];
        let (writes, rejections) = plan(&batch(3), &results, &config(), None);
        assert!(rejections.is_empty());
        let ids: Vec<Bson> = writes.iter().map(|write| inserted(&write.op).get("_id").unwrap().clone()).collect();
        assert_eq!(
            ids,
            [Bson::from("sensors:readings:1:40"), "sensors:readings:1:41:0".into(), "sensors:readings:1:41:1".into()]
        );
        assert_eq!(writes.iter().map(|write| write.input).collect::<Vec<_>>(), [0, 1, 1]);
        let Op::Insert(first) = &writes[0].op else { panic!("an insert") };
        let expected = bson::rawdoc! { "_id": "sensors:readings:1:40", "a": 1 };
        assert_eq!(first.as_bytes(), expected.as_bytes(), "_id leads, as MongoDB stores it");
        assert!(writes.iter().all(|write| &*write.collection == "readings"));
    }

    #[test]
    fn given_an_unchanged_record_then_the_record_itself_is_written() {
        let mut batch = batch(1);
        batch.records[0].payload = br#"{"a":1}"#.to_vec();
        let (writes, rejections) = plan(&batch, &[RecordResult::Unchanged], &config(), None);
        assert!(rejections.is_empty());
        assert_eq!(inserted(&writes[0].op), doc! { "_id": "sensors:readings:1:40", "a": 1 });
    }

    #[test]
    fn given_an_own_id_or_an_id_field_then_keeps_it() {
        let (writes, _) = plan(&batch(1), &[RecordResult::Emitted(vec![json(r#"{"_id":7,"a":1}"#)])], &config(), None);
        assert_eq!(inserted(&writes[0].op).get_i32("_id").unwrap(), 7);

        let config = MongoSinkConfig { id_field: Some("reading_id".into()), ..config() };
        let (writes, _) =
            plan(&batch(1), &[RecordResult::Emitted(vec![json(r#"{"reading_id":"r9"}"#)])], &config, None);
        assert_eq!(inserted(&writes[0].op).get_str("_id").unwrap(), "r9");
        let output = json(r#"{"reading_id":12,"at":{"site":"s1","tags":["a"]}}"#);
        let (writes, _) = plan(&batch(1), &[RecordResult::Emitted(vec![output])], &config, None);
        let Op::Insert(document) = &writes[0].op else { panic!("an insert") };
        let expected = bson::rawdoc! { "_id": 12, "reading_id": 12, "at": { "site": "s1", "tags": ["a"] } };
        assert_eq!(document.as_bytes(), expected.as_bytes(), "_id leads, the fields follow unchanged");
        let (_, rejections) = plan(&batch(1), &[RecordResult::Emitted(vec![json(r#"{"other":1}"#)])], &config, None);
        assert_eq!(rejections[0].reason, "document has no `reading_id` field to take its _id from");
    }

    #[test]
    fn given_a_metadata_field_then_the_document_carries_its_source_and_the_transforms_that_made_it() {
        let config = MongoSinkConfig { metadata_field: Some("_iggy".into()), ..config() };
        let lineage = Some("enrich@52d4eb6e660a,redact@0f1e2d3c4b5a");
        let (writes, _) = plan(&batch(1), &[RecordResult::Emitted(vec![json(r#"{"a":1}"#)])], &config, lineage);
        let metadata = inserted(&writes[0].op).get_document("_iggy").unwrap().clone();
        assert_eq!(metadata.get_str("stream").unwrap(), "sensors");
        assert_eq!(metadata.get_i64("partition").unwrap(), 1);
        assert_eq!(metadata.get_i64("offset").unwrap(), 40);
        assert_eq!(metadata.get_str("message_id").unwrap(), "5");
        assert_eq!(metadata.get_datetime("timestamp").unwrap().timestamp_millis(), 1_764_126_000_000);
        assert_eq!(metadata.get_str("transforms").unwrap(), "enrich@52d4eb6e660a,redact@0f1e2d3c4b5a");
        let (writes, _) = plan(&batch(1), &[RecordResult::Emitted(vec![json(r#"{"a":1}"#)])], &config, None);
        assert!(!inserted(&writes[0].op).get_document("_iggy").unwrap().contains_key("transforms"), "none ran");
    }

    #[test]
    fn given_upserts_then_filter_by_key_and_set_the_rest() {
        let config = MongoSinkConfig { write: WriteMode::Upsert, key: vec!["sensor_id".into()], ..config() };
        let (writes, _) = plan(
            &batch(1),
            &[RecordResult::Emitted(vec![json(r#"{"_id":"x","sensor_id":"s1","t":2}"#)])],
            &config,
            None,
        );
        let Op::Upsert { filter, update } = &writes[0].op else { panic!("expected an upsert") };
        assert_eq!(filter, &doc! { "sensor_id": "s1" });
        assert_eq!(update, &doc! { "$set": { "sensor_id": "s1", "t": 2 }, "$setOnInsert": { "_id": "x" } });
    }

    #[test]
    fn given_a_transform_chosen_write_and_collection_then_they_win() {
        let mut output = json(r#"{"_id":3,"gone":true}"#);
        output.write = Some(Write::Delete(Vec::new()));
        output.collection = Some("archive".into());
        let (writes, _) = plan(&batch(1), &[RecordResult::Emitted(vec![output])], &config(), None);
        assert_eq!(
            writes[0],
            PlannedWrite { input: 0, collection: "archive".into(), op: Op::Delete { filter: doc! { "_id": 3 } } }
        );
    }

    #[test]
    fn given_an_unwritable_output_then_the_whole_input_is_rejected() {
        let mut output = json(r#"{"a":1}"#);
        output.write = Some(Write::Replace(vec!["missing".into()]));
        let results = vec![
            RecordResult::Emitted(vec![json(r#"{"ok":0}"#)]),
            RecordResult::Emitted(vec![json(r#"{"ok":1}"#), output]),
            RecordResult::Emitted(vec![json("[1]")]),
        ];
        let (writes, rejections) = plan(&batch(3), &results, &config(), None);
        let inputs: Vec<usize> = writes.iter().map(|write| write.input).collect();
        assert_eq!(inputs, [0], "no half-delivered input: {writes:?}");
        assert_eq!(rejections[0], Rejection { input: 1, reason: "document has no key field `missing`".into() });
        assert_eq!(rejections[1].input, 2);
        assert!(rejections[1].reason.starts_with("payload is a JSON array, not an object"), "{}", rejections[1].reason);
    }

    #[test]
    fn given_text_binary_or_oversized_outputs_then_wraps_or_rejects() {
        let mut text = json("hello");
        text.encoding = Encoding::Text;
        let mut bytes = json("\u{0}\u{1}");
        bytes.encoding = Encoding::Binary;
        let huge = json(&format!(r#"{{"s":"{}"}}"#, "x".repeat(MAX_DOCUMENT_BYTES)));
        let results = vec![
            RecordResult::Emitted(vec![text]),
            RecordResult::Emitted(vec![bytes]),
            RecordResult::Emitted(vec![huge]),
            RecordResult::Failed(Failure { transform: "t".into(), reason: "r".into() }),
        ];
        let (writes, rejections) = plan(&batch(4), &results, &config(), None);
        assert_eq!(inserted(&writes[0].op).get_str("payload").unwrap(), "hello");
        assert_eq!(inserted(&writes[1].op).get_binary_generic("payload").unwrap(), &vec![0u8, 1]);
        assert_eq!(rejections.len(), 1, "failed inputs are the transform stage's to report");
        assert!(rejections[0].reason.contains("above MongoDB's limit of 16 MiB"), "{}", rejections[0].reason);
    }
}
