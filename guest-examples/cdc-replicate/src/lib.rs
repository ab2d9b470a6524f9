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

use ferry_transform::{Error, NoConfig, Outcome, PayloadError, Record, Transform};
use serde_json::Value;

struct CdcReplicate;

impl Transform for CdcReplicate {
    type Config = NoConfig;

    fn new(_config: NoConfig) -> Result<Self, String> {
        Ok(Self)
    }

    fn record(&mut self, record: Record) -> Result<Outcome, Error> {
        let event: Value = record.json().map_err(|error| match error {
            PayloadError::Json(error) => format!("payload is not a JSON change event: {error}"),
            other => other.to_string(),
        })?;
        Ok(match event.get("operationType").and_then(Value::as_str) {
            Some("insert" | "replace" | "update") => match event.get("fullDocument") {
                Some(document @ Value::Object(_)) => Outcome::emit_json(document).replace_by(["_id"]),
                Some(Value::Null) => Outcome::drop(),
                _ if event["operationType"] == "update" => Outcome::fail(
                    "the update event has no fullDocument; set full_document = \"update-lookup\" on the source",
                ),
                _ => Outcome::fail("the event has no fullDocument"),
            },
            Some("delete") => match event.get("documentKey") {
                Some(key @ Value::Object(_)) => Outcome::emit_json(key).delete_by(["_id"]),
                _ => Outcome::fail("the delete event has no documentKey"),
            },
            Some(_) => Outcome::drop(),
            None => Outcome::fail("the payload has no operationType: is it a change event?"),
        })
    }
}

ferry_transform::export!(CdcReplicate);
