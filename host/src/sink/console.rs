//! `[sink.console]`: each output as one JSON line on standard output, to
//! watch a pipeline on live data. Payloads are shown as a sink decodes them
//! (JSON and BSON as relaxed Extended JSON, text as a string, bytes as
//! `$binary`); an output no sink could decode is rejected, as the MongoDB
//! sink would, and goes to the dead-letter destination.

use std::io::Write;
use std::sync::{Arc, Mutex};

use super::{Overlap, Prepare, Rejection, Sink};
use crate::encoding::document::payload_to_json;
use crate::error::{ServiceError, error_chain};
use crate::record::{Batch, OutputRef, RecordResult, Write as WriteKind};

/// Where the lines go: standard output, or a buffer in tests.
pub type Lines = Arc<Mutex<dyn Write + Send>>;

pub struct ConsoleSink {
    out: Lines,
}

impl ConsoleSink {
    pub fn stdout() -> Self {
        Self::new(Arc::new(Mutex::new(std::io::stdout())))
    }

    pub fn new(out: Lines) -> Self {
        Self { out }
    }
}

/// A batch's lines, or why an input's output cannot be shown.
pub struct ConsoleLines {
    text: Vec<u8>,
    rejections: Vec<Rejection>,
}

/// Lines are printed in source order, one batch at a time.
impl Overlap for ConsoleLines {}

pub struct ConsolePreparer;

impl Prepare for ConsolePreparer {
    type Prepared = ConsoleLines;

    fn prepare(&self, batch: &Batch, results: &[RecordResult]) -> ConsoleLines {
        let mut lines = ConsoleLines { text: Vec::new(), rejections: Vec::new() };
        for (input, (record, result)) in batch.records.iter().zip(results).enumerate() {
            let shown: Result<Vec<serde_json::Value>, String> = result.outputs(record).map(line).collect();
            match shown {
                Ok(shown) => {
                    for value in shown {
                        serde_json::to_writer(&mut lines.text, &value).expect("JSON values serialise");
                        lines.text.push(b'\n');
                    }
                }
                Err(reason) => lines.rejections.push(Rejection { input, reason }),
            }
        }
        lines
    }
}

fn line(output: OutputRef<'_>) -> Result<serde_json::Value, String> {
    let payload = payload_to_json(output.payload, output.encoding).map_err(|error| error_chain(&error))?;
    let mut line = serde_json::Map::new();
    if let Some(collection) = output.collection {
        line.insert("collection".into(), collection.into());
    }
    if let Some(write) = output.write {
        let (kind, key) = match write {
            WriteKind::Insert => ("insert", None),
            WriteKind::Upsert(key) => ("upsert", Some(key)),
            WriteKind::Replace(key) => ("replace", Some(key)),
            WriteKind::Delete(key) => ("delete", Some(key)),
        };
        line.insert("write".into(), serde_json::json!({ "kind": kind, "key": key }));
    }
    if let Some(key) = output.key {
        line.insert("key".into(), String::from_utf8_lossy(key).into());
    }
    if !output.headers.is_empty() {
        let headers = output.headers.iter().map(|header| (header.name.clone(), header.value.clone().into()));
        line.insert("headers".into(), serde_json::Map::from_iter(headers).into());
    }
    line.insert("payload".into(), payload);
    Ok(line.into())
}

impl Sink for ConsoleSink {
    type Prepare = ConsolePreparer;

    fn preparer(&self) -> ConsolePreparer {
        ConsolePreparer
    }

    async fn connect(&mut self) -> Result<(), ServiceError> {
        Ok(())
    }

    async fn write(
        &mut self,
        _batch: &Batch,
        _results: &[RecordResult],
        prepared: &ConsoleLines,
    ) -> Result<Vec<Rejection>, ServiceError> {
        let mut out = self.out.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // A closed standard output (`ferry run ... | head`) is not worth
        // retrying; the lines are a view, not the data.
        let _ = out.write_all(&prepared.text).and_then(|()| out.flush());
        Ok(prepared.rejections.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BatchSource, Emitted, Encoding, Header, Origin, Record};

    fn record(payload: &str) -> Record {
        Record {
            payload: payload.as_bytes().to_vec(),
            encoding: Encoding::Json,
            key: None,
            headers: None,
            timestamp: 0,
            origin: Origin::File(1),
        }
    }

    #[tokio::test]
    async fn given_outputs_then_prints_one_json_line_each_and_rejects_what_no_sink_could_write() {
        let batch = Batch {
            source: BatchSource::File,
            records: vec![record(r#"{"a":1}"#), record("{}"), record("x"), record("{}")],
        };
        let routed = Emitted {
            payload: br#"{"t":{"$date":"2026-11-26T03:00:00Z"}}"#.to_vec(),
            encoding: Encoding::Json,
            key: Some(b"k".to_vec()),
            headers: vec![Header { name: "h".into(), value: "v".into() }],
            collection: Some("c".into()),
            write: Some(WriteKind::Upsert(vec!["t".into()])),
        };
        let bad = Emitted { payload: b"not json".to_vec(), ..routed.clone() };
        let results = [
            RecordResult::Unchanged,
            RecordResult::Emitted(vec![routed]),
            RecordResult::Dropped,
            RecordResult::Emitted(vec![bad]),
        ];
        let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
        let mut sink = ConsoleSink::new(buffer.clone());
        let prepared = sink.preparer().prepare(&batch, &results);
        let rejections = sink.write(&batch, &results, &prepared).await.unwrap();
        assert_eq!(rejections.len(), 1);
        assert_eq!(rejections[0].input, 3);
        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                r#"{"payload":{"a":1}}"#,
                r#"{"collection":"c","headers":{"h":"v"},"key":"k","payload":{"t":{"$date":"2026-11-26T03:00:00Z"}},"write":{"key":["t"],"kind":"upsert"}}"#,
            ]
        );
    }
}
