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

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

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
pub fn enrich(payload: &[u8]) -> Enriched {
    let mut reading: Map<String, Value> = match serde_json::from_slice(payload) {
        Ok(reading) => reading,
        Err(error) => return Enriched::Invalid(format!("payload is not a JSON object: {error}")),
    };
    let Some(celsius) = reading.get("temp").and_then(Value::as_f64) else {
        return Enriched::Dropped;
    };
    reading.insert("temp_f".to_owned(), json!(to_fahrenheit(celsius)));
    if let Some(Value::String(ts)) = reading.get("ts") {
        match DateTime::parse_from_rfc3339(ts) {
            Ok(time) => {
                let utc = time
                    .with_timezone(&Utc)
                    .to_rfc3339_opts(SecondsFormat::Millis, true);
                reading.insert("ts".to_owned(), json!({ "$date": utc }));
            }
            Err(error) => {
                return Enriched::Invalid(format!("ts {ts:?} is not an RFC 3339 time: {error}"));
            }
        }
    }
    match serde_json::to_vec(&reading) {
        Ok(bytes) => Enriched::Reading(bytes),
        Err(error) => Enriched::Invalid(format!("cannot serialise the reading: {error}")),
    }
}

/// Degrees Celsius to Fahrenheit, rounded to two decimals.
fn to_fahrenheit(celsius: f64) -> f64 {
    ((celsius * 9.0 / 5.0 + 32.0) * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(bytes: Enriched) -> Value {
        match bytes {
            Enriched::Reading(bytes) => serde_json::from_slice(&bytes).unwrap(),
            other => panic!("expected a reading, got {other:?}"),
        }
    }

    #[test]
    fn given_a_reading_then_adds_fahrenheit_and_a_date() {
        let out = reading(enrich(
            br#"{"sensor_id":"s1","temp":22.5,"ts":"2026-11-26T03:00:00Z"}"#,
        ));
        assert_eq!(out["temp_f"], json!(72.5));
        assert_eq!(out["ts"], json!({"$date": "2026-11-26T03:00:00.000Z"}));
        assert_eq!(out["sensor_id"], json!("s1"));
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
    fn given_no_numeric_temp_then_drops() {
        assert_eq!(enrich(br#"{"sensor_id":"s1"}"#), Enriched::Dropped);
        assert_eq!(enrich(br#"{"temp":"hot"}"#), Enriched::Dropped);
    }

    #[test]
    fn given_not_an_object_then_fails_naming_the_parse_error() {
        let Enriched::Invalid(reason) = enrich(b"[1,2]") else {
            panic!("expected a failure")
        };
        assert!(
            reason.starts_with("payload is not a JSON object: invalid type"),
            "{reason}"
        );
        let Enriched::Invalid(reason) = enrich(b"{oops") else {
            panic!("expected a failure")
        };
        assert!(reason.contains("line 1 column 2"), "{reason}");
    }

    #[test]
    fn given_a_bad_time_then_fails() {
        let Enriched::Invalid(reason) = enrich(br#"{"temp":1,"ts":"yesterday"}"#) else {
            panic!("expected a failure")
        };
        assert!(
            reason.contains("\"yesterday\" is not an RFC 3339 time"),
            "{reason}"
        );
    }
}
