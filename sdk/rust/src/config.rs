//! A transform's configuration: the pipeline's `[transforms.config]` table,
//! deserialised into the author's own `serde` type. A table that does not
//! fit becomes the rejection message, naming the field.

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The configuration of a transform that has none: `{}` only, and a key
/// given anyway is rejected by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

/// Deserialises the JSON the host hands `configure` into `T`; the error
/// names the field that does not fit.
pub fn parse<T: DeserializeOwned>(json: &str) -> Result<T, String> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        // The JSON is the host's rendering of a TOML table: its line and
        // column mean nothing to the author.
        let message = error.inner().to_string();
        let message = message.rsplit_once(" at line ").map_or(message.as_str(), |(message, _)| message);
        match path.as_str() {
            "" | "." => format!("invalid configuration: {message}"),
            path => format!("invalid configuration: `{path}`: {message}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        fields: Vec<String>,
        #[serde(default)]
        limits: Limits,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    struct Limits {
        max: u32,
    }

    #[test]
    fn given_a_table_that_fits_then_it_is_the_authors_struct() {
        let settings: Settings = parse(r#"{"fields":["email"],"limits":{"max":3}}"#).unwrap();
        assert_eq!(settings, Settings { fields: vec!["email".into()], limits: Limits { max: 3 } });
    }

    #[test]
    fn given_a_field_that_does_not_fit_then_the_message_names_it() {
        let error = parse::<Settings>(r#"{"fields":["email"],"limits":{"max":"three"}}"#).unwrap_err();
        assert_eq!(error, "invalid configuration: `limits.max`: invalid type: string \"three\", expected u32");
        let error = parse::<Settings>(r#"{}"#).unwrap_err();
        assert_eq!(error, "invalid configuration: missing field `fields`");
        let error = parse::<Settings>(r##"{"fields":[],"mask":"#"}"##).unwrap_err();
        assert!(error.starts_with("invalid configuration: `mask`: unknown field `mask`"), "{error}");
    }

    #[test]
    fn given_no_config_then_only_an_empty_table_is_accepted() {
        assert_eq!(parse::<NoConfig>("{}"), Ok(NoConfig {}));
        assert!(parse::<NoConfig>(r#"{"x":1}"#).unwrap_err().contains("unknown field `x`"));
    }
}
