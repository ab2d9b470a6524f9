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
