//! BSON out as Extended JSON: `to_relaxed_json` in both dialects on any
//! bytes that parse as a document. What the module promises is checked:
//! the relaxed dialect is the JSON value `Bson::into_relaxed_extjson`
//! gives (but for dates past the year 9999, which bson saturates), and
//! Ferry's dialect differs only in writing Int64 canonically, so every
//! value reads back (through `json_to_bson`) as the same type.

#![no_main]

use bson::{Bson, Document, RawDocument};
use ferry::encoding::json_to_bson::json_to_bson;
use ferry::encoding::relaxed_json::{Dialect, to_relaxed_json, to_relaxed_json_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(bytes) = ferry_fuzz::bson_input(data) else { return };
    let Ok(raw) = RawDocument::from_bytes(&bytes) else { return };
    let relaxed = to_relaxed_json(raw, Dialect::Relaxed);
    let typed = to_relaxed_json(raw, Dialect::TypePreserving);
    assert_eq!(relaxed.is_ok(), typed.is_ok());
    assert_eq!(
        to_relaxed_json_text(raw, Dialect::Relaxed).ok().map(String::into_bytes),
        relaxed.as_ref().ok().cloned()
    );
    let (Ok(relaxed), Ok(typed)) = (relaxed, typed) else { return };
    let relaxed: serde_json::Value = serde_json::from_slice(&relaxed).expect("the relaxed dialect writes JSON");
    let Ok(document) = Document::try_from(raw) else { return };
    if !ferry_fuzz::has_far_date(&document) {
        let bsons = Bson::Document(document.clone()).into_relaxed_extjson();
        assert_eq!(relaxed, bsons, "not bson's relaxed Extended JSON");
    }
    if ferry_fuzz::has_dollar_key(&document) {
        // A document whose first key starts with `$` reads back as an
        // Extended JSON wrapper: JSON cannot tell them apart.
        return;
    }
    let read_back = json_to_bson(&typed).unwrap_or_else(|error| {
        panic!("Ferry's dialect does not read back: {error}\n{}", String::from_utf8_lossy(&typed))
    });
    let read_back = Document::try_from(read_back.as_ref()).expect("json_to_bson writes readable BSON");
    assert!(ferry_fuzz::same(&read_back, &document), "Ferry's dialect changed a value:\n{read_back:?}\n{document:?}");
});
