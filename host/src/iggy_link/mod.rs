//! Ferry's one link to Iggy. Sources, sinks, the dead-letter writer, the lag
//! probe and the change-stream positions ask Iggy for everything through
//! it, in Ferry's own types; no other module names an `iggy` crate.
//!
//! Iggy changes its wire protocol between releases with no negotiation
//! (0.8 → 0.9 → 0.10), so the link speaks each generation with that
//! generation's own SDK, renamed per version in Cargo.toml, and picks one
//! at connect: [`connect`] asks the server which it speaks
//! ([`generation`]'s probe, before login) unless the pipeline pinned one
//! (`protocol = "0.8" | "0.9"`). A server of a generation Ferry does not
//! speak stops the pipeline with an error that says what was seen.
//!
//! Adding a generation:
//! 1. add its SDK to the workspace as `iggy_0_NN` (a renamed dependency);
//! 2. teach [`generation::detect`] its answer and add a [`Generation`];
//! 3. write `v0_NN.rs` with the operations of [`Session`] (start from the
//!    newest one: the modules mirror each other on purpose, so a reader
//!    can diff two generations), and add its variant to [`Session`];
//! 4. add the `protocol` value in `config::IggyProtocol`;
//! 5. run the end-to-end suites on it (`tests/src/servers/iggy.rs` takes a
//!    generation).

mod connection;
pub mod generation;
mod headers;
mod login;
mod message;
mod probe_tls;
mod session;
mod topic;
mod types;
mod v0_8;
mod v0_9;

pub use connection::{IggyLink, SPOKEN_SERVER_VERSIONS, UnspokenProtocol, connect};
pub use generation::{DetectError, Generation, Unrecognised, detect};
pub use headers::{Headers, HeadersTooBig, KEY_HEADER, MAX_HEADER_VALUE};
pub use login::LoginUnanswered;
pub use message::{MAX_PAYLOAD_SIZE, MAX_USER_HEADERS_SIZE, Message, TextHeader};
pub use session::Session;
pub use topic::{OpenTopic, TopicOpener};
pub use types::{Partition, Polled, Reader, Start, Stored, Topic};
