//! The component face of [`crate::enrich`].

use ferry_transform::{Encoding, Error, NoConfig, Outcome, Record, Transform};

use crate::{COLLECTION, Enriched, enrich};

struct SensorEnrich;

impl Transform for SensorEnrich {
    type Config = NoConfig;

    fn new(_config: NoConfig) -> Result<Self, String> {
        Ok(Self)
    }

    fn record(&mut self, record: Record) -> Result<Outcome, Error> {
        if record.encoding() != Encoding::Json {
            return Err(format!("expected a JSON payload, got {:?}", record.encoding()).into());
        }
        Ok(match enrich(record.payload()) {
            Enriched::Reading(payload) => Outcome::emit_raw_json(payload).to_collection(COLLECTION),
            Enriched::Dropped => Outcome::drop(),
            Enriched::Invalid(reason) => Outcome::fail(reason),
        })
    }
}

ferry_transform::export!(SensorEnrich);
