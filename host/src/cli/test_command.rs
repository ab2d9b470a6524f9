//! `ferry test`: runs a transform chain over a JSON-lines file, no servers.
//! This is how transform authors iterate.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytesize::ByteSize;
use clap::ValueEnum;

use super::report::{Entry, Summary};
use super::{CliError, GlobalArgs, Verdict, golden};
use crate::config::{EventFormat, PipelineConfig, Problems, TransformConfig};
use crate::pipeline::run_isolating;
use crate::record::{Batch, BatchSource, Encoding, Origin, Record};
use crate::source::mongodb::change_record;
use crate::wasm::TransformChain;

/// Arguments of `ferry test`.
#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("chain").required(true).args(["pipeline", "transform"])),
    after_help = "Exit codes: 0 all records processed (or matched --expect); 1 a record failed, a trap or a \
                  timeout included (or the report differs from --expect); 2 the test could not run."
)]
pub struct TestArgs {
    /// A pipeline file whose transform chain to run.
    pub pipeline: Option<PathBuf>,
    /// A single transform component to run instead of a pipeline's chain.
    #[arg(long, value_name = "WASM", conflicts_with = "pipeline")]
    pub transform: Option<PathBuf>,
    /// A configuration entry for --transform, with a TOML value:
    /// `--config 'fields=["email"]'`; a value that is not TOML is a string.
    #[arg(long = "config", value_name = "KEY=VALUE", conflicts_with = "pipeline")]
    pub config: Vec<String>,
    /// JSON-lines input: each line is one record's payload, passed as-is ("-" reads stdin).
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// How to print the report.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// A golden file of JSON report lines; print a diff instead of the report.
    #[arg(long, value_name = "GOLDEN")]
    pub expect: Option<PathBuf>,
    /// Records per transform call.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// How each input line becomes a record: its payload as-is (`payload`),
    /// or a MongoDB change event as the change-stream source hands it over
    /// (`change-events`: each line an event in Extended JSON).
    #[arg(long, value_enum, default_value_t = InputOrigin::Payload)]
    pub origin: InputOrigin,
    /// With `--origin change-events`: events as relaxed Extended JSON (as
    /// `format = "json"` gives them) or raw BSON.
    #[arg(long, value_enum, default_value_t = EventPayload::Json)]
    pub event_format: EventPayload,
    /// How long one call of --transform may run (e.g. `5s`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "pipeline")]
    pub timeout: Option<Duration>,
    /// How long one record of --transform may take alone, as when a failed
    /// batch is run again record by record (e.g. `100ms`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "pipeline")]
    pub record_timeout: Option<Duration>,
    /// How far the --transform instance's memory may grow (e.g. `128MiB`).
    #[arg(long, value_name = "SIZE", conflicts_with = "pipeline")]
    pub memory_limit: Option<ByteSize>,
    /// Show the transform's stdout and stderr (panic messages, too) in the log.
    #[arg(long)]
    pub stdio: bool,
}

/// Where `ferry test`'s records come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputOrigin {
    /// Each line is one record's payload (JSON), as a topic's message is.
    Payload,
    /// Each line is a MongoDB change event, in Extended JSON.
    ChangeEvents,
}

/// The payload a change event becomes (a change-stream source's `format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventPayload {
    /// Extended JSON keeping every BSON type (Int64 as `$numberLong`).
    Json,
    /// Relaxed Extended JSON exactly (an Int64 is a bare number).
    RelaxedJson,
    Bson,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per outcome, and a summary.
    Text,
    /// One JSON object per input line (what --expect compares).
    Json,
}

