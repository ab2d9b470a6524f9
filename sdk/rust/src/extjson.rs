//! MongoDB types as relaxed Extended JSON, the form JSON payloads carry
//! them in: a [`Date`] is `{"$date": "2026-11-26T03:00:00Z"}`, an
//! [`ObjectId`] `{"$oid": "65f0…"}`, a [`Decimal128`]
//! `{"$numberDecimal": "1.10"}`. Each serialises to that form, and reads
//! back from it, so a transform's own `serde` structs keep BSON types end to
//! end: the MongoDB sink stores a date, not a string.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// A BSON date: milliseconds since the Unix epoch, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    millis: i64,
}

/// Why a text is not an RFC 3339 time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateError(String);

impl fmt::Display for DateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DateError {}

/// Relaxed Extended JSON writes dates of these years as RFC 3339 text, and
/// others as `{"$numberLong": ...}`.
const TEXT_YEARS: std::ops::RangeInclusive<i64> = 1970..=9999;

impl Date {
    pub fn from_millis(millis: i64) -> Self {
        Self { millis }
    }

    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> i64 {
        self.millis
    }

    /// Now, as the host's clock says.
    pub fn now() -> Self {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Self::from_millis(since.as_millis() as i64)
    }

    /// Reads an RFC 3339 time (`2026-11-26T03:00:00Z`,
    /// `2026-11-26T04:00:00.250+01:00`); fractions beyond milliseconds are
    /// cut off.
    pub fn parse_rfc3339(text: &str) -> Result<Self, DateError> {
        let fail = |why: &str| DateError(format!("{text:?} is not an RFC 3339 time: {why}"));
        let malformed = "expected the form 2026-11-26T03:00:00Z (a fraction and an offset such as +01:00 may follow)";
        let bytes = text.as_bytes();
        let number = |range: std::ops::Range<usize>| -> Result<i64, DateError> {
            let digits = bytes.get(range).ok_or_else(|| fail(malformed))?;
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err(fail(malformed));
            }
            Ok(digits.iter().fold(0, |value, digit| value * 10 + i64::from(digit - b'0')))
        };
        let expect = |at: usize, allowed: &[u8]| match bytes.get(at) {
            Some(byte) if allowed.contains(byte) => Ok(()),
            _ => Err(fail(malformed)),
        };
        let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
        expect(4, b"-")?;
        expect(7, b"-")?;
        expect(10, b"Tt ")?;
        let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
        expect(13, b":")?;
        expect(16, b":")?;
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return Err(fail("no such day"));
        }
        if hour > 23 || minute > 59 || second > 60 {
            return Err(fail("no such time of day"));
        }
        let mut at = 19;
        let mut millis = 0;
        if bytes.get(at) == Some(&b'.') {
            let digits = bytes[at + 1..].iter().take_while(|byte| byte.is_ascii_digit()).count();
            if digits == 0 {
                return Err(fail(malformed));
            }
            let kept = &bytes[at + 1..at + 1 + digits.min(3)];
            millis = kept.iter().fold(0, |value, digit| value * 10 + i64::from(digit - b'0'))
                * 10_i64.pow(3 - kept.len() as u32);
            at += 1 + digits;
        }
        let offset_minutes = match bytes.get(at) {
            Some(b'Z' | b'z') if at + 1 == bytes.len() => 0,
            Some(sign @ (b'+' | b'-')) if at + 6 == bytes.len() => {
                expect(at + 3, b":")?;
                let minutes = number(at + 1..at + 3)? * 60 + number(at + 4..at + 6)?;
                if *sign == b'-' { -minutes } else { minutes }
            }
            _ => return Err(fail("the offset (Z, or one such as +01:00) is missing or malformed")),
        };
        let days = days_from_civil(year, month, day);
        let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second.min(59) - offset_minutes * 60;
        Ok(Self::from_millis(seconds * 1_000 + millis))
    }

    /// The date as RFC 3339 in UTC, with milliseconds when it has some:
    /// `2026-11-26T03:00:00Z`, `2026-11-26T03:00:00.250Z`.
    pub fn to_rfc3339(self) -> String {
        let (days, millis_of_day) = (self.millis.div_euclid(86_400_000), self.millis.rem_euclid(86_400_000));
        let (year, month, day) = civil_from_days(days);
        let seconds_of_day = millis_of_day / 1_000;
        let (hour, minute, second) = (seconds_of_day / 3_600, seconds_of_day / 60 % 60, seconds_of_day % 60);
        let millis = millis_of_day % 1_000;
        let mut text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
        if millis > 0 {
            text.push_str(&format!(".{millis:03}"));
        }
        text.push('Z');
        text
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        let year = civil_from_days(self.millis.div_euclid(86_400_000)).0;
        if TEXT_YEARS.contains(&year) {
            map.serialize_entry("$date", &self.to_rfc3339())?;
        } else {
            map.serialize_entry("$date", &NumberLong(self.millis))?;
        }
        map.end()
    }
}

