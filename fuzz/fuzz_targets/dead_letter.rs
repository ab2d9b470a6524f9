//! Dead letters: the message for a record that cannot be processed keeps
//! the record's headers and key and adds Ferry's own, whatever the record,
//! the stage and the reason (a hostile transform's failure text included).
//! A letter that can be built must decode and say why it is there.

#![no_main]

use arbitrary::Arbitrary;
use ferry::record::DeadLetter;
use ferry::sink::dead_letter::message;
use ferry_fuzz::ArbBatch;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    pipeline: String,
    batch: ArbBatch,
    input: usize,
    stage: String,
    reason: String,
}

fuzz_target!(|input: Input| {
    let batch = input.batch.batch();
    if batch.records.is_empty() {
        return;
    }
    let letter = DeadLetter { input: input.input % batch.records.len(), stage: input.stage, reason: input.reason };
    let Ok(message) = message(&input.pipeline, &batch, &letter) else { return };
    assert!(!message.payload.is_empty(), "Iggy refuses empty payloads");
    let headers = message.headers().expect("a dead letter's headers decode");
    let text = |name: &str| headers.iter().find(|header| header.name == name).map(|header| header.value.clone());
    if !letter.reason.is_empty() {
        let reason = text("ferry-reason").expect("a dead letter says why");
        assert!(letter.reason.starts_with(&reason), "the reason is cut, never changed");
    }
    assert!(text("ferry-source").is_some(), "a dead letter says where it came from");
});