pub(super) fn run(args: &TestArgs, global: &GlobalArgs, out: &mut dyn Write) -> Result<Verdict, CliError> {
    let mut transforms = chain_config(args)?;
    for transform in &mut transforms {
        transform.grants.stdio |= args.stdio;
    }
    let lines = read_lines(&args.input)?;
    let runtime = global.runtime()?;
    let loaded = transforms.iter().map(|transform| runtime.load(transform)).collect::<Result<_, _>>()?;
    let mut chain = TransformChain::new(loaded);
    chain.start()?;
    let last_transform = transforms.last().map_or("", |transform| transform.name.as_str()).to_owned();

    let records = records(&lines, args, &args.input)?;
    let source = match args.origin {
        InputOrigin::Payload => BatchSource::File,
        InputOrigin::ChangeEvents => BatchSource::Mongodb,
    };
    let mut entries = Vec::with_capacity(records.len());
    for (chunk_index, chunk) in records.chunks(args.batch_size as usize).enumerate() {
        let first_line = (chunk_index * args.batch_size as usize) as u64 + 1;
        let batch = Batch { source: source.clone(), records: chunk.to_vec() };
        // As in a pipeline: a batch that traps or times out is run again one
        // record at a time, so the report names the line at fault.
        let results = run_isolating(&mut chain, &batch);
        let lines = (first_line..).zip(results.iter().zip(&batch.records));
        entries.extend(lines.map(|(line, (result, input))| Entry::new(line, result, input, &last_transform)));
    }

    match &args.expect {
        Some(golden_path) => compare(&entries, golden_path, out),
        None => report(&entries, args.format, out),
    }
}

/// The transforms to run: a pipeline's chain, or the one `--transform`.
fn chain_config(args: &TestArgs) -> Result<Vec<TransformConfig>, CliError> {
    if let Some(pipeline) = &args.pipeline {
        return Ok(PipelineConfig::load(pipeline)?.transforms);
    }
    let path = args.transform.as_ref().expect("clap requires a pipeline or --transform");
    let name = path.file_stem().map_or("transform".into(), |stem| stem.to_string_lossy().into_owned());
    let mut transform = TransformConfig::new(name, path);
    transform.config = parse_config_entries(&args.config)?;
    transform.timeout = args.timeout.unwrap_or(transform.timeout);
    transform.record_timeout = args.record_timeout.unwrap_or(transform.record_timeout);
    transform.memory_limit = args.memory_limit.unwrap_or(transform.memory_limit);
    let mut problems = Problems::default();
    transform.validate("--transform", &mut problems);
    if let Some(problem) = problems.iter().next() {
        let option = match problem.path.as_str() {
            "--transform.timeout" => "--timeout",
            "--transform.record_timeout" => "--record-timeout",
            "--transform.memory_limit" => "--memory-limit",
            _ => "--transform",
        };
        return Err(CliError::Usage(format!("{option}: {}", problem.message)));
    }
    Ok(vec![transform])
}

/// Builds a config table from `KEY=VALUE` entries. Dotted keys nest.
fn parse_config_entries(entries: &[String]) -> Result<toml::Table, CliError> {
    let mut table = toml::Table::new();
    for entry in entries {
        let (key, value) =
            entry.split_once('=').ok_or_else(|| CliError::Usage(format!("--config {entry:?} is not KEY=VALUE")))?;
        let parsed = toml::from_str::<toml::Table>(&format!("{key} = {value}")).or_else(|_| {
            let as_string = toml::Value::String(value.to_owned());
            toml::from_str::<toml::Table>(&format!("{key} = {as_string}"))
        });
        let parsed = parsed.map_err(|_| CliError::Usage(format!("--config {entry:?}: {key:?} is not a valid key")))?;
        merge(&mut table, parsed);
    }
    Ok(table)
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(existing)), toml::Value::Table(nested)) => merge(existing, nested),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// The input's lines as raw bytes: a line need not even be UTF-8, just as a
/// message on a topic need not be.
fn read_lines(path: &Path) -> Result<Vec<Vec<u8>>, CliError> {
    let mut bytes = Vec::new();
    let read = match path.as_os_str() == "-" {
        true => std::io::stdin().read_to_end(&mut bytes).map(|_| ()),
        false => std::fs::File::open(path).and_then(|mut file| file.read_to_end(&mut bytes)).map(|_| ()),
    };
    read.map_err(|source| CliError::Read { path: path.to_owned(), source })?;
    let text = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    if text.is_empty() {
        return Ok(Vec::new());
    }
    Ok(text.split(|&b| b == b'\n').map(|line| line.strip_suffix(b"\r").unwrap_or(line).to_vec()).collect())
}

