//! Extended JSON text written straight into BSON bytes — the Iggy → MongoDB
//! hot path turns every output into a document.
//!
//! Plain JSON (objects, arrays, strings, numbers, booleans, null) is encoded
//! here, following the Extended JSON rules: an integer is an Int32 when it
//! fits, else an Int64, else a Double; a number with a fraction or exponent
//! is a Double. An object whose first key starts with `$` is an Extended
//! JSON wrapper (`{"$date": ...}`, `{"$oid": ...}`, ...) and goes through
//! bson's own parser, so every wrapper means exactly what it means to bson.

use std::borrow::Cow;
use std::fmt;

use bson::{Bson, RawDocumentBuf, doc};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::encoding::bson_frame::{close, open};

const DOUBLE: u8 = 0x01;
const STRING: u8 = 0x02;
const DOCUMENT: u8 = 0x03;
const ARRAY: u8 = 0x04;
const OBJECT_ID: u8 = 0x07;
const BOOLEAN: u8 = 0x08;
const DATE_TIME: u8 = 0x09;
const NULL: u8 = 0x0A;
const INT32: u8 = 0x10;
const INT64: u8 = 0x12;

/// A JSON object as a BSON document, or a description of why it is not one
/// (the caller explains the failure in its own terms).
pub fn json_to_bson(json: &[u8]) -> Result<RawDocumentBuf, String> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let mut bytes = Vec::with_capacity(json.len() + 16);
    let kind = Value(&mut bytes).deserialize(&mut deserializer).map_err(|error| error.to_string())?;
    deserializer.end().map_err(|error| error.to_string())?;
    if kind != DOCUMENT {
        return Err("not an object".to_owned());
    }
    RawDocumentBuf::from_bytes(bytes).map_err(|error| error.to_string())
}

