//! The ordered chain: transforms run in file order, each seeing the previous
//! one's outputs, and every output is traced back to the input it came from.
//!
//! Tracing matters for the promise of "nothing lost": if any output derived
//! from an input fails in a later transform, the whole input fails (it goes to
//! the dead-letter destination as it was read) and none of its outputs are
//! written, so a record is never half-delivered.

use super::error::TransformError;
use super::transform::Transform;
use crate::record::{Batch, Encoding, Header, Outcome, Output, Record, Write};

/// What became of one input record after the whole chain.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordResult {
    /// Write these, in order.
    Emitted(Vec<Emitted>),
    /// A transform dropped it (or everything derived from it).
    Dropped,
    /// A transform failed it; it goes to the dead-letter destination.
    Failed(Failure),
}

/// An output ready for a sink, with routing gathered along the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    pub payload: Vec<u8>,
    pub encoding: Encoding,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<Header>,
    /// The MongoDB collection, unless the pipeline default applies.
    pub collection: Option<String>,
    /// The write kind, unless the pipeline default applies.
    pub write: Option<Write>,
}

/// Which transform failed a record, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub transform: String,
    pub reason: String,
}

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
        let Some((first, rest)) = self.transforms.split_first_mut() else {
            return Ok(batch
                .records
                .iter()
                .map(|record| RecordResult::Emitted(vec![pass_through(record)]))
                .collect());
        };
        let mut failures: Vec<Option<Failure>> = vec![None; batch.records.len()];
        let outcomes = first.transform(batch)?;
        let tracked: Vec<InFlight> = (0..batch.records.len())
            .map(|input| InFlight {
                input,
                collection: None,
                write: None,
            })
            .collect();
        let (mut tracked, mut records) = advance(
            first.name(),
            &tracked,
            &batch.records,
            outcomes,
            &mut failures,
        );
        for transform in rest {
            if records.is_empty() {
                break;
            }
            let stage = Batch {
                source: batch.source.clone(),
                records,
            };
            let outcomes = transform.transform(&stage)?;
            (tracked, records) = advance(
                transform.name(),
                &tracked,
                &stage.records,
                outcomes,
                &mut failures,
            );
        }
        Ok(collect(failures, tracked, records))
    }
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
                failures[flight.input] = Some(Failure {
                    transform: transform.to_owned(),
                    reason,
                });
            }
            Outcome::Emit(outputs) => {
                for output in outputs {
                    next_tracked.push(InFlight {
                        input: flight.input,
                        collection: output
                            .collection
                            .clone()
                            .or_else(|| flight.collection.clone()),
                        write: output.write.clone().or_else(|| flight.write.clone()),
                    });
                    next_records.push(derive(record, output));
                }
            }
        }
    }
    (next_tracked, next_records)
}

/// The record a later transform sees for `output` of `record`.
fn derive(record: &Record, output: Output) -> Record {
    Record {
        payload: output.payload,
        encoding: output.encoding,
        key: output.key.or_else(|| record.key.clone()),
        headers: merge_headers(&record.headers, output.headers),
        timestamp: record.timestamp,
        origin: record.origin.clone(),
    }
}

/// Input headers, with same-named ones replaced by `added` and the rest of
/// `added` appended.
fn merge_headers(inherited: &[Header], added: Vec<Header>) -> Vec<Header> {
    if added.is_empty() {
        return inherited.to_vec();
    }
    let mut merged: Vec<Header> = inherited
        .iter()
        .filter(|header| !added.iter().any(|new| new.name == header.name))
        .cloned()
        .collect();
    merged.extend(added);
    merged
}

fn pass_through(record: &Record) -> Emitted {
    Emitted {
        payload: record.payload.clone(),
        encoding: record.encoding,
        key: record.key.clone(),
        headers: record.headers.clone(),
        collection: None,
        write: None,
    }
}

