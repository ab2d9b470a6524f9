//! Masks personal data before it leaves the pipeline.
//!
//! Configuration (`[transforms.config]`):
//! - `fields`: the fields to mask, at least one; a dotted path such as
//!   `"contact.email"` reaches into nested objects.
//! - `mask`: the replacement value, `"***"` unless set.
//!
//! A listed field that a document lacks is left alone. A payload that is not
//! a JSON object fails with a reason.

use ferry_transform::{Error, Outcome, PayloadError, Record, Transform};
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

struct PiiRedact(Config);

impl Transform for PiiRedact {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        if config.fields.is_empty() {
            return Err("`fields` is empty: name at least one field to mask".to_owned());
        }
        if let Some(blank) = config.fields.iter().find(|field| field.split('.').any(str::is_empty)) {
            return Err(format!("`fields` has a malformed path {blank:?}"));
        }
        ferry_transform::log(ferry_transform::Level::Info, "masking fields", &[("fields", &config.fields.join(","))]);
        Ok(Self(config))
    }

    fn record(&mut self, record: Record) -> Result<Outcome, Error> {
        let mut document: Map<String, Value> = record.json().map_err(|error| match error {
            PayloadError::Json(error) => format!("payload is not a JSON object: {error}"),
            other => other.to_string(),
        })?;
        for path in &self.0.fields {
            mask(&mut document, path, &self.0.mask);
        }
        let outcome = Outcome::emit_json(&document);
        Ok(match record.key() {
            Some(key) => outcome.key(key),
            None => outcome,
        })
    }
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

ferry_transform::export!(PiiRedact);
