//! BSON bytes written straight out as Extended JSON, without building a
//! document or a JSON tree first — the change-stream hot path turns every
//! event into JSON for transforms.
//!
//! Two dialects: relaxed Extended JSON, and Ferry's default, which is
//! relaxed but writes every Int64 canonically (`{"$numberLong": "7"}`).
//! Relaxed writes an Int64 as a bare number, which reads back as an Int32
//! when it fits 32 bits: a round trip through JSON would change its type.
//! Every other type survives relaxed JSON and is written alike in both.
//!
//! Common types (strings, numbers, booleans, null, documents, arrays, object
//! ids, dates, timestamps) are written here; every other type goes through
//! bson's own conversion, so the output is the same JSON value that
//! `Bson::into_relaxed_extjson` gives (Int64 aside, in Ferry's dialect; and
//! dates past the year 9999, which bson saturates to 9999-12-31 and Ferry
//! writes as `{"$date": {"$numberLong": ...}}`, as the specification says).

use std::ops::Range;

use bson::Bson;
use bson::raw::{RawArray, RawBsonRef, RawDocument};

/// The last millisecond of 9999-12-31: relaxed Extended JSON writes dates
/// from 1970 to the year 9999 as RFC 3339 text, others as `$numberLong`.
const MAX_RFC3339_MILLIS: i64 = 253_402_300_799_999;

/// Which Extended JSON to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Relaxed, with every Int64 canonical: every BSON type reads back as
    /// itself.
    TypePreserving,
    /// Relaxed Extended JSON as MongoDB defines it.
    Relaxed,
}

/// Why bytes could not be written as JSON.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the BSON document")]
pub struct RelaxedJsonError(#[source] pub bson::error::Error);

/// `document` as Extended JSON in `dialect`.
pub fn to_relaxed_json(document: &RawDocument, dialect: Dialect) -> Result<Vec<u8>, RelaxedJsonError> {
    let mut out = json_buffer(document);
    write_document(document, dialect, &mut out)?;
    Ok(out)
}

/// An empty buffer with room for `document` as JSON, which runs about half
/// as long again as its BSON.
pub fn json_buffer(document: &RawDocument) -> Vec<u8> {
    Vec::with_capacity(document.as_bytes().len() * 3 / 2)
}

/// `document` as Extended JSON text in `dialect`.
pub fn to_relaxed_json_text(document: &RawDocument, dialect: Dialect) -> Result<String, RelaxedJsonError> {
    let json = to_relaxed_json(document, dialect)?;
    Ok(String::from_utf8(json).expect("JSON written from UTF-8 text is UTF-8"))
}

/// Appends one member of an object being written: a comma unless it is
/// the first, the key, and the value. Returns where the value's JSON lies
/// in `out`, so a caller walking a document once can reuse pieces of it.
pub fn write_member(
    first: bool,
    key: &str,
    value: RawBsonRef<'_>,
    dialect: Dialect,
    out: &mut Vec<u8>,
) -> Result<Range<usize>, RelaxedJsonError> {
    if !first {
        out.push(b',');
    }
    write_json(key, out);
    out.push(b':');
    let start = out.len();
    write_value(value, dialect, out)?;
    Ok(start..out.len())
}

fn write_document(document: &RawDocument, dialect: Dialect, out: &mut Vec<u8>) -> Result<(), RelaxedJsonError> {
    out.push(b'{');
    for (index, element) in document.iter().enumerate() {
        let (key, value) = element.map_err(RelaxedJsonError)?;
        write_member(index == 0, key.as_str(), value, dialect, out)?;
    }
    out.push(b'}');
    Ok(())
}

fn write_array(array: &RawArray, dialect: Dialect, out: &mut Vec<u8>) -> Result<(), RelaxedJsonError> {
    out.push(b'[');
    for (index, value) in array.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_value(value.map_err(RelaxedJsonError)?, dialect, out)?;
    }
    out.push(b']');
    Ok(())
}

