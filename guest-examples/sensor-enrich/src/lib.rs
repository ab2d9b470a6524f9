//! Enriches sensor readings such as
//! `{"sensor_id":"s1","temp":22.5,"ts":"2026-11-26T03:00:00Z"}`:
//!
//! - adds `temp_f` (temp × 9 / 5 + 32, rounded to two decimals);
//! - turns `ts` into a BSON date (`{"$date": ...}` in relaxed Extended JSON);
//! - sends the reading to the `readings` collection.
//!
//! A reading without a numeric `temp` is dropped: it carries nothing to
//! enrich. A payload that is not a JSON object, or whose `ts` is not an
//! RFC 3339 time, fails with a reason and goes to the dead-letter destination.
//!
//! The logic lives in [`enrich`], free of the component bindings, so Ferry's
//! benchmark can run it natively next to the WebAssembly build.

#[cfg(feature = "component")]
mod component;

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The collection enriched readings are written to.
pub const COLLECTION: &str = "readings";

/// What [`enrich`] made of one payload.
#[derive(Debug, PartialEq)]
pub enum Enriched {
    /// The enriched reading, as relaxed Extended JSON.
    Reading(Vec<u8>),
    /// The reading has no numeric `temp`.
    Dropped,
    /// The payload cannot be a reading; the reason says why.
    Invalid(String),
}

