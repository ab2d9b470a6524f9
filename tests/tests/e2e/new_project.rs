//! `ferry new` as a newcomer uses it: a project in each language, built
//! with its one documented command, passes `ferry test` as it is. Each test
//! prints how long that took, cold.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use clap::Parser;
use ferry::cli::{Cli, Context, Verdict};
use ferry_tests::toolchains::Toolchain;
use tokio_util::sync::CancellationToken;

/// Runs `ferry ARGS...` in-process, as the binary would.
fn ferry(args: &[&str]) -> (Verdict, String) {
    let (verdict, out) = ferry_tests::cli::ferry(args);
    (verdict.unwrap_or_else(|error| panic!("ferry {args:?}: {error}")), out)
}

/// Runs a build command in `dir` as the author would, without the
/// settings of the `cargo test` this runs under.
fn build(dir: &Path, program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .unwrap_or_else(|error| panic!("{program} runs: {error}"));
    assert!(status.success(), "{program} {args:?} failed in {}", dir.display());
}

#[test]
fn a_new_rust_transform_builds_and_passes_its_own_test() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("sensor-demo");
    let started = Instant::now();
    let (verdict, out) = ferry(&["new", "sensor-demo", "--lang", "rust", "--path", project.to_str().unwrap()]);
    assert_eq!(verdict, Verdict::Success);
    assert!(out.contains("cargo build --release"), "says how to build: {out}");
    build(&project, "cargo", &["build", "--release"]);
    let wasm = project.join("target/wasm32-wasip2/release/sensor_demo.wasm");
    let (input, expected) = (project.join("samples/input.jsonl"), project.join("samples/expected.jsonl"));
    let (verdict, out) = ferry(&[
        "test",
        "--transform",
        wasm.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--expect",
        expected.to_str().unwrap(),
    ]);
    assert_eq!(verdict, Verdict::Success, "{out}");
    println!("rust: ferry new to a passing ferry test in {:.1}s", started.elapsed().as_secs_f64());
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    assert!(
        readme.contains(&format!(
            "wasm = \"{}\"",
            project.join("target/wasm32-wasip2/release/sensor_demo.wasm").display()
        ))
    );
}

#[test]
fn a_project_is_not_written_over_and_a_bad_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
    let cli = Cli::try_parse_from(["ferry", "new", "demo", "--path", dir.path().to_str().unwrap()]).unwrap();
    let context = Context {
        runtime: tokio::runtime::Builder::new_current_thread().build().unwrap().handle().clone(),
        shutdown: CancellationToken::new(),
    };
    let error = cli.execute(&mut Vec::new(), &context).unwrap_err().to_string();
    assert!(error.ends_with("already exists and is not empty"), "{error}");
    let cli = Cli::try_parse_from(["ferry", "new", "Bad_Name"]).unwrap();
    let error = cli.execute(&mut Vec::new(), &context).unwrap_err().to_string();
    assert!(error.contains("is not a transform name"), "{error}");
}

/// `ferry new --lang LANG`, its one build command, and its own `ferry test`.
fn new_project_passes_its_own_test(lang: &str, build_program: &Path, build_args: &[&str], test_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("sensor-demo");
    let started = Instant::now();
    let (verdict, out) = ferry(&["new", "sensor-demo", "--lang", lang, "--path", project.to_str().unwrap()]);
    assert_eq!(verdict, Verdict::Success);
    let command =
        [build_program.file_name().unwrap().to_str().unwrap()].iter().chain(build_args).copied().collect::<Vec<_>>();
    let says = if lang == "js" { "npm run build".to_owned() } else { command.join(" ") };
    assert!(out.contains(&says), "says how to build ({says}): {out}");
    build(&project, build_program.to_str().unwrap(), build_args);
    let wasm = project.join("sensor_demo.wasm");
    let (input, expected) = (project.join("samples/input.jsonl"), project.join("samples/expected.jsonl"));
    let args = ["test", "--transform", wasm.to_str().unwrap(), "--input", input.to_str().unwrap()];
    let (verdict, out) = ferry(&[&args[..], &["--expect", expected.to_str().unwrap()], test_args].concat());
    assert_eq!(verdict, Verdict::Success, "{out}");
    println!("{lang}: ferry new to a passing ferry test in {:.1}s", started.elapsed().as_secs_f64());
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    assert!(readme.contains(&format!("wasm = \"{}\"", wasm.display())), "{readme}");
}

#[test]
fn a_new_python_transform_builds_and_passes_its_own_test() {
    let test = "a_new_python_transform_builds_and_passes_its_own_test";
    let Some(componentize_py) = Toolchain::Python.require(test) else { return };
    let args = ["-d", "wit", "-w", "transform", "componentize", "app", "-o", "sensor_demo.wasm"];
    new_project_passes_its_own_test("python", &componentize_py, &args, &[]);
}

#[test]
fn a_new_javascript_transform_builds_and_passes_its_own_test() {
    let test = "a_new_javascript_transform_builds_and_passes_its_own_test";
    // `npm run build` runs componentize-js; without it there is nothing to run.
    if Toolchain::JavaScript.require(test).is_none() {
        return;
    }
    new_project_passes_its_own_test("js", Path::new("npm"), &["run", "build"], &["--memory-limit", "256MiB"]);
}
