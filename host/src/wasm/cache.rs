//! Compiled components kept on disk, so a pipeline starts in milliseconds
//! instead of recompiling its transforms (a small Rust guest compiles in
//! ~50 ms, a Python one in seconds; a cache hit loads in ~2 ms).
//!
//! An entry is keyed by the component's bytes *and* the engine's settings, so
//! a Ferry built with another wasmtime or other settings never loads an
//! artifact it did not make. Each entry carries a checksum of its content:
//! wasmtime trusts what it deserialises, so a damaged file must be caught
//! here, and is then replaced by a fresh compilation.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Marks a file as a Ferry cache entry of this layout.
const MAGIC: &[u8; 8] = b"FERRYC01";
const CHECKSUM_LEN: usize = 32;

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a valid cache entry.
    Hit,
    /// Compiled; there was no entry (or no cache).
    Miss,
    /// Compiled; the entry was damaged and has been rewritten.
    Repaired,
}

/// A directory of compiled components.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `$FERRY_CACHE_DIR`, else `$XDG_CACHE_HOME/ferry`, else `~/.cache/ferry`.
    pub fn default_dir() -> Option<PathBuf> {
        let var = |name| std::env::var_os(name).filter(|value| !value.is_empty()).map(PathBuf::from);
        var("FERRY_CACHE_DIR")
            .or_else(|| var("XDG_CACHE_HOME").map(|dir| dir.join("ferry")))
            .or_else(|| var("HOME").map(|home| home.join(".cache").join("ferry")))
    }

    /// Where the entry for `wasm` compiled by `engine` lives.
    pub fn entry_path(&self, engine: &Engine, wasm: &[u8]) -> PathBuf {
        let mut settings = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut settings);
        let key = Sha256::new().chain_update(wasm).chain_update(settings.finish().to_le_bytes()).finalize();
        self.dir.join(format!("{}.cwasm", hex(&key)))
    }

    /// Loads the compiled form of `wasm`, compiling and storing it on a miss.
    /// Failing to write the cache is logged, not fatal: it only costs speed.
    pub fn load_or_compile(&self, engine: &Engine, wasm: &[u8]) -> wasmtime::Result<(Component, CacheOutcome)> {
        let path = self.entry_path(engine, wasm);
        let outcome = match std::fs::read(&path) {
            Ok(entry) => match verified_artifact(&entry) {
                Some(artifact) => {
                    // SAFETY: the artifact was written by `store` below for this
                    // exact engine configuration (the key says so) and its
                    // checksum matches, so it is the bytes wasmtime produced.
                    match unsafe { Component::deserialize(engine, artifact) } {
                        Ok(component) => return Ok((component, CacheOutcome::Hit)),
                        Err(error) => {
                            tracing::warn!(path = %path.display(), %error, "cached component rejected; recompiling");
                            CacheOutcome::Repaired
                        }
                    }
                }
                None => {
                    tracing::warn!(path = %path.display(), "cached component is damaged; recompiling");
                    CacheOutcome::Repaired
                }
            },
            Err(_) => CacheOutcome::Miss,
        };
        let component = Component::new(engine, wasm)?;
        match component.serialize() {
            Ok(artifact) => {
                if let Err(error) = store(&path, &artifact) {
                    tracing::warn!(path = %path.display(), %error, "cannot write the compile cache");
                }
            }
            Err(error) => tracing::warn!(%error, "cannot serialise a compiled component"),
        }
        Ok((component, outcome))
    }
}

/// The artifact inside a cache entry, if its magic and checksum are right.
fn verified_artifact(entry: &[u8]) -> Option<&[u8]> {
    let rest = entry.strip_prefix(MAGIC)?;
    if rest.len() < CHECKSUM_LEN {
        return None;
    }
    let (checksum, artifact) = rest.split_at(CHECKSUM_LEN);
    (Sha256::digest(artifact).as_slice() == checksum).then_some(artifact)
}

/// Writes an entry atomically: readers see the old file or the whole new one.
fn store(path: &Path, artifact: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("cache entries live in a directory");
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(MAGIC)?;
    file.write_all(&Sha256::digest(artifact))?;
    file.write_all(artifact)?;
    file.persist(path).map_err(|error| error.error)?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_stored_entry_then_verifies_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.cwasm");
        store(&path, b"artifact").unwrap();
        let entry = std::fs::read(&path).unwrap();
        assert_eq!(verified_artifact(&entry), Some(&b"artifact"[..]));
    }

    #[test]
    fn given_a_flipped_byte_then_rejects_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.cwasm");
        store(&path, b"artifact").unwrap();
        let mut entry = std::fs::read(&path).unwrap();
        *entry.last_mut().unwrap() ^= 1;
        assert_eq!(verified_artifact(&entry), None);
        assert_eq!(verified_artifact(b"FERRYC01short"), None);
        assert_eq!(verified_artifact(b"not ours"), None);
    }

    #[test]
    fn given_different_engines_or_bytes_then_keys_differ() {
        let cache = CompileCache::new("/cache");
        let engine = Engine::default();
        let mut other_config = wasmtime::Config::new();
        other_config.epoch_interruption(true);
        let other = Engine::new(&other_config).unwrap();
        assert_eq!(cache.entry_path(&engine, b"a"), cache.entry_path(&engine, b"a"));
        assert_ne!(cache.entry_path(&engine, b"a"), cache.entry_path(&engine, b"b"));
        assert_ne!(cache.entry_path(&engine, b"a"), cache.entry_path(&other, b"a"));
    }
}
