//! What the chain makes of each input record, and how sinks read it.

use super::{Encoding, Header, Record, Write};

/// What became of one input record after the whole chain.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordResult {
    /// Write these, in order.
    Emitted(Vec<Emitted>),
    /// No transform ran: write the input record itself. Sinks read it where
    /// it is; copying every record into an output was a twentieth of a
    /// pipeline without transforms.
    Unchanged,
    /// A transform dropped it (or everything derived from it).
    Dropped,
    /// A transform failed it; it goes to the dead-letter destination.
    Failed(Failure),
}

/// An output ready for a sink, with routing gathered along the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    pub payload: Vec<u8>,
    pub encoding: Encoding,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<Header>,
    /// The MongoDB collection, unless the pipeline default applies.
    pub collection: Option<String>,
    /// The write kind, unless the pipeline default applies.
    pub write: Option<Write>,
}

/// An output as a sink reads it: borrowed from an `Emitted`, or from the
/// input record itself when it went through unchanged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutputRef<'a> {
    pub payload: &'a [u8],
    pub encoding: Encoding,
    pub key: Option<&'a [u8]>,
    pub headers: &'a [Header],
    pub collection: Option<&'a str>,
    pub write: Option<&'a Write>,
}

impl<'a> From<&'a Emitted> for OutputRef<'a> {
    fn from(output: &'a Emitted) -> Self {
        Self {
            payload: &output.payload,
            encoding: output.encoding,
            key: output.key.as_deref(),
            headers: &output.headers,
            collection: output.collection.as_deref(),
            write: output.write.as_ref(),
        }
    }
}

impl<'a> From<&'a Record> for OutputRef<'a> {
    fn from(record: &'a Record) -> Self {
        Self {
            payload: &record.payload,
            encoding: record.encoding,
            key: record.key.as_deref(),
            headers: record.headers.as_deref().unwrap_or_default(),
            collection: None,
            write: None,
        }
    }
}

impl RecordResult {
    /// The outputs to write, in order; `input` is the record this is the
    /// result of.
    pub fn outputs<'a>(&'a self, input: &'a Record) -> impl Iterator<Item = OutputRef<'a>> {
        let (unchanged, emitted) = match self {
            Self::Unchanged => (Some(OutputRef::from(input)), &[][..]),
            Self::Emitted(outputs) => (None, outputs.as_slice()),
            Self::Dropped | Self::Failed(_) => (None, &[][..]),
        };
        unchanged.into_iter().chain(emitted.iter().map(OutputRef::from))
    }

    /// How many outputs there are to write.
    pub fn output_count(&self) -> usize {
        match self {
            Self::Unchanged => 1,
            Self::Emitted(outputs) => outputs.len(),
            Self::Dropped | Self::Failed(_) => 0,
        }
    }

    /// Adds an output of the last transform to a result that is not a
    /// failure.
    pub(crate) fn push(&mut self, emitted: Emitted) {
        match self {
            Self::Emitted(outputs) => outputs.push(emitted),
            Self::Dropped => *self = Self::Emitted(vec![emitted]),
            Self::Unchanged => unreachable!("only a chain without transforms leaves inputs unchanged"),
            Self::Failed(_) => unreachable!("outputs of a failed input are discarded"),
        }
    }
}

/// Which transform failed a record, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub transform: String,
    pub reason: String,
}
