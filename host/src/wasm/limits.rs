//! The memory fence around one transform instance, and the reading of a
//! trap's root cause.

use bytesize::ByteSize;
use wasmtime::{ResourceLimiter, Trap};

/// Table elements one instance may hold; far above what real guests use.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// Limits linear memory and remembers a refusal. A guest refused memory does
/// not trap at once: its allocator reports failure and the guest usually
/// aborts with an `unreachable` trap. The remembered refusal is what lets
/// Ferry name the real cause.
#[derive(Debug)]
pub(crate) struct MemoryFence {
    limit: ByteSize,
    refused: bool,
    /// Bytes of linear memory the instance holds, all its memories together.
    /// Wasm memories never shrink, so this is also the most it has held.
    size: u64,
}

impl MemoryFence {
    pub(crate) fn new(limit: ByteSize) -> Self {
        Self { limit, refused: false, size: 0 }
    }

    /// The instance's linear memory now, in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn limit(&self) -> ByteSize {
        self.limit
    }

    /// Whether growth was refused since the last [`Self::reset`].
    pub(crate) fn refused(&self) -> bool {
        self.refused
    }

    pub(crate) fn reset(&mut self) {
        self.refused = false;
    }
}

impl ResourceLimiter for MemoryFence {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Wasmtime asks here for a memory's initial size too (from 0), so
        // `size` counts every page the instance was ever granted.
        let allowed = desired as u64 <= self.limit.as_u64();
        self.refused |= !allowed;
        if allowed {
            self.size += desired.saturating_sub(current) as u64;
        }
        Ok(allowed)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// What stopped a guest call, read from the error's root cause rather than
/// its top-level message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The epoch deadline passed.
    Timeout,
    /// Memory growth was refused; whatever trap followed is a consequence.
    OutOfMemory,
    /// Any other trap or host error.
    Trap,
}

pub(crate) fn classify(error: &wasmtime::Error, memory_refused: bool) -> Stop {
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        Stop::Timeout
    } else if memory_refused {
        Stop::OutOfMemory
    } else {
        Stop::Trap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_growth_past_the_limit_then_refuses_and_remembers() {
        let mut fence = MemoryFence::new(ByteSize::mib(1));
        assert!(fence.memory_growing(0, 1 << 20, None).unwrap());
        assert!(!fence.refused());
        assert!(!fence.memory_growing(1 << 20, (1 << 20) + 65536, None).unwrap());
        assert!(fence.refused());
        assert_eq!(fence.size(), 1 << 20, "a refused growth adds nothing");
        fence.reset();
        assert!(!fence.refused());
    }

    #[test]
    fn given_two_memories_then_size_counts_both() {
        let mut fence = MemoryFence::new(ByteSize::mib(4));
        assert!(fence.memory_growing(0, 65536, None).unwrap());
        assert!(fence.memory_growing(0, 131072, None).unwrap());
        assert!(fence.memory_growing(65536, 196608, None).unwrap());
        assert_eq!(fence.size(), 196608 + 131072);
    }

    #[test]
    fn given_an_interrupt_then_timeout_even_if_memory_was_refused() {
        let error = wasmtime::Error::from(Trap::Interrupt);
        assert_eq!(classify(&error, true), Stop::Timeout);
    }

    #[test]
    fn given_unreachable_after_a_refusal_then_out_of_memory() {
        let error = wasmtime::Error::from(Trap::UnreachableCodeReached);
        assert_eq!(classify(&error, true), Stop::OutOfMemory);
        assert_eq!(classify(&error, false), Stop::Trap);
    }

    #[test]
    fn given_context_around_the_trap_then_still_finds_the_root_cause() {
        let error = wasmtime::Error::from(Trap::Interrupt).context("while calling transform");
        assert_eq!(classify(&error, false), Stop::Timeout);
    }
}
