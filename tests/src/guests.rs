//! The guest components `build.rs` built, by name.

/// Passes every record through.
pub const IDENTITY: &str = env!("FERRY_GUEST_IDENTITY");
/// The seed use case: Fahrenheit, BSON dates, the `readings` collection.
pub const SENSOR_ENRICH: &str = env!("FERRY_GUEST_SENSOR_ENRICH");
/// Masks configured fields.
pub const PII_REDACT: &str = env!("FERRY_GUEST_PII_REDACT");
/// Replays change events as replaces and deletes by `_id`.
pub const CDC_REPLICATE: &str = env!("FERRY_GUEST_CDC_REPLICATE");
/// Test-only: misbehaves on command (see `tests/guests/probe`).
pub const PROBE: &str = env!("FERRY_GUEST_PROBE");
/// Test-only: stamps each record with the version in its component's data
/// (see `tests/guests/stamp`).
pub const STAMP: &str = env!("FERRY_GUEST_STAMP");

/// The `stamp` component with its version set to `version` (0–999): a
/// different file for every version, as a rebuilt transform would be.
pub fn stamp_version(version: u16) -> Vec<u8> {
    const MARKER: &[u8] = b"FERRY-STAMP:v";
    let mut wasm = std::fs::read(STAMP).expect("build.rs built the stamp guest");
    let at =
        wasm.windows(MARKER.len()).position(|window| window == MARKER).expect("the stamp marker is in the component");
    let digits = format!("{:03}", version % 1000);
    wasm[at + MARKER.len()..at + MARKER.len() + 3].copy_from_slice(digits.as_bytes());
    wasm
}
