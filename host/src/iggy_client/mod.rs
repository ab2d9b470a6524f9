//! Ferry's link to Iggy, shared by the Iggy source, the Iggy sink, the
//! dead-letter topic and the change-stream positions: a connection made
//! lazily and remade after failures, topics opened (or created) with
//! their partitions, and message headers in Iggy's wire form.

mod generation;
mod headers;
mod link;
mod probe_tls;
mod topic;

pub use generation::{DetectError, Generation, Unrecognised, detect};
pub use headers::{Headers, MAX_HEADER_VALUE};
pub use link::{IggyLink, UnspokenProtocol, connect, ensure_topic, named};
pub use topic::{OpenTopic, TopicOpener};
