//! `ferry test --expect`: compares the JSON report with a golden file, line
//! by line as JSON values (so key order and spacing do not matter), and shows
//! a unified diff when they differ.

use std::path::Path;

use similar::TextDiff;

use super::CliError;

/// The golden file's lines, each re-serialised in canonical form.
pub(super) fn read(path: &Path) -> Result<Vec<String>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Read { path: path.to_owned(), source })?;
    parse(&text, path)
}

/// The lines of a golden file's `text` (read from `path`), each
/// re-serialised in canonical form; blank lines are skipped.
pub fn parse(text: &str, path: &Path) -> Result<Vec<String>, CliError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            let value: serde_json::Value = serde_json::from_str(line).map_err(|source| CliError::Golden {
                path: path.to_owned(),
                line: index + 1,
                source,
            })?;
            Ok(canonical(&value))
        })
        .collect()
}

/// One JSON value as a single line with sorted keys.
pub fn canonical(value: &serde_json::Value) -> String {
    // serde_json's map is ordered by key unless `preserve_order` is enabled,
    // which Ferry does not enable.
    serde_json::to_string(value).expect("JSON values serialise")
}

/// `None` if the lines agree, otherwise a unified diff of expected → actual.
pub fn diff(expected: &[String], actual: &[String], golden: &Path) -> Option<String> {
    if expected == actual {
        return None;
    }
    let expected = expected.join("\n") + "\n";
    let actual = actual.join("\n") + "\n";
    let diff = TextDiff::from_lines(&expected, &actual)
        .unified_diff()
        .header(&golden.display().to_string(), "actual")
        .to_string();
    Some(diff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn given_reordered_keys_then_canonical_forms_agree() {
        assert_eq!(canonical(&json!({"b": 1, "a": 2})), canonical(&serde_json::from_str(r#"{"a":2,"b":1}"#).unwrap()));
    }

    #[test]
    fn given_a_long_number_then_its_canonical_line_reads_back_as_itself() {
        // Found by fuzz/ (golden): serde_json read 4.444444444444445e+62 one
        // bit off, so a golden line written from a report did not match it.
        let golden = Path::new("golden.jsonl");
        let lines = parse("444444444444444444444444444444000000000000009107364040568005518\n", golden).unwrap();
        assert_eq!(lines, ["4.444444444444445e+62"]);
        assert_eq!(parse(&lines[0], golden).unwrap(), lines);
    }

    #[test]
    fn given_a_changed_line_then_the_diff_shows_both() {
        let expected = vec![canonical(&json!({"line": 1})), canonical(&json!({"line": 2}))];
        let actual = vec![canonical(&json!({"line": 1})), canonical(&json!({"line": 3}))];
        let diff = diff(&expected, &actual, Path::new("golden.jsonl")).unwrap();
        assert!(diff.contains("--- golden.jsonl\n+++ actual\n"), "{diff}");
        assert!(diff.contains("-{\"line\":2}\n+{\"line\":3}\n"), "{diff}");
        assert_eq!(super::diff(&expected, &expected, Path::new("g")), None);
    }
}
