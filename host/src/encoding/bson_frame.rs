//! The framing of a BSON document or array: a 4-byte little-endian length,
//! the elements, and a 0 byte. Ferry writes documents piece by piece on its
//! hot paths (JSON into BSON, the insert command, joined documents); the
//! framing lives here, once.

/// A document grew past what a BSON length can say.
#[derive(Debug, thiserror::Error)]
#[error("the document is too large")]
pub struct TooLarge;

/// Starts a document at the end of `out` with a length placeholder, and
/// returns where it starts.
pub fn open(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    start
}

/// Ends the document that starts at `start`: its closing 0, then its length.
pub fn close(out: &mut Vec<u8>, start: usize) -> Result<(), TooLarge> {
    out.push(0);
    let length = i32::try_from(out.len() - start).map_err(|_| TooLarge)?;
    out[start..start + 4].copy_from_slice(&length.to_le_bytes());
    Ok(())
}

/// A document's elements, without its framing.
pub fn elements(document: &[u8]) -> &[u8] {
    &document[4..document.len() - 1]
}

#[cfg(test)]
mod tests {
    use bson::{RawDocumentBuf, rawdoc};

    use super::*;

    #[test]
    fn given_elements_framed_then_bson_reads_the_document() {
        let source = rawdoc! { "a": 1, "b": "two" };
        let mut out = vec![0xAA];
        let start = open(&mut out);
        out.extend_from_slice(elements(source.as_bytes()));
        close(&mut out, start).unwrap();
        assert_eq!(RawDocumentBuf::from_bytes(out[1..].to_vec()).unwrap(), source);
    }
}