/// Enriches one JSON payload.
///
/// Fields are borrowed from the payload as raw JSON and copied through byte
/// for byte, in their order, so a reading costs a few allocations rather than
/// a tree of owned values.
pub fn enrich(payload: &[u8]) -> Enriched {
    let Fields(fields) = match serde_json::from_slice(payload) {
        Ok(fields) => fields,
        Err(error) => return Enriched::Invalid(format!("payload is not a JSON object: {error}")),
    };
    let field = |name: &str| fields.iter().rev().find(|(key, _)| key == name).map(|(_, value)| *value);
    let Some(celsius) = field("temp").and_then(|raw| serde_json::from_str::<f64>(raw.get()).ok()) else {
        return Enriched::Dropped;
    };
    let date = match field("ts").and_then(|raw| serde_json::from_str::<Text>(raw.get()).ok()) {
        None => None,
        Some(Text(ts)) => match DateTime::parse_from_rfc3339(&ts) {
            Ok(time) => Some(time.with_timezone(&Utc)),
            Err(error) => return Enriched::Invalid(format!("ts {ts:?} is not an RFC 3339 time: {error}")),
        },
    };

    let mut out = Vec::with_capacity(payload.len() + 48);
    out.push(b'{');
    for (key, value) in fields.iter().filter(|(key, _)| key != "temp_f") {
        write_key(&mut out, key);
        match (&date, key.as_ref()) {
            (Some(date), "ts") => {
                out.extend_from_slice(br#"{"$date":""#);
                write_utc_millis(&mut out, date);
                out.extend_from_slice(br#""}"#);
            }
            _ => out.extend_from_slice(value.get().as_bytes()),
        }
        out.push(b',');
    }
    write_key(&mut out, &Cow::Borrowed("temp_f"));
    serde_json::to_writer(&mut out, &to_fahrenheit(celsius)).expect("writing to a Vec cannot fail");
    out.push(b'}');
    Enriched::Reading(out)
}

#[expect(clippy::ptr_arg, reason = "whether the key was borrowed is what decides how to write it")]
fn write_key(out: &mut Vec<u8>, key: &Cow<str>) {
    match key {
        // A key borrowed from the payload had no escapes, and JSON forbids
        // raw control characters, so it is written back as it was.
        Cow::Borrowed(key) => {
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.push(b'"');
        }
        Cow::Owned(key) => serde_json::to_writer(&mut *out, key).expect("writing to a Vec cannot fail"),
    }
    out.push(b':');
}

/// `time` as `2026-11-26T03:00:00.000Z`, the form relaxed Extended JSON
/// gives dates. Written digit by digit: chrono's formatter goes through
/// `fmt`, which (with re-escaping every key) was a sixth of the guest's
/// time per reading.
fn write_utc_millis(out: &mut Vec<u8>, time: &DateTime<Utc>) {
    let millis = time.timestamp_subsec_millis();
    // Years beyond four digits, and leap seconds, are left to chrono.
    if !(0..=9999).contains(&time.year()) || millis > 999 {
        out.extend_from_slice(time.to_rfc3339_opts(SecondsFormat::Millis, true).as_bytes());
        return;
    }
    push_digits(out, time.year() as u32, 4);
    for (separator, value) in [(b'-', time.month()), (b'-', time.day()), (b'T', time.hour()), (b':', time.minute())] {
        out.push(separator);
        push_digits(out, value, 2);
    }
    out.push(b':');
    push_digits(out, time.second(), 2);
    out.push(b'.');
    push_digits(out, millis, 3);
    out.push(b'Z');
}

/// `value` in decimal, zero-padded to `width` digits.
fn push_digits(out: &mut Vec<u8>, value: u32, width: u32) {
    for place in (0..width).rev() {
        out.push(b'0' + (value / 10u32.pow(place) % 10) as u8);
    }
}

/// Degrees Celsius to Fahrenheit, rounded to two decimals.
fn to_fahrenheit(celsius: f64) -> f64 {
    ((celsius * 9.0 / 5.0 + 32.0) * 100.0).round() / 100.0
}

/// A JSON object's fields in document order, values left as raw JSON.
struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((Text(key), value)) = map.next_entry::<Text<'de>, &'de RawValue>()? {
                    fields.push((key, value));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// A JSON string, borrowed unless it holds escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn reading(bytes: Enriched) -> Value {
        match bytes {
            Enriched::Reading(bytes) => serde_json::from_slice(&bytes).unwrap(),
            other => panic!("expected a reading, got {other:?}"),
        }
    }

    #[test]
    fn given_a_reading_then_adds_fahrenheit_and_a_date() {
        let out = reading(enrich(br#"{"sensor_id":"s1","temp":22.5,"ts":"2026-11-26T03:00:00Z"}"#));
        assert_eq!(out["temp_f"], json!(72.5));
        assert_eq!(out["ts"], json!({"$date": "2026-11-26T03:00:00.000Z"}));
        assert_eq!(out["sensor_id"], json!("s1"));
    }

    #[test]
    fn given_any_time_then_the_date_is_written_as_chrono_writes_it() {
        for ts in [
            "2026-11-26T03:00:00Z",
            "0001-02-03T04:05:06.789Z",
            "9999-12-31T23:59:59.999999Z",
            "1969-07-20T20:17:40.5-05:00",
            "2016-12-31T23:59:60Z",
        ] {
            let time = DateTime::parse_from_rfc3339(ts).unwrap().with_timezone(&Utc);
            let mut ours = Vec::new();
            write_utc_millis(&mut ours, &time);
            assert_eq!(String::from_utf8(ours).unwrap(), time.to_rfc3339_opts(SecondsFormat::Millis, true), "{ts}");
        }
    }

    #[test]
    fn given_an_offset_time_then_the_date_is_utc() {
        let out = reading(enrich(br#"{"temp":0,"ts":"2026-11-26T04:00:00+01:00"}"#));
        assert_eq!(out["ts"], json!({"$date": "2026-11-26T03:00:00.000Z"}));
        assert_eq!(out["temp_f"], json!(32.0));
    }

    #[test]
    fn given_fractional_fahrenheit_then_rounds_to_two_decimals() {
        let out = reading(enrich(br#"{"temp":21.123}"#));
        assert_eq!(out["temp_f"], json!(70.02));
    }

    #[test]
    fn given_other_fields_then_keeps_them_in_order_and_replaces_an_old_temp_f() {
        let Enriched::Reading(bytes) = enrich(br#"{"b":[1,{"x":null}],"temp":10,"temp_f":1,"a\"q":"\u00e9"}"#) else {
            panic!("expected a reading")
        };
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"b":[1,{"x":null}],"temp":10,"a\"q":"\u00e9","temp_f":50.0}"#
        );
    }

    #[test]
    fn given_a_non_string_ts_then_leaves_it_alone() {
        let out = reading(enrich(br#"{"temp":1,"ts":{"$date":"2026-11-26T03:00:00Z"}}"#));
        assert_eq!(out["ts"], json!({"$date": "2026-11-26T03:00:00Z"}));
    }

    #[test]
    fn given_no_numeric_temp_then_drops() {
        assert_eq!(enrich(br#"{"sensor_id":"s1"}"#), Enriched::Dropped);
        assert_eq!(enrich(br#"{"temp":"hot"}"#), Enriched::Dropped);
    }

    #[test]
    fn given_not_an_object_then_fails_naming_the_parse_error() {
        let Enriched::Invalid(reason) = enrich(b"[1,2]") else { panic!("expected a failure") };
        assert!(
            reason.starts_with("payload is not a JSON object: invalid type: sequence, expected a JSON object"),
            "{reason}"
        );
        let Enriched::Invalid(reason) = enrich(b"{oops") else { panic!("expected a failure") };
        assert!(reason.contains("line 1 column 2"), "{reason}");
    }

    #[test]
    fn given_a_bad_time_then_fails() {
        let Enriched::Invalid(reason) = enrich(br#"{"temp":1,"ts":"yesterday"}"#) else { panic!("expected a failure") };
        assert!(reason.contains("\"yesterday\" is not an RFC 3339 time"), "{reason}");
    }
}
