//! Extended JSON into BSON: `json_to_bson` on any bytes, checked against
//! bson's own Extended JSON parser (which the module promises to match
//! exactly), and the payload readers for every encoding.

#![no_main]

use bson::{Bson, Document};
use ferry::encoding::document::{payload_to_json, to_document, to_raw_document};
use ferry::encoding::json_to_bson::json_to_bson;
use ferry::record::Encoding;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(raw) = json_to_bson(data) {
        let ours = Document::try_from(raw.as_ref()).expect("json_to_bson writes readable BSON");
        let reference = reference(data).expect("what json_to_bson takes, bson's parser takes");
        // Canonical Extended JSON compares NaNs as text and keys as a map.
        assert_eq!(
            Bson::Document(ours).into_canonical_extjson(),
            Bson::Document(reference).into_canonical_extjson(),
            "json_to_bson and bson's parser disagree"
        );
    }
    for encoding in [Encoding::Json, Encoding::Bson, Encoding::Text, Encoding::Binary] {
        let document = to_document(data, encoding);
        let raw = to_raw_document(data, encoding);
        assert_eq!(document.is_ok(), raw.is_ok(), "{encoding:?}");
        if let (Ok(document), Ok(raw)) = (document, raw) {
            let read = Document::try_from(raw.as_ref()).expect("a raw document reads");
            assert!(ferry_fuzz::same(&read, &document), "{encoding:?}");
        }
        let _ = payload_to_json(data, encoding);
    }
});

/// bson's own reading of a JSON object as Extended JSON.
fn reference(data: &[u8]) -> Option<Document> {
    match serde_json::from_slice(data).ok()? {
        serde_json::Value::Object(object) => Document::try_from(object).ok(),
        _ => None,
    }
}
