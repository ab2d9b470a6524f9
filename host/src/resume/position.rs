//! Where a MongoDB source stands — after a change, or part-way through
//! copying existing documents — and how that position travels with every
//! message Ferry produces, so the topic itself records how far it got.

use std::borrow::Cow;
use std::cmp::Ordering;

use bson::{Bson, Document};
use serde_json::{Value, json};

use crate::encoding::relaxed_json::{Dialect, to_relaxed_json_text};
use crate::iggy_link::Message;

/// Headers holding a position: `ferry-position-0`, `-1`, …
pub const POSITION_HEADER: &str = "ferry-position";
const CHUNK: usize = 255;

/// A cluster time: seconds since the Unix epoch and an ordinal within them.
pub type ClusterTime = (u32, u32);

#[derive(Debug, Clone, PartialEq)]
pub enum ChangePosition {
    /// After the change (or empty batch) with this resume token.
    Stream {
        token: Document,
        /// The change's cluster time; unknown for a post-batch token.
        cluster_time: Option<ClusterTime>,
    },
    /// After the `copied`-th document (whose `_id` is `last_id`) of the copy
    /// of existing documents that began at cluster time `started`. The
    /// stream goes on after `stream_token`, taken before the copy read its
    /// first document; positions stored by earlier builds have none, and
    /// their stream begins at `started`.
    Copy { started: ClusterTime, copied: u64, last_id: Bson, stream_token: Option<Document> },
}

/// How a record's position relates to the last one a partition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// The partition already has it.
    Behind,
    /// The partition's last message came from this very change.
    Same,
    /// New to the partition.
    Ahead,
}

impl ChangePosition {
    /// Where `self` stands against `last`, a partition's last position.
    pub fn relation_to(&self, last: &ChangePosition) -> Relation {
        use ChangePosition::{Copy, Stream};
        match (self, last) {
            (Stream { token, cluster_time }, Stream { token: last_token, cluster_time: last_time }) => {
                if token == last_token {
                    Relation::Same
                } else {
                    match (cluster_time, last_time) {
                        (Some(time), Some(last)) if time > last => Relation::Ahead,
                        // The events of one transaction share a cluster time;
                        // MongoDB orders them by the token's `_data`, a string
                        // that sorts as the events do (since 4.0).
                        (Some(time), Some(last)) if time == last && sorts_after(token, last_token) => Relation::Ahead,
                        _ => Relation::Behind,
                    }
                }
            }
            // Streaming follows the copy it started from.
            (Stream { .. }, Copy { .. }) => Relation::Ahead,
            (Copy { started, .. }, Stream { cluster_time: Some(time), .. }) if started > time => Relation::Ahead,
            (Copy { .. }, Stream { .. }) => Relation::Behind,
            (Copy { started, copied, .. }, Copy { started: last_started, copied: last_copied, .. }) => {
                match started.cmp(last_started).then(copied.cmp(last_copied)) {
                    Ordering::Greater => Relation::Ahead,
                    Ordering::Equal => Relation::Same,
                    Ordering::Less => Relation::Behind,
                }
            }
        }
    }

    /// The cluster time (seconds) a stream opened from here resumes at: the
    /// change's, the copy's start, or the one a MongoDB resume token
    /// carries (a post-batch token names no change).
    pub fn cluster_seconds(&self) -> Option<u32> {
        match self {
            Self::Stream { cluster_time: Some((seconds, _)), .. } => Some(*seconds),
            Self::Stream { token, cluster_time: None } => token_seconds(token),
            Self::Copy { started, .. } => Some(started.0),
        }
    }

    /// The cluster time (seconds) of the change this position comes right
    /// after, if it comes after one.
    pub fn change_seconds(&self) -> Option<u32> {
        match self {
            Self::Stream { cluster_time, .. } => cluster_time.map(|(seconds, _)| seconds),
            Self::Copy { .. } => None,
        }
    }

