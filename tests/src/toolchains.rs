//! The guest toolchains of the languages besides Rust, found where an author
//! installs them, and the example transforms built with them.
//!
//! `build.rs` builds only the Rust guests: a missing Python or JavaScript
//! toolchain must fail the tests that need it, loudly, and not the build of
//! every test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::servers::{find_binary, missing};

/// A language's component builder.
#[derive(Debug, Clone, Copy)]
pub enum Toolchain {
    /// `componentize-py`, from PyPI.
    Python,
    /// `componentize-js`, from npm.
    JavaScript,
}

impl Toolchain {
    fn program(self) -> &'static str {
        match self {
            Toolchain::Python => "componentize-py",
            Toolchain::JavaScript => "componentize-js",
        }
    }

    fn install(self) -> &'static str {
        match self {
            Toolchain::Python => "pip install componentize-py==0.25.1",
            Toolchain::JavaScript => "npm install -g @bytecodealliance/componentize-js@0.23.0",
        }
    }

    /// The builder named by `FERRY_COMPONENTIZE_PY` / `FERRY_COMPONENTIZE_JS`,
    /// else on `PATH`, else in the repository's `.venv` (where CI installs
    /// the Python packages).
    pub fn find(self) -> Option<PathBuf> {
        let variable = match self {
            Toolchain::Python => "FERRY_COMPONENTIZE_PY",
            Toolchain::JavaScript => "FERRY_COMPONENTIZE_JS",
        };
        find_binary(variable, self.program(), &[repository().join(".venv/bin").join(self.program())])
    }

    /// The builder, or `None` after reporting it missing for `test`.
    pub fn require(self, test: &str) -> Option<PathBuf> {
        let found = self.find();
        if found.is_none() {
            missing(test, &format!("{} is not installed ({})", self.program(), self.install()));
        }
        found
    }
}

/// The repository's root.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lives in the repository root").to_path_buf()
}

/// Builds the Python app module `module` in `dir` into `out`, with Ferry's
/// Python SDK on the module path.
pub fn build_python(componentize_py: &Path, dir: &Path, module: &str, out: &Path) {
    let root = repository();
    run(Command::new(componentize_py)
        .arg("-d")
        .arg(root.join("wit"))
        .args(["-w", "transform", "componentize", module, "-p", "."])
        .arg("-p")
        .arg(root.join("sdk/python"))
        .arg("-o")
        .arg(out)
        .current_dir(dir));
}

/// Builds the JavaScript module `source` (relative to the repository, which
/// componentize-js lets it import from) into `out`.
pub fn build_js(componentize_js: &Path, source: &str, out: &Path) {
    run(Command::new(componentize_js)
        .arg(source)
        .args(["-w", "wit", "-n", "transform", "-d", "http", "fetch-event", "-o"])
        .arg(out)
        .current_dir(repository()));
}

fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|error| panic!("{command:?} runs: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `guest-examples/python/sensor-enrich`, built once per test process.
pub fn python_sensor_enrich(test: &str) -> Option<PathBuf> {
    python_component(test, "guest-examples/python/sensor-enrich", "sensor_enrich")
}

/// `guest-examples/js/sensor-enrich`, built once per test process.
pub fn js_sensor_enrich(test: &str) -> Option<PathBuf> {
    js_component(test, "guest-examples/js/sensor-enrich/sensor-enrich.js", "sensor_enrich")
}

/// The Python app (`app.py`) in `dir` (relative to the repository), built
/// once per test process into `<name>.wasm`; `None` after reporting the
/// toolchain missing.
pub fn python_component(test: &str, dir: &str, name: &str) -> Option<PathBuf> {
    let componentize_py = Toolchain::Python.require(test)?;
    Some(built_once(&format!("python/{name}.wasm"), |out| {
        build_python(&componentize_py, &repository().join(dir), "app", out)
    }))
}

/// The JavaScript module `source` (relative to the repository), built once
/// per test process into `<name>.wasm`.
pub fn js_component(test: &str, source: &str, name: &str) -> Option<PathBuf> {
    let componentize_js = Toolchain::JavaScript.require(test)?;
    Some(built_once(&format!("js/{name}.wasm"), |out| build_js(&componentize_js, source, out)))
}

/// Builds `path` (under [`scratch`]) with `build` the first time this
/// process asks for it. The build writes beside `path` and renames, so the
/// file is replaced whole (another test process may be reading it).
fn built_once(path: &str, build: impl FnOnce(&Path)) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(out) = built.get(path) {
        return out.clone();
    }
    let out = scratch().join(path);
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let building = out.with_extension(format!("{}.wasm", std::process::id()));
    build(&building);
    std::fs::rename(&building, &out).unwrap();
    built.insert(path.to_owned(), out.clone());
    out
}

/// Where these builds go: under the repository's `target/`, rebuilt by each
/// test process (a build takes seconds) so they never go stale.
fn scratch() -> PathBuf {
    repository().join("target/foreign-guests")
}
