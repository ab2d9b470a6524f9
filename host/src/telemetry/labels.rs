//! The bounded sets of values the metrics' labels take: the stages, why a
//! transform stopped, where a record was dead-lettered, the Iggy
//! generations, the kinds of MongoDB writes. Metrics, handles and events all
//! name them from here.

/// A part of the pipeline that takes time or fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Reaching the source and the sink before any data moves.
    Connect,
    Poll,
    Transform,
    Write,
    DeadLetter,
    Commit,
}

impl Stage {
    pub const ALL: [Stage; 6] =
        [Stage::Connect, Stage::Poll, Stage::Transform, Stage::Write, Stage::DeadLetter, Stage::Commit];
    /// The stages with a duration histogram, in its order.
    pub const TIMED: [Stage; 4] = [Stage::Poll, Stage::Transform, Stage::Write, Stage::Commit];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Poll => "poll",
            Stage::Transform => "transform",
            Stage::Write => "write",
            Stage::DeadLetter => "dead_letter",
            Stage::Commit => "commit",
        }
    }

    pub(super) fn timed_index(self) -> Option<usize> {
        Self::TIMED.iter().position(|stage| *stage == self)
    }
}

/// Why a transform instance stopped, as the `reason` label says it.
pub const STOP_REASONS: [&str; 3] = ["trap", "timeout", "out_of_memory"];

/// The dead-letter `stage` label values, in `Handles::dead_lettered` order.
pub const DEAD_LETTER_STAGES: [&str; 2] = ["transform", "sink"];

/// The `protocol` label's values: the Iggy generations Ferry speaks.
pub const IGGY_PROTOCOLS: [&str; 2] = ["0.8", "0.9"];

/// The `write` label values of the MongoDB documents counter.
pub const WRITE_KINDS: [&str; 4] = ["insert", "upsert", "replace", "delete"];
