//! A panic in a pipeline stage, caught where the stage runs and reported
//! as the pipeline's error with its message and location.
//!
//! There should be none: this is the net under bugs. Without it a panicking
//! stage only drops its channels, and the pipeline can say no more than
//! that a stage stopped. The location is known only to the panic hook, so
//! the hook Ferry installs (around whatever hook was there, which still
//! runs) notes it for the thread that panicked, and the catch on that same
//! thread picks it up.

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use futures::FutureExt;

/// A caught panic: what it said and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("panicked at {location}: {message}")]
pub struct StagePanic {
    pub message: String,
    /// `file:line:column`, or "an unknown place" if the hook did not see it.
    pub location: String,
}

thread_local! {
    /// Where the last panic on this thread happened.
    static LAST_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the hook that notes panic locations, once per process.
pub fn install_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let location = info.location().map(ToString::to_string);
            LAST_LOCATION.with(|last| *last.borrow_mut() = location);
            previous(info);
        }));
    });
}

/// Runs `stage`, turning a panic into a [`StagePanic`].
pub fn catch<T>(stage: impl FnOnce() -> T) -> Result<T, StagePanic> {
    install_hook();
    // Unwind safety: after a panic the stage's state is dropped, not used.
    catch_unwind(AssertUnwindSafe(stage)).map_err(caught)
}

/// Runs the future `stage`, turning a panic in any poll into a
/// [`StagePanic`].
pub async fn catch_async<F: Future>(stage: F) -> Result<F::Output, StagePanic> {
    install_hook();
    AssertUnwindSafe(stage).catch_unwind().await.map_err(caught)
}

/// The panic in `payload`, with the location the hook noted on this thread.
fn caught(payload: Box<dyn Any + Send>) -> StagePanic {
    let message = match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(text), _) => (*text).to_owned(),
        (_, Some(text)) => text.clone(),
        _ => "a panic without a message".to_owned(),
    };
    let location = LAST_LOCATION.with(|last| last.borrow_mut().take()).unwrap_or_else(|| "an unknown place".into());
    StagePanic { message, location }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_panic_then_its_message_and_location_are_caught() {
        let line = line!() + 1;
        let caught = catch(|| -> u32 { panic!("divided by {}", 0) }).unwrap_err();
        assert_eq!(caught.message, "divided by 0");
        assert!(caught.location.starts_with(&format!("host/src/pipeline/stage_panic.rs:{line}:")), "{caught}");
        assert_eq!(catch(|| 7), Ok(7));
    }

    #[tokio::test]
    async fn given_a_future_that_panics_when_polled_then_the_panic_is_caught() {
        let caught = catch_async(async {
            tokio::task::yield_now().await;
            let partitions: Vec<u32> = Vec::new();
            partitions[0]
        })
        .await
        .unwrap_err();
        assert!(caught.message.contains("index out of bounds"), "{caught}");
        assert!(caught.location.starts_with("host/src/pipeline/stage_panic.rs:"), "{caught}");
    }
}