fn write_value(value: RawBsonRef<'_>, dialect: Dialect, out: &mut Vec<u8>) -> Result<(), RelaxedJsonError> {
    match value {
        RawBsonRef::Document(document) => write_document(document, dialect, out)?,
        RawBsonRef::Array(array) => write_array(array, dialect, out)?,
        RawBsonRef::String(text) => write_json(&text, out),
        RawBsonRef::Double(number) if number.is_finite() => write_json(&number, out),
        RawBsonRef::Int32(number) => write_json(&number, out),
        RawBsonRef::Int64(number) if dialect == Dialect::TypePreserving => {
            out.extend_from_slice(br#"{"$numberLong":""#);
            write_json(&number, out);
            out.extend_from_slice(br#""}"#);
        }
        RawBsonRef::Int64(number) => write_json(&number, out),
        RawBsonRef::Boolean(flag) => write_json(&flag, out),
        RawBsonRef::Null => out.extend_from_slice(b"null"),
        RawBsonRef::ObjectId(id) => {
            // ObjectId::to_hex would allocate a String per id.
            let mut hex = [0; 24];
            hex::encode_to_slice(id.bytes(), &mut hex).expect("12 bytes fill 24 hex digits");
            out.extend_from_slice(br#"{"$oid":""#);
            out.extend_from_slice(&hex);
            out.extend_from_slice(br#""}"#);
        }
        // Every change event carries a cluster time and a wall time.
        RawBsonRef::Timestamp(time) => {
            out.extend_from_slice(br#"{"$timestamp":{"t":"#);
            write_json(&time.time, out);
            out.extend_from_slice(br#","i":"#);
            write_json(&time.increment, out);
            out.extend_from_slice(b"}}");
        }
        RawBsonRef::DateTime(date) if (0..=MAX_RFC3339_MILLIS).contains(&date.timestamp_millis()) => {
            out.extend_from_slice(br#"{"$date":""#);
            write_rfc3339(date.timestamp_millis(), out);
            out.extend_from_slice(br#""}"#);
        }
        // Written here too: bson writes a date past the year 9999 as
        // 9999-12-31T23:59:59.999999999Z (it saturates), so it read
        // back as another date (found by fuzz/).
        RawBsonRef::DateTime(date) => {
            out.extend_from_slice(br#"{"$date":{"$numberLong":""#);
            write_json(&date.timestamp_millis(), out);
            out.extend_from_slice(br#""}}"#);
        }
        // Its scope is a document like any other, written here so that its
        // dates and Int64s keep their types too (found by fuzz/).
        RawBsonRef::JavaScriptCodeWithScope(code) => {
            out.extend_from_slice(br#"{"$code":"#);
            write_json(code.code, out);
            out.extend_from_slice(br#","$scope":"#);
            write_document(code.scope, dialect, out)?;
            out.push(b'}');
        }
        other => {
            let bson = Bson::try_from(other).map_err(RelaxedJsonError)?;
            write_json(&bson.into_relaxed_extjson(), out);
        }
    }
    Ok(())
}

/// A date from 1970 to 9999 as bson writes it (`time`'s RFC 3339: UTC,
/// fractional seconds only when there are some, trailing zeros dropped),
/// digit by digit: formatting through `time` allocated a String for every
/// change event's `wallTime`.
fn write_rfc3339(millis: i64, out: &mut Vec<u8>) {
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .expect("dates up to the year 9999 are in range");
    push_digits(time.year() as u32, 4, out);
    let fields = [(b'-', u8::from(time.month())), (b'-', time.day()), (b'T', time.hour()), (b':', time.minute())];
    for (separator, value) in fields {
        out.push(separator);
        push_digits(u32::from(value), 2, out);
    }
    out.push(b':');
    push_digits(u32::from(time.second()), 2, out);
    let mut fraction = millis.rem_euclid(1000) as u32;
    if fraction != 0 {
        out.push(b'.');
        let mut width = 3;
        while fraction.is_multiple_of(10) {
            fraction /= 10;
            width -= 1;
        }
        push_digits(fraction, width, out);
    }
    out.push(b'Z');
}

/// `value` in decimal, zero-padded to `width` digits.
fn push_digits(value: u32, width: u32, out: &mut Vec<u8>) {
    for place in (0..width).rev() {
        out.push(b'0' + (value / 10u32.pow(place) % 10) as u8);
    }
}

fn write_json<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, value).expect("plain values serialise into a Vec");
}

#[cfg(test)]
mod tests {
    use bson::{Binary, Decimal128, RawDocumentBuf, Timestamp, doc, oid::ObjectId, spec::BinarySubtype};

    use super::*;

    #[test]
    fn given_every_kind_of_value_then_matches_bsons_own_relaxed_extended_json() {
        let document = doc! {
            "s": "text with \"quotes\" and ünïcode",
            "d": 22.5, "whole": 3.0, "nan": f64::NAN, "inf": f64::NEG_INFINITY,
            "i": 7, "l": 9_000_000_000_i64, "b": true, "n": null,
            "oid": ObjectId::parse_str("65f0a1b2c3d4e5f601234567").unwrap(),
            "date": bson::DateTime::from_millis(1_795_662_000_123),
            "old": bson::DateTime::from_millis(-5),
            "epoch": bson::DateTime::from_millis(0),
            "last": bson::DateTime::from_millis(253_402_300_799_999),
            "tenths": bson::DateTime::from_millis(1_795_662_000_100),
            "hundredths": bson::DateTime::from_millis(1_795_662_000_020),
            "leap_day": bson::DateTime::from_millis(951_782_400_007),
            "far": bson::DateTime::from_millis(253_402_300_800_000),
            "ts": Timestamp { time: 5, increment: 6 },
            "bin": Binary { subtype: BinarySubtype::Generic, bytes: vec![1, 2, 3] },
            "dec": "1.10".parse::<Decimal128>().unwrap(),
            "nested": { "a": [1, { "b": [] }, "c"] },
            "empty": {},
        };
        let raw = RawDocumentBuf::try_from(&document).unwrap();
        let ours: serde_json::Value =
            serde_json::from_slice(&to_relaxed_json(&raw, Dialect::Relaxed).unwrap()).unwrap();
        let mut bsons = Bson::Document(document.clone()).into_relaxed_extjson();
        // bson saturates dates past 9999 (see write_value); Ferry keeps them.
        assert_eq!(bsons["far"], serde_json::json!({"$date": "9999-12-31T23:59:59.999999999Z"}));
        bsons["far"] = serde_json::json!({"$date": {"$numberLong": "253402300800000"}});
        assert_eq!(ours, bsons);

        // Ferry's dialect differs in Int64 alone.
        let typed: serde_json::Value =
            serde_json::from_slice(&to_relaxed_json(&raw, Dialect::TypePreserving).unwrap()).unwrap();
        let mut expected = Bson::Document(document).into_relaxed_extjson();
        expected["l"] = serde_json::json!({"$numberLong": "9000000000"});
        expected["far"] = serde_json::json!({"$date": {"$numberLong": "253402300800000"}});
        assert_eq!(typed, expected);
    }

    #[test]
    fn given_an_int64_that_fits_32_bits_then_it_reads_back_as_an_int64_only_in_ferrys_dialect() {
        let document = doc! { "small": 7_i64, "nested": { "list": [ -1_i64, 3_i32 ] }, "_id": 5_i64 };
        let raw = RawDocumentBuf::try_from(&document).unwrap();
        let read_back = |dialect| {
            let json: serde_json::Value = serde_json::from_slice(&to_relaxed_json(&raw, dialect).unwrap()).unwrap();
            bson::Document::try_from(json.as_object().unwrap().clone()).unwrap()
        };
        assert_eq!(read_back(Dialect::TypePreserving), document);
        let relaxed = read_back(Dialect::Relaxed);
        assert_eq!(relaxed.get("small"), Some(&Bson::Int32(7)), "relaxed JSON narrows it");
    }

    #[test]
    fn given_a_double_that_needs_all_its_digits_then_it_reads_back_exactly() {
        // Found by fuzz/ (relaxed_json): serde_json read 1.0945292999187847e+300 one bit off.
        let double = f64::from_bits(0x7E3A_2666_6666_6666);
        let raw = RawDocumentBuf::try_from(&doc! { "temp_f": double }).unwrap();
        let json = to_relaxed_json(&raw, Dialect::TypePreserving).unwrap();
        assert_eq!(json, br#"{"temp_f":1.0945292999187847e+300}"#);
        assert_eq!(crate::encoding::json_to_bson::json_to_bson(&json).unwrap(), raw);
    }

    #[test]
    fn given_a_date_past_the_year_9999_then_it_reads_back_as_itself() {
        // Found by fuzz/ (relaxed_json): bson's conversion wrote it as 9999-12-31.
        let raw = RawDocumentBuf::try_from(&doc! { "wallTime": bson::DateTime::MAX }).unwrap();
        let json = to_relaxed_json(&raw, Dialect::Relaxed).unwrap();
        assert_eq!(json, br#"{"wallTime":{"$date":{"$numberLong":"9223372036854775807"}}}"#);
        assert_eq!(crate::encoding::json_to_bson::json_to_bson(&json).unwrap(), raw);
    }

    #[test]
    fn given_code_with_scope_then_its_scope_reads_back_as_itself() {
        // Found by fuzz/ (relaxed_json): the scope went through bson, which
        // saturated its dates and wrote its Int64s as bare numbers.
        let scope = doc! { "at": bson::DateTime::MAX, "n": 7_i64 };
        let code = bson::JavaScriptCodeWithScope { code: "f()".into(), scope };
        let raw = RawDocumentBuf::try_from(&doc! { "code": code }).unwrap();
        let json = to_relaxed_json(&raw, Dialect::TypePreserving).unwrap();
        assert_eq!(crate::encoding::json_to_bson::json_to_bson(&json).unwrap(), raw);
    }

    #[test]
    fn given_key_order_then_keeps_it() {
        let raw = RawDocumentBuf::try_from(&doc! { "z": 1, "a": 2 }).unwrap();
        assert_eq!(to_relaxed_json(&raw, Dialect::Relaxed).unwrap(), br#"{"z":1,"a":2}"#);
    }
}
