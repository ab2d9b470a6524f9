//! A message as Ferry sends and reads it, whichever generation carried it.
//!
//! Every generation so far frames a message's user headers the same way
//! (`[key kind][key length][key][value kind][value length][value]`, byte for
//! byte the same in `iggy` 0.10 and 0.11), so a message keeps them in that
//! wire form: a generation's implementation hands them over as they are,
//! and they are decoded only where Ferry reads them.

use bytes::Bytes;
use iggy_binary_protocol_0_10::WireUserHeaders;
use iggy_common_0_10::wire_conversions::user_headers_from_wire;

/// Iggy's cap on a message's payload (the same in 0.8 and 0.9).
pub const MAX_PAYLOAD_SIZE: usize = 64_000_000;

/// Iggy's cap on a message's encoded user headers (the same in 0.8 and 0.9).
pub const MAX_USER_HEADERS_SIZE: usize = 100_000;

/// One message: to send (`offset` and `timestamp` are then the server's to
/// set), or as read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The message id; 0 lets the server (or the 0.9 client) assign one.
    pub id: u128,
    pub offset: u64,
    /// When the server appended it, in microseconds since the epoch.
    pub timestamp: u64,
    pub payload: Bytes,
    /// The user headers in Iggy's wire form.
    pub user_headers: Option<Bytes>,
}

/// One user header, as text. Iggy headers are typed (strings, numbers,
/// raw bytes); Ferry reads every kind as the SDK renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextHeader {
    pub name: String,
    pub value: String,
    /// The value's own bytes (a string header's UTF-8).
    pub raw: Vec<u8>,
}

impl Message {
    /// A message to send, without headers.
    pub fn new(id: u128, payload: Bytes) -> Self {
        Self { id, offset: 0, timestamp: 0, payload, user_headers: None }
    }

    /// The user headers, sorted by name; `None` when the message has none,
    /// or when they cannot be decoded (a foreign producer's bug should not
    /// fail the record: the payload is what the pipeline exists to move).
    pub fn headers(&self) -> Option<Vec<TextHeader>> {
        let wire = WireUserHeaders::from_bytes(self.user_headers.clone()?).ok()?;
        let map = user_headers_from_wire(&wire).ok()?;
        Some(
            map.iter()
                .map(|(name, value)| TextHeader {
                    name: name.to_string_value(),
                    value: value.to_string_value(),
                    raw: value.as_bytes().to_vec(),
                })
                .collect(),
        )
    }

    /// The text of the header `name`, if the message has it.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers()?.into_iter().find(|header| header.name == name).map(|header| header.value)
    }
}
