//! {{name}}: a Ferry transform.
//!
//! Reads sensor readings such as `{"sensor_id":"s1","temp":21.5,"ts":"2026-11-26T03:00:00Z"}`,
//! adds the temperature in Fahrenheit, stores `ts` as a BSON date and sends
//! the reading to the configured collection. A reading without a
//! temperature is dropped; a payload that is not a reading fails, and goes
//! to the dead-letter topic with the reason.

use ferry_transform::extjson::Date;
use ferry_transform::{Error, Outcome, Record, Transform};
use serde::{Deserialize, Serialize};

/// The `[transforms.config]` table of the pipeline file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Where readings go.
    #[serde(default = "default_collection")]
    collection: String,
}

fn default_collection() -> String {
    "readings".to_owned()
}

/// What each record's payload holds.
#[derive(Deserialize)]
struct Reading {
    sensor_id: String,
    temp: Option<f64>,
    ts: String,
}

/// What is written.
#[derive(Serialize)]
struct Enriched {
    sensor_id: String,
    temp_c: f64,
    temp_f: f64,
    ts: Date,
}

struct Enrich {
    config: Config,
}

impl Transform for Enrich {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        Ok(Self { config })
    }

    fn record(&mut self, record: Record) -> Result<Outcome, Error> {
        let reading: Reading = record.json()?;
        let Some(temp_c) = reading.temp else { return Ok(Outcome::drop()) };
        let enriched = Enriched {
            sensor_id: reading.sensor_id,
            temp_c,
            temp_f: ((temp_c * 9.0 / 5.0 + 32.0) * 100.0).round() / 100.0,
            ts: Date::parse_rfc3339(&reading.ts)?,
        };
        Ok(Outcome::emit_json(&enriched).to_collection(&self.config.collection))
    }
}

ferry_transform::export!(Enrich);
