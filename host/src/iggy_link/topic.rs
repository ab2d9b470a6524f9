//! Opening a topic for use: created first when the pipeline asks, and
//! handed out only once it has partitions.
//!
//! Iggy creates a topic and then its partitions, in two steps: a process
//! that reads the topic in between (another pipeline's `create` raced its
//! own) sees none. Routing over no partitions divided by zero; polling none
//! waited forever in silence. So a topic without partitions is read again,
//! then reported as not ready, and as broken once it has stayed so.

use std::time::{Duration, Instant};

use super::session::Session;
use super::types::Topic;
use crate::config::CreateTopic;
use crate::error::ServiceError;

/// How long a topic may show no partitions before Ferry takes that as its
/// real shape rather than a creation still under way.
const EMPTY_TOPIC_PATIENCE: Duration = Duration::from_secs(30);

/// Within one call, how often (and how long apart) a topic without
/// partitions is read again before the call reports it: the creation in
/// progress usually finishes within milliseconds.
const EMPTY_TOPIC_REREADS: u32 = 10;
const EMPTY_TOPIC_REREAD_PAUSE: Duration = Duration::from_millis(50);

/// Opens one topic, creating it first when the pipeline asks, and hands
/// out its partitions only once it has some.
pub struct TopicOpener {
    stream: String,
    topic: String,
    create: Option<CreateTopic>,
    /// When this topic was first seen without partitions, in a stretch of
    /// such sightings.
    empty_since: Option<Instant>,
}

/// An open topic: its details, with at least one partition.
pub struct OpenTopic {
    pub details: Topic,
    /// The partition ids, never empty.
    pub partitions: Vec<u32>,
}

impl TopicOpener {
    pub fn new(stream: &str, topic: &str, create: Option<CreateTopic>) -> Self {
        Self { stream: stream.to_owned(), topic: topic.to_owned(), create, empty_since: None }
    }

    /// `stream/topic`, for messages.
    pub fn name(&self) -> String {
        format!("{}/{}", self.stream, self.topic)
    }

    /// The topic's details, creating the stream and topic first when
    /// `create` says so; a missing topic otherwise is a permanent error that
    /// says how to fix it (a typo in a pipeline file should not conjure a
    /// topic). A topic without partitions is read again for a moment, then
    /// reported as transient, and as permanent once it has stayed so for
    /// [`EMPTY_TOPIC_PATIENCE`].
    pub async fn open(&mut self, session: &Session) -> Result<OpenTopic, ServiceError> {
        if let Some(create) = self.create {
            session.ensure_topic(&self.stream, &self.topic, create.partitions).await?;
        }
        let what = || format!("reading Iggy topic {}", self.name());
        for reread in 0.. {
            let details = session.topic(&self.stream, &self.topic).await?.ok_or_else(|| {
                ServiceError::fatal(
                    what(),
                    format!(
                        "the topic {} does not exist; create it, or set `create = {{ partitions = N }}`",
                        self.name()
                    ),
                )
            })?;
            if !details.partitions.is_empty() || reread == EMPTY_TOPIC_REREADS {
                return self.with_partitions(details, Instant::now());
            }
            tracing::debug!(topic = %self.name(), "the topic has no partitions yet; reading it again");
            tokio::time::sleep(EMPTY_TOPIC_REREAD_PAUSE).await;
        }
        unreachable!("the loop returns by its last reread")
    }

    /// `details` as an open topic, or why it cannot be used yet (`now` is
    /// when it was read).
    fn with_partitions(&mut self, details: Topic, now: Instant) -> Result<OpenTopic, ServiceError> {
        let partitions: Vec<u32> = details.partitions.iter().map(|partition| partition.id).collect();
        if !partitions.is_empty() {
            self.empty_since = None;
            return Ok(OpenTopic { details, partitions });
        }
        let since = *self.empty_since.get_or_insert(now);
        let what = format!("opening Iggy topic {}", self.name());
        if now.duration_since(since) < EMPTY_TOPIC_PATIENCE {
            return Err(ServiceError::not_yet(what, format!("the topic {} has no partitions yet", self.name())));
        }
        Err(ServiceError::fatal(
            what,
            format!(
                "the topic {} has had no partitions for {}s; add partitions to it, or delete it so that \
                 `create = {{ partitions = N }}` makes it whole",
                self.name(),
                EMPTY_TOPIC_PATIENCE.as_secs()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::error_chain;
    use crate::iggy_link::Partition;

    fn details(partitions: &[u32]) -> Topic {
        Topic { partitions: partitions.iter().map(|&id| Partition { id, messages: 0, current_offset: 0 }).collect() }
    }

    #[test]
    fn given_a_topic_without_partitions_then_it_is_waited_for_and_then_used() {
        let mut opener = TopicOpener::new("iot", "changes", None);
        let start = Instant::now();
        let error = opener.with_partitions(details(&[]), start).err().expect("no partitions, no topic");
        assert!(error.transient, "a creation in progress is waited for");
        assert!(error_chain(&error).contains("the topic iot/changes has no partitions yet"), "{}", error_chain(&error));
        let open = opener.with_partitions(details(&[0, 1, 2]), start + Duration::from_secs(1)).unwrap();
        assert_eq!(open.partitions, [0, 1, 2]);
    }

    #[test]
    fn given_a_topic_that_stays_without_partitions_then_a_permanent_error_names_it() {
        let mut opener = TopicOpener::new("iot", "changes", None);
        let start = Instant::now();
        assert!(opener.with_partitions(details(&[]), start).err().unwrap().transient);
        assert!(opener.with_partitions(details(&[]), start + Duration::from_secs(29)).err().unwrap().transient);
        let error = opener.with_partitions(details(&[]), start + EMPTY_TOPIC_PATIENCE).err().unwrap();
        assert!(!error.transient);
        assert!(
            error_chain(&error).contains("the topic iot/changes has had no partitions for 30s"),
            "{}",
            error_chain(&error)
        );
        // Partitions showing up later start the patience afresh.
        opener.with_partitions(details(&[0]), start + EMPTY_TOPIC_PATIENCE).unwrap();
        let later = start + EMPTY_TOPIC_PATIENCE * 2;
        assert!(opener.with_partitions(details(&[]), later).err().unwrap().transient);
    }
}
