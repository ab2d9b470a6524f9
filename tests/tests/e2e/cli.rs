//! `ferry test` and `ferry validate` as a user runs them, driven in-process
//! through the same `Cli` the binary parses.

use std::path::{Path, PathBuf};

use clap::Parser;
use ferry::cli::{Cli, Verdict};
use ferry::config::PipelineConfig;
use ferry::error::error_chain;
use ferry_tests::cli::ferry;
use ferry_tests::guests;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn samples() -> PathBuf {
    repo_root().join("pipelines/samples")
}

/// A source and sink for pipeline files whose tests only care about
/// transforms; nothing connects to them.
const ENDS: &str = "[source.iggy]\nstream = 's'\ntopic = 't'\nconsumer_group = 'g'\n\
                    [sink.mongodb]\nuri = 'mongodb://127.0.0.1:1'\ndatabase = 'd'\ncollection = 'c'\n";

fn readings() -> String {
    samples().join("readings.jsonl").display().to_string()
}

#[test]
fn test_prints_each_outcome_and_exits_with_failure_when_a_record_fails() {
    let (verdict, out) = ferry(&["test", "--transform", guests::SENSOR_ENRICH, "--input", &readings()]);
    assert_eq!(verdict.unwrap(), Verdict::Failure);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 7, "{out}");
    assert!(lines[0].starts_with("line 1: emit → readings {"), "{out}");
    assert!(lines[0].contains(r#""ts":{"$date":"2026-11-26T03:00:00Z"}"#), "{out}");
    assert_eq!(lines[2], "line 3: drop");
    assert!(lines[4].starts_with("line 5: FAIL in sensor_enrich: payload is not a JSON object"), "{out}");
    assert_eq!(lines[6], "6 records: 2 emitted (2 outputs), 2 dropped, 2 failed");
}

#[test]
fn test_with_only_good_records_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("good.jsonl");
    std::fs::write(&input, "{\"temp\":1}\n{\"temp\":2}\n").unwrap();
    let (verdict, out) = ferry(&["test", "--transform", guests::SENSOR_ENRICH, "--input", input.to_str().unwrap()]);
    assert_eq!(verdict.unwrap(), Verdict::Success, "{out}");
}

#[test]
fn the_bundled_golden_file_matches_and_a_changed_one_shows_a_diff() {
    let golden = samples().join("readings.expected.jsonl");
    let args =
        ["test", "--transform", guests::SENSOR_ENRICH, "--input", &readings(), "--expect", golden.to_str().unwrap()];
    let (verdict, out) = ferry(&args);
    assert_eq!(verdict.unwrap(), Verdict::Success, "{out}");
    assert_eq!(out.trim(), format!("6 records match {}", golden.display()));

    let dir = tempfile::tempdir().unwrap();
    let changed = dir.path().join("changed.jsonl");
    let text = std::fs::read_to_string(&golden).unwrap().replace("72.5", "72.6");
    std::fs::write(&changed, text).unwrap();
    let args =
        ["test", "--transform", guests::SENSOR_ENRICH, "--input", &readings(), "--expect", changed.to_str().unwrap()];
    let (verdict, out) = ferry(&args);
    assert_eq!(verdict.unwrap(), Verdict::Failure);
    assert!(out.contains("+++ actual"), "{out}");
    assert!(out.lines().any(|line| line.starts_with('-') && line.contains("72.6")), "{out}");
    assert!(out.lines().any(|line| line.starts_with('+') && line.contains("72.5")), "{out}");
}

#[test]
fn test_runs_a_pipeline_files_chain_with_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            "name = 'p'\n\
             [[transforms]]\nname = 'enrich'\nwasm = '{}'\n\
             [[transforms]]\nname = 'redact'\nwasm = '{}'\n[transforms.config]\nfields = ['sensor_id']\n{ENDS}",
            guests::SENSOR_ENRICH,
            guests::PII_REDACT
        ),
    )
    .unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"sensor_id\":\"s1\",\"temp\":10}\n").unwrap();
    let (verdict, out) =
        ferry(&["test", pipeline.to_str().unwrap(), "--input", input.to_str().unwrap(), "--format", "json"]);
    assert_eq!(verdict.unwrap(), Verdict::Success, "{out}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["outputs"][0]["payload"], serde_json::json!({"sensor_id": "***", "temp": 10, "temp_f": 50.0}));
    assert_eq!(report["outputs"][0]["collection"], "readings");
}

