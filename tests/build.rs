//! Builds the guest components the end-to-end tests run — the example
//! transforms and the test-only guests — for `wasm32-wasip2`, and tells the
//! tests where they are through `FERRY_GUEST_<NAME>` variables. Nothing
//! built here is checked in.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let tests_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = tests_dir.parent().expect("tests/ lives in the repository root");
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    // The example transforms are written on the SDK.
    println!("cargo:rerun-if-changed={}", root.join("sdk/rust/Cargo.toml").display());
    println!("cargo:rerun-if-changed={}", root.join("sdk/rust/src").display());
    for workspace in [root.join("guest-examples"), tests_dir.join("guests")] {
        watch(&workspace);
        build(&workspace);
        for (name, wasm) in components(&workspace) {
            println!("cargo:rustc-env=FERRY_GUEST_{}={}", name.to_uppercase(), wasm.display());
        }
    }
}

/// Reruns this script when a guest's manifest or source changes. The
/// workspace's `target/` is deliberately not watched: it changes every build.
fn watch(workspace: &Path) {
    println!("cargo:rerun-if-changed={}", workspace.join("Cargo.toml").display());
    for member in members(workspace) {
        println!("cargo:rerun-if-changed={}", member.join("Cargo.toml").display());
        println!("cargo:rerun-if-changed={}", member.join("src").display());
    }
}

fn build(workspace: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(workspace.join("Cargo.toml"))
        // The outer build's flags are for the host target, not for wasm.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .expect("cargo runs");
    if !status.success() {
        panic!(
            "building the guests in {} failed; is the target installed? (rustup target add {TARGET})",
            workspace.display()
        );
    }
}

/// `(crate name with underscores, path of its .wasm)` for each member.
fn components(workspace: &Path) -> Vec<(String, PathBuf)> {
    let out = workspace.join("target").join(TARGET).join("release");
    members(workspace)
        .iter()
        .map(|member| {
            let name = member.file_name().expect("a member has a name").to_string_lossy().replace('-', "_");
            let wasm = out.join(format!("{name}.wasm"));
            assert!(wasm.exists(), "{} was not built", wasm.display());
            (name, wasm)
        })
        .collect()
}

/// Member crates: the workspace's subdirectories that hold a Cargo.toml.
fn members(workspace: &Path) -> Vec<PathBuf> {
    let mut members: Vec<PathBuf> = std::fs::read_dir(workspace)
        .expect("the guest workspace exists")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.join("Cargo.toml").is_file())
        .collect();
    members.sort();
    members
}
