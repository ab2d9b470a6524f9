//! What a pipeline is doing, for `/pipelines`, `/ready` and the progress
//! line: its state and why, where it stands in its source, and which
//! transforms it runs. Updated by the same events that count metrics.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// Where a pipeline is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Loading its transforms and reaching both ends.
    Starting,
    /// Connected to both ends, moving data.
    Running,
    /// A transient failure is being retried (the reason is in `failing`).
    Retrying,
    /// Stopped on a permanent error (the reason is in `last_error`).
    Failed,
    /// Stopped on request (a signal, or its file was removed).
    Stopped,
    /// Ready to take over from the process that runs it now (its
    /// transforms loaded, its connections open): see `crate::standby`.
    Standby,
}

impl State {
    pub const ALL: [State; 6] =
        [State::Starting, State::Running, State::Retrying, State::Failed, State::Stopped, State::Standby];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Retrying => "retrying",
            State::Failed => "failed",
            State::Stopped => "stopped",
            State::Standby => "standby",
        }
    }
}

/// An error and when it happened, as one line (credentials removed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorNote {
    pub message: String,
    #[serde(serialize_with = "rfc3339")]
    pub at: SystemTime,
}

/// A loaded transform: its name and the SHA-256 of its component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransformInfo {
    pub name: String,
    pub sha256: String,
}

impl TransformInfo {
    /// `name@<first 12 hex digits>`, as outputs carry it.
    pub fn version(&self) -> String {
        format!("{}@{}", self.name, self.sha256.get(..12).unwrap_or(&self.sha256))
    }
}

/// One partition of an Iggy source, as far as Ferry knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PartitionProgress {
    /// The consumer group's committed offset (the last message written).
    pub committed_offset: Option<u64>,
    /// The offset of the partition's last message.
    pub head_offset: Option<u64>,
    /// Messages after the committed offset.
    pub lag: Option<u64>,
}

/// Where a change stream is, in cluster time (seconds since the epoch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeStreamProgress {
    /// The cluster time of the last committed position: where a restart
    /// resumes.
    pub resume_time: Option<u32>,
    /// The cluster time of the last change handed on, and when that was.
    pub last_change: Option<(u32, SystemTime)>,
    /// When the stream last delivered an event.
    pub last_event_at: Option<SystemTime>,
    /// Whether the stream's last answer had nothing more waiting.
    pub caught_up: bool,
    /// The cluster time of the oldest entry in the oplog, when last read.
    pub oplog_oldest: Option<u32>,
}

impl ChangeStreamProgress {
    /// Now minus the cluster time of the last change handed on; 0 while the
    /// stream has nothing waiting.
    pub fn seconds_behind(&self, now: SystemTime) -> Option<f64> {
        if self.caught_up {
            return Some(0.0);
        }
        let (cluster_time, _) = self.last_change?;
        Some(seconds_since(epoch_seconds(cluster_time), now))
    }

    pub fn seconds_since_last_event(&self, now: SystemTime) -> Option<f64> {
        Some(seconds_since(self.last_event_at?, now))
    }

    /// How long the stored resume point stays in the oplog's reach: the
    /// resume point minus the oplog's oldest entry.
    pub fn oplog_headroom(&self) -> Option<f64> {
        Some(f64::from(self.resume_time?) - f64::from(self.oplog_oldest?))
    }
}

/// Where a pipeline stands in its source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Position {
    /// Nothing read or committed yet.
    #[default]
    Unknown,
    Iggy(BTreeMap<u32, PartitionProgress>),
    ChangeStream(ChangeStreamProgress),
}

/// A pipeline run by several processes, one at a time: this process's part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StandbyNote {
    pub role: Role,
    /// Which lease term this process holds (counts up on every takeover),
    /// while it leads.
    pub epoch: Option<i64>,
    /// Who this process is in the lease document: host, process id, start.
    pub holder: String,
    /// How many times this process took the pipeline over.
    pub takeovers: u64,
    pub lease_renewals_failed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Holds the lease and runs the pipeline.
    Leader,
    /// Waits for the lease.
    Standby,
}

/// Reloads of this pipeline's file.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReloadNote {
    /// How many times a new version was swapped in.
    pub swaps: u64,
    #[serde(serialize_with = "rfc3339_option")]
    pub last_swap: Option<SystemTime>,
    /// How long the last swap's old version took to finish its batches in
    /// flight.
    pub last_drain_seconds: Option<f64>,
    /// How long the last swap held data up: from the old version's drain
    /// to the new version running (its transforms were loaded before).
    pub last_pause_seconds: Option<f64>,
    /// When the swap in progress began draining.
    #[serde(skip)]
    pub draining_since: Option<std::time::Instant>,
    /// Why the last reload was refused, until one succeeds.
    pub refused: Option<ErrorNote>,
}

