//! The on-disk compile cache: a miss compiles and stores, a hit loads, and a
//! damaged entry is detected, recompiled and replaced.

use ferry::config::TransformConfig;
use ferry::wasm::{CacheOutcome, CompileCache, TransformChain, WasmRuntime};
use ferry_tests::guests;
use ferry_tests::records::{batch, emitted};

fn cached_entry(dir: &std::path::Path) -> std::path::PathBuf {
    let entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    assert_eq!(entries.len(), 1, "expected one cache entry, found {entries:?}");
    entries.into_iter().next().unwrap()
}

#[test]
fn miss_then_hit_then_repair_of_a_damaged_entry() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = WasmRuntime::new(Some(CompileCache::new(dir.path()))).unwrap();
    let config = TransformConfig::new("identity", guests::IDENTITY);

    assert_eq!(runtime.load(&config).unwrap().cache_outcome(), CacheOutcome::Miss);
    let entry = cached_entry(dir.path());

    // A new runtime (a new process, in effect) finds the entry.
    let runtime = WasmRuntime::new(Some(CompileCache::new(dir.path()))).unwrap();
    let loaded = runtime.load(&config).unwrap();
    assert_eq!(loaded.cache_outcome(), CacheOutcome::Hit);
    let results = TransformChain::new(vec![loaded]).run(&batch(&["from the cache"])).unwrap();
    assert_eq!(emitted(&results[0])[0].payload, b"from the cache");

    let mut bytes = std::fs::read(&entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&entry, &bytes).unwrap();
    assert_eq!(runtime.load(&config).unwrap().cache_outcome(), CacheOutcome::Repaired);
    assert_eq!(runtime.load(&config).unwrap().cache_outcome(), CacheOutcome::Hit);

    std::fs::write(&entry, b"FERRY").unwrap();
    assert_eq!(runtime.load(&config).unwrap().cache_outcome(), CacheOutcome::Repaired);
    assert_eq!(cached_entry(dir.path()), entry);
}

#[test]
fn different_components_get_different_entries() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = WasmRuntime::new(Some(CompileCache::new(dir.path()))).unwrap();
    runtime.load(&TransformConfig::new("a", guests::IDENTITY)).unwrap();
    let second = runtime.load(&TransformConfig::new("b", guests::PII_REDACT)).unwrap();
    assert_eq!(second.cache_outcome(), CacheOutcome::Miss);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn an_unwritable_cache_costs_speed_not_correctness() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, b"").unwrap();
    let runtime = WasmRuntime::new(Some(CompileCache::new(blocker.join("cache")))).unwrap();
    let loaded = runtime.load(&TransformConfig::new("identity", guests::IDENTITY)).unwrap();
    assert_eq!(loaded.cache_outcome(), CacheOutcome::Miss);
    let results = TransformChain::new(vec![loaded]).run(&batch(&["still works"])).unwrap();
    assert_eq!(emitted(&results[0])[0].payload, b"still works");
}
