//! iggy-server 0.8's partition files, read and cut while the server is
//! down: to put a partition in the state a kill -9 between a flush's two
//! writes leaves, and to cut such a log back to its index before the
//! server starts again.
//!
//! A partition is `<system>/streams/<stream id>/topics/<topic id>/partitions/<partition id>/`,
//! holding segments named by their first offset (`00000000000000000000.log`
//! and `.index`). Each index entry is 16 bytes: the message's offset
//! relative to the segment (u32 LE), the position in the `.log` where the
//! message ends (u32 LE) and its timestamp (u64 LE). A flush appends the
//! messages to the `.log`, then their entries to the `.index`; a kill
//! between the two leaves messages in the log that no entry covers, and
//! server 0.8 then reuses their offsets (see docs/guarantees.md, "When iggy-server
//! cannot read a partition").

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

const INDEX_ENTRY: u64 = 16;

/// A segment whose log ran past its index, and what cutting it removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrimmedSegment {
    pub log: PathBuf,
    /// Bytes of the `.log` that no index entry covered.
    pub unindexed_bytes: u64,
}

/// Cuts every segment under `system` back to what its index covers: the
/// bytes of a flush the kill interrupted, which the server never
/// acknowledged and its clients send again. A half-written index entry goes
/// too. Returns the segments it cut.
pub fn trim_unindexed_tails(system: &Path) -> io::Result<Vec<TrimmedSegment>> {
    let mut trimmed = Vec::new();
    for index in segment_indexes(system)? {
        let log = index.with_extension("log");
        let whole_entries = std::fs::metadata(&index)?.len() / INDEX_ENTRY * INDEX_ENTRY;
        OpenOptions::new().write(true).open(&index)?.set_len(whole_entries)?;
        let indexed = indexed_log_length(&index)?;
        let log_length = std::fs::metadata(&log)?.len();
        if log_length > indexed {
            OpenOptions::new().write(true).open(&log)?.set_len(indexed)?;
            trimmed.push(TrimmedSegment { log, unindexed_bytes: log_length - indexed });
        }
    }
    Ok(trimmed)
}

/// Drops the index entries of the last `messages` messages of the
/// partition's newest segment, keeping them in the `.log`: what a kill -9
/// after a flush's `.log` write and before its `.index` write leaves.
pub fn unindex_last_messages(partition: &Path, messages: u64) -> io::Result<()> {
    let index = segment_indexes(partition)?
        .into_iter()
        .max()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no segment in {}", partition.display())))?;
    let entries = std::fs::metadata(&index)?.len() / INDEX_ENTRY;
    if entries < messages {
        let what = format!("{} indexes {entries} messages, fewer than {messages}", index.display());
        return Err(io::Error::new(io::ErrorKind::InvalidInput, what));
    }
    OpenOptions::new().write(true).open(&index)?.set_len((entries - messages) * INDEX_ENTRY)
}

/// The folder of `partition` in the one topic under `system`.
pub fn only_partition(system: &Path, partition: u32) -> PathBuf {
    let children = |dir: &Path| std::fs::read_dir(dir).into_iter().flatten().flatten().map(|entry| entry.path());
    let found: Vec<PathBuf> = children(&system.join("streams"))
        .flat_map(|stream| children(&stream.join("topics")).collect::<Vec<_>>())
        .map(|topic| topic.join("partitions").join(partition.to_string()))
        .filter(|dir| dir.is_dir())
        .collect();
    match found.as_slice() {
        [dir] => dir.clone(),
        _ => panic!("expected one topic with partition {partition} under {}, found {found:?}", system.display()),
    }
}

/// The `.log` length the index's last entry accounts for.
fn indexed_log_length(index: &Path) -> io::Result<u64> {
    let bytes = std::fs::read(index)?;
    let Some(last) = bytes.chunks_exact(INDEX_ENTRY as usize).last() else { return Ok(0) };
    let end = u32::from_le_bytes(last[4..8].try_into().expect("four bytes"));
    Ok(u64::from(end))
}

/// Every `.index` file under `dir`, at any depth.
fn segment_indexes(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "index") {
                found.push(path);
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(offset: u32, end: u32) -> Vec<u8> {
        [offset.to_le_bytes().as_slice(), &end.to_le_bytes(), &7u64.to_le_bytes()].concat()
    }

    /// A partition of one segment: three messages of 100 bytes, indexed.
    fn partition() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let segment = dir.path().join("00000000000000000000");
        std::fs::write(segment.with_extension("log"), vec![1u8; 300]).unwrap();
        std::fs::write(segment.with_extension("index"), [entry(0, 100), entry(1, 200), entry(2, 300)].concat())
            .unwrap();
        dir
    }

    fn lengths(dir: &Path) -> (u64, u64) {
        let segment = dir.join("00000000000000000000");
        let length = |path: PathBuf| std::fs::metadata(path).unwrap().len();
        (length(segment.with_extension("log")), length(segment.with_extension("index")))
    }

    #[test]
    fn unindexing_keeps_the_log_and_drops_the_last_entries() {
        let dir = partition();
        unindex_last_messages(dir.path(), 2).unwrap();
        assert_eq!(lengths(dir.path()), (300, 16));
        assert!(unindex_last_messages(dir.path(), 2).is_err(), "only one message is left indexed");
    }

    #[test]
    fn trimming_cuts_the_log_back_to_its_last_index_entry() {
        let dir = partition();
        unindex_last_messages(dir.path(), 2).unwrap();
        let trimmed = trim_unindexed_tails(dir.path()).unwrap();
        assert_eq!(trimmed.len(), 1);
        assert_eq!(trimmed[0].unindexed_bytes, 200);
        assert_eq!(lengths(dir.path()), (100, 16));
        assert_eq!(trim_unindexed_tails(dir.path()).unwrap(), vec![], "a whole segment is left alone");
    }

    #[test]
    fn trimming_drops_a_half_written_index_entry() {
        let dir = partition();
        let index = dir.path().join("00000000000000000000.index");
        let mut bytes = std::fs::read(&index).unwrap();
        bytes.truncate(16 * 2 + 5);
        std::fs::write(&index, bytes).unwrap();
        trim_unindexed_tails(dir.path()).unwrap();
        assert_eq!(lengths(dir.path()), (200, 32));
    }
}
