//! Golden files of `ferry test --expect`: any text, line by line as JSON.
//! A line's canonical form is a fixed point (it parses to itself), so a
//! golden file written from a report compares equal to that report.

#![no_main]

use std::path::Path;

use ferry::cli::golden::{canonical, diff, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("expected.jsonl");
    let Ok(lines) = parse(&text, path) else { return };
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line).expect("a canonical line is JSON");
        assert_eq!(&canonical(&value), line, "canonical forms are fixed points");
        assert!(!line.contains('\n'), "one value, one line");
    }
    let again = parse(&lines.join("\n"), path).expect("canonical lines parse");
    assert_eq!(again, lines);
    assert_eq!(diff(&lines, &again, path), None);
    let mut changed = lines.clone();
    changed.push("null".to_owned());
    assert!(diff(&lines, &changed, path).is_some());
});