    /// The position as compact JSON (Extended JSON inside).
    pub fn to_json(&self) -> String {
        match self {
            Self::Stream { token, cluster_time } => {
                let token = bson::RawDocumentBuf::try_from(token)
                    .ok()
                    .and_then(|token| to_relaxed_json_text(&token, Dialect::Relaxed).ok())
                    .expect("a resume token read from the server encodes again");
                Self::stream_json(&token, *cluster_time)
            }
            Self::Copy { started, copied, last_id, stream_token } => {
                let mut copy = json!({ "started": started, "n": copied, "id": last_id.clone().into_relaxed_extjson() });
                if let Some(token) = stream_token {
                    copy["token"] = Bson::Document(token.clone()).into_relaxed_extjson();
                }
                json!({ "copy": copy }).to_string()
            }
        }
    }

    pub fn from_json(text: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(text).ok()?;
        if let Some(copy) = value.get("copy") {
            let started = serde_json::from_value(copy.get("started")?.clone()).ok()?;
            let copied = copy.get("n")?.as_u64()?;
            let last_id = Bson::try_from(copy.get("id")?.clone()).ok()?;
            let stream_token = match copy.get("token") {
                None => None,
                Some(token) => Some(bson_token(token)?),
            };
            return Some(Self::Copy { started, copied, last_id, stream_token });
        }
        let token = bson_token(value.get("token")?)?;
        let cluster_time = serde_json::from_value(value.get("t")?.clone()).ok()?;
        Some(Self::Stream { token, cluster_time })
    }

    /// Reads a position back from a message's headers.
    pub fn from_message(message: &Message) -> Option<Self> {
        let headers = message.headers()?;
        Self::from_text_headers(headers.iter().map(|header| (header.name.as_str(), header.value.as_str())))
    }

    /// The position as headers of at most 255 bytes each (Iggy's cap on a
    /// header value; resume tokens can be longer).
    pub fn to_text_pieces(&self) -> Vec<(String, String)> {
        pieces(self.to_json())
    }