/// Writes one JSON value's BSON encoding into the buffer and returns its
/// BSON element type.
struct Value<'b>(&'b mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for Value<'_> {
    type Value = u8;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<u8, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Value<'_> {
    type Value = u8;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<u8, E> {
        self.0.push(u8::from(value));
        Ok(BOOLEAN)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<u8, E> {
        match i32::try_from(value) {
            Ok(small) => {
                self.0.extend_from_slice(&small.to_le_bytes());
                Ok(INT32)
            }
            Err(_) => {
                self.0.extend_from_slice(&value.to_le_bytes());
                Ok(INT64)
            }
        }
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<u8, E> {
        match i64::try_from(value) {
            Ok(signed) => self.visit_i64(signed),
            Err(_) => self.visit_f64(value as f64),
        }
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<u8, E> {
        self.0.extend_from_slice(&value.to_le_bytes());
        Ok(DOUBLE)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<u8, E> {
        let length = i32::try_from(value.len() + 1).map_err(|_| de::Error::custom("a string is too long"))?;
        self.0.extend_from_slice(&length.to_le_bytes());
        self.0.extend_from_slice(value.as_bytes());
        self.0.push(0);
        Ok(STRING)
    }

    fn visit_unit<E: de::Error>(self) -> Result<u8, E> {
        Ok(NULL)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<u8, A::Error> {
        let start = open(self.0);
        let mut index = 0usize;
        loop {
            let type_at = self.0.len();
            self.0.push(0);
            write_key(self.0, &index.to_string()).map_err(de::Error::custom)?;
            match items.next_element_seed(Value(self.0))? {
                Some(kind) => self.0[type_at] = kind,
                None => {
                    self.0.truncate(type_at);
                    break;
                }
            }
            index += 1;
        }
        close(self.0, start).map_err(de::Error::custom)?;
        Ok(ARRAY)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<u8, A::Error> {
        let Some(first) = entries.next_key::<Key<'de>>()? else {
            let start = open(self.0);
            close(self.0, start).map_err(de::Error::custom)?;
            return Ok(DOCUMENT);
        };
        if first.0.starts_with('$') {
            return extended(first, entries, self.0);
        }
        let start = open(self.0);
        let mut key = Some(first);
        while let Some(Key(name)) = key {
            let type_at = self.0.len();
            self.0.push(0);
            write_key(self.0, &name).map_err(de::Error::custom)?;
            self.0[type_at] = entries.next_value_seed(Value(self.0))?;
            key = entries.next_key::<Key<'de>>()?;
        }
        close(self.0, start).map_err(de::Error::custom)?;
        Ok(DOCUMENT)
    }
}

/// An Extended JSON wrapper (or a document whose first key starts with `$`):
/// read whole and handed to bson, then its encoding appended.
fn extended<'de, A: MapAccess<'de>>(first: Key<'de>, mut entries: A, out: &mut Vec<u8>) -> Result<u8, A::Error> {
    let value = entries.next_value::<WrapperValue<'de>>()?;
    let second = entries.next_key::<Key<'de>>()?;
    if second.is_none()
        && let WrapperValue::Text(text) = &value
        && let Some(kind) = common_wrapper(&first.0, text, out)
    {
        return Ok(kind);
    }
    let mut object = serde_json::Map::new();
    object.insert(first.0.into_owned(), value.into_json());
    if let Some(Key(key)) = second {
        object.insert(key.into_owned(), entries.next_value()?);
    }
    while let Some((key, value)) = entries.next_entry::<String, serde_json::Value>()? {
        object.insert(key, value);
    }
    let bson = Bson::try_from(serde_json::Value::Object(object)).map_err(de::Error::custom)?;
    // The value's bytes, cut from a one-field document {"": value}.
    let holder = RawDocumentBuf::try_from(&doc! { "": bson }).map_err(de::Error::custom)?;
    let bytes = holder.as_bytes();
    out.extend_from_slice(&bytes[6..bytes.len() - 1]);
    Ok(bytes[4])
}

/// The two wrappers transforms write most, `{"$date": "<RFC 3339>"}` and
/// `{"$oid": "<hex>"}`, encoded without the detour through a JSON tree (the
/// detour cost about a tenth of the Iggy → MongoDB CPU). They are parsed by
/// the same bson functions its own reader uses; anything they refuse falls
/// back to that reader, which words the error.
fn common_wrapper(key: &str, text: &str, out: &mut Vec<u8>) -> Option<u8> {
    match key {
        "$date" => {
            let date = bson::DateTime::parse_rfc3339_str(text).ok()?;
            out.extend_from_slice(&date.timestamp_millis().to_le_bytes());
            Some(DATE_TIME)
        }
        "$oid" => {
            let id = bson::oid::ObjectId::parse_str(text).ok()?;
            out.extend_from_slice(&id.bytes());
            Some(OBJECT_ID)
        }
        _ => None,
    }
}

fn write_key(out: &mut Vec<u8>, key: &str) -> Result<(), String> {
    if key.as_bytes().contains(&0) {
        return Err(format!("the key {key:?} contains a NUL byte"));
    }
    out.extend_from_slice(key.as_bytes());
    out.push(0);
    Ok(())
}

/// A wrapper's value: text (the common `$date` and `$oid` forms) borrowed
/// from the input, anything else as a JSON tree for bson's parser.
enum WrapperValue<'a> {
    Text(Cow<'a, str>),
    Other(serde_json::Value),
}

impl WrapperValue<'_> {
    fn into_json(self) -> serde_json::Value {
        match self {
            Self::Text(text) => serde_json::Value::String(text.into_owned()),
            Self::Other(value) => value,
        }
    }
}

impl<'de> de::Deserialize<'de> for WrapperValue<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WrapperVisitor;
        impl<'de> Visitor<'de> for WrapperVisitor {
            type Value = WrapperValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(WrapperValue::Text(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(WrapperValue::Text(Cow::Owned(text.to_owned())))
            }
            fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
                Ok(WrapperValue::Other(value.into()))
            }
            fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
                Ok(WrapperValue::Other(value.into()))
            }
            fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
                Ok(WrapperValue::Other(value.into()))
            }
            fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
                Ok(WrapperValue::Other(value.into()))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(WrapperValue::Other(serde_json::Value::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, items: A) -> Result<Self::Value, A::Error> {
                de::Deserialize::deserialize(de::value::SeqAccessDeserializer::new(items)).map(WrapperValue::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, entries: A) -> Result<Self::Value, A::Error> {
                de::Deserialize::deserialize(de::value::MapAccessDeserializer::new(entries)).map(WrapperValue::Other)
            }
        }
        deserializer.deserialize_any(WrapperVisitor)
    }
}

/// An object key, borrowed from the input unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use bson::Document;

    use super::*;

    /// What bson's own Extended JSON parser makes of `json`.
    fn reference(json: &str) -> Document {
        let serde_json::Value::Object(object) = serde_json::from_str(json).unwrap() else { panic!("an object") };
        Document::try_from(object).unwrap()
    }

    fn ours(json: &str) -> Document {
        Document::try_from(json_to_bson(json.as_bytes()).unwrap().as_ref()).unwrap()
    }

    #[test]
    fn given_plain_and_extended_json_then_matches_bsons_parser_exactly() {
        for json in [
            r#"{}"#,
            r#"{"s":"t\"ext ü","n":null,"t":true,"f":false}"#,
            r#"{"small":3,"negative":-3,"big":9000000000,"huge":18446744073709551615,"d":-3.25,"e":1e3}"#,
            r#"{"a":[1,[2,{"x":[]}],"s",{}],"o":{"p":{"q":1}}}"#,
            r#"{"ts":{"$date":"2026-11-26T03:00:00Z"},"id":{"$oid":"65f0a1b2c3d4e5f601234567"}}"#,
            r#"{"n":{"$numberDecimal":"1.10"},"l":{"$numberLong":"5"},"dates":[{"$date":{"$numberLong":"-5"}}]}"#,
            r#"{"t":{"$date":"2026-11-26T03:00:00.123+02:00"},"old":{"$date":"1901-02-03T04:05:06.7Z"}}"#,
            r#"{"ids":[{"$oid":"65F0A1B2C3D4E5F601234567"}]}"#,
            r#"{"$set":{"a":1},"b":2}"#,
            r#"{"w":{"$each":[1,true,null,2.5,"s"]},"v":{"$inc":-3},"u":{"$big":18446744073709551615},"x":{"$f":false}}"#,
            r#"{"k\u0065y":1}"#,
        ] {
            assert_eq!(ours(json), reference(json), "{json}");
        }
    }

    #[test]
    fn given_key_order_then_it_is_kept() {
        assert_eq!(ours(r#"{"z":1,"a":2}"#).keys().collect::<Vec<_>>(), ["z", "a"]);
    }

    #[test]
    fn given_non_documents_then_errors() {
        assert!(json_to_bson(b"[1]").is_err());
        assert!(json_to_bson(b"{").is_err());
        assert!(json_to_bson(b"{}x").is_err());
        assert!(json_to_bson(br#"{"d":{"$date":"not a date"}}"#).is_err());
        assert!(json_to_bson(br#"{"d":{"$oid":"65f0"}}"#).is_err());
        assert!(json_to_bson(br#"{"d":{"$date":"2026-11-26T03:00:00Z","x":1}}"#).is_err());
        assert!(json_to_bson(b"{\"a\\u0000b\":1}").is_err());
    }
}
