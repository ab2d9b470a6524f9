//! Write [Ferry](https://github.com/) transforms in Rust.
//!
//! A transform is a type implementing [`Transform`]: built once from its
//! configuration (the pipeline's `[transforms.config]`, deserialised into
//! the author's own `serde` type), then asked what becomes of each record.
//!
//! ```ignore
//! use ferry_transform::{Outcome, Record, Transform, extjson::Date};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Config { collection: String }
//!
//! #[derive(Deserialize)]
//! struct Reading<'a> { sensor_id: &'a str, temp: f64, ts: &'a str }
//!
//! #[derive(Serialize)]
//! struct Stored<'a> { sensor_id: &'a str, temp_f: f64, ts: Date }
//!
//! struct Enrich(Config);
//!
//! impl Transform for Enrich {
//!     type Config = Config;
//!
//!     fn new(config: Config) -> Result<Self, String> {
//!         Ok(Self(config))
//!     }
//!
//!     fn record(&mut self, record: Record) -> Result<Outcome, ferry_transform::Error> {
//!         let reading: Reading = record.json()?;
//!         let stored = Stored { sensor_id: reading.sensor_id, temp_f: reading.temp * 1.8 + 32.0, ts: Date::parse_rfc3339(reading.ts)? };
//!         Ok(Outcome::emit_json(&stored).to_collection(&self.0.collection).upsert_by(["sensor_id"]))
//!     }
//! }
//!
//! ferry_transform::export!(Enrich);
//! ```
//!
//! The bindings to Ferry's WIT contract are generated here, once; the
//! types a transform needs are re-exported at the crate's root.

#[doc(hidden)]
pub mod bindings;
mod config;
pub mod extjson;
mod guest;
mod log;
mod outcome;
mod record;

/// The contract's output record, as [`Outcome::outputs`] shows it.
pub use bindings::ferry::transform::types::{Output, Write};
pub use config::NoConfig;
#[doc(hidden)]
pub use guest::__export;
pub use guest::{Error, Transform};
pub use log::{Level, log};
pub use outcome::Outcome;
pub use record::{
    Batch, BatchSource, ClusterTime, Encoding, Header, IggyPosition, IggyTopic, MessageId, MongodbChange, Namespace,
    Operation, Origin, PayloadError, Record,
};
