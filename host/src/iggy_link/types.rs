//! Ferry's own words for what an Iggy server has and answers, the same in
//! every protocol generation: each generation's module translates to them,
//! and the session hands them out.

use super::message::Message;
use crate::error::BoxError;

/// A topic as Ferry needs it: its partitions, ordered by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub partitions: Vec<Partition>,
}

impl Topic {
    /// How many messages its partitions hold together.
    pub fn messages(&self) -> u64 {
        self.partitions.iter().map(|partition| partition.messages).sum()
    }
}

/// One partition and how far it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub id: u32,
    /// How many messages it holds.
    pub messages: u64,
    /// The offset of its last message (0 when it holds none).
    pub current_offset: u64,
}

impl Partition {
    /// The offset of the last message, if it holds any.
    pub fn last_offset(&self) -> Option<u64> {
        (self.messages > 0).then_some(self.current_offset)
    }
}

/// Who reads: a consumer group's member, or a named reader of its own.
#[derive(Debug, Clone, Copy)]
pub enum Reader<'a> {
    Group(&'a str),
    Named(&'a str),
}

/// Where a poll starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    At(u64),
    /// After the reader's stored offset (from 0 when none is stored).
    AfterStored,
    /// The last `count` messages.
    Last,
}

/// What a poll of one partition found.
#[derive(Debug)]
pub enum Polled {
    Messages(Vec<Message>),
    /// The group has not given this partition to this member (0.9 fences a
    /// stale assignment so): learn the assignment again.
    NotOwned,
    /// The server cannot read the partition back at the asked offset (its
    /// files disagree with its index); retrying cannot help.
    Unreadable(BoxError),
}

/// What storing a group's offset did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Stored,
    /// The partition moved to another member before the commit; its new
    /// owner resumes after the last stored offset.
    NotOwned,
}
