//! `[[transforms]]`: one WebAssembly transform of a pipeline's ordered chain.

use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

use super::defaults;
use super::problems::Problems;

/// The least memory a transform may be given: a Rust guest needs a few
/// 64 KiB pages before it runs a line of user code.
const MIN_MEMORY_LIMIT: ByteSize = ByteSize::mib(1);

/// The longest a single transform call may be allowed to run.
const MAX_TIMEOUT: Duration = Duration::from_secs(600);

/// One transform, as written in a pipeline file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformConfig {
    /// Names the transform in logs, errors and dead-letter records.
    pub name: String,
    /// The component file; a relative path is relative to the pipeline file.
    pub wasm: PathBuf,
    /// How long one call (one batch) may run.
    #[serde(default = "defaults::transform_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// How long one record may take alone: the deadline of a call on a
    /// single record, as when a failed batch is retried record by record
    /// (at most `timeout`). A record past it is dead-lettered as timed out.
    #[serde(default = "defaults::transform_record_timeout", with = "humantime_serde")]
    pub record_timeout: Duration,
    /// How far the instance's linear memory may grow.
    #[serde(default = "defaults::transform_memory_limit")]
    pub memory_limit: ByteSize,
    /// Past this much linear memory after a batch, the instance is replaced
    /// by a fresh one before the next batch; three quarters of
    /// `memory_limit` unless set. Some guest runtimes never give memory back
    /// (componentize-py 0.25 keeps every byte string a transform returns),
    /// and this keeps them running for good. Between batches, nothing is lost.
    #[serde(default)]
    pub recycle_memory_above: Option<ByteSize>,
    /// Handed to the transform's `configure` as a JSON object.
    #[serde(default)]
    pub config: toml::Table,
    /// What the sandbox lets the transform reach; nothing unless granted.
    #[serde(default)]
    pub grants: Grants,
}

/// Capabilities a pipeline grants a transform. All are off by default.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Send the guest's stdout and stderr to Ferry's log (panic messages
    /// included).
    #[serde(default)]
    pub stdio: bool,
    /// Environment variables passed through, by name.
    #[serde(default)]
    pub env: Vec<String>,
    /// Host directories the guest may open.
    #[serde(default)]
    pub dirs: Vec<DirGrant>,
    /// Outbound and inbound sockets to any address, and name lookups.
    #[serde(default)]
    pub network: bool,
}

/// A host directory made visible inside the guest.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    /// The directory on the host; a relative path is relative to the
    /// pipeline file.
    pub host: PathBuf,
    /// Where the guest sees it, e.g. `/data`.
    pub guest: String,
    /// Whether the guest may write; read-only unless set.
    #[serde(default)]
    pub writable: bool,
}

impl TransformConfig {
    /// A transform with default settings, as `ferry test --transform` makes.
    pub fn new(name: impl Into<String>, wasm: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            wasm: wasm.into(),
            timeout: defaults::transform_timeout(),
            record_timeout: defaults::transform_record_timeout(),
            memory_limit: defaults::transform_memory_limit(),
            recycle_memory_above: None,
            config: toml::Table::new(),
            grants: Grants::default(),
        }
    }

    /// The deadline of a call on one record: `record_timeout`, at most
    /// `timeout`.
    pub fn single_record_deadline(&self) -> Duration {
        self.record_timeout.min(self.timeout)
    }

    /// The linear memory past which an instance is replaced between batches.
    pub fn recycle_threshold(&self) -> ByteSize {
        self.recycle_memory_above.unwrap_or(ByteSize::b(self.memory_limit.as_u64() / 4 * 3))
    }

    /// Records every problem of this transform under `path`.
    pub(crate) fn validate(&self, path: &str, problems: &mut Problems) {
        if self.name.trim().is_empty() {
            problems.add(format!("{path}.name"), "must not be empty");
        }
        if self.wasm.as_os_str().is_empty() {
            problems.add(format!("{path}.wasm"), "must name a component file");
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            problems.add(format!("{path}.timeout"), format!("must be above 0 and at most {MAX_TIMEOUT:?}"));
        }
        if self.record_timeout.is_zero() {
            problems.add(format!("{path}.record_timeout"), "must be above 0");
        }
        if self.memory_limit < MIN_MEMORY_LIMIT {
            problems.add(format!("{path}.memory_limit"), format!("must be at least {MIN_MEMORY_LIMIT}"));
        }
        if let Some(threshold) = self.recycle_memory_above
            && (threshold.as_u64() == 0 || threshold > self.memory_limit)
        {
            problems.add(
                format!("{path}.recycle_memory_above"),
                format!("must be above 0 and at most memory_limit ({})", self.memory_limit),
            );
        }
        for (index, name) in self.grants.env.iter().enumerate() {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                problems.add(format!("{path}.grants.env[{index}]"), format!("{name:?} is not a variable name"));
            }
        }
        for (index, dir) in self.grants.dirs.iter().enumerate() {
            if !dir.guest.starts_with('/') {
                problems
                    .add(format!("{path}.grants.dirs[{index}].guest"), "must be an absolute path such as \"/data\"");
            }
        }
    }

    /// The `config` table as the JSON object `configure` receives.
    pub fn config_json(&self) -> String {
        serde_json::to_string(&self.config).expect("a TOML table is always valid JSON")
    }
}