    /// The JSON of a stream position around its token's relaxed JSON (the
    /// hot path: one per change, with the token's JSON cut from the
    /// event's own).
    pub fn stream_json(token_json: &str, cluster_time: Option<ClusterTime>) -> String {
        let mut json = String::with_capacity(token_json.len() + 40);
        match cluster_time {
            Some((seconds, increment)) => {
                let mut number = itoa::Buffer::new();
                json.push_str(r#"{"t":["#);
                json.push_str(number.format(seconds));
                json.push(',');
                json.push_str(number.format(increment));
                json.push_str(r#"],"token":"#);
            }
            None => json.push_str(r#"{"t":null,"token":"#),
        }
        json.push_str(token_json);
        json.push('}');
        json
    }
}

impl ChangePosition {
    /// Reads a position back from text headers (as records carry them).
    pub fn from_text_headers<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Self> {
        Self::from_json(&joined_pieces(headers)?)
    }
}

/// A resume token from its Extended JSON; `None` unless it is a document
/// that can be sent to the server and written out again (a JSON key can
/// hold a NUL byte, a BSON key cannot).
fn bson_token(json: &Value) -> Option<Document> {
    let Bson::Document(token) = Bson::try_from(json.clone()).ok()? else { return None };
    bson::RawDocumentBuf::try_from(&token).ok()?;
    Some(token)
}

/// The seconds of the cluster time a MongoDB resume token begins with: its
/// `_data` is hex, and starts with the timestamp's type byte (0x82) and the
/// timestamp, big-endian. Tokens of another form (other servers' own) give
/// nothing.
fn token_seconds(token: &Document) -> Option<u32> {
    let data = token.get_str("_data").ok()?;
    let seconds = data.strip_prefix("82")?.get(..8)?;
    u32::from_str_radix(seconds, 16).ok()
}

/// The position pieces among `headers`, joined in order: the position's
/// JSON. `None` when there are none. A position in one piece (nearly all)
/// is borrowed as it is.
pub fn joined_pieces<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Cow<'a, str>> {
    let mut pieces = headers.into_iter().filter_map(|(name, value)| {
        let index: usize = name.strip_prefix(POSITION_HEADER)?.strip_prefix('-')?.parse().ok()?;
        Some((index, value))
    });
    let first = pieces.next()?;
    let Some(second) = pieces.next() else { return Some(Cow::Borrowed(first.1)) };
    let mut pieces: Vec<(usize, &str)> = [first, second].into_iter().chain(pieces).collect();
    pieces.sort_unstable_by_key(|(index, _)| *index);
    Some(Cow::Owned(pieces.iter().map(|(_, piece)| *piece).collect()))
}

/// `json` as headers of at most 255 bytes each (Iggy's cap on a header
/// value; resume tokens can be longer). Most positions fit one header,
/// which then takes the text as it is: this runs for every change.
pub fn pieces(json: String) -> Vec<(String, String)> {
    if json.len() <= CHUNK {
        return if json.is_empty() { Vec::new() } else { vec![(piece_name(0), json)] };
    }
    let mut pieces = Vec::new();
    let mut rest = json.as_str();
    while !rest.is_empty() {
        let mut end = rest.len().min(CHUNK);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        pieces.push((piece_name(pieces.len()), rest[..end].to_owned()));
        rest = &rest[end..];
    }
    pieces
}

/// `ferry-position-<index>`, without the formatting machinery.
fn piece_name(index: usize) -> String {
    let mut number = itoa::Buffer::new();
    let number = number.format(index);
    let mut name = String::with_capacity(POSITION_HEADER.len() + 1 + number.len());
    name.push_str(POSITION_HEADER);
    name.push('-');
    name.push_str(number);
    name
}

/// Whether both resume tokens have a `_data` string and `token`'s sorts
/// after `last`'s.
fn sorts_after(token: &Document, last: &Document) -> bool {
    match (token.get_str("_data"), last.get_str("_data")) {
        (Ok(data), Ok(last_data)) => data > last_data,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn given_each_kind_of_position_then_its_cluster_time_is_known_where_it_can_be() {
        let change = ChangePosition::Stream { token: doc! { "_data": "x" }, cluster_time: Some((1_700, 3)) };
        assert_eq!((change.cluster_seconds(), change.change_seconds()), (Some(1_700), Some(1_700)));
        // A MongoDB post-batch token: 0x82, then 0x6553F100 seconds.
        let token = doc! { "_data": "826553F100000000012B042C0100296E5A1004" };
        let post_batch = ChangePosition::Stream { token, cluster_time: None };
        assert_eq!((post_batch.cluster_seconds(), post_batch.change_seconds()), (Some(0x6553_F100), None));
        let other_server = ChangePosition::Stream { token: doc! { "_data": "3b00000010" }, cluster_time: None };
        assert_eq!(other_server.cluster_seconds(), None);
        let copy = ChangePosition::Copy { started: (1_600, 1), copied: 5, last_id: Bson::Int32(5), stream_token: None };
        assert_eq!((copy.cluster_seconds(), copy.change_seconds()), (Some(1_600), None));
    }

    fn stream(data: &str, time: Option<ClusterTime>) -> ChangePosition {
        ChangePosition::Stream { token: doc! { "_data": data }, cluster_time: time }
    }

    fn copy(started: ClusterTime, copied: u64) -> ChangePosition {
        ChangePosition::Copy { started, copied, last_id: Bson::Int32(copied as i32), stream_token: None }
    }

    #[test]
    fn given_stream_positions_then_the_same_token_is_same_and_later_times_are_ahead() {
        let last = stream("a", Some((10, 1)));
        assert_eq!(stream("a", Some((10, 1))).relation_to(&last), Relation::Same);
        assert_eq!(stream("b", Some((10, 2))).relation_to(&last), Relation::Ahead);
        assert_eq!(stream("c", Some((9, 5))).relation_to(&last), Relation::Behind);
    }

    #[test]
    fn given_a_transactions_events_then_their_tokens_order_them() {
        // MongoDB 7 tokens of one transaction's second and third events: one
        // cluster time, and `_data` grows with the event's index in it.
        let second = stream("8265A1B2C3000000012B0429296E1804", Some((10, 1)));
        let third = stream("8265A1B2C3000000012B0429296E1806", Some((10, 1)));
        assert_eq!(third.relation_to(&second), Relation::Ahead, "a later event of the same transaction is new");
        assert_eq!(second.relation_to(&third), Relation::Behind);
        let no_data = ChangePosition::Stream { token: doc! { "other": 1 }, cluster_time: Some((10, 1)) };
        assert_eq!(no_data.relation_to(&second), Relation::Behind, "without `_data` a tie is taken as held");
        assert_eq!(third.relation_to(&no_data), Relation::Behind);
    }

    #[test]
    fn given_copy_and_stream_then_the_stream_follows_the_copy() {
        assert_eq!(stream("a", Some((1, 1))).relation_to(&copy((5, 0), 9)), Relation::Ahead);
        assert_eq!(copy((5, 0), 9).relation_to(&stream("a", Some((4, 1)))), Relation::Ahead);
        assert_eq!(copy((5, 0), 9).relation_to(&stream("a", Some((6, 1)))), Relation::Behind);
        assert_eq!(copy((5, 0), 3).relation_to(&copy((5, 0), 4)), Relation::Behind);
        assert_eq!(copy((5, 0), 4).relation_to(&copy((5, 0), 4)), Relation::Same);
        assert_eq!(copy((6, 0), 1).relation_to(&copy((5, 0), 4)), Relation::Ahead);
    }

    #[test]
    fn given_a_long_token_then_headers_carry_it_in_pieces_and_back() {
        let position = stream(&"8".repeat(600), Some((1_764_126_000, 3)));
        let raw_token = bson::RawDocumentBuf::try_from(&doc! { "_data": "8".repeat(600) }).unwrap();
        let fast = ChangePosition::stream_json(
            &to_relaxed_json_text(&raw_token, Dialect::Relaxed).unwrap(),
            Some((1_764_126_000, 3)),
        );
        assert_eq!(ChangePosition::from_json(&fast), Some(position.clone()), "both encodings read the same");
        let pieces = position.to_text_pieces();
        let names: Vec<&str> = pieces.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["ferry-position-0", "ferry-position-1", "ferry-position-2"], "600+ bytes need three");
        assert!(pieces.iter().all(|(_, value)| value.len() <= 255));
        let mut headers = crate::iggy_link::Headers::default();
        for (name, value) in &pieces {
            headers.add(name, value.as_str());
        }
        let message = headers.message(0, bytes::Bytes::from_static(b"x")).unwrap();
        assert_eq!(ChangePosition::from_message(&message), Some(position));
    }

    #[test]
    fn given_a_short_position_then_one_piece_carries_it_whole() {
        let position = stream("8263", Some((1, 2)));
        assert_eq!(position.to_text_pieces(), [("ferry-position-0".to_owned(), position.to_json())]);
        assert_eq!(pieces(String::new()), []);
    }

    #[test]
    fn given_a_token_that_is_not_bson_then_the_text_is_no_position() {
        // Read from a checkpoint message's payload, this position panicked
        // when written out again.
        assert_eq!(ChangePosition::from_json(r#"{"t":null,"token":{"a\u0000b":1}}"#), None);
        assert!(ChangePosition::from_json(r#"{"t":null,"token":{"ab":1}}"#).is_some());
    }

    #[test]
    fn given_copy_positions_then_json_round_trips_bson_ids_and_the_stream_token() {
        let position = ChangePosition::Copy {
            started: (7, 1),
            copied: 42,
            last_id: Bson::ObjectId(bson::oid::ObjectId::new()),
            stream_token: Some(doc! { "_data": "826A0000000000000000" }),
        };
        assert_eq!(ChangePosition::from_json(&position.to_json()), Some(position));
        assert_eq!(ChangePosition::from_json("{}"), None);
        let bad_token = r#"{"copy":{"started":[7,1],"n":1,"id":1,"token":{"a\u0000b":1}}}"#;
        assert_eq!(ChangePosition::from_json(bad_token), None);
    }

    #[test]
    fn given_a_copy_position_stored_before_the_stream_token_then_it_still_reads() {
        let earlier = r#"{"copy":{"started":[7,1],"n":3,"id":9}}"#;
        let position = ChangePosition::from_json(earlier);
        assert_eq!(
            position,
            Some(ChangePosition::Copy { started: (7, 1), copied: 3, last_id: Bson::Int32(9), stream_token: None })
        );
    }
}
