//! A record set aside for the dead-letter destination, with why.

/// One input that goes to the dead-letter destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Index of the input record in its batch.
    pub input: usize,
    /// Where it failed: `transform:<name>` or `sink`.
    pub stage: String,
    pub reason: String,
}
