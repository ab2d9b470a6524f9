//! Carrying out planned writes. Consecutive writes of the same kind to the
//! same collection go in one round trip; kinds never overtake each other, so
//! an upsert and a later delete of one document keep their order.
//!
//! Ferry builds the `insert`, `update` and `delete` commands itself rather
//! than calling the driver's `insert_many`: the driver re-serialises every
//! document and collects the inserted ids into a map, which cost about a
//! sixth of Ferry's CPU on the insert path, and Ferry needs neither (its own
//! retry loop handles transient errors, and `_id`s are set when planning).

use bson::raw::cstr;
use bson::spec::ElementType;
use bson::{Document, RawDocumentBuf, doc, rawdoc};
use mongodb::Database;

use super::plan::{Op, PlannedWrite};
use crate::encoding::bson_frame::{close, elements, open};
use crate::error::{ServiceError, mongo_code_is_transient};
use crate::sink::Rejection;
use crate::telemetry::events::{MongoWrites, WRITE_KINDS};

/// MongoDB's duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;

/// A command document must stay under 16 MiB; leave room for its envelope.
const MAX_COMMAND_PAYLOAD: usize = 12 * 1024 * 1024;

/// MongoDB's limit on the statements of one write command
/// (`maxWriteBatchSize`).
const MAX_COMMAND_STATEMENTS: usize = 100_000;

/// Writes everything, returning the inputs MongoDB refused for good;
/// `tally` gathers what the commands did.
pub(super) async fn execute(
    database: &Database,
    write_concern: &RawDocumentBuf,
    writes: &[PlannedWrite],
    tally: &mut MongoWrites,
) -> Result<Vec<Rejection>, ServiceError> {
    let mut rejections = Vec::new();
    for run in runs(writes) {
        let collection = &run[0].collection;
        let kind = Kind::of(&run[0].op);
        for chunk in chunks(run) {
            let started = std::time::Instant::now();
            let refused = rejections.len();
            let replays = match kind {
                Kind::Insert => insert(database, write_concern, collection, chunk, &mut rejections).await?,
                kind => command(database, write_concern, collection, kind, chunk, &mut rejections).await.map(|()| 0)?,
            };
            tally.commands.push(started.elapsed());
            // Counted per chunk (one collection), not per document.
            let refused = &rejections[refused..];
            let mut written = [0u64; WRITE_KINDS.len()];
            for write in chunk.iter().filter(|write| !refused.iter().any(|rejection| rejection.input == write.input)) {
                written[write.op.kind_index()] += 1;
            }
            if replays > 0 {
                // Documents MongoDB already held were not written again.
                written[0] -= replays;
                *tally.replays.entry(collection.to_string()).or_default() += replays;
            }
            for (kind, count) in WRITE_KINDS.into_iter().zip(written).filter(|(_, count)| *count > 0) {
                *tally.documents.entry((collection.to_string(), kind)).or_default() += count;
            }
        }
    }
    Ok(rejections)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Insert,
    Update,
    Delete,
}

impl Kind {
    fn of(op: &Op) -> Self {
        match op {
            Op::Insert(_) => Self::Insert,
            Op::Upsert { .. } | Op::Replace { .. } => Self::Update,
            Op::Delete { .. } => Self::Delete,
        }
    }
}

/// Maximal runs of consecutive writes with the same collection and kind.
fn runs(writes: &[PlannedWrite]) -> impl Iterator<Item = &[PlannedWrite]> {
    writes.chunk_by(|a, b| a.collection == b.collection && Kind::of(&a.op) == Kind::of(&b.op))
}

/// Splits a run so each command stays under the size limit.
fn chunks(run: &[PlannedWrite]) -> Vec<&[PlannedWrite]> {
    let mut chunks = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (index, write) in run.iter().enumerate() {
        let op_size = op_size(&write.op);
        let full = size + op_size > MAX_COMMAND_PAYLOAD || index - start == MAX_COMMAND_STATEMENTS;
        if index > start && full {
            chunks.push(&run[start..index]);
            (start, size) = (index, 0);
        }
        size += op_size;
    }
    chunks.push(&run[start..]);
    chunks
}

fn op_size(op: &Op) -> usize {
    let size = |document: &Document| RawDocumentBuf::try_from(document).map_or(0, |raw| raw.as_bytes().len());
    match op {
        Op::Insert(raw) => raw.as_bytes().len(),
        Op::Upsert { filter, update } => size(filter) + size(update),
        Op::Replace { filter, replacement } => size(filter) + size(replacement),
        Op::Delete { filter } => size(filter),
    }
}

