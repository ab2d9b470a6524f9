//! Masks personal data before it leaves the pipeline.
//!
//! Configuration (`[transforms.config]`):
//! - `fields`: the fields to mask, at least one; a dotted path such as
//!   `"contact.email"` reaches into nested objects.
//! - `mask`: the replacement value, `"***"` unless set.
//!
//! A listed field that a document lacks is left alone. A payload that is not
//! a JSON object fails with a reason.

wit_bindgen::generate!({ path: "../../wit", world: "transform" });

use std::sync::OnceLock;

use exports::ferry::transform::transformer::Guest;
use ferry::transform::logging::{Field, Level, log};
use ferry::transform::types::{Batch, Encoding, Outcome, Output};
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    fields: Vec<String>,
    #[serde(default = "default_mask")]
    mask: String,
}

fn default_mask() -> String {
    "***".to_owned()
}

/// Set once by `configure`; the host calls it before any batch.
static CONFIG: OnceLock<Config> = OnceLock::new();

struct PiiRedact;

impl Guest for PiiRedact {
    fn configure(config: String) -> Result<(), String> {
        let config: Config = serde_json::from_str(&config).map_err(|error| format!("invalid config: {error}"))?;
        if config.fields.is_empty() {
            return Err("`fields` is empty: name at least one field to mask".to_owned());
        }
        if let Some(blank) = config.fields.iter().find(|field| field.split('.').any(str::is_empty)) {
            return Err(format!("`fields` has a malformed path {blank:?}"));
        }
        let fields = Field { key: "fields".to_owned(), value: config.fields.join(",") };
        log(Level::Info, "masking fields", &[fields]);
        CONFIG.set(config).map_err(|_| "configure was called twice".to_owned())
    }

    fn transform(batch: Batch) -> Result<Vec<Outcome>, String> {
        let config = CONFIG.get().ok_or("transform was called before configure")?;
        let outcomes = batch
            .records
            .into_iter()
            .map(|record| {
                if record.encoding != Encoding::Json {
                    return Outcome::Fail(format!("expected a JSON payload, got {:?}", record.encoding));
                }
                match redact(&record.payload, config) {
                    Ok(payload) => Outcome::Emit(Output {
                        payload,
                        encoding: Encoding::Json,
                        collection: None,
                        write: None,
                        key: record.key,
                        headers: Vec::new(),
                    }),
                    Err(reason) => Outcome::Fail(reason),
                }
            })
            .collect();
        Ok(outcomes)
    }
}

fn redact(payload: &[u8], config: &Config) -> Result<Vec<u8>, String> {
    let mut document: Map<String, Value> =
        serde_json::from_slice(payload).map_err(|error| format!("payload is not a JSON object: {error}"))?;
    for path in &config.fields {
        mask(&mut document, path, &config.mask);
    }
    serde_json::to_vec(&document).map_err(|error| format!("cannot serialise the document: {error}"))
}

/// Replaces the value at a dotted `path`, if the document has one there.
fn mask(document: &mut Map<String, Value>, path: &str, mask: &str) {
    let (parents, last) = match path.rsplit_once('.') {
        Some((parents, last)) => (Some(parents), last),
        None => (None, path),
    };
    let mut object = document;
    for step in parents.into_iter().flat_map(|parents| parents.split('.')) {
        match object.get_mut(step) {
            Some(Value::Object(child)) => object = child,
            _ => return,
        }
    }
    if let Some(value) = object.get_mut(last) {
        *value = Value::String(mask.to_owned());
    }
}

export!(PiiRedact);
