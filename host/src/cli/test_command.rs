//! `ferry test`: runs a transform chain over a JSON-lines file, no servers.
//! This is how transform authors iterate.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::ValueEnum;

use super::report::{Entry, Summary};
use super::{CliError, GlobalArgs, Verdict, golden};
use crate::config::{PipelineConfig, TransformConfig};
use crate::record::{Batch, BatchSource, Encoding, Origin, Record};
use crate::wasm::TransformChain;

/// Arguments of `ferry test`.
#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("chain").required(true).args(["pipeline", "transform"])),
    after_help = "Exit codes: 0 all records processed (or matched --expect); 1 a record failed \
                  (or the report differs from --expect); 2 the test could not run."
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
    /// Show the transform's stdout and stderr (panic messages, too) in the log.
    #[arg(long)]
    pub stdio: bool,
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

    let timestamp = now_micros();
    let mut entries = Vec::with_capacity(lines.len());
    for (chunk_index, chunk) in lines.chunks(args.batch_size as usize).enumerate() {
        let first_line = (chunk_index * args.batch_size as usize) as u64 + 1;
        let records = (first_line..).zip(chunk).map(|(line, payload)| file_record(line, payload, timestamp)).collect();
        let batch = Batch { source: BatchSource::File, records };
        let results = chain.run(&batch)?;
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
