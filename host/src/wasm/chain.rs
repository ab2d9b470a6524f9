//! The ordered chain: transforms run in file order, each seeing the previous
//! one's outputs, and every output is traced back to the input it came from.
//!
//! Tracing matters for the promise of "nothing lost": if any output derived
//! from an input fails in a later transform, the whole input fails (it goes to
//! the dead-letter destination as it was read) and none of its outputs are
//! written, so a record is never half-delivered.

use super::error::TransformError;
use super::transform::{Transform, checked_answer};
use crate::record::{Batch, Header, Outcome, Output, Record, Write};
use crate::record::{Emitted, Failure, RecordResult};

/// Transforms in the order a pipeline file lists them.
pub struct TransformChain {
    transforms: Vec<Transform>,
}

/// A record on its way through the chain.
struct InFlight {
    /// Index of the input record it derives from.
    input: usize,
    collection: Option<String>,
    write: Option<Write>,
}

impl TransformChain {
    pub fn new(transforms: Vec<Transform>) -> Self {
        Self { transforms }
    }

    pub fn transforms(&self) -> &[Transform] {
        &self.transforms
    }

    /// Which transform versions the chain runs, as outputs carry it:
    /// `enrich@52d4eb6e660a,redact@0f1e2d3c4b5a` (each name, and the first 12
    /// hex digits of its component's SHA-256); `None` without transforms.
    pub fn lineage(&self) -> Option<String> {
        let versions: Vec<String> = self.transforms.iter().map(Transform::version).collect();
        (!versions.is_empty()).then(|| versions.join(","))
    }

    /// Another instance of the chain, reporting as instance `instance` (see
    /// [`Transform::another_instance`]). Not yet started.
    pub fn another_instance(&self, instance: usize) -> Self {
        Self { transforms: self.transforms.iter().map(|transform| transform.another_instance(instance)).collect() }
    }

    /// Instantiates and configures every transform, so a bad configuration
    /// is reported before any data flows.
    pub fn start(&mut self) -> Result<(), TransformError> {
        self.transforms.iter_mut().try_for_each(Transform::start)
    }

    /// Runs `batch` through every transform. The result has one entry per
    /// input record, in order. An error means the chain could not process the
    /// batch at all (a timeout, a trap, a rejected batch) and names the
    /// transform at fault.
    pub fn run(&mut self, batch: &Batch) -> Result<Vec<RecordResult>, TransformError> {
        run_stages(&mut self.transforms, batch)
    }
}

/// One link of a chain as the chain sees it: a name, and a call per batch
/// that returns one outcome per record.
trait Stage {
    fn name(&self) -> &str;
    fn call(&mut self, batch: &Batch) -> Result<Vec<Outcome>, TransformError>;
}

impl Stage for Transform {
    fn name(&self) -> &str {
        Transform::name(self)
    }

    fn call(&mut self, batch: &Batch) -> Result<Vec<Outcome>, TransformError> {
        self.transform(batch)
    }
}

/// What a guest would answer a call with: a stand-in for a transform.
#[doc(hidden)]
pub type Answer<'a> = Box<dyn FnMut(&Batch) -> Result<Vec<Outcome>, String> + 'a>;

impl Stage for (String, Answer<'_>) {
    fn name(&self) -> &str {
        &self.0
    }

    fn call(&mut self, batch: &Batch) -> Result<Vec<Outcome>, TransformError> {
        let answer = (self.1)(batch);
        checked_answer(&self.0, batch.records.len(), answer)
    }
}