/// `{"$numberLong": "<digits>"}`.
struct NumberLong(i64);

impl Serialize for NumberLong {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("$numberLong", &self.0.to_string())?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for Date {
    /// Reads `{"$date": "<RFC 3339>"}`, `{"$date": {"$numberLong": "…"}}`
    /// (the canonical form) or `{"$date": <milliseconds>}`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Value {
            Text(String),
            Millis(i64),
            Long {
                #[serde(rename = "$numberLong")]
                long: String,
            },
        }
        let value: Value = wrapped(deserializer, "$date")?;
        match value {
            Value::Text(text) => Date::parse_rfc3339(&text).map_err(de::Error::custom),
            Value::Millis(millis) => Ok(Date::from_millis(millis)),
            Value::Long { long } => long.parse().map(Date::from_millis).map_err(de::Error::custom),
        }
    }
}

/// A BSON Int64. Ferry hands change events to transforms with every Int64
/// written canonically, `{"$numberLong": "7"}` (a bare `7` would be stored
/// back as an Int32); this reads that form or a bare integer, and writes the
/// canonical form, so an Int64 stays one through a transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Int64(pub i64);

impl Serialize for Int64 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("$numberLong", &self.0.to_string())?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for Int64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Int64Visitor;
        impl<'de> Visitor<'de> for Int64Visitor {
            type Value = Int64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"an integer, or {"$numberLong": "<digits>"}"#)
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Int64, E> {
                Ok(Int64(value))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Int64, E> {
                i64::try_from(value).map(Int64).map_err(|_| E::custom(format!("{value} is beyond an Int64")))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Int64, A::Error> {
                match map.next_key::<String>()?.as_deref() {
                    Some("$numberLong") => {
                        let text: String = map.next_value()?;
                        text.parse().map(Int64).map_err(|_| de::Error::custom(format!("{text:?} is not an Int64")))
                    }
                    _ => Err(de::Error::custom(r#"expected {"$numberLong": "<digits>"}"#)),
                }
            }
        }
        deserializer.deserialize_any(Int64Visitor)
    }
}

/// A BSON ObjectId, as its 24 hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId(String);

impl ObjectId {
    /// An ObjectId from its 24 hexadecimal digits (either case).
    pub fn parse(hex: &str) -> Result<Self, String> {
        if hex.len() == 24 && hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            Ok(Self(hex.to_ascii_lowercase()))
        } else {
            Err(format!("{hex:?} is not an ObjectId (24 hexadecimal digits)"))
        }
    }

    pub fn hex(&self) -> &str {
        &self.0
    }
}

impl Serialize for ObjectId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("$oid", &self.0)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for ObjectId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let hex: String = wrapped(deserializer, "$oid")?;
        ObjectId::parse(&hex).map_err(de::Error::custom)
    }
}

/// A BSON Decimal128, as its decimal text (`"1.10"` keeps its trailing
/// zero, unlike a double).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decimal128(String);

impl Decimal128 {
    /// A decimal from its text: digits with an optional sign, point and
    /// exponent (`"-1.10"`, `"3E+5"`), or `NaN` / `Infinity`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
        let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
            Some((mantissa, exponent)) => (mantissa, Some(exponent.strip_prefix(['-', '+']).unwrap_or(exponent))),
            None => (unsigned, None),
        };
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit());
        let mantissa_ok = match mantissa.split_once('.') {
            Some((whole, fraction)) => {
                (digits(whole) || whole.is_empty())
                    && (digits(fraction) || fraction.is_empty())
                    && !(whole.is_empty() && fraction.is_empty())
            }
            None => digits(mantissa),
        };
        let special = matches!(unsigned, "NaN" | "Infinity" | "Inf");
        if special || (mantissa_ok && exponent.is_none_or(digits)) {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!("{text:?} is not a decimal number"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for Decimal128 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("$numberDecimal", &self.0)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for Decimal128 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text: String = wrapped(deserializer, "$numberDecimal")?;
        Decimal128::parse(&text).map_err(de::Error::custom)
    }
}

