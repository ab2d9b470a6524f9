//! The text headers of the messages Ferry produces, encoded straight into
//! Iggy's wire form with the SDK's own encoder. Going through the SDK's
//! `BTreeMap<HeaderKey, HeaderValue>` cost two allocations per header and a
//! tree per message: a tenth of the change-stream pipeline's CPU.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use iggy_binary_protocol_0_10::primitives::user_headers::{encode_user_headers, user_headers_encoded_size};
use iggy_common_0_10::HeaderKind;

use super::message::{MAX_USER_HEADERS_SIZE, Message};

/// The user header that carries a record's key (Iggy messages have none of
/// their own): Ferry's Iggy sink and dead letters write it, its source reads
/// it.
pub const KEY_HEADER: &str = "ferry-key";

/// Iggy refuses header names and values longer than this.
pub const MAX_HEADER_VALUE: usize = 255;

/// Headers that together exceed Iggy's cap on a message's headers.
#[derive(Debug, thiserror::Error)]
#[error("the message's headers take {size} bytes, above Iggy's limit of {MAX_USER_HEADERS_SIZE}")]
pub struct HeadersTooBig {
    pub size: usize,
}

/// A message's headers, in the order they were first added.
#[derive(Default)]
pub struct Headers<'a> {
    entries: Vec<(&'a str, Cow<'a, str>)>,
}

impl<'a> Headers<'a> {
    pub fn with_capacity(capacity: usize) -> Self {
        Self { entries: Vec::with_capacity(capacity) }
    }

    /// Adds a header, or replaces the value of one with the same name. A
    /// value longer than Iggy takes is cut at a character boundary; an empty
    /// value, or a name Iggy would refuse, leaves the header out.
    pub fn add(&mut self, name: &'a str, value: impl Into<Cow<'a, str>>) {
        let mut value = value.into();
        if name.is_empty() || name.len() > MAX_HEADER_VALUE || value.is_empty() {
            return;
        }
        if value.len() > MAX_HEADER_VALUE {
            let mut end = MAX_HEADER_VALUE;
            while !value.is_char_boundary(end) {
                end -= 1;
            }
            value = match value {
                Cow::Borrowed(text) => Cow::Borrowed(&text[..end]),
                Cow::Owned(mut text) => {
                    text.truncate(end);
                    Cow::Owned(text)
                }
            };
        }
        match self.entries.iter_mut().find(|(existing, _)| *existing == name) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((name, value)),
        }
    }

    /// A message with `payload` carrying these headers (and `id`; 0 lets
    /// the server assign one).
    pub fn message(&self, id: u128, payload: Bytes) -> Result<Message, HeadersTooBig> {
        let mut message = Message::new(id, payload);
        if self.entries.is_empty() {
            return Ok(message);
        }
        // Entry by entry, so no list of them is built for every message.
        let size: usize = self.entries.iter().map(|pair| user_headers_encoded_size(&entry(pair))).sum();
        if size > MAX_USER_HEADERS_SIZE {
            return Err(HeadersTooBig { size });
        }
        let mut wire = BytesMut::with_capacity(size);
        for pair in &self.entries {
            encode_user_headers(&entry(pair), &mut wire);
        }
        message.user_headers = Some(wire.freeze());
        Ok(message)
    }
}

/// One header as the SDK's encoder takes it: a text name and a text value.
fn entry<'e>((name, value): &'e (&str, Cow<str>)) -> [(u8, &'e [u8], u8, &'e [u8]); 1] {
    let text = HeaderKind::String.as_code();
    [(text, name.as_bytes(), text, value.as_bytes())]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use iggy_0_10::prelude::{HeaderKey, HeaderValue, IggyMessage};

    use super::*;

    fn sdk_map(pairs: &[(&str, &str)]) -> BTreeMap<HeaderKey, HeaderValue> {
        pairs
            .iter()
            .map(|(name, value)| (HeaderKey::try_from(*name).unwrap(), HeaderValue::try_from(*value).unwrap()))
            .collect()
    }

    #[test]
    fn given_headers_then_the_message_reads_back_as_the_sdk_would_build_it() {
        let mut headers = Headers::default();
        headers.add("ferry-operation", "insert");
        headers.add("b", "1");
        headers.add("ferry-operation", "update");
        let message = headers.message(7, Bytes::from_static(b"x")).unwrap();
        let built = IggyMessage::builder()
            .id(7)
            .payload(Bytes::from_static(b"x"))
            .user_headers(sdk_map(&[("b", "1"), ("ferry-operation", "update")]))
            .build()
            .unwrap();
        assert_eq!(message.user_headers.as_ref().map(Bytes::len), Some(built.header.user_headers_length as usize));
        let mut from_sdk = IggyMessage::builder().payload(Bytes::from_static(b"x")).build().unwrap();
        from_sdk.user_headers = message.user_headers.clone();
        assert_eq!(from_sdk.user_headers_map().unwrap(), built.user_headers_map().unwrap());
        let read: Vec<_> = message.headers().unwrap().into_iter().map(|header| (header.name, header.value)).collect();
        assert_eq!(read, [("b".to_owned(), "1".to_owned()), ("ferry-operation".to_owned(), "update".to_owned())]);
        assert_eq!((message.id, message.payload), (7, Bytes::from_static(b"x")));
    }

    #[test]
    fn given_values_iggy_cannot_carry_then_they_are_cut_or_left_out() {
        let long = "é".repeat(200);
        let long_name = "n".repeat(MAX_HEADER_VALUE + 1);
        let mut headers = Headers::default();
        headers.add("long", long.as_str());
        headers.add("owned", long.clone());
        headers.add("empty", "");
        headers.add("", "no name");
        headers.add(&long_name, "x");
        let message = headers.message(0, Bytes::from_static(b"x")).unwrap();
        assert_eq!(message.header("long"), Some("é".repeat(127)), "cut at a character boundary, within 255 bytes");
        assert_eq!(message.header("owned"), message.header("long"));
        assert_eq!(message.headers().unwrap().len(), 2);
    }

    #[test]
    fn given_no_headers_then_the_message_has_none() {
        let message = Headers::default().message(0, Bytes::from_static(b"x")).unwrap();
        assert_eq!((&message.user_headers, message.headers()), (&None, None));
    }

    #[test]
    fn given_headers_above_iggys_limit_then_the_message_is_refused_with_their_size() {
        let values: Vec<String> = (0..500).map(|n| format!("{n:0>250}")).collect();
        let names: Vec<String> = (0..500).map(|n| format!("h{n}")).collect();
        let mut headers = Headers::default();
        for (name, value) in names.iter().zip(&values) {
            headers.add(name, value.as_str());
        }
        let error = headers.message(0, Bytes::from_static(b"x")).unwrap_err();
        assert!(error.size > MAX_USER_HEADERS_SIZE, "{error}");
        assert!(error.to_string().contains("above Iggy's limit of 100000"), "{error}");
    }
}
