//! Change events as records: `change_record` in every event format and
//! `change_position` on any BSON document, as a change stream (or a hostile
//! server) could hand them over. A JSON payload is the event written by
//! `to_relaxed_json`, the key and the position are JSON, and the position a
//! record carries reads back from its headers.

#![no_main]

use bson::RawDocument;
use ferry::config::EventFormat;
use ferry::encoding::relaxed_json::to_relaxed_json;
use ferry::record::Encoding;
use ferry::resume::ChangePosition;
use ferry::source::mongodb::{change_position, change_record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(bytes) = ferry_fuzz::bson_input(data) else { return };
    let Ok(event) = RawDocument::from_bytes(&bytes) else { return };
    let position = change_position(event);
    if let Ok(position) = &position {
        let _ = position.to_text_pieces();
        let _ = (position.cluster_seconds(), position.change_seconds());
    }
    for format in [EventFormat::Json, EventFormat::RelaxedJson, EventFormat::Bson] {
        let Ok(record) = change_record(event, format) else { continue };
        match format.dialect() {
            Some(dialect) => {
                assert_eq!(record.encoding, Encoding::Json);
                assert_eq!(Some(&record.payload), to_relaxed_json(event, dialect).ok().as_ref(), "{format:?}");
            }
            None => assert_eq!((record.encoding, record.payload.as_slice()), (Encoding::Bson, event.as_bytes())),
        }
        if let Some(key) = &record.key {
            serde_json::from_slice::<serde_json::Value>(key).expect("the document key is JSON");
        }
        let headers = record.headers.as_deref().unwrap_or_default();
        assert!(headers.iter().all(|header| header.value.len() <= 255), "a header Iggy would refuse");
        let as_text = headers.iter().map(|header| (header.name.as_str(), header.value.as_str()));
        let joined = ferry::resume::joined_pieces(as_text.clone()).expect("a record carries its position");
        serde_json::from_str::<serde_json::Value>(&joined).expect("the position is JSON");
        let read_back = ChangePosition::from_text_headers(as_text);
        if let (EventFormat::Json, Ok(ChangePosition::Stream { token, .. })) = (format, &position)
            && !ferry_fuzz::has_any_dollar_key(token)
        {
            // The Iggy sink finds where a partition stands by this.
            assert!(read_back.is_some(), "the position does not read back from {joined}");
        }
    }
});
