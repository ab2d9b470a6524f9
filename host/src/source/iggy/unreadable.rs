//! What Ferry says when iggy-server cannot read a partition back.
//!
//! A poll fails with `InvalidOffset` (error 4100, which the SDK reports as
//! `InvalidOffset(0)`) when the messages the server reads from disk do not
//! carry the offsets its index promised. iggy-server 0.8 gets there after a
//! kill -9 between a flush's `.log` and `.index` writes: it reuses the
//! offsets of the batch it never indexed, and every later poll that crosses
//! them fails (see docs/guarantees.md, "When iggy-server cannot read a partition").
//! Retrying cannot help and skipping would lose messages, so the pipeline
//! stops with a message that names the partition and the offset.

/// Where a failed poll of one partition started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollStart {
    /// Ferry's own cursor: the offset after the last message it read.
    Cursor(u64),
    /// The group's stored offset (`None`: nothing stored yet), polled as
    /// "next"; `Unknown` when the server would not say.
    AfterStored(Option<u64>),
    Unknown,
}

impl PollStart {
    fn describe(self) -> String {
        match self {
            PollStart::Cursor(offset) => format!("from offset {offset}"),
            PollStart::AfterStored(Some(stored)) => {
                format!("from offset {} (after the group's stored offset)", stored + 1)
            }
            PollStart::AfterStored(None) => "from offset 0 (the group has stored no offset)".to_owned(),
            PollStart::Unknown => "from the group's stored offset".to_owned(),
        }
    }
}

/// The `what` of the error that stops the pipeline.
pub fn unreadable_partition(topic: &str, partition: u32, start: PollStart) -> String {
    format!(
        "polling {topic} partition {partition} {}: iggy-server read back messages whose offsets are not the ones \
         its index names, so the partition's files disagree. iggy-server 0.8 leaves them so when it is killed \
         between writing a segment's .log and its .index (0.9 recovers); Ferry stops here rather than skip \
         messages (docs/guarantees.md: \"When iggy-server cannot read a partition\")",
        start.describe()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_topic_partition_and_offset() {
        let what = unreadable_partition("sensors/readings", 2, PollStart::Cursor(1234));
        assert!(what.starts_with("polling sensors/readings partition 2 from offset 1234: "), "{what}");
        assert!(what.contains("killed between writing a segment's .log and its .index"), "{what}");
    }

    #[test]
    fn a_poll_from_the_stored_offset_names_the_offset_after_it() {
        let what = unreadable_partition("s/t", 0, PollStart::AfterStored(Some(99)));
        assert!(what.contains("from offset 100 (after the group's stored offset)"), "{what}");
        let what = unreadable_partition("s/t", 0, PollStart::AfterStored(None));
        assert!(what.contains("from offset 0 (the group has stored no offset)"), "{what}");
    }
}