/// What the chain makes of guests' answers, without running a guest: each
/// `(name, answer)` is one transform, in chain order, and `answer` says what
/// its call returns for a batch (an `Err` rejects the batch). This is the
/// host's whole reading of what transforms return, for the fuzz targets.
#[doc(hidden)]
pub fn run_answers(
    batch: &Batch,
    mut transforms: Vec<(String, Answer<'_>)>,
) -> Result<Vec<RecordResult>, TransformError> {
    run_stages(&mut transforms, batch)
}

fn run_stages<S: Stage>(stages: &mut [S], batch: &Batch) -> Result<Vec<RecordResult>, TransformError> {
    if batch.records.is_empty() {
        return Ok(Vec::new());
    }
    let Some((last, middle)) = stages.split_last_mut() else {
        return Ok(vec![RecordResult::Unchanged; batch.records.len()]);
    };
    let mut failures: Vec<Option<Failure>> = vec![None; batch.records.len()];
    let mut tracked: Vec<InFlight> = (0..batch.records.len()).map(InFlight::start).collect();
    // The first transform reads the input batch itself; later ones read
    // what the previous one emitted.
    let mut emitted: Option<Batch> = None;
    for stage in middle {
        let input = emitted.as_ref().unwrap_or(batch);
        if input.records.is_empty() {
            break;
        }
        let outcomes = stage.call(input)?;
        let (next_tracked, records) = advance(stage.name(), &tracked, &input.records, outcomes, &mut failures);
        tracked = next_tracked;
        emitted = Some(Batch { source: batch.source.clone(), records });
    }
    let input = emitted.as_ref().unwrap_or(batch);
    let outcomes = match input.records.is_empty() {
        true => Vec::new(),
        false => last.call(input)?,
    };
    Ok(finish(last.name(), &tracked, &input.records, outcomes, failures))
}

/// Applies one transform's outcomes, returning the records for the next.
fn advance(
    transform: &str,
    tracked: &[InFlight],
    records: &[Record],
    outcomes: Vec<Outcome>,
    failures: &mut [Option<Failure>],
) -> (Vec<InFlight>, Vec<Record>) {
    let mut next_tracked = Vec::with_capacity(records.len());
    let mut next_records = Vec::with_capacity(records.len());
    for ((flight, record), outcome) in tracked.iter().zip(records).zip(outcomes) {
        if failures[flight.input].is_some() {
            continue;
        }
        match outcome {
            Outcome::Drop => {}
            Outcome::Fail(reason) => {
                failures[flight.input] = Some(Failure { transform: transform.to_owned(), reason });
            }
            Outcome::Emit(output) => {
                next_tracked.push(flight.routed(&output));
                next_records.push(derive(record, output));
            }
            Outcome::EmitMany(outputs) => {
                for output in outputs {
                    next_tracked.push(flight.routed(&output));
                    next_records.push(derive(record, output));
                }
            }
        }
    }
    (next_tracked, next_records)
}

impl InFlight {
    fn start(input: usize) -> Self {
        Self { input, collection: None, write: None }
    }

    /// The tracking for `output` of this record: a routing it sets wins,
    /// otherwise it keeps the one set earlier in the chain.
    fn routed(&self, output: &Output) -> Self {
        Self {
            input: self.input,
            collection: output.collection.clone().or_else(|| self.collection.clone()),
            write: output.write.clone().or_else(|| self.write.clone()),
        }
    }
}

/// The record a later transform sees for `output` of `record`.
fn derive(record: &Record, output: Output) -> Record {
    Record {
        payload: output.payload,
        encoding: output.encoding,
        key: output.key.or_else(|| record.key.clone()),
        headers: merge_headers(record.headers.as_deref(), output.headers),
        timestamp: record.timestamp,
        origin: record.origin.clone(),
    }
}

/// Input headers, with same-named ones replaced by `added` and the rest of
/// `added` appended; `None` when there are none at all.
fn merge_headers(inherited: Option<&[Header]>, added: Vec<Header>) -> Option<Vec<Header>> {
    let inherited = inherited.unwrap_or_default();
    if added.is_empty() {
        return (!inherited.is_empty()).then(|| inherited.to_vec());
    }
    let mut merged: Vec<Header> =
        inherited.iter().filter(|header| !added.iter().any(|new| new.name == header.name)).cloned().collect();
    merged.extend(added);
    Some(merged)
}

/// Applies the last transform's outcomes, building each input's result.
fn finish(
    transform: &str,
    tracked: &[InFlight],
    records: &[Record],
    outcomes: Vec<Outcome>,
    failures: Vec<Option<Failure>>,
) -> Vec<RecordResult> {
    let mut results: Vec<RecordResult> =
        failures.into_iter().map(|failure| failure.map_or(RecordResult::Dropped, RecordResult::Failed)).collect();
    for ((flight, record), outcome) in tracked.iter().zip(records).zip(outcomes) {
        let result = &mut results[flight.input];
        if matches!(result, RecordResult::Failed(_)) {
            continue;
        }
        match outcome {
            Outcome::Drop => {}
            Outcome::Fail(reason) => {
                *result = RecordResult::Failed(Failure { transform: transform.to_owned(), reason })
            }
            Outcome::Emit(output) => result.push(finished(flight, record, output)),
            Outcome::EmitMany(outputs) => {
                for output in outputs {
                    result.push(finished(flight, record, output));
                }
            }
        }
    }
    results
}

/// The final form of `output` of `record`, routing included.
fn finished(flight: &InFlight, record: &Record, output: Output) -> Emitted {
    let routed = flight.routed(&output);
    Emitted {
        payload: output.payload,
        encoding: output.encoding,
        key: output.key.or_else(|| record.key.clone()),
        headers: merge_headers(record.headers.as_deref(), output.headers).unwrap_or_default(),
        collection: routed.collection,
        write: routed.write,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Encoding, Origin};

    fn record(payload: &str) -> Record {
        Record {
            payload: payload.as_bytes().to_vec(),
            encoding: Encoding::Json,
            key: Some(b"k".to_vec()),
            headers: Some(vec![Header { name: "a".into(), value: "1".into() }]),
            timestamp: 7,
            origin: Origin::File(1),
        }
    }

    fn output(payload: &str, collection: Option<&str>) -> Output {
        Output {
            payload: payload.as_bytes().to_vec(),
            encoding: Encoding::Json,
            collection: collection.map(str::to_owned),
            write: None,
            key: None,
            headers: vec![
                Header { name: "a".into(), value: "2".into() },
                Header { name: "b".into(), value: "3".into() },
            ],
        }
    }

    fn start(n: usize) -> Vec<InFlight> {
        (0..n).map(InFlight::start).collect()
    }

    #[test]
    fn given_emits_then_outputs_inherit_key_origin_and_merge_headers() {
        let records = [record("x")];
        let mut failures = vec![None];
        let (tracked, next) =
            advance("t", &start(1), &records, vec![Outcome::Emit(output("y", Some("c")))], &mut failures);
        assert_eq!(tracked[0].collection.as_deref(), Some("c"));
        assert_eq!(next[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(next[0].origin, Origin::File(1));
        let headers: Vec<(&str, &str)> =
            next[0].headers.iter().flatten().map(|h| (h.name.as_str(), h.value.as_str())).collect();
        assert_eq!(headers, [("a", "2"), ("b", "3")]);
    }

    #[test]
    fn given_a_later_failure_of_one_output_then_the_whole_input_fails() {
        let records = [record("x"), record("y")];
        let mut failures = vec![None, None];
        let outcomes = vec![
            Outcome::EmitMany(vec![output("x1", Some("c")), output("x2", None)]),
            Outcome::Emit(output("y1", None)),
        ];
        let (tracked, stage2) = advance("first", &start(2), &records, outcomes, &mut failures);
        assert_eq!(tracked.iter().map(|t| t.input).collect::<Vec<_>>(), [0, 0, 1]);
        let outcomes = vec![Outcome::Emit(output("x1'", None)), Outcome::Fail("bad x2".into()), Outcome::Drop];
        let results = finish("second", &tracked, &stage2, outcomes, failures);
        assert_eq!(results[0], RecordResult::Failed(Failure { transform: "second".into(), reason: "bad x2".into() }));
        assert_eq!(results[1], RecordResult::Dropped);
    }

    #[test]
    fn given_routing_from_an_earlier_transform_then_later_outputs_keep_it() {
        let records = [record("x")];
        let mut failures = vec![None];
        let (tracked, stage2) =
            advance("a", &start(1), &records, vec![Outcome::Emit(output("x", Some("c")))], &mut failures);
        let results = finish("b", &tracked, &stage2, vec![Outcome::Emit(output("x", None))], failures);
        let RecordResult::Emitted(outputs) = &results[0] else { panic!("expected an emit, got {results:?}") };
        assert_eq!(outputs[0].collection.as_deref(), Some("c"));
    }
}

#[cfg(test)]
mod header_tests {
    use super::*;

    fn header(name: &str, value: &str) -> Header {
        Header { name: name.into(), value: value.into() }
    }

    #[test]
    fn given_no_headers_anywhere_then_none() {
        assert_eq!(merge_headers(None, Vec::new()), None);
        assert_eq!(merge_headers(Some(&[]), Vec::new()), None);
    }

    #[test]
    fn given_added_headers_then_they_replace_same_names_and_append() {
        let merged =
            merge_headers(Some(&[header("a", "1"), header("b", "2")]), vec![header("b", "3"), header("c", "4")]);
        assert_eq!(merged, Some(vec![header("a", "1"), header("b", "3"), header("c", "4")]));
    }
}
