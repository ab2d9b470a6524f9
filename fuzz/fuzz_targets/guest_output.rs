//! What a hostile transform can return, read by the host: any outcomes
//! (wrong counts, drops, fails with any text, one or many outputs) with any
//! payload bytes, encodings, keys, headers, collections and write kinds,
//! through a chain of up to three transforms (`run_answers`, the chain
//! without WebAssembly), then into every sink's planning and the dead
//! letters. Every input gets one result; every planned MongoDB write can
//! be sent; no input is half-written.

#![no_main]

use std::collections::BTreeSet;

use arbitrary::Arbitrary;
use bson::{Document, RawDocumentBuf};
use ferry::config::{IggyProtocol, IggySinkConfig, MongoSinkConfig, PartitionBy, WriteMode};
use ferry::record::{Batch, Failure, Outcome, RecordResult};
use ferry::sink::console::ConsolePreparer;
use ferry::record::DeadLetter;
use ferry::sink::dead_letter::message;
use ferry::sink::iggy::IggySink;
use ferry::sink::mongodb::{Op, plan};
use ferry::sink::{Prepare, Sink};
use ferry::telemetry::PipelineTelemetry;
use ferry::wasm::{Answer, run_answers};
use ferry_fuzz::{ArbBatch, ArbOutcome};
use libfuzzer_sys::fuzz_target;

/// MongoDB's limit on one document.
const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Arbitrary)]
struct Input {
    batch: ArbBatch,
    transforms: Vec<Guest>,
    write: u8,
    key: Vec<Field>,
    id_field: Option<Field>,
    metadata_field: Option<Field>,
    partition_by: u8,
    lineage: Option<String>,
}

/// One transform: the outcomes it hands out in turn, and how it breaks the
/// contract, if it does.
#[derive(Debug, Arbitrary)]
struct Guest {
    name: String,
    outcomes: Vec<ArbOutcome>,
    one_too_many: bool,
    rejects: Option<String>,
}

/// Field names a sink configuration may use (validated: none empty).
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Field {
    Id,
    A,
    Nested,
    Missing,
}

impl Field {
    fn name(self) -> String {
        match self {
            Self::Id => "_id",
            Self::A => "a",
            Self::Nested => "a.b",
            Self::Missing => "missing",
        }
        .to_owned()
    }
}

fuzz_target!(|input: Input| {
    let batch = input.batch.batch();
    let transforms: Vec<(String, Answer<'_>)> = input.transforms.iter().take(3).map(answer).collect();
    let results = match run_answers(&batch, transforms) {
        Ok(results) => results,
        // As the transform stage reports a batch the chain could not run.
        Err(error) => {
            let failure = Failure { transform: error.transform().to_owned(), reason: error.to_string() };
            vec![RecordResult::Failed(failure); batch.records.len()]
        }
    };
    assert_eq!(results.len(), batch.records.len(), "one result per input");
    dead_letters(&batch, &results);
    mongodb(&input, &batch, &results);
    let iggy = IggySinkConfig {
        address: "127.0.0.1:8090".into(),
        username: "iggy".into(),
        password: "iggy".into(),
        tls: None,
        protocol: IggyProtocol::Auto,
        stream: "s".into(),
        topic: "t".into(),
        create: None,
        partition_by: [PartitionBy::DocumentKey, PartitionBy::Balanced, PartitionBy::Key]
            [usize::from(input.partition_by) % 3],
    };
    let telemetry = PipelineTelemetry::detached("fuzz");
    IggySink::new(iggy, input.lineage.clone(), &telemetry).preparer().prepare(&batch, &results);
    ConsolePreparer.prepare(&batch, &results);
});

fn answer(guest: &Guest) -> (String, Answer<'_>) {
    let respond = move |batch: &Batch| -> Result<Vec<Outcome>, String> {
        if let Some(reason) = &guest.rejects {
            return Err(reason.clone());
        }
        let count = batch.records.len() + usize::from(guest.one_too_many);
        let pick = |index: usize| match guest.outcomes.len() {
            0 => Outcome::Drop,
            len => guest.outcomes[index % len].clone().into(),
        };
        Ok((0..count).map(pick).collect())
    };
    (guest.name.clone(), Box::new(respond))
}

/// Each failed input's dead letter is built as the writer builds it.
fn dead_letters(batch: &Batch, results: &[RecordResult]) {
    for (input, result) in results.iter().enumerate() {
        if let RecordResult::Failed(failure) = result {
            let stage = format!("transform:{}", failure.transform);
            let letter = DeadLetter { input, stage, reason: failure.reason.clone() };
            let _ = message("pipeline", batch, &letter);
        }
    }
}

fn mongodb(input: &Input, batch: &Batch, results: &[RecordResult]) {
    let mut key: Vec<String> = input.key.iter().map(|field| field.name()).collect();
    if key.is_empty() {
        key.push("_id".to_owned());
    }
    let config = MongoSinkConfig {
        uri: "mongodb://localhost".into(),
        database: "d".into(),
        collection: "c".into(),
        write: [WriteMode::Insert, WriteMode::Upsert, WriteMode::Replace, WriteMode::Delete]
            [usize::from(input.write) % 4],
        key,
        id_field: input.id_field.map(Field::name),
        metadata_field: input
            .metadata_field
            .filter(|field| !matches!(field, Field::Id | Field::Nested))
            .map(Field::name),
    };
    let (writes, rejections) = plan(batch, results, &config, input.lineage.as_deref());
    let rejected: BTreeSet<usize> = rejections.iter().map(|rejection| rejection.input).collect();
    assert!(writes.windows(2).all(|pair| pair[0].input <= pair[1].input), "writes keep source order");
    for write in &writes {
        assert!(!rejected.contains(&write.input), "input {} is half-written", write.input);
        assert!(
            matches!(results[write.input], RecordResult::Emitted(_) | RecordResult::Unchanged),
            "a write for an input that has no outputs"
        );
        let sendable = |document: &Document| {
            let raw = RawDocumentBuf::try_from(document).expect("a planned document encodes");
            assert!(raw.as_bytes().len() <= MAX_DOCUMENT_BYTES);
        };
        match &write.op {
            Op::Insert(raw) => {
                assert!(raw.as_bytes().len() <= MAX_DOCUMENT_BYTES);
                let document = Document::try_from(raw.as_ref()).expect("an inserted document reads");
                assert!(document.contains_key("_id"), "an inserted document has its _id");
            }
            Op::Upsert { filter, update } => {
                sendable(filter);
                sendable(update);
            }
            Op::Replace { filter, replacement } => {
                sendable(filter);
                sendable(replacement);
            }
            Op::Delete { filter } => sendable(filter),
        }
    }
}
