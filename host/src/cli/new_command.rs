//! `ferry new`: a transform project that builds with one command and passes
//! `ferry test` as it is, in the language the author knows.
//!
//! The templates live in `host/templates/<language>/` and are built into
//! the binary, so `ferry new` works wherever `ferry` does. A Python or
//! JavaScript project gets a copy of the WIT contract and of its SDK (one
//! file, which its toolchain must find beside the app); a Rust project
//! depends on the SDK in the Ferry checkout this binary was built from
//! (or the one `--sdk` names).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::ValueEnum;

use super::{CliError, Verdict};

/// The contract, as Python and JavaScript toolchains read it.
const WIT: &str = include_str!("../../../wit/transform.wit");
/// The SDKs, copied into projects whole.
const PYTHON_SDK: &str = include_str!("../../../sdk/python/ferry_transform.py");
const JS_SDK: &str = include_str!("../../../sdk/js/ferry-transform.js");

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The transform's name: lowercase letters, digits and dashes, starting with a letter (`sensor-enrich`).
    pub name: String,
    /// The language to write it in.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    pub lang: Lang,
    /// Where to create the project [default: ./NAME].
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// (Rust) The `sdk/rust` folder of a Ferry checkout [default: the one this ferry was built from].
    #[arg(long, value_name = "DIR")]
    pub sdk: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

/// One file of a template: where it goes in the project, and its text
/// (with `{{name}}`, `{{crate}}`, `{{module}}`, `{{sdk}}` and `{{project}}`
/// to fill in).
struct File {
    path: &'static str,
    text: &'static str,
}

macro_rules! template {
    ($lang:literal: $($path:literal => $source:literal),+ $(,)?) => {
        &[$(File { path: $path, text: include_str!(concat!("../../templates/", $lang, "/", $source)) }),+]
    };
}

const RUST: &[File] = template!("rust":
    "Cargo.toml" => "Cargo.toml.tmpl",
    ".cargo/config.toml" => "cargo-config.toml",
    "src/lib.rs" => "lib.rs",
    "samples/input.jsonl" => "input.jsonl",
    "samples/expected.jsonl" => "expected.jsonl",
    "README.md" => "README.md",
    ".gitignore" => "gitignore",
);

const PYTHON: &[File] = template!("python":
    "app.py" => "app.py",
    "samples/input.jsonl" => "input.jsonl",
    "samples/expected.jsonl" => "expected.jsonl",
    "README.md" => "README.md",
    ".gitignore" => "gitignore",
);

const JS: &[File] = template!("js":
    "package.json" => "package.json",
    "src/transform.js" => "transform.js",
    "samples/input.jsonl" => "input.jsonl",
    "samples/expected.jsonl" => "expected.jsonl",
    "README.md" => "README.md",
    ".gitignore" => "gitignore",
);

impl Lang {
    fn files(self) -> &'static [File] {
        match self {
            Lang::Rust => RUST,
            Lang::Python => PYTHON,
            Lang::Js => JS,
        }
    }

    /// Files copied as they are: the contract and the SDK, for languages
    /// whose toolchain reads them from the project.
    fn verbatim(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Lang::Rust => &[],
            Lang::Python => &[("wit/transform.wit", WIT), ("ferry_transform.py", PYTHON_SDK)],
            Lang::Js => &[("wit/transform.wit", WIT), ("src/ferry-transform.js", JS_SDK)],
        }
    }

    /// The command that builds the project, and what it makes.
    fn build(self, crate_name: &str) -> (String, String) {
        match self {
            Lang::Rust => ("cargo build --release".into(), format!("target/wasm32-wasip2/release/{crate_name}.wasm")),
            Lang::Python => (
                format!("componentize-py -d wit -w transform componentize app -o {crate_name}.wasm"),
                format!("{crate_name}.wasm"),
            ),
            Lang::Js => ("npm run build".into(), format!("{crate_name}.wasm")),
        }
    }
}

pub(super) fn run(args: &NewArgs, out: &mut dyn Write) -> Result<Verdict, CliError> {
    validate_name(&args.name)?;
    let project = args.path.clone().unwrap_or_else(|| PathBuf::from(&args.name));
    if project.exists() && std::fs::read_dir(&project).map_or(true, |mut entries| entries.next().is_some()) {
        return Err(CliError::Usage(format!("{} already exists and is not empty", project.display())));
    }
    let crate_name = args.name.replace('-', "_");
    let sdk = match args.lang {
        Lang::Rust => sdk_path(args.sdk.as_deref())?,
        Lang::Python | Lang::Js => PathBuf::new(),
    };
    let absolute = std::path::absolute(&project).map_err(|source| CliError::Read { path: project.clone(), source })?;
    let fill = |text: &str| {
        text.replace("{{name}}", &args.name)
            .replace("{{crate}}", &crate_name)
            .replace("{{module}}", &crate_name)
            .replace("{{sdk}}", &sdk.display().to_string())
            .replace("{{project}}", &absolute.display().to_string())
    };
    let mut written = Vec::new();
    for file in args.lang.files() {
        write_file(&project.join(file.path), &fill(file.text))?;
        written.push(file.path);
    }
    for (path, text) in args.lang.verbatim() {
        write_file(&project.join(path), text)?;
        written.push(path);
    }
    let (build, wasm) = args.lang.build(&crate_name);
    // componentize-js's heap needs more than the default memory limit.
    let limit = if args.lang == Lang::Js { " --memory-limit 256MiB" } else { "" };
    let lang = args.lang.to_possible_value().map(|value| value.get_name().to_owned()).unwrap_or_default();
    writeln!(out, "created {} ({lang}): {}", project.display(), written.join(", "))?;
    writeln!(out, "next:")?;
    writeln!(out, "  cd {}", project.display())?;
    writeln!(out, "  {build}")?;
    writeln!(
        out,
        "  ferry test --transform {wasm} --input samples/input.jsonl --expect samples/expected.jsonl{limit}"
    )?;
    Ok(Verdict::Success)
}

/// A name every language's packaging accepts.
fn validate_name(name: &str) -> Result<(), CliError> {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|first| first.is_ascii_lowercase());
    let rest_well = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if starts_well && rest_well && !name.ends_with('-') && name.len() <= 64 {
        return Ok(());
    }
    Err(CliError::Usage(format!(
        "{name:?} is not a transform name: use lowercase letters, digits and dashes, starting with a letter"
    )))
}

/// The Rust SDK a new project depends on.
fn sdk_path(given: Option<&Path>) -> Result<PathBuf, CliError> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/rust");
    let sdk = given.unwrap_or(&built_from);
    match std::fs::canonicalize(sdk) {
        Ok(sdk) if sdk.join("Cargo.toml").is_file() => Ok(sdk),
        _ => Err(CliError::Usage(format!(
            "cannot find Ferry's Rust SDK at {}; pass --sdk with the sdk/rust folder of a Ferry checkout",
            sdk.display()
        ))),
    }
}

fn write_file(path: &Path, text: &str) -> Result<(), CliError> {
    let written = path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(path, text));
    written.map_err(|source| CliError::Write { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_names_then_only_portable_ones_pass() {
        for good in ["enrich", "sensor-enrich", "v2-redact"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Enrich", "2fast", "with space", "trailing-", "under_score"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
