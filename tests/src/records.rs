//! Building batches and reading results, so tests say what they mean.

use ferry::record::{Batch, BatchSource, Encoding, Header, Origin, Record};
use ferry::record::{Emitted, RecordResult};

/// A batch of JSON (or any text) payloads, numbered like lines of a file.
pub fn batch(payloads: &[&str]) -> Batch {
    let records = payloads
        .iter()
        .zip(1..)
        .map(|(payload, line)| Record {
            payload: payload.as_bytes().to_vec(),
            encoding: Encoding::Json,
            key: Some(format!("key-{line}").into_bytes()),
            headers: Some(vec![Header { name: "source".into(), value: "test".into() }]),
            timestamp: 1_764_126_000_000_000,
            origin: Origin::File(line),
        })
        .collect();
    Batch { source: BatchSource::File, records }
}

/// The outputs of an emitted result; panics with the result otherwise.
pub fn emitted(result: &RecordResult) -> &[Emitted] {
    match result {
        RecordResult::Emitted(outputs) => outputs,
        other => panic!("expected an emit, got {other:?}"),
    }
}

/// An output's payload as JSON.
pub fn json(output: &Emitted) -> serde_json::Value {
    serde_json::from_slice(&output.payload)
        .unwrap_or_else(|error| panic!("payload {:?} is not JSON: {error}", String::from_utf8_lossy(&output.payload)))
}

/// An output's payload as text.
pub fn text(output: &Emitted) -> &str {
    std::str::from_utf8(&output.payload).expect("payload is UTF-8")
}
