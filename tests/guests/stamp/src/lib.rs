//! A transform that adds `"version": "vNNN"` to every JSON record, where
//! `NNN` is read from the component's own data: the bytes after
//! `FERRY-STAMP:v` in [`STAMP`]. A test makes each version of the
//! component by rewriting those three digits in the `.wasm` file, so every
//! version is a different file whose output says which one wrote it.
//!
//! A record that is not a JSON object fails, naming the version.

wit_bindgen::generate!({ path: "../../../wit", world: "transform" });

use exports::ferry::transform::transformer::Guest;
use ferry::transform::types::{Batch, Encoding, Outcome, Output};

/// The marker a test rewrites; read with volatile loads so the compiler
/// keeps it in the data section rather than folding it into the code.
#[used]
static STAMP: [u8; 16] = *b"FERRY-STAMP:v000";

fn version() -> String {
    let digits: Vec<u8> = (13..16).map(|index| unsafe { std::ptr::read_volatile(&STAMP[index]) }).collect();
    format!("v{}", String::from_utf8_lossy(&digits))
}

struct Stamp;

impl Guest for Stamp {
    fn configure(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn transform(batch: Batch) -> Result<Vec<Outcome>, String> {
        let version = version();
        Ok(batch
            .records
            .into_iter()
            .map(|record| match serde_json::from_slice::<serde_json::Value>(&record.payload) {
                Ok(serde_json::Value::Object(mut object)) => {
                    object.insert("version".into(), serde_json::Value::String(version.clone()));
                    Outcome::Emit(Output {
                        payload: serde_json::to_vec(&object).expect("a JSON object serialises"),
                        encoding: Encoding::Json,
                        collection: None,
                        write: None,
                        key: None,
                        headers: Vec::new(),
                    })
                }
                _ => Outcome::Fail(format!("{version}: not a JSON object")),
            })
            .collect())
    }
}

export!(Stamp);