/// An unordered `insert`: a duplicate `_id` means an earlier attempt (or
/// run) already wrote the document (a replay, counted in the answer); any
/// other refusal rejects its input.
async fn insert(
    database: &Database,
    write_concern: &RawDocumentBuf,
    collection: &str,
    chunk: &[PlannedWrite],
    rejections: &mut Vec<Rejection>,
) -> Result<u64, ServiceError> {
    let what = || format!("inserting into {collection}");
    let command = insert_command(collection, chunk, write_concern.as_bytes().len());
    let reply = send(database, command, write_concern, what).await?;
    let mut replays = 0;
    for WriteError { index, code, message } in write_errors(&reply) {
        if code == DUPLICATE_KEY && is_id_index(&message) {
            replays += 1;
            continue;
        }
        if mongo_code_is_transient(code) {
            return Err(transient(what(), format!("code {code}: {message}")));
        }
        let input = chunk.get(index).ok_or_else(|| {
            ServiceError::fatal(what(), format!("MongoDB reported a write error for statement {index} it was not sent"))
        })?;
        rejections.push(Rejection {
            input: input.input,
            reason: format!("MongoDB refused the document (code {code}): {message}"),
        });
    }
    Ok(replays)
}

/// The `insert` command for `chunk`, with `room` bytes spare for the write
/// concern. The `documents` array is written straight into the command,
/// sized up front: growing a `RawArrayBuf` document by document and then
/// copying it into the command cost two copies and several reallocations of
/// every batch.
fn insert_command(collection: &str, chunk: &[PlannedWrite], room: usize) -> RawDocumentBuf {
    let head = rawdoc! { "insert": collection, "ordered": false };
    // Per document: its element type and its index as a key (at most six
    // digits, since a chunk holds at most 100 000 statements, and a nul).
    let documents: usize = chunk.iter().map(|write| 8 + op_size(&write.op)).sum();
    let mut bytes = Vec::with_capacity(head.as_bytes().len() + "documents".len() + 7 + documents + room);
    let command = open(&mut bytes);
    bytes.extend_from_slice(elements(head.as_bytes()));
    bytes.push(ElementType::Array as u8);
    bytes.extend_from_slice(b"documents\0");
    let array = open(&mut bytes);
    let mut key = itoa::Buffer::new();
    for (index, write) in chunk.iter().enumerate() {
        let Op::Insert(document) = &write.op else { unreachable!("a run holds one kind") };
        bytes.push(ElementType::EmbeddedDocument as u8);
        bytes.extend_from_slice(key.format(index).as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(document.as_bytes());
    }
    // Chunks stay under 16 MiB, well within a BSON length.
    close(&mut bytes, array).expect("a chunk fits a BSON length");
    close(&mut bytes, command).expect("a chunk fits a BSON length");
    RawDocumentBuf::from_bytes(bytes).expect("the command is framed as BSON")
}

/// Sends a write command with the sink's write concern. A write concern the
/// servers could not satisfy is transient: the writes may not be durable
/// yet, so the batch is retried (replays are recognised as such).
async fn send(
    database: &Database,
    mut command: RawDocumentBuf,
    write_concern: &RawDocumentBuf,
    what: impl Fn() -> String,
) -> Result<Document, ServiceError> {
    command.append(cstr!("writeConcern"), write_concern.as_ref());
    let reply = database.run_raw_command(command).await.map_err(|error| ServiceError::mongo(what(), error))?;
    if let Ok(concern) = reply.get_document("writeConcernError") {
        return Err(transient(what(), format!("write concern not satisfied: {concern}")));
    }
    Ok(reply)
}

/// Whether a duplicate-key message is about `_id` rather than a unique
/// secondary index (which is a real conflict, not a replay).
fn is_id_index(message: &str) -> bool {
    message.contains("index: _id_ ")
}

/// Ordered `update` or `delete` commands: order matters between writes to
/// the same document. A refused statement is rejected and the rest resent.
async fn command(
    database: &Database,
    write_concern: &RawDocumentBuf,
    collection: &str,
    kind: Kind,
    chunk: &[PlannedWrite],
    rejections: &mut Vec<Rejection>,
) -> Result<(), ServiceError> {
    let (name, list) = match kind {
        Kind::Update => ("update", "updates"),
        _ => ("delete", "deletes"),
    };
    let what = || format!("running {name} on {collection}");
    let mut start = 0;
    while start < chunk.len() {
        let statements: Vec<Document> = chunk[start..].iter().map(|write| statement(&write.op)).collect();
        let command = RawDocumentBuf::try_from(&doc! { name: collection, list: statements, "ordered": true })
            .map_err(|error| ServiceError::fatal(what(), error))?;
        let reply = send(database, command, write_concern, what).await?;
        let Some(WriteError { index, code, message }) = write_errors(&reply).into_iter().next() else { break };
        let failed = start + index;
        if mongo_code_is_transient(code) || code == DUPLICATE_KEY {
            // A duplicate key on an upsert is two upserts racing; retrying
            // turns the loser into an update.
            return Err(transient(what(), format!("code {code}: {message}")));
        }
        rejections.push(Rejection {
            input: chunk[failed].input,
            reason: format!("MongoDB refused the {name} (code {code}): {message}"),
        });
        start = failed + 1;
    }
    Ok(())
}

fn statement(op: &Op) -> Document {
    match op {
        Op::Upsert { filter, update } => doc! { "q": filter, "u": update, "upsert": true },
        Op::Replace { filter, replacement } => doc! { "q": filter, "u": replacement, "upsert": true },
        Op::Delete { filter } => doc! { "q": filter, "limit": 1 },
        Op::Insert(_) => unreachable!("inserts go through `insert`"),
    }
}

/// One entry of a write command's `writeErrors`: the statement it is
/// about (an index into the command's list), and why it failed.
#[derive(Debug, PartialEq)]
struct WriteError {
    index: usize,
    code: i32,
    message: String,
}

/// A reply's `writeErrors`, in the order the server gave them.
fn write_errors(reply: &Document) -> Vec<WriteError> {
    let Ok(errors) = reply.get_array("writeErrors") else { return Vec::new() };
    errors
        .iter()
        .filter_map(|error| {
            let error = error.as_document()?;
            let index =
                error.get_i32("index").map(|i| i as usize).or_else(|_| error.get_i64("index").map(|i| i as usize));
            Some(WriteError {
                index: index.ok()?,
                code: error.get_i32("code").unwrap_or_default(),
                message: error.get_str("errmsg").unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

fn transient(what: String, cause: String) -> ServiceError {
    ServiceError::mongo_transient(what, cause)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(collection: &str, op: Op) -> PlannedWrite {
        PlannedWrite { input: 0, collection: collection.into(), op }
    }

    fn insert_op() -> Op {
        Op::Insert(RawDocumentBuf::try_from(&doc! { "_id": 1 }).unwrap())
    }

    fn delete_op() -> Op {
        Op::Delete { filter: doc! { "_id": 1 } }
    }

    #[test]
    fn given_mixed_writes_then_runs_keep_source_order() {
        let writes = [
            write("a", insert_op()),
            write("a", insert_op()),
            write("a", delete_op()),
            write("b", delete_op()),
            write("a", insert_op()),
        ];
        let lengths: Vec<(usize, &str)> = runs(&writes).map(|run| (run.len(), &*run[0].collection)).collect();
        assert_eq!(lengths, [(2, "a"), (1, "a"), (1, "b"), (1, "a")]);
    }

    #[test]
    fn given_inserts_then_the_command_is_the_one_bson_would_build() {
        let documents: Vec<RawDocumentBuf> = (0..12)
            .map(|n| RawDocumentBuf::try_from(&doc! { "_id": n as i32, "text": "x".repeat(n) }).unwrap())
            .collect();
        let writes: Vec<PlannedWrite> =
            documents.iter().map(|document| write("readings", Op::Insert(document.clone()))).collect();
        let array: bson::RawArrayBuf = documents.iter().map(|document| document.as_ref()).collect();
        let expected = rawdoc! { "insert": "readings", "ordered": false, "documents": array };
        let built = insert_command("readings", &writes, 64);
        assert_eq!(built.as_bytes(), expected.as_bytes());
        assert!(built.as_bytes().len() + 64 <= built.into_bytes().capacity(), "room is left for the write concern");
    }

    #[test]
    fn given_a_huge_run_then_chunks_stay_under_the_command_limit() {
        let big = "x".repeat(5 * 1024 * 1024);
        let op = || Op::Replace { filter: doc! { "_id": 1 }, replacement: doc! { "s": big.clone() } };
        let writes: Vec<PlannedWrite> = (0..5).map(|_| write("a", op())).collect();
        let sizes: Vec<usize> = chunks(&writes).iter().map(|chunk| chunk.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
    }

    #[test]
    fn given_duplicate_key_messages_then_only_the_id_index_counts_as_a_replay() {
        assert!(is_id_index("E11000 duplicate key error collection: t.c index: _id_ dup key: { _id: 1 }"));
        assert!(!is_id_index("E11000 duplicate key error collection: t.c index: email_1 dup key: { email: \"a\" }"));
    }

    #[test]
    fn given_a_reply_with_write_errors_then_reads_them_in_order() {
        let reply = doc! { "ok": 1, "writeErrors": [
            { "index": 2, "code": 121, "errmsg": "Document failed validation" },
            { "index": 5_i64, "code": 11000, "errmsg": "E11000 duplicate key error" },
        ] };
        let expected = [
            WriteError { index: 2, code: 121, message: "Document failed validation".to_owned() },
            WriteError { index: 5, code: 11000, message: "E11000 duplicate key error".to_owned() },
        ];
        assert_eq!(write_errors(&reply), expected);
        assert_eq!(write_errors(&doc! { "ok": 1, "n": 3 }), []);
    }

    #[test]
    fn given_more_statements_than_one_command_takes_then_chunks_split_them() {
        let writes: Vec<PlannedWrite> = (0..MAX_COMMAND_STATEMENTS + 1).map(|_| write("a", insert_op())).collect();
        let sizes: Vec<usize> = chunks(&writes).iter().map(|chunk| chunk.len()).collect();
        assert_eq!(sizes, [MAX_COMMAND_STATEMENTS, 1]);
    }
}
