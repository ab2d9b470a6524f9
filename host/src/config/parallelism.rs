//! `[delivery] transform_instances`: how many instances of the transform
//! chain a pipeline runs at once.

use std::fmt;
use std::num::NonZeroUsize;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// The most instances a pipeline may ask for: each holds its own linear
/// memory (up to its `memory_limit` per transform) and a thread.
pub const MAX_TRANSFORM_INSTANCES: usize = 64;

/// How many instances of the chain transform batches side by side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TransformInstances {
    /// One fewer than the cores this process may use (cgroup quotas
    /// included), and at least one. The core left over is for the rest of
    /// the pipeline: polling and decoding, encoding and writing. Measured
    /// on two cores (docs/scaling.md): a second instance of a cheap
    /// transform, competing with the poll loop and the Iggy server for the
    /// cores, cost the identity transform 7–10 % of its rate, while a
    /// Python transform with two gained 1.8–2.0×; so two cores get one
    /// instance unless a pipeline asks for more.
    #[default]
    Auto,
    Count(NonZeroUsize),
}

impl TransformInstances {
    /// The number of instances to run.
    pub fn resolve(self) -> usize {
        match self {
            Self::Auto => std::thread::available_parallelism().map_or(1, NonZeroUsize::get).saturating_sub(1).max(1),
            Self::Count(count) => count.get(),
        }
        .min(MAX_TRANSFORM_INSTANCES)
    }

    /// Whether an explicit count is out of range.
    pub fn is_too_many(self) -> bool {
        matches!(self, Self::Count(count) if count.get() > MAX_TRANSFORM_INSTANCES)
    }
}

impl<'de> Deserialize<'de> for TransformInstances {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(InstancesVisitor)
    }
}

struct InstancesVisitor;

impl Visitor<'_> for InstancesVisitor {
    type Value = TransformInstances;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a number of instances (1 or more) or \"auto\"")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        match u64::try_from(value) {
            Ok(value) => self.visit_u64(value),
            Err(_) => Err(E::invalid_value(de::Unexpected::Signed(value), &self)),
        }
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        usize::try_from(value)
            .ok()
            .and_then(NonZeroUsize::new)
            .map(TransformInstances::Count)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(value), &self))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        match value {
            "auto" => Ok(TransformInstances::Auto),
            _ => Err(E::invalid_value(de::Unexpected::Str(value), &self)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Holder {
        instances: TransformInstances,
    }

    fn parse(value: &str) -> Result<TransformInstances, String> {
        toml::from_str::<Holder>(&format!("instances = {value}")).map(|h| h.instances).map_err(|e| e.to_string())
    }

    #[test]
    fn given_a_count_or_auto_then_each_parses() {
        assert_eq!(parse("3"), Ok(TransformInstances::Count(NonZeroUsize::new(3).unwrap())));
        assert_eq!(parse("\"auto\""), Ok(TransformInstances::Auto));
        assert!(TransformInstances::Auto.resolve() >= 1);
        assert_eq!(parse("2").unwrap().resolve(), 2);
    }

    #[test]
    fn given_zero_a_negative_or_another_word_then_the_error_says_what_is_expected() {
        for bad in ["0", "-1", "\"all\"", "1.5"] {
            let error = parse(bad).unwrap_err();
            assert!(error.contains("a number of instances (1 or more) or \"auto\""), "{bad}: {error}");
        }
    }

    #[test]
    fn given_more_than_the_maximum_then_it_is_too_many() {
        let count = |n| TransformInstances::Count(NonZeroUsize::new(n).unwrap());
        assert!(count(MAX_TRANSFORM_INSTANCES + 1).is_too_many());
        assert!(!count(MAX_TRANSFORM_INSTANCES).is_too_many());
        assert!(!TransformInstances::Auto.is_too_many());
    }
}