/// Each line as the record a pipeline would hand the chain.
fn records(lines: &[Vec<u8>], args: &TestArgs, path: &Path) -> Result<Vec<Record>, CliError> {
    let timestamp = now_micros();
    let format = match args.event_format {
        EventPayload::Json => EventFormat::Json,
        EventPayload::RelaxedJson => EventFormat::RelaxedJson,
        EventPayload::Bson => EventFormat::Bson,
    };
    (1..)
        .zip(lines)
        .map(|(line, text)| match args.origin {
            InputOrigin::Payload => Ok(file_record(line, text, timestamp)),
            InputOrigin::ChangeEvents => change_event_record(text, line, format).map_err(|reason| {
                CliError::Usage(format!("{} line {line} is not a change event: {reason}", path.display()))
            }),
        })
        .collect()
}

/// A change event in Extended JSON, as the change-stream source hands it
/// over: payload, document key, namespace, operation and cluster time. An
/// event without a resume token `_id` (one written by hand) gets one.
fn change_event_record(text: &[u8], line: u64, format: EventFormat) -> Result<Record, String> {
    let value: serde_json::Value = serde_json::from_slice(text).map_err(|error| error.to_string())?;
    let bson::Bson::Document(mut event) = bson::Bson::try_from(value).map_err(|error| error.to_string())? else {
        return Err("it is not a JSON object".to_owned());
    };
    if !event.contains_key("_id") {
        event.insert("_id", bson::doc! { "_data": format!("ferry-test-line-{line}") });
    }
    let event = bson::RawDocumentBuf::try_from(&event).map_err(|error| error.to_string())?;
    change_record(&event, format)
}

fn file_record(line: u64, payload: &[u8], timestamp: u64) -> Record {
    Record {
        payload: payload.to_vec(),
        encoding: Encoding::Json,
        key: None,
        headers: None,
        timestamp,
        origin: Origin::File(line),
    }
}

fn report(entries: &[Entry], format: Format, out: &mut dyn Write) -> Result<Verdict, CliError> {
    let mut summary = Summary::default();
    for entry in entries {
        summary.add(entry);
        match format {
            Format::Text => entry.write_text(out)?,
            Format::Json => writeln!(out, "{}", golden::canonical(&entry.to_json()))?,
        }
    }
    if format == Format::Text {
        summary.write_text(out)?;
    }
    Ok(if summary.failed() > 0 { Verdict::Failure } else { Verdict::Success })
}

fn compare(entries: &[Entry], golden_path: &Path, out: &mut dyn Write) -> Result<Verdict, CliError> {
    let expected = golden::read(golden_path)?;
    let actual: Vec<String> = entries.iter().map(|entry| golden::canonical(&entry.to_json())).collect();
    match golden::diff(&expected, &actual, golden_path) {
        None => {
            writeln!(out, "{} records match {}", actual.len(), golden_path.display())?;
            Ok(Verdict::Success)
        }
        Some(diff) => {
            write!(out, "{diff}")?;
            Ok(Verdict::Failure)
        }
    }
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_config_entries_then_values_are_toml_or_strings() {
        let entries = ["fields=[\"email\", \"phone\"]", "mask=#", "limits.max=3", "limits.min=1", "flag=true"];
        let table = parse_config_entries(&entries.map(String::from)).unwrap();
        let expected: toml::Table =
            toml::from_str("fields = ['email', 'phone']\nmask = '#'\nflag = true\n[limits]\nmax = 3\nmin = 1").unwrap();
        assert_eq!(table, expected);
    }

    #[test]
    fn given_an_entry_without_equals_then_usage_error() {
        let error = parse_config_entries(&["fields".to_owned()]).unwrap_err();
        assert_eq!(error.to_string(), "--config \"fields\" is not KEY=VALUE");
    }

    #[test]
    fn given_a_file_then_lines_keep_blank_and_malformed_ones_but_not_the_last_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, b"{\"a\":1}\r\n\n{oops\n").unwrap();
        assert_eq!(read_lines(&path).unwrap(), [b"{\"a\":1}".to_vec(), b"".to_vec(), b"{oops".to_vec()]);
        std::fs::write(&path, b"").unwrap();
        assert!(read_lines(&path).unwrap().is_empty());
    }
}
