//! `[source.mongodb] standby = { ... }`: run one change-stream pipeline in
//! several processes, one active and the others standing by (see
//! `crate::standby` for the election and its fencing).

use std::time::Duration;

use serde::Deserialize;

use super::problems::Problems;

/// The lease the processes running one pipeline compete for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandbyConfig {
    /// How long a lease lasts without renewal: the longest a dead active
    /// process holds its pipeline up (a standby takes over within about
    /// this). 10 s: a MongoDB election takes up to ~12 s, and a shorter
    /// lease would have a healthy leader stand down through one.
    #[serde(default = "default_lease", with = "humantime_serde")]
    pub lease: Duration,
    /// The database of the source's deployment that keeps the lease
    /// (collection `leases`, one document per pipeline name).
    #[serde(default = "default_database")]
    pub database: String,
}

fn default_lease() -> Duration {
    Duration::from_secs(10)
}

fn default_database() -> String {
    "ferry".to_owned()
}

impl Default for StandbyConfig {
    fn default() -> Self {
        Self { lease: default_lease(), database: default_database() }
    }
}

/// A lease shorter than this leaves a renewal no time for a slow round trip.
const SHORTEST_LEASE: Duration = Duration::from_secs(1);
const LONGEST_LEASE: Duration = Duration::from_secs(300);
const FORBIDDEN_IN_DATABASE: [char; 9] = ['/', '\\', '.', ' ', '"', '$', '*', ':', '\0'];

impl StandbyConfig {
    /// How often the active process renews its lease: four times a lease,
    /// so two renewals can fail before it must stand down.
    pub fn renew_every(&self) -> Duration {
        self.lease / 4
    }

    /// How long the lease must still run, by the active process's own
    /// clock, for it to produce a batch: a quarter of the lease (2.5 s at the
    /// default), far more than sending one batch to Iggy takes.
    pub fn margin(&self) -> Duration {
        self.lease / 4
    }

    /// How often a standby asks for the lease: a tenth of it, at most a
    /// second, so a released lease is taken within about a second.
    pub fn retry_every(&self) -> Duration {
        (self.lease / 10).min(Duration::from_secs(1))
    }

    pub(crate) fn validate(&self, problems: &mut Problems) {
        if self.lease < SHORTEST_LEASE || self.lease > LONGEST_LEASE {
            problems.add("source.mongodb.standby.lease", "must be between 1s and 5m");
        }
        // The characters MongoDB refuses in a database name on any platform.
        if self.database.is_empty() || self.database.len() > 63 || self.database.contains(FORBIDDEN_IN_DATABASE) {
            problems.add("source.mongodb.standby.database", "must be a MongoDB database name");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(toml: &str) -> Vec<String> {
        let config: StandbyConfig = toml::from_str(toml).unwrap();
        let mut problems = Problems::default();
        config.validate(&mut problems);
        problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn given_no_settings_then_a_ten_second_lease_renewed_four_times_over() {
        let config: StandbyConfig = toml::from_str("").unwrap();
        assert_eq!(config, StandbyConfig::default());
        assert_eq!(config.lease, Duration::from_secs(10));
        assert_eq!(config.renew_every(), Duration::from_millis(2500));
        assert_eq!(config.margin(), Duration::from_millis(2500));
        assert_eq!(config.retry_every(), Duration::from_secs(1));
        assert_eq!(config.database, "ferry");
    }

    #[test]
    fn given_a_short_lease_then_standbys_ask_more_often() {
        let config: StandbyConfig = toml::from_str("lease = '2s'").unwrap();
        assert_eq!(config.retry_every(), Duration::from_millis(200));
    }

    #[test]
    fn given_bad_values_then_names_each_field() {
        assert_eq!(problems("lease = '500ms'"), ["source.mongodb.standby.lease: must be between 1s and 5m"]);
        assert_eq!(problems("lease = '1h'"), ["source.mongodb.standby.lease: must be between 1s and 5m"]);
        assert_eq!(problems("database = 'a.b'"), ["source.mongodb.standby.database: must be a MongoDB database name"]);
        assert!(toml::from_str::<StandbyConfig>("leese = '1s'").is_err(), "unknown keys are refused");
    }
}