/// Everything known about a pipeline, kept under the handle's lock.
#[derive(Debug, Clone)]
pub struct Status {
    pub state: State,
    pub since: SystemTime,
    /// Whether both ends have answered since the pipeline (re)started.
    pub connected: bool,
    /// Per stage, the transient failure being retried.
    pub failing: BTreeMap<&'static str, ErrorNote>,
    pub last_error: Option<ErrorNote>,
    pub transforms: Vec<TransformInfo>,
    pub position: Position,
    pub reload: ReloadNote,
    /// The generation of Iggy's wire protocol spoken, once connected.
    pub iggy_protocol: Option<&'static str>,
    /// This process's part, when the pipeline has standbys.
    pub standby: Option<StandbyNote>,
}

impl Default for Status {
    fn default() -> Self {
        Self {
            state: State::Starting,
            since: SystemTime::now(),
            connected: false,
            failing: BTreeMap::new(),
            last_error: None,
            transforms: Vec::new(),
            position: Position::Unknown,
            reload: ReloadNote::default(),
            iggy_protocol: None,
            standby: None,
        }
    }
}

impl Status {
    /// Why the pipeline is not ready, or `None` when it is running.
    pub fn not_ready_because(&self) -> Option<String> {
        match self.state {
            State::Running => None,
            State::Starting => Some(match self.failing.values().next() {
                Some(error) => format!("starting: {}", error.message),
                None => "starting: loading transforms and connecting".to_owned(),
            }),
            State::Retrying => Some(match self.failing.iter().next() {
                Some((stage, error)) => format!("retrying ({stage}): {}", error.message),
                None => "retrying".to_owned(),
            }),
            State::Failed => Some(match &self.last_error {
                Some(error) => format!("failed: {}", error.message),
                None => "failed".to_owned(),
            }),
            State::Stopped => Some("stopped".to_owned()),
            // Standing by is a standby's job, as long as it can ask for
            // the lease.
            State::Standby => self.failing.values().next().map(|error| format!("standing by: {}", error.message)),
        }
    }
}

fn epoch_seconds(seconds: u32) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(seconds))
}

/// Seconds from `then` to `now`, never negative (clocks differ a little
/// between hosts).
fn seconds_since(then: SystemTime, now: SystemTime) -> f64 {
    now.duration_since(then).unwrap_or_default().as_secs_f64()
}

/// A time as RFC 3339 with milliseconds, in UTC.
pub fn format_time(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

fn rfc3339<S: serde::Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_time(*time))
}

fn rfc3339_option<S: serde::Serializer>(time: &Option<SystemTime>, serializer: S) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => serializer.serialize_str(&format_time(*time)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_stream_then_behind_counts_from_the_last_change_and_is_zero_when_caught_up() {
        let now = epoch_seconds(1_000);
        let mut progress = ChangeStreamProgress { last_change: Some((990, now)), ..Default::default() };
        assert_eq!(progress.seconds_behind(now), Some(10.0));
        progress.caught_up = true;
        assert_eq!(progress.seconds_behind(now), Some(0.0));
        assert_eq!(ChangeStreamProgress::default().seconds_behind(now), None);
    }

    #[test]
    fn given_a_resume_point_and_the_oplog_start_then_headroom_is_their_distance() {
        let progress =
            ChangeStreamProgress { resume_time: Some(5_000), oplog_oldest: Some(1_400), ..Default::default() };
        assert_eq!(progress.oplog_headroom(), Some(3_600.0));
        let lost = ChangeStreamProgress { resume_time: Some(1_000), oplog_oldest: Some(1_400), ..Default::default() };
        assert_eq!(lost.oplog_headroom(), Some(-400.0), "negative: the history is already gone");
    }

    #[test]
    fn given_each_state_then_readiness_says_why_not() {
        let mut status = Status { state: State::Running, ..Status::default() };
        assert_eq!(status.not_ready_because(), None);
        status.state = State::Retrying;
        let at = SystemTime::now();
        status.failing.insert("write", ErrorNote { message: "no primary".into(), at });
        assert_eq!(status.not_ready_because().as_deref(), Some("retrying (write): no primary"));
        status.state = State::Failed;
        status.last_error = Some(ErrorNote { message: "bad record".into(), at });
        assert_eq!(status.not_ready_because().as_deref(), Some("failed: bad record"));
    }

    #[test]
    fn given_a_standby_then_it_is_ready_while_it_can_ask_for_the_lease() {
        let mut status = Status { state: State::Standby, ..Status::default() };
        assert_eq!(status.not_ready_because(), None, "standing by is a standby's job");
        let at = SystemTime::now();
        status.failing.insert("lease", ErrorNote { message: "no MongoDB".into(), at });
        assert_eq!(status.not_ready_because().as_deref(), Some("standing by: no MongoDB"));
    }
}
