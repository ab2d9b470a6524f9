//! What `ferry test` says about each input line, as text for people and as
//! JSON lines for tools and golden files.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use crate::encoding::document;
use crate::error::error_chain;
use crate::record::{Encoding, Record, Write as WriteKind};
use crate::record::{OutputRef, RecordResult};

/// The report for one input line.
#[derive(Debug, Serialize)]
pub(super) struct Entry {
    pub line: u64,
    #[serde(flatten)]
    pub result: EntryResult,
}

#[derive(Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub(super) enum EntryResult {
    Emit { outputs: Vec<OutputReport> },
    Drop,
    Fail { transform: String, reason: String },
}

/// One output, with its payload decoded the way a sink would decode it.
#[derive(Debug, Serialize)]
pub(super) struct OutputReport {
    /// `null`: the pipeline's default collection.
    collection: Option<String>,
    /// `null`: the pipeline's default write.
    write: Option<WriteReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, String>,
    encoding: &'static str,
    /// Documents and JSON values in relaxed Extended JSON; text as a string;
    /// bytes as `{"$binary": ...}`.
    payload: serde_json::Value,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "lowercase")]
enum WriteReport {
    Insert,
    Upsert(Vec<String>),
    Replace(Vec<String>),
    Delete(Vec<String>),
}

impl Entry {
    /// Builds the entry for `line` (whose record is `input`);
    /// `last_transform` is blamed for an output no sink could decode.
    pub fn new(line: u64, result: &RecordResult, input: &Record, last_transform: &str) -> Self {
        let result = match result {
            RecordResult::Dropped => EntryResult::Drop,
            RecordResult::Failed(failure) => {
                EntryResult::Fail { transform: failure.transform.clone(), reason: failure.reason.clone() }
            }
            RecordResult::Emitted(_) | RecordResult::Unchanged => {
                let reports: Result<Vec<_>, _> = result.outputs(input).enumerate().map(OutputReport::new).collect();
                match reports {
                    Ok(outputs) => EntryResult::Emit { outputs },
                    Err(reason) => EntryResult::Fail { transform: last_transform.to_owned(), reason },
                }
            }
        };
        Self { line, result }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("reports are plain data")
    }

    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        match &self.result {
            EntryResult::Drop => writeln!(out, "line {}: drop", self.line),
            EntryResult::Fail { transform, reason } => {
                writeln!(out, "line {}: FAIL in {transform}: {reason}", self.line)
            }
            EntryResult::Emit { outputs } => {
                for output in outputs {
                    writeln!(out, "line {}: emit {}", self.line, output.describe())?;
                }
                Ok(())
            }
        }
    }
}

impl OutputReport {
    fn new((index, output): (usize, OutputRef)) -> Result<Self, String> {
        let payload = document::payload_to_json(output.payload, output.encoding)
            .map_err(|error| format!("output {} cannot be written: {}", index + 1, error_chain(&error)))?;
        Ok(Self {
            collection: output.collection.map(str::to_owned),
            write: output.write.cloned().map(WriteReport::from),
            key: output.key.map(|key| String::from_utf8_lossy(key).into_owned()),
            headers: output.headers.iter().map(|header| (header.name.clone(), header.value.clone())).collect(),
            encoding: encoding_name(output.encoding),
            payload,
        })
    }

    fn describe(&self) -> String {
        let mut text = format!("→ {}", self.collection.as_deref().unwrap_or("(default collection)"));
        if let Some(write) = &self.write {
            text.push_str(&format!(" ({})", serde_json::to_string(write).expect("plain data")));
        }
        if let Some(key) = &self.key {
            text.push_str(&format!(" key={key}"));
        }
        for (name, value) in &self.headers {
            text.push_str(&format!(" {name}={value}"));
        }
        format!("{text} {}", self.payload)
    }
}