/// Groups the chain's final records by the input they came from.
fn collect(
    failures: Vec<Option<Failure>>,
    tracked: Vec<InFlight>,
    records: Vec<Record>,
) -> Vec<RecordResult> {
    let mut emitted: Vec<Vec<Emitted>> = vec![Vec::new(); failures.len()];
    for (flight, record) in tracked.into_iter().zip(records) {
        emitted[flight.input].push(Emitted {
            payload: record.payload,
            encoding: record.encoding,
            key: record.key,
            headers: record.headers,
            collection: flight.collection,
            write: flight.write,
        });
    }
    failures
        .into_iter()
        .zip(emitted)
        .map(|(failure, outputs)| match (failure, outputs.is_empty()) {
            (Some(failure), _) => RecordResult::Failed(failure),
            (None, true) => RecordResult::Dropped,
            (None, false) => RecordResult::Emitted(outputs),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Origin;

    fn record(payload: &str) -> Record {
        Record {
            payload: payload.as_bytes().to_vec(),
            encoding: Encoding::Json,
            key: Some(b"k".to_vec()),
            headers: vec![Header {
                name: "a".into(),
                value: "1".into(),
            }],
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
                Header {
                    name: "a".into(),
                    value: "2".into(),
                },
                Header {
                    name: "b".into(),
                    value: "3".into(),
                },
            ],
        }
    }

    fn start(n: usize) -> Vec<InFlight> {
        (0..n)
            .map(|input| InFlight {
                input,
                collection: None,
                write: None,
            })
            .collect()
    }

    #[test]
    fn given_emits_then_outputs_inherit_key_origin_and_merge_headers() {
        let records = [record("x")];
        let mut failures = vec![None];
        let (tracked, next) = advance(
            "t",
            &start(1),
            &records,
            vec![Outcome::Emit(vec![output("y", Some("c"))])],
            &mut failures,
        );
        assert_eq!(tracked[0].collection.as_deref(), Some("c"));
        assert_eq!(next[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(next[0].origin, Origin::File(1));
        let headers: Vec<(&str, &str)> = next[0]
            .headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_str()))
            .collect();
        assert_eq!(headers, [("a", "2"), ("b", "3")]);
    }

    #[test]
    fn given_a_later_failure_of_one_output_then_the_whole_input_fails() {
        let records = [record("x"), record("y")];
        let mut failures = vec![None, None];
        let outcomes = vec![
            Outcome::Emit(vec![output("x1", Some("c")), output("x2", None)]),
            Outcome::Emit(vec![output("y1", None)]),
        ];
        let (tracked, stage2) = advance("first", &start(2), &records, outcomes, &mut failures);
        assert_eq!(
            tracked.iter().map(|t| t.input).collect::<Vec<_>>(),
            [0, 0, 1]
        );
        let outcomes = vec![
            Outcome::Emit(vec![output("x1'", None)]),
            Outcome::Fail("bad x2".into()),
            Outcome::Drop,
        ];
        let (tracked, last) = advance("second", &tracked, &stage2, outcomes, &mut failures);
        let results = collect(failures, tracked, last);
        assert_eq!(
            results[0],
            RecordResult::Failed(Failure {
                transform: "second".into(),
                reason: "bad x2".into()
            })
        );
        assert_eq!(results[1], RecordResult::Dropped);
    }

    #[test]
    fn given_routing_from_an_earlier_transform_then_later_outputs_keep_it() {
        let records = [record("x")];
        let mut failures = vec![None];
        let (tracked, stage2) = advance(
            "a",
            &start(1),
            &records,
            vec![Outcome::Emit(vec![output("x", Some("c"))])],
            &mut failures,
        );
        let (tracked, last) = advance(
            "b",
            &tracked,
            &stage2,
            vec![Outcome::Emit(vec![output("x", None)])],
            &mut failures,
        );
        let results = collect(failures, tracked, last);
        let RecordResult::Emitted(outputs) = &results[0] else {
            panic!("expected an emit, got {results:?}")
        };
        assert_eq!(outputs[0].collection.as_deref(), Some("c"));
    }
}
