//! Iggy headers both ways: what Ferry encodes (`Headers`) must decode with
//! the SDK's own reader as the rules say (empty ones left out, long values
//! cut, a later value replacing an earlier one), and what Ferry reads from
//! polled messages — any user-header bytes — becomes a record, and a
//! change position where the headers carry one. Positions read from text
//! must write out again and read back.

#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use bytes::Bytes;
use ferry::config::PayloadFormat;
use ferry::iggy_link::{Headers, MAX_HEADER_VALUE, Message};
use ferry::resume::{ChangePosition, joined_pieces};
use ferry::iggy_link::KEY_HEADER;
use ferry::source::to_record;
use ferry_fuzz::ArbName;
use iggy::prelude::IggyMessage;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    added: Vec<(ArbName, String)>,
    id: Option<u128>,
    payload: Vec<u8>,
    partition: u32,
    format: Format,
    /// User-header bytes as a server could send them.
    wire: Vec<u8>,
    /// A position as a checkpoint message's payload holds it.
    position: String,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Format {
    Json,
    Text,
    Binary,
}

fuzz_target!(|input: Input| {
    let format = match input.format {
        Format::Json => PayloadFormat::Json,
        Format::Text => PayloadFormat::Text,
        Format::Binary => PayloadFormat::Binary,
    };
    encoded(&input, format);
    polled(&input, format);
    position(&input.position);
});

fn encoded(input: &Input, format: PayloadFormat) {
    let names: Vec<String> = input.added.iter().map(|(name, _)| name.text()).collect();
    let mut headers = Headers::default();
    let mut expected: Vec<(String, String)> = Vec::new();
    for (name, (_, value)) in names.iter().zip(&input.added) {
        headers.add(name, value.as_str());
        if name.is_empty() || name.len() > MAX_HEADER_VALUE || value.is_empty() {
            continue;
        }
        let mut end = value.len().min(MAX_HEADER_VALUE);
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        match expected.iter_mut().find(|(existing, _)| existing == name) {
            Some(entry) => entry.1 = value[..end].to_owned(),
            None => expected.push((name.clone(), value[..end].to_owned())),
        }
    }
    let Ok(message) = headers.message(input.id.unwrap_or(0), Bytes::from(input.payload.clone())) else { return };
    // Read back with the SDK's own reader, and with Ferry's: the same.
    let Ok(mut sdk) = IggyMessage::builder().payload(Bytes::from_static(b"x")).build() else { return };
    sdk.user_headers = message.user_headers.clone();
    let decoded: BTreeMap<String, String> = match sdk.user_headers_map().expect("Ferry's headers decode") {
        Some(map) => map.iter().map(|(name, value)| (name.to_string_value(), value.to_string_value())).collect(),
        None => BTreeMap::new(),
    };
    assert_eq!(decoded, expected.iter().cloned().collect::<BTreeMap<_, _>>());
    let read: BTreeMap<String, String> =
        message.headers().unwrap_or_default().into_iter().map(|header| (header.name, header.value)).collect();
    assert_eq!(read, decoded);
    let record = to_record(&message, input.partition, format);
    let key = expected.iter().find(|(name, _)| name == KEY_HEADER).map(|(_, value)| value.as_bytes().to_vec());
    assert_eq!(record.key, key);
    let others = record.headers.iter().flatten().map(|header| (header.name.clone(), header.value.clone()));
    let others: BTreeMap<String, String> = others.collect();
    let mut expected_others: BTreeMap<String, String> = expected.into_iter().collect();
    expected_others.remove(KEY_HEADER);
    assert_eq!(others, expected_others);
}

fn polled(input: &Input, format: PayloadFormat) {
    let mut message = Message::new(0, Bytes::from_static(b"x"));
    message.user_headers = Some(Bytes::from(input.wire.clone()));
    let _ = to_record(&message, input.partition, format);
    if let Some(position) = ChangePosition::from_message(&message) {
        let _ = position.to_json();
    }
}

fn position(text: &str) {
    let Some(position) = ChangePosition::from_json(text) else { return };
    let json = position.to_json();
    assert!(ChangePosition::from_json(&json).is_some(), "{json} does not read back");
    let pieces = position.to_text_pieces();
    assert!(pieces.iter().all(|(_, value)| value.len() <= MAX_HEADER_VALUE));
    let joined = joined_pieces(pieces.iter().map(|(name, value)| (name.as_str(), value.as_str())));
    assert_eq!(joined.as_deref(), Some(json.as_str()));
}
