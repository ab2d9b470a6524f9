//! Which documents a batch's writes touch, so that batches may be written
//! side by side only when neither can change what the other writes.
//!
//! The rule: two batches are dependent when they write a common document,
//! named by its collection and its key (`_id` for an insert; the filter's
//! fields and values for an upsert, replace or delete). A collection whose
//! documents the two batches name by different key fields (one upserts by
//! `sensor_id`, the other deletes by `_id`) makes them dependent too, since
//! without reading the documents nothing says the keys name different
//! ones. Dependent batches are written in source order, one after the other;
//! only independent ones overlap.
//!
//! Keys are kept as 64-bit hashes: a collision only makes two batches wait
//! for each other needlessly, never reorders anything.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use bson::{Document, RawBson, RawDocumentBuf, rawdoc};

use super::plan::{Op, PlannedWrite};

/// A batch's documents and key shapes, each sorted and deduplicated.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Footprint {
    /// Hash of (collection, the key as a BSON filter document).
    documents: Vec<u64>,
    /// (hash of the collection, hash of the key's field names).
    shapes: Vec<(u64, u64)>,
}

impl Footprint {
    pub fn of(writes: &[PlannedWrite]) -> Self {
        let mut footprint = Footprint::default();
        for write in writes {
            let collection = hash_of(write.collection.as_bytes());
            let key = match &write.op {
                Op::Insert(document) => insert_key(document),
                Op::Upsert { filter, .. } | Op::Replace { filter, .. } | Op::Delete { filter } => filter_key(filter),
            };
            let Some((shape, key)) = key else {
                // A document with no readable key: this batch waits for
                // every other batch writing to its collection, and they
                // for it.
                footprint.shapes.push((collection, u64::MAX));
                continue;
            };
            footprint.shapes.push((collection, shape));
            footprint.documents.push(hash_of(&[collection.to_le_bytes().as_slice(), key.as_bytes()].concat()));
        }
        footprint.documents.sort_unstable();
        footprint.documents.dedup();
        footprint.shapes.sort_unstable();
        footprint.shapes.dedup();
        footprint
    }

    /// Whether a batch with this footprint may change what one with `other`
    /// writes (or the other way round).
    pub fn depends_on(&self, other: &Footprint) -> bool {
        intersects(&self.documents, &other.documents) || self.names_differently(other)
    }

    /// Whether some collection both write is keyed by different fields in
    /// the two (or by a key that could not be read, in either).
    fn names_differently(&self, other: &Footprint) -> bool {
        self.shapes.iter().any(|&(collection, shape)| {
            other.shapes.iter().any(|&(other_collection, other_shape)| {
                collection == other_collection && (shape != other_shape || shape == u64::MAX)
            })
        })
    }
}

/// An insert's key: `{_id: value}`, as a filter by `_id` would be.
fn insert_key(document: &RawDocumentBuf) -> Option<(u64, RawDocumentBuf)> {
    let id = document.get("_id").ok().flatten()?;
    Some((shape_of(["_id"]), rawdoc! { "_id": RawBson::from(id) }))
}

fn filter_key(filter: &Document) -> Option<(u64, RawDocumentBuf)> {
    let raw = RawDocumentBuf::try_from(filter).ok()?;
    Some((shape_of(filter.keys().map(String::as_str)), raw))
}

/// A key's field names, in order, as one hash.
fn shape_of<'a>(fields: impl IntoIterator<Item = &'a str>) -> u64 {
    let mut hasher = DefaultHasher::new();
    for field in fields {
        field.hash(&mut hasher);
    }
    hasher.finish()
}

fn hash_of(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// Whether two sorted slices share a value.
fn intersects(a: &[u64], b: &[u64]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bson::doc;

    use super::*;

    fn write(collection: &str, op: Op) -> PlannedWrite {
        PlannedWrite { input: 0, collection: Arc::from(collection), op }
    }

    fn insert(collection: &str, id: &str) -> PlannedWrite {
        write(collection, Op::Insert(rawdoc! { "_id": id, "v": 1 }))
    }

    fn upsert(collection: &str, sensor: &str) -> PlannedWrite {
        write(collection, Op::Upsert { filter: doc! { "sensor": sensor }, update: doc! { "$set": { "v": 1 } } })
    }

    fn delete_by_id(collection: &str, id: &str) -> PlannedWrite {
        write(collection, Op::Delete { filter: doc! { "_id": id } })
    }

    #[test]
    fn given_inserts_of_different_ids_then_batches_are_independent() {
        let first = Footprint::of(&[insert("c", "a"), insert("c", "b")]);
        let second = Footprint::of(&[insert("c", "x"), insert("c", "y")]);
        assert!(!first.depends_on(&second));
        assert!(!second.depends_on(&first));
    }

    #[test]
    fn given_a_common_document_then_batches_depend_on_each_other() {
        let first = Footprint::of(&[upsert("c", "s1"), upsert("c", "s2")]);
        let second = Footprint::of(&[upsert("c", "s3"), upsert("c", "s1")]);
        assert!(first.depends_on(&second));
        assert!(second.depends_on(&first));
    }

    #[test]
    fn given_an_insert_and_a_delete_of_its_id_then_they_depend() {
        let first = Footprint::of(&[insert("c", "a")]);
        let second = Footprint::of(&[delete_by_id("c", "a")]);
        assert!(first.depends_on(&second));
        assert!(!first.depends_on(&Footprint::of(&[delete_by_id("c", "b")])));
    }

    #[test]
    fn given_one_key_in_two_collections_then_batches_are_independent() {
        let first = Footprint::of(&[upsert("c", "s1")]);
        let second = Footprint::of(&[upsert("d", "s1")]);
        assert!(!first.depends_on(&second));
    }

    #[test]
    fn given_one_collection_keyed_two_ways_then_batches_depend() {
        let by_sensor = Footprint::of(&[upsert("c", "s1")]);
        let by_id = Footprint::of(&[delete_by_id("c", "other")]);
        assert!(by_sensor.depends_on(&by_id), "an upsert by sensor may touch the document deleted by _id");
        assert!(!by_sensor.depends_on(&Footprint::of(&[delete_by_id("d", "other")])));
    }

    #[test]
    fn given_a_document_without_an_id_then_its_collection_is_held() {
        let unkeyed = Footprint::of(&[write("c", Op::Insert(rawdoc! { "v": 1 }))]);
        assert!(unkeyed.depends_on(&Footprint::of(&[insert("c", "a")])));
        assert!(Footprint::of(&[insert("c", "a")]).depends_on(&unkeyed));
        assert!(!unkeyed.depends_on(&Footprint::of(&[insert("d", "a")])));
    }

    #[test]
    fn given_sorted_lists_then_intersects_finds_a_common_value_only() {
        assert!(intersects(&[1, 4, 9], &[2, 4]));
        assert!(!intersects(&[1, 3, 5], &[2, 4, 6]));
        assert!(!intersects(&[], &[1]));
    }
}
