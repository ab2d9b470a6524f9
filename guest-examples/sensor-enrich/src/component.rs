//! The component face of [`crate::enrich`].

wit_bindgen::generate!({ path: "../../wit", world: "transform" });

use exports::ferry::transform::transformer::Guest;
use ferry::transform::types::{Batch, Encoding, Outcome, Output};

use crate::{COLLECTION, Enriched, enrich};

struct SensorEnrich;

impl Guest for SensorEnrich {
    fn configure(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn transform(batch: Batch) -> Result<Vec<Outcome>, String> {
        let outcomes = batch
            .records
            .iter()
            .map(|record| match record.encoding {
                Encoding::Json => enrich(&record.payload),
                other => Enriched::Invalid(format!("expected a JSON payload, got {other:?}")),
            })
            .map(|enriched| match enriched {
                Enriched::Reading(payload) => Outcome::Emit(Output {
                    payload,
                    encoding: Encoding::Json,
                    collection: Some(COLLECTION.to_owned()),
                    write: None,
                    key: None,
                    headers: Vec::new(),
                }),
                Enriched::Dropped => Outcome::Drop,
                Enriched::Invalid(reason) => Outcome::Fail(reason),
            })
            .collect();
        Ok(outcomes)
    }
}

export!(SensorEnrich);