/// The value `{wrapper: value}` holds.
fn wrapped<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
    wrapper: &'static str,
) -> Result<T, D::Error> {
    struct Wrapped<T>(&'static str, std::marker::PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for Wrapped<T> {
        type Value = T;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(formatter, "an object {{\"{}\": ...}}", self.0)
        }

        fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<T, M::Error> {
            let key: String = map.next_key()?.ok_or_else(|| de::Error::custom(format!("missing {}", self.0)))?;
            if key != self.0 {
                return Err(de::Error::custom(format!("expected {}, found {key:?}", self.0)));
            }
            let value = map.next_value()?;
            if map.next_key::<de::IgnoredAny>()?.is_some() {
                return Err(de::Error::custom(format!("{} must be the object's only key", self.0)));
            }
            Ok(value)
        }
    }

    deserializer.deserialize_map(Wrapped(wrapper, std::marker::PhantomData))
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date `days` after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {

    #[test]
    fn given_an_int64_in_either_form_then_reads_it_and_writes_it_canonically() {
        let canonical: Int64 = serde_json::from_str(r#"{"$numberLong":"7"}"#).unwrap();
        let bare: Int64 = serde_json::from_str("-9000000000").unwrap();
        assert_eq!((canonical, bare), (Int64(7), Int64(-9_000_000_000)));
        assert_eq!(serde_json::to_string(&Int64(7)).unwrap(), r#"{"$numberLong":"7"}"#);
        let error = serde_json::from_str::<Int64>(r#"{"$numberLong":"x"}"#).unwrap_err().to_string();
        assert!(error.starts_with(r#""x" is not an Int64"#), "{error}");
        assert!(serde_json::from_str::<Int64>("1.5").is_err());
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn given_rfc3339_times_then_dates_read_them_in_utc() {
        let at = |text| Date::parse_rfc3339(text).unwrap().millis();
        assert_eq!(at("1970-01-01T00:00:00Z"), 0);
        assert_eq!(at("2026-11-26T03:00:00Z"), 1_795_662_000_000);
        assert_eq!(at("2026-11-26T04:00:00.250+01:00"), 1_795_662_000_250);
        assert_eq!(at("2026-11-26t03:00:00.123456z"), 1_795_662_000_123, "beyond milliseconds is cut off");
        assert_eq!(at("1969-12-31T23:59:59Z"), -1_000);
        assert_eq!(at("2024-02-29T12:00:00-05:30"), 1_709_227_800_000);
        for bad in ["yesterday", "2026-11-26", "2026-13-01T00:00:00Z", "2025-02-29T00:00:00Z", "2026-11-26T03:00:00"] {
            assert!(Date::parse_rfc3339(bad).is_err(), "{bad}");
        }
        let error = Date::parse_rfc3339("yesterday").unwrap_err().to_string();
        assert!(error.starts_with("\"yesterday\" is not an RFC 3339 time: expected the form 2026-11-26T03:00:00Z"));
    }

    #[test]
    fn given_dates_then_they_write_and_read_back_as_relaxed_extended_json() {
        let date = Date::from_millis(1_795_662_000_000);
        assert_eq!(serde_json::to_value(date).unwrap(), json!({"$date": "2026-11-26T03:00:00Z"}));
        let with_millis = Date::from_millis(1_795_662_000_250);
        assert_eq!(serde_json::to_value(with_millis).unwrap(), json!({"$date": "2026-11-26T03:00:00.250Z"}));
        let ancient = Date::from_millis(-62_135_596_800_000);
        assert_eq!(serde_json::to_value(ancient).unwrap(), json!({"$date": {"$numberLong": "-62135596800000"}}));
        for value in [json!({"$date": "2026-11-26T03:00:00.250Z"}), json!({"$date": {"$numberLong": "1795662000250"}})]
        {
            assert_eq!(serde_json::from_value::<Date>(value).unwrap(), with_millis);
        }
        assert_eq!(serde_json::from_value::<Date>(json!({"$date": 0})).unwrap(), Date::from_millis(0));
        assert!(serde_json::from_value::<Date>(json!({"$oid": "x"})).is_err());
        for days in [-700_000, -1, 0, 59, 365 * 30, 2_932_896] {
            let date = Date::from_millis(days * 86_400_000 + 1);
            assert_eq!(Date::parse_rfc3339(&date.to_rfc3339()), Ok(date), "day {days}");
        }
    }

    #[test]
    fn given_object_ids_and_decimals_then_they_keep_their_bson_types() {
        let id = ObjectId::parse("65F0A1B2C3D4E5F601234567").unwrap();
        assert_eq!(serde_json::to_value(&id).unwrap(), json!({"$oid": "65f0a1b2c3d4e5f601234567"}));
        assert_eq!(serde_json::from_value::<ObjectId>(json!({"$oid": "65f0a1b2c3d4e5f601234567"})).unwrap(), id);
        assert!(ObjectId::parse("65f0").is_err());
        let decimal = Decimal128::parse("1.10").unwrap();
        assert_eq!(serde_json::to_value(&decimal).unwrap(), json!({"$numberDecimal": "1.10"}));
        assert_eq!(serde_json::from_value::<Decimal128>(json!({"$numberDecimal": "1.10"})).unwrap(), decimal);
        for good in ["-3E+5", "0.5", "7", ".5", "NaN"] {
            assert!(Decimal128::parse(good).is_ok(), "{good}");
        }
        for bad in ["1.1.1", "abc", "", "."] {
            assert!(Decimal128::parse(bad).is_err(), "{bad}");
        }
    }
}
