//! Logging into the host's log, tagged there with the transform's name:
//! `info!("skipped {n} readings")`, or [`log`] with fields.

use crate::bindings::ferry::transform::logging;
pub use logging::Level;

/// Writes `message` at `level`, with `fields` attached as key-value pairs.
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<logging::Field> = fields
        .iter()
        .map(|(key, value)| logging::Field { key: (*key).to_owned(), value: (*value).to_owned() })
        .collect();
    logging::log(level, message, &fields);
}

/// Logs a formatted message at `trace`.
#[macro_export]
macro_rules! trace {
    ($($message:tt)+) => { $crate::log($crate::Level::Trace, &::std::format!($($message)+), &[]) };
}

/// Logs a formatted message at `debug`.
#[macro_export]
macro_rules! debug {
    ($($message:tt)+) => { $crate::log($crate::Level::Debug, &::std::format!($($message)+), &[]) };
}

/// Logs a formatted message at `info`.
#[macro_export]
macro_rules! info {
    ($($message:tt)+) => { $crate::log($crate::Level::Info, &::std::format!($($message)+), &[]) };
}

/// Logs a formatted message at `warn`.
#[macro_export]
macro_rules! warn {
    ($($message:tt)+) => { $crate::log($crate::Level::Warn, &::std::format!($($message)+), &[]) };
}

/// Logs a formatted message at `error`.
#[macro_export]
macro_rules! error {
    ($($message:tt)+) => { $crate::log($crate::Level::Error, &::std::format!($($message)+), &[]) };
}
