//! `${VAR}` and `${VAR:-default}` in a pipeline file's string values, so one
//! file serves a laptop and a deployment.
//!
//! Substitution happens on parsed string values, never on the raw text: a
//! variable's value cannot change the file's structure. `$$` writes a `$`.

use super::problems::Problems;

/// Replaces variable references in every string of `table`; a reference that
/// cannot be resolved is recorded in `problems` under its field path.
pub(crate) fn substitute_table(
    table: &mut toml::Table,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) {
    for (key, value) in table.iter_mut() {
        substitute_value(value, key, lookup, problems);
    }
}

fn substitute_value(
    value: &mut toml::Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) {
    match value {
        toml::Value::String(text) => match expand(text, lookup) {
            Ok(expanded) => *text = expanded,
            Err(message) => problems.add(path, message),
        },
        toml::Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                substitute_value(item, &format!("{path}[{index}]"), lookup, problems);
            }
        }
        toml::Value::Table(table) => {
            for (key, item) in table.iter_mut() {
                substitute_value(item, &format!("{path}.{key}"), lookup, problems);
            }
        }
        toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) | toml::Value::Datetime(_) => {}
    }
}

/// Expands the references in one string.
fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(reference) = after.strip_prefix('{') {
            let end = reference.find('}').ok_or_else(|| format!("unterminated `${{` in {text:?}"))?;
            out.push_str(&resolve(&reference[..end], lookup)?);
            rest = &reference[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Resolves `NAME` or `NAME:-default`.
fn resolve(reference: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let (name, default) = match reference.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (reference, None),
    };
    let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(format!("`${{{reference}}}` does not name a variable"));
    }
    match (lookup(name).filter(|value| !value.is_empty()), default) {
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_owned()),
        (None, None) => {
            Err(format!("environment variable {name} is not set (write ${{{name}:-default}} to give a default)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db.local".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn given_a_set_variable_then_substitutes_it() {
        assert_eq!(expand("mongodb://${HOST}:27017", &env).unwrap(), "mongodb://db.local:27017");
    }

    #[test]
    fn given_unset_or_empty_with_default_then_uses_default() {
        assert_eq!(expand("${NOPE:-127.0.0.1:8090}", &env).unwrap(), "127.0.0.1:8090");
        assert_eq!(expand("${EMPTY:-x}", &env).unwrap(), "x");
        assert_eq!(expand("${HOST:-x}", &env).unwrap(), "db.local");
    }

    #[test]
    fn given_dollar_escapes_and_lone_dollars_then_keeps_them() {
        assert_eq!(expand("$${HOST} costs $5", &env).unwrap(), "${HOST} costs $5");
    }

    #[test]
    fn given_unset_without_default_then_names_the_variable() {
        let error = expand("${NOPE}", &env).unwrap_err();
        assert!(error.starts_with("environment variable NOPE is not set"), "{error}");
    }

    #[test]
    fn given_malformed_references_then_errors() {
        assert!(expand("${HOST", &env).unwrap_err().contains("unterminated"));
        assert!(expand("${1X}", &env).unwrap_err().contains("does not name a variable"));
    }

    #[test]
    fn given_nested_values_then_reports_field_paths() {
        let mut table: toml::Table = toml::from_str("a = '${NOPE}'\n[b]\nlist = ['ok', '${ALSO_NOPE}']").unwrap();
        let mut problems = Problems::default();
        substitute_table(&mut table, &env, &mut problems);
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["a", "b.list[1]"]);
    }
}