/// Checks a chain of transforms: each one, and that names are unique.
pub(crate) fn validate_chain(transforms: &[TransformConfig], problems: &mut Problems) {
    for (index, transform) in transforms.iter().enumerate() {
        let path = format!("transforms[{index}]");
        transform.validate(&path, problems);
        if transforms[..index].iter().any(|earlier| earlier.name == transform.name) {
            problems.add(format!("{path}.name"), format!("{:?} is used by an earlier transform", transform.name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of(transforms: &[TransformConfig]) -> Vec<String> {
        let mut problems = Problems::default();
        validate_chain(transforms, &mut problems);
        problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn given_defaults_then_valid() {
        assert!(problems_of(&[TransformConfig::new("a", "a.wasm")]).is_empty());
    }

    #[test]
    fn given_duplicate_names_then_names_the_later_one() {
        let chain = [TransformConfig::new("a", "a.wasm"), TransformConfig::new("a", "b.wasm")];
        assert_eq!(problems_of(&chain), ["transforms[1].name: \"a\" is used by an earlier transform"]);
    }

    #[test]
    fn given_every_bad_field_then_reports_each_with_its_path() {
        let mut transform = TransformConfig::new(" ", "");
        transform.timeout = Duration::ZERO;
        transform.record_timeout = Duration::ZERO;
        transform.memory_limit = ByteSize::kib(64);
        transform.recycle_memory_above = Some(ByteSize::mib(2));
        transform.grants.env = vec!["A=B".into()];
        transform.grants.dirs = vec![DirGrant { host: "x".into(), guest: "data".into(), writable: false }];
        let problems = problems_of(&[transform]);
        let paths: Vec<&str> = problems.iter().map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(
            paths,
            [
                "transforms[0].name",
                "transforms[0].wasm",
                "transforms[0].timeout",
                "transforms[0].record_timeout",
                "transforms[0].memory_limit",
                "transforms[0].recycle_memory_above",
                "transforms[0].grants.env[0]",
                "transforms[0].grants.dirs[0].guest",
            ]
        );
    }

    #[test]
    fn given_no_recycle_threshold_then_three_quarters_of_the_limit() {
        let mut transform = TransformConfig::new("a", "a.wasm");
        transform.memory_limit = ByteSize::mib(64);
        assert_eq!(transform.recycle_threshold(), ByteSize::mib(48));
        transform.recycle_memory_above = Some(ByteSize::mib(60));
        assert_eq!(transform.recycle_threshold(), ByteSize::mib(60));
    }

    #[test]
    fn given_a_nested_config_table_then_configure_sees_json() {
        let mut transform = TransformConfig::new("a", "a.wasm");
        transform.config = toml::from_str("fields = [\"email\"]\n[inner]\nx = 1").unwrap();
        let json: serde_json::Value = serde_json::from_str(&transform.config_json()).unwrap();
        assert_eq!(json, serde_json::json!({"fields": ["email"], "inner": {"x": 1}}));
    }
}
