//! The smallest useful transform: every input record becomes one output with
//! the same payload, encoding and key, so the pipeline's defaults decide where
//! it is written.

wit_bindgen::generate!({ path: "../../wit", world: "transform" });

use exports::ferry::transform::transformer::Guest;
use ferry::transform::types::{Batch, Outcome, Output};

struct Identity;

impl Guest for Identity {
    fn configure(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn transform(batch: Batch) -> Result<Vec<Outcome>, String> {
        let outcomes = batch
            .records
            .into_iter()
            .map(|record| {
                Outcome::Emit(Output {
                    payload: record.payload,
                    encoding: record.encoding,
                    collection: None,
                    write: None,
                    key: record.key,
                    headers: Vec::new(),
                })
            })
            .collect();
        Ok(outcomes)
    }
}

export!(Identity);
