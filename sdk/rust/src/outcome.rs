//! What becomes of one input record, built as a sentence:
//! `Outcome::emit_json(&reading).to_collection("readings").upsert_by(["sensor_id"])`.
//! The settings apply to the last output emitted; unset ones take the
//! pipeline's defaults.

use std::fmt::Display;

use serde::Serialize;

use crate::bindings::ferry::transform::types as wit;
use crate::record::{Encoding, Record};

/// The outcome for one input record: outputs to write, a drop, or a
/// failure that sends the record to the dead-letter destination.
#[derive(Debug, Clone)]
pub struct Outcome(pub(crate) wit::Outcome);

impl Outcome {
    /// Writes `value`, serialised as JSON (relaxed Extended JSON for MongoDB
    /// types: see [`extjson`](crate::extjson)). A value that does not
    /// serialise fails the record, saying why.
    pub fn emit_json(value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(json) => Self::emit_raw_json(json),
            Err(error) => Self::fail(format!("the output does not serialise as JSON: {error}")),
        }
    }

    /// Writes JSON the transform wrote itself.
    pub fn emit_raw_json(json: impl Into<Vec<u8>>) -> Self {
        Self::emit(json.into(), Encoding::Json)
    }

    /// Writes text that is not JSON (a MongoDB sink stores it as `payload`).
    pub fn emit_text(text: impl Into<String>) -> Self {
        Self::emit(text.into().into_bytes(), Encoding::Text)
    }

    /// Writes opaque bytes (a MongoDB sink stores them as binary `payload`).
    pub fn emit_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self::emit(bytes.into(), Encoding::Binary)
    }

    /// Writes a raw BSON document.
    pub fn emit_bson(document: impl Into<Vec<u8>>) -> Self {
        Self::emit(document.into(), Encoding::Bson)
    }

    /// Writes a BSON document, encoded: every BSON type kept as it is.
    #[cfg(feature = "bson")]
    pub fn emit_document(document: &bson::Document) -> Self {
        Self::emit_bson(document.to_vec().expect("a Document always encodes"))
    }

    /// Writes the record as it came: its payload, encoding and key, moved.
    pub fn emit_record(record: Record) -> Self {
        let record = record.0;
        Self(wit::Outcome::Emit(wit::Output {
            payload: record.payload,
            encoding: record.encoding,
            collection: None,
            write: None,
            key: record.key,
            headers: Vec::new(),
        }))
    }

    fn emit(payload: Vec<u8>, encoding: Encoding) -> Self {
        Self(wit::Outcome::Emit(wit::Output {
            payload,
            encoding,
            collection: None,
            write: None,
            key: None,
            headers: Vec::new(),
        }))
    }

    /// Writes nothing for this record.
    pub fn drop() -> Self {
        Self(wit::Outcome::Drop)
    }

    /// The record cannot be processed: it goes to the dead-letter
    /// destination with `reason`, and its neighbours are unaffected.
    pub fn fail(reason: impl Display) -> Self {
        Self(wit::Outcome::Fail(reason.to_string()))
    }

    /// This outcome's outputs, then `next`'s. A failure on either side fails
    /// the whole record; drops add nothing.
    pub fn and(self, next: Outcome) -> Self {
        use wit::Outcome::{Drop, Emit, EmitMany, Fail};
        let outputs = |outcome: wit::Outcome| match outcome {
            Emit(output) => vec![output],
            EmitMany(outputs) => outputs,
            Drop | Fail(_) => Vec::new(),
        };
        match (self.0, next.0) {
            (Fail(reason), _) | (_, Fail(reason)) => Self(Fail(reason)),
            (Drop, next) => Self(next),
            (first, Drop) => Self(first),
            (first, next) => {
                let mut all = outputs(first);
                all.extend(outputs(next));
                Self(EmitMany(all))
            }
        }
    }

    /// Writes the (last) output to collection `name` instead of the
    /// pipeline's default one.
    pub fn to_collection(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.set(|output| output.collection = Some(name))
    }

    /// Inserts the (last) output (the default for MongoDB sinks).
    pub fn insert(self) -> Self {
        self.set(|output| output.write = Some(wit::Write::Insert))
    }

    /// Sets the (last) output's fields on the document matched by `key`
    /// fields, inserting it when none matches.
    pub fn upsert_by<K: Into<String>>(self, key: impl IntoIterator<Item = K>) -> Self {
        let key = key.into_iter().map(Into::into).collect();
        self.set(|output| output.write = Some(wit::Write::Upsert(key)))
    }

    /// Replaces the document matched by `key` fields with the (last) output.
    pub fn replace_by<K: Into<String>>(self, key: impl IntoIterator<Item = K>) -> Self {
        let key = key.into_iter().map(Into::into).collect();
        self.set(|output| output.write = Some(wit::Write::Replace(key)))
    }

    /// Deletes the document matched by `key` fields; the (last) output holds
    /// their values.
    pub fn delete_by<K: Into<String>>(self, key: impl IntoIterator<Item = K>) -> Self {
        let key = key.into_iter().map(Into::into).collect();
        self.set(|output| output.write = Some(wit::Write::Delete(key)))
    }

    /// Sets the (last) output's key: the partition key for an Iggy sink, the
    /// next transform's record key.
    pub fn key(self, key: impl Into<Vec<u8>>) -> Self {
        let key = key.into();
        self.set(|output| output.key = Some(key))
    }

    /// Adds a header to the (last) output (replacing an input header of the
    /// same name).
    pub fn header(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let header = wit::Header { name: name.into(), value: value.into() };
        self.set(|output| output.headers.push(header))
    }

    fn set(mut self, change: impl FnOnce(&mut wit::Output)) -> Self {
        match &mut self.0 {
            wit::Outcome::Emit(output) => change(output),
            wit::Outcome::EmitMany(outputs) => {
                if let Some(last) = outputs.last_mut() {
                    change(last);
                }
            }
            wit::Outcome::Drop | wit::Outcome::Fail(_) => {}
        }
        self
    }

    /// The outputs this outcome writes.
    pub fn outputs(&self) -> &[wit::Output] {
        match &self.0 {
            wit::Outcome::Emit(output) => std::slice::from_ref(output),
            wit::Outcome::EmitMany(outputs) => outputs,
            wit::Outcome::Drop | wit::Outcome::Fail(_) => &[],
        }
    }

    /// Why the record fails, if it does.
    pub fn failure(&self) -> Option<&str> {
        match &self.0 {
            wit::Outcome::Fail(reason) => Some(reason),
            _ => None,
        }
    }

    pub fn is_drop(&self) -> bool {
        matches!(self.0, wit::Outcome::Drop) || matches!(&self.0, wit::Outcome::EmitMany(outputs) if outputs.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_sentence_then_each_setting_lands_on_the_output() {
        let outcome = Outcome::emit_json(&serde_json::json!({"a": 1}))
            .to_collection("readings")
            .upsert_by(["sensor_id", "ts"])
            .key("s1")
            .header("plant", "7");
        let [output] = outcome.outputs() else { panic!("one output") };
        assert_eq!(output.payload, br#"{"a":1}"#);
        assert_eq!(output.collection.as_deref(), Some("readings"));
        assert!(matches!(&output.write, Some(wit::Write::Upsert(key)) if key == &["sensor_id", "ts"]));
        assert_eq!(output.key.as_deref(), Some(&b"s1"[..]));
        assert_eq!((output.headers[0].name.as_str(), output.headers[0].value.as_str()), ("plant", "7"));
    }

    #[test]
    fn given_and_then_outputs_follow_each_other_and_settings_apply_to_the_last() {
        let outcome = Outcome::emit_text("one").and(Outcome::emit_text("two")).to_collection("second");
        let outputs = outcome.outputs();
        assert_eq!(outputs.len(), 2);
        assert_eq!((outputs[0].collection.as_deref(), outputs[1].collection.as_deref()), (None, Some("second")));
        assert!(Outcome::drop().and(Outcome::drop()).is_drop());
        assert_eq!(Outcome::emit_text("x").and(Outcome::fail("bad")).failure(), Some("bad"));
    }

    #[test]
    fn given_a_record_then_it_passes_through_whole() {
        let outcome = Outcome::emit_record(Record::new(b"{}".to_vec(), Encoding::Json)).delete_by(["_id"]);
        let [output] = outcome.outputs() else { panic!("one output") };
        assert_eq!((output.payload.as_slice(), output.encoding), (&b"{}"[..], Encoding::Json));
        assert!(matches!(&output.write, Some(wit::Write::Delete(key)) if key == &["_id"]));
    }
}