impl From<WriteKind> for WriteReport {
    fn from(write: WriteKind) -> Self {
        match write {
            WriteKind::Insert => Self::Insert,
            WriteKind::Upsert(key) => Self::Upsert(key),
            WriteKind::Replace(key) => Self::Replace(key),
            WriteKind::Delete(key) => Self::Delete(key),
        }
    }
}

fn encoding_name(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Json => "json",
        Encoding::Bson => "bson",
        Encoding::Text => "text",
        Encoding::Binary => "binary",
    }
}

/// Counts for the summary line.
#[derive(Debug, Default)]
pub(super) struct Summary {
    records: usize,
    emitted: usize,
    outputs: usize,
    dropped: usize,
    failed: usize,
}

impl Summary {
    pub fn add(&mut self, entry: &Entry) {
        self.records += 1;
        match &entry.result {
            EntryResult::Emit { outputs } => {
                self.emitted += 1;
                self.outputs += outputs.len();
            }
            EntryResult::Drop => self.dropped += 1,
            EntryResult::Fail { .. } => self.failed += 1,
        }
    }

    pub fn failed(&self) -> usize {
        self.failed
    }

    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{} records: {} emitted ({} outputs), {} dropped, {} failed",
            self.records, self.emitted, self.outputs, self.dropped, self.failed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Origin;
    use crate::record::{Emitted, Failure};
    use serde_json::json;

    /// The line a result is for: only an unchanged result reads it.
    fn input() -> Record {
        Record {
            payload: b"in".to_vec(),
            encoding: Encoding::Text,
            key: None,
            headers: None,
            timestamp: 0,
            origin: Origin::File(1),
        }
    }

    fn emitted(payload: &[u8], encoding: Encoding) -> Emitted {
        Emitted { payload: payload.to_vec(), encoding, key: None, headers: vec![], collection: None, write: None }
    }

    #[test]
    fn given_an_extended_json_output_then_the_report_keeps_its_type() {
        let result =
            RecordResult::Emitted(vec![emitted(br#"{"ts":{"$date":"2026-11-26T03:00:00Z"}}"#, Encoding::Json)]);
        let entry = Entry::new(4, &result, &input(), "t");
        assert_eq!(
            entry.to_json(),
            json!({"line": 4, "outcome": "emit", "outputs": [{
                "collection": null, "write": null, "encoding": "json",
                "payload": {"ts": {"$date": "2026-11-26T03:00:00Z"}}
            }]})
        );
    }

    #[test]
    fn given_an_unchanged_record_then_the_report_shows_the_input_as_its_output() {
        let entry = Entry::new(1, &RecordResult::Unchanged, &input(), "t");
        assert_eq!(entry.to_json()["outputs"][0]["payload"], "in");
    }

    #[test]
    fn given_an_undecodable_output_then_the_record_fails_naming_the_transform() {
        let entry = Entry::new(1, &RecordResult::Emitted(vec![emitted(b"{oops", Encoding::Json)]), &input(), "last");
        let json = entry.to_json();
        assert_eq!(json["outcome"], "fail");
        assert_eq!(json["transform"], "last");
        assert!(
            json["reason"].as_str().unwrap().starts_with("output 1 cannot be written: payload is not valid JSON: ")
        );
    }

    #[test]
    fn given_each_outcome_then_text_and_summary_say_so() {
        let entries = [
            Entry::new(1, &RecordResult::Dropped, &input(), "t"),
            Entry::new(
                2,
                &RecordResult::Failed(Failure { transform: "t".into(), reason: "bad".into() }),
                &input(),
                "t",
            ),
            Entry::new(3, &RecordResult::Emitted(vec![emitted(b"hi", Encoding::Text)]), &input(), "t"),
        ];
        let mut out = Vec::new();
        let mut summary = Summary::default();
        for entry in &entries {
            entry.write_text(&mut out).unwrap();
            summary.add(entry);
        }
        summary.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "line 1: drop\nline 2: FAIL in t: bad\nline 3: emit → (default collection) \"hi\"\n\
             3 records: 1 emitted (1 outputs), 1 dropped, 1 failed\n"
        );
    }
}
