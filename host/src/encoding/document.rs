//! Payloads as MongoDB documents: relaxed Extended JSON or raw BSON in, BSON
//! out, and back to relaxed Extended JSON for people to read.

use bson::raw::RawBsonRef;
use bson::{Binary, Bson, Document, RawDocument, RawDocumentBuf, spec::BinarySubtype};

use crate::encoding::json_to_bson::json_to_bson;

use crate::record::Encoding;

/// MongoDB's limit on documents and arrays within one another.
pub const MAX_NESTING: usize = 100;

/// Why a payload cannot become a document.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("payload is not valid JSON")]
    Json(#[source] serde_json::Error),
    #[error("payload is not valid Extended JSON")]
    ExtendedJson(#[source] bson::error::Error),
    #[error("payload is a JSON {0}, not an object")]
    NotAnObject(&'static str),
    #[error("payload is not a valid BSON document")]
    Bson(#[source] bson::error::Error),
    #[error("a {0:?} payload is not a document")]
    NotADocument(Encoding),
    #[error("payload cannot be stored as BSON: {0}")]
    Unencodable(String),
    #[error("payload nests documents and arrays deeper than MongoDB's {MAX_NESTING} levels")]
    TooDeep,
}

/// Reads a `json` (relaxed or canonical Extended JSON, so `{"$date": ...}`
/// becomes a BSON date) or `bson` payload as a document.
pub fn to_document(payload: &[u8], encoding: Encoding) -> Result<Document, DocumentError> {
    let raw = to_raw_document(payload, encoding)?;
    Document::try_from(raw.as_ref()).map_err(DocumentError::Bson)
}

/// The same as [`to_document`], as BSON bytes — what a sink sends, without
/// building a document in between.
pub fn to_raw_document(payload: &[u8], encoding: Encoding) -> Result<RawDocumentBuf, DocumentError> {
    match encoding {
        Encoding::Json => json_to_bson(payload).map_err(|reason| explain_json_error(payload, reason)),
        Encoding::Bson => {
            // Checked element by element: one malformed document must be
            // rejected alone, not fail the server command it travels in.
            let raw = RawDocument::from_bytes(payload).map_err(DocumentError::Bson)?;
            // Before anything reads it recursively: bytes from a transform
            // can nest deep enough to overflow the stack (found by fuzz/).
            values_within_nesting(&mut raw.iter().map(|element| element.map(|(_, value)| value)), 0)?;
            Document::try_from(raw).map_err(DocumentError::Bson)?;
            RawDocumentBuf::from_bytes(payload.to_vec()).map_err(DocumentError::Bson)
        }
        Encoding::Text | Encoding::Binary => Err(DocumentError::NotADocument(encoding)),
    }
}

/// Checks that `values`, at `depth`, and everything in them nest at most
/// [`MAX_NESTING`] levels; it looks no deeper, so its own stack is bounded.
fn values_within_nesting<'a>(
    values: &mut dyn Iterator<Item = bson::error::Result<RawBsonRef<'a>>>,
    depth: usize,
) -> Result<(), DocumentError> {
    if depth > MAX_NESTING {
        return Err(DocumentError::TooDeep);
    }
    for value in values {
        match value.map_err(DocumentError::Bson)? {
            RawBsonRef::Document(document) => {
                values_within_nesting(&mut document.iter().map(|element| element.map(|(_, value)| value)), depth + 1)?
            }
            RawBsonRef::Array(array) => values_within_nesting(&mut array.into_iter(), depth + 1)?,
            RawBsonRef::JavaScriptCodeWithScope(code) => {
                values_within_nesting(&mut code.scope.iter().map(|element| element.map(|(_, value)| value)), depth + 1)?
            }
            _ => {}
        }
    }
    Ok(())
}

/// Says why a JSON payload is not a document: not JSON, not an object, or a
/// malformed Extended JSON value. (Only the failure path parses twice.)
fn explain_json_error(payload: &[u8], reason: String) -> DocumentError {
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Err(syntax) => DocumentError::Json(syntax),
        Ok(serde_json::Value::Object(object)) => match Document::try_from(object) {
            Err(extended) => DocumentError::ExtendedJson(extended),
            Ok(_) => DocumentError::Unencodable(reason),
        },
        Ok(other) => DocumentError::NotAnObject(json_kind(&other)),
    }
}

/// A document as relaxed Extended JSON, the form people and `jq` read best.
pub fn to_relaxed_json(document: Document) -> serde_json::Value {
    Bson::Document(document).into_relaxed_extjson()
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// Decodes a payload as a sink would: JSON through Extended JSON (so bad
/// `$date`s are caught here, not in production), BSON as a document.
pub fn payload_to_json(payload: &[u8], encoding: Encoding) -> Result<serde_json::Value, DocumentError> {
    match encoding {
        Encoding::Bson => Ok(to_relaxed_json(to_document(payload, encoding)?)),
        Encoding::Json => {
            let value: serde_json::Value = serde_json::from_slice(payload).map_err(DocumentError::Json)?;
            Ok(Bson::try_from(value).map_err(DocumentError::ExtendedJson)?.into_relaxed_extjson())
        }
        Encoding::Text => match std::str::from_utf8(payload) {
            Ok(text) => Ok(serde_json::Value::String(text.to_owned())),
            Err(_) => Ok(binary(payload)),
        },
        Encoding::Binary => Ok(binary(payload)),
    }
}

fn binary(bytes: &[u8]) -> serde_json::Value {
    Bson::Binary(Binary { subtype: BinarySubtype::Generic, bytes: bytes.to_vec() }).into_relaxed_extjson()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;
    use serde_json::json;

    #[test]
    fn given_extended_json_then_bson_types_survive() {
        let document = to_document(
            br#"{"ts":{"$date":"2026-11-26T03:00:00Z"},"id":{"$oid":"65f0a1b2c3d4e5f601234567"},"n":{"$numberDecimal":"1.10"}}"#,
            Encoding::Json,
        )
        .unwrap();
        assert!(matches!(document.get("ts"), Some(Bson::DateTime(_))));
        assert!(matches!(document.get("id"), Some(Bson::ObjectId(_))));
        assert!(matches!(document.get("n"), Some(Bson::Decimal128(_))));
        assert_eq!(to_relaxed_json(document)["ts"], json!({"$date": "2026-11-26T03:00:00Z"}));
    }

    #[test]
    fn given_bson_bytes_then_reads_them() {
        let bytes = doc! { "a": 1 }.to_vec().unwrap();
        assert_eq!(to_document(&bytes, Encoding::Bson).unwrap(), doc! { "a": 1 });
        assert!(matches!(to_document(&bytes[..3], Encoding::Bson), Err(DocumentError::Bson(_))));
    }

    /// `{"a": {"a": … {} … }}`, `levels` documents inside the outer one.
    fn nested(levels: usize) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(5 + 8 * levels);
        for level in 0..levels {
            let length = 5 + 8 * (levels - level) as i32;
            bytes.extend_from_slice(&length.to_le_bytes());
            bytes.extend_from_slice(&[0x03, b'a', 0]);
        }
        bytes.extend_from_slice(&[5, 0, 0, 0, 0]);
        bytes.resize(bytes.len() + levels, 0);
        bytes
    }

    #[test]
    fn given_bson_nested_deeper_than_mongodb_takes_then_refuses_it_without_overflowing_the_stack() {
        // A transform can return any bytes; reading 200 000 levels
        // recursively overflowed the stack and killed the process.
        assert_eq!(to_document(&nested(2), Encoding::Bson).unwrap(), doc! { "a": { "a": {} } });
        assert!(to_document(&nested(MAX_NESTING), Encoding::Bson).is_ok());
        for levels in [200_000, MAX_NESTING + 1] {
            let error = to_raw_document(&nested(levels), Encoding::Bson).unwrap_err();
            assert!(matches!(error, DocumentError::TooDeep), "{error:?}");
            assert!(matches!(payload_to_json(&nested(levels), Encoding::Bson), Err(DocumentError::TooDeep)));
        }
    }

    #[test]
    fn given_non_documents_then_says_what_they_are() {
        assert!(matches!(to_document(b"[1]", Encoding::Json), Err(DocumentError::NotAnObject("array"))));
        assert!(matches!(to_document(b"{", Encoding::Json), Err(DocumentError::Json(_))));
        assert!(matches!(to_document(b"x", Encoding::Text), Err(DocumentError::NotADocument(Encoding::Text))));
        let error = to_document(br#"{"d":{"$date":"not a date"}}"#, Encoding::Json).unwrap_err();
        assert!(matches!(error, DocumentError::ExtendedJson(_)), "{error:?}");
    }
}