#[test]
fn config_entries_reach_a_single_transform() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"email\":\"a@b.c\",\"phone\":\"1\"}\n").unwrap();
    let args = ["test", "--transform", guests::PII_REDACT, "--config", r#"fields=["email"]"#, "--config", "mask=#"];
    let (verdict, out) = ferry(&[&args[..], &["--input", input.to_str().unwrap(), "--format", "json"]].concat());
    assert_eq!(verdict.unwrap(), Verdict::Success, "{out}");
    assert!(out.contains(r##""payload":{"email":"#","phone":"1"}"##), "{out}");

    let (verdict, _) = ferry(&["test", "--transform", guests::PII_REDACT, "--input", input.to_str().unwrap()]);
    let error = verdict.unwrap_err();
    assert!(
        error.to_string().contains("rejected its configuration: invalid configuration: missing field `fields`"),
        "{error}"
    );
}

#[test]
fn a_missing_input_file_is_named() {
    let (verdict, _) = ferry(&["test", "--transform", guests::IDENTITY, "--input", "/no/such/input.jsonl"]);
    assert_eq!(verdict.unwrap_err().to_string(), "cannot read /no/such/input.jsonl");
}

#[test]
fn test_needs_a_pipeline_or_a_transform_but_not_both() {
    assert!(Cli::try_parse_from(["ferry", "test", "--input", "x"]).is_err());
    assert!(Cli::try_parse_from(["ferry", "test", "p.toml", "--transform", "t.wasm", "--input", "x"]).is_err());
    assert!(Cli::try_parse_from(["ferry", "test", "p.toml", "--config", "a=1", "--input", "x"]).is_err());
}

#[test]
fn validate_loads_transforms_and_runs_their_config_checks() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("p.toml");
    let write = |config: &str| {
        std::fs::write(
            &pipeline,
            format!("name = 'p'\n[[transforms]]\nname = 'redact'\nwasm = '{}'\n{config}{ENDS}", guests::PII_REDACT),
        )
        .unwrap()
    };
    write("[transforms.config]\nfields = ['email']\n");
    let (verdict, out) = ferry(&["validate", pipeline.to_str().unwrap()]);
    assert_eq!(verdict.unwrap(), Verdict::Success);
    assert!(out.contains("pipeline \"p\" is valid (1 transform: redact@"), "names the version: {out}");

    write("[transforms.config]\nfields = []\n");
    let (verdict, _) = ferry(&["validate", pipeline.to_str().unwrap()]);
    assert!(verdict.unwrap_err().to_string().starts_with("transform `redact` rejected its configuration"));

    write("timeout = 'soon'\n");
    let (verdict, _) = ferry(&["validate", pipeline.to_str().unwrap()]);
    let error = verdict.unwrap_err().to_string();
    assert!(error.contains("p.toml: transforms[0].timeout: "), "{error}");
}

#[test]
fn the_round_trip_pipelines_can_start_in_either_order() {
    use ferry::config::Route;
    let load = |file: &str| PipelineConfig::load(&repo_root().join("pipelines").join(file)).unwrap();
    let (changes, replica) = (load("readings-changes.toml"), load("changes-to-mongo.toml"));
    let Route::ChangesToIggy { sink: produced, .. } = &changes.route else {
        panic!("readings-changes produces to Iggy")
    };
    let Route::IggyToMongo { source: consumed, .. } = &replica.route else { panic!("changes-to-mongo consumes Iggy") };
    assert_eq!((&consumed.stream, &consumed.topic), (&produced.stream, &produced.topic));
    // The README starts both at once: whichever comes first creates the
    // topic, with the same partitions either way.
    assert!(produced.create.is_some(), "readings-changes creates its topic");
    assert_eq!(consumed.create, produced.create, "changes-to-mongo creates the same topic");
}

#[test]
fn change_events_reach_a_transform_as_the_change_stream_hands_them_over() {
    let input = samples().join("changes.jsonl");
    let golden = samples().join("changes.expected.jsonl");
    let args = ["test", "--transform", guests::CDC_REPLICATE, "--origin", "change-events"];
    let (verdict, out) =
        ferry(&[&args[..], &["--input", input.to_str().unwrap(), "--expect", golden.to_str().unwrap()]].concat());
    assert_eq!(verdict.unwrap(), Verdict::Success, "{out}");

    // Each record carries the event's key and position, as from the source.
    let (_, out) = ferry(&[&args[..], &["--input", input.to_str().unwrap()]].concat());
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with(r#"line 1: emit → (default collection) ({"replace":["_id"]}) key={"_id":1}"#),
        "{out}"
    );
    assert!(lines[3].contains(r#"({"delete":["_id"]})"#), "{out}");
    assert_eq!(lines[4], "line 5: drop");

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("changes.jsonl");
    std::fs::write(&broken, "{\"operationType\":\"insert\"}\nnot json\n").unwrap();
    let (verdict, _) = ferry(&[&args[..], &["--input", broken.to_str().unwrap()]].concat());
    let error = verdict.unwrap_err().to_string();
    assert!(error.contains("changes.jsonl line 2 is not a change event: "), "{error}");
}

#[test]
fn a_record_that_hangs_traps_or_hogs_memory_is_named_and_its_neighbours_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"n\":1}\nloop\ntrap\nhog\n{\"n\":2}\n").unwrap();
    let args = [
        "test",
        "--transform",
        guests::PROBE,
        "--timeout",
        "200ms",
        "--record-timeout",
        "50ms",
        "--memory-limit",
        "16MiB",
    ];
    let (verdict, out) = ferry(&[&args[..], &["--input", input.to_str().unwrap()]].concat());
    assert_eq!(verdict.unwrap(), Verdict::Failure, "a failed record, not a failed run: {out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("line 1: emit"), "{out}");
    // The batch ran into --timeout; alone, the record had --record-timeout.
    assert_eq!(
        lines[1],
        "line 2: FAIL in probe: transform `probe` timed out: one record ran longer than 50ms (record_timeout)"
    );
    assert_eq!(
        lines[2],
        "line 3: FAIL in probe: transform `probe` trapped: wasm trap: wasm `unreachable` instruction executed"
    );
    assert_eq!(
        lines[3],
        "line 4: FAIL in probe: transform `probe` ran out of memory: it needed more than its limit of 16.0 MiB"
    );
    assert!(lines[4].starts_with("line 5: emit"), "{out}");

    let (verdict, _) =
        ferry(&["test", "--transform", guests::PROBE, "--timeout", "0s", "--input", input.to_str().unwrap()]);
    assert!(verdict.unwrap_err().to_string().starts_with("--timeout: must be above 0"));
}

/// The Markdown files a user reads: the README, CONTRIBUTING and `docs/`.
fn documentation() -> Vec<PathBuf> {
    let mut files = vec![repo_root().join("README.md"), repo_root().join("CONTRIBUTING.md")];
    let mut folders = vec![repo_root().join("docs")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|extension| extension == "md") {
                files.push(path);
            }
        }
    }
    files
}

/// The ```toml blocks of a Markdown text.
fn toml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut open: Option<String> = None;
    for line in markdown.lines() {
        match (&mut open, line.trim_start()) {
            (None, "```toml") => open = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                open = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_pipeline_file_shown_in_the_docs_validates() {
    let mut pipelines = 0;
    for file in documentation() {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        for block in toml_blocks(&text) {
            // Every block is TOML; a whole pipeline file is also valid as one.
            toml::from_str::<toml::Table>(&block)
                .unwrap_or_else(|error| panic!("{}: {error}\n{block}", file.display()));
            if block.lines().any(|line| line.starts_with("name =")) && block.contains("[source.") {
                let path = repo_root().join("pipelines/from-the-docs.toml");
                PipelineConfig::parse(&block, &path, &|_| None)
                    .unwrap_or_else(|error| panic!("{}: {}\n{block}", file.display(), error_chain(&error)));
                pipelines += 1;
            }
        }
    }
    assert!(pipelines >= 2, "the README and docs/change-streams.md each show a whole pipeline file");
}
