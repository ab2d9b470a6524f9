//! Replicates a collection from its change events (as Ferry's MongoDB source
//! produces them, relaxed Extended JSON) into another collection:
//!
//! - `insert`, `replace` and `update` write the event's `fullDocument` whole,
//!   replacing the document with the same `_id` (inserting it if missing),
//!   so removed fields disappear too. Updates need the source pipeline's
//!   `full_document = "update-lookup"`; an update whose document was deleted
//!   meanwhile carries none and is dropped (its delete event follows).
//! - `delete` deletes the document with the event's `_id`.
//! - Anything else (drop, rename, invalidate) is dropped.
//!
//! Writes are keyed by `_id`, so replaying events is harmless.

wit_bindgen::generate!({ path: "../../wit", world: "transform" });

use exports::ferry::transform::transformer::Guest;
use ferry::transform::types::{Batch, Encoding, Outcome, Output, Write};
use serde_json::Value;

struct CdcReplicate;

impl Guest for CdcReplicate {
    fn configure(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn transform(batch: Batch) -> Result<Vec<Outcome>, String> {
        Ok(batch.records.iter().map(|record| replicate(&record.payload, record.encoding)).collect())
    }
}

fn replicate(payload: &[u8], encoding: Encoding) -> Outcome {
    if encoding != Encoding::Json {
        return Outcome::Fail(format!("expected a JSON change event, got {encoding:?}"));
    }
    let event: Value = match serde_json::from_slice(payload) {
        Ok(event) => event,
        Err(error) => return Outcome::Fail(format!("payload is not a JSON change event: {error}")),
    };
    match event.get("operationType").and_then(Value::as_str) {
        Some("insert" | "replace" | "update") => match event.get("fullDocument") {
            Some(document @ Value::Object(_)) => write(document, Write::Replace(id_key())),
            Some(Value::Null) => Outcome::Drop,
            _ if event["operationType"] == "update" => Outcome::Fail(
                "the update event has no fullDocument; set full_document = \"update-lookup\" on the source".to_owned(),
            ),
            _ => Outcome::Fail("the event has no fullDocument".to_owned()),
        },
        Some("delete") => match event.get("documentKey") {
            Some(key @ Value::Object(_)) => write(key, Write::Delete(id_key())),
            _ => Outcome::Fail("the delete event has no documentKey".to_owned()),
        },
        Some(_) => Outcome::Drop,
        None => Outcome::Fail("the payload has no operationType: is it a change event?".to_owned()),
    }
}

fn write(document: &Value, write: Write) -> Outcome {
    Outcome::Emit(Output {
        payload: document.to_string().into_bytes(),
        encoding: Encoding::Json,
        collection: None,
        write: Some(write),
        key: None,
        headers: Vec::new(),
    })
}

fn id_key() -> Vec<String> {
    vec!["_id".to_owned()]
}

export!(CdcReplicate);
