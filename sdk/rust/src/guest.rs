//! The trait a transform implements, and what `export!` wires it to.

use std::cell::RefCell;

use serde::de::DeserializeOwned;

use crate::bindings::ferry::transform::types as wit;
use crate::outcome::Outcome;
use crate::record::{Batch, Record};

/// An error that fails one record: anything that displays (a `&str`, a
/// `String`, a `serde_json::Error`, …) converts into it with `?`.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A Ferry transform. Implement [`record`](Self::record) (one record at a
/// time) or, for work that spans records, [`batch`](Self::batch); then
/// `ferry_transform::export!(YourType)`.
pub trait Transform: Sized + 'static {
    /// The pipeline's `[transforms.config]` table, deserialised;
    /// [`NoConfig`](crate::NoConfig) for a transform without settings. A
    /// table that does not fit rejects the configuration, naming the field.
    type Config: DeserializeOwned;

    /// Builds the transform from its configuration, once per instance. An
    /// error rejects the configuration: the pipeline does not start and the
    /// message is shown.
    fn new(config: Self::Config) -> Result<Self, String>;

    /// What becomes of one record. An error fails the record (it goes to the
    /// dead-letter destination with the error as reason).
    fn record(&mut self, record: Record) -> Result<Outcome, Error> {
        let _ = record;
        Err("this transform implements neither `record` nor `batch`".into())
    }

    /// What becomes of a whole batch: exactly one outcome per record, in
    /// order. By default, [`record`](Self::record) for each. An error fails
    /// the whole batch; Ferry then retries it one record at a time.
    fn batch(&mut self, batch: Batch) -> Result<Vec<Outcome>, String> {
        Ok(batch.into_records().into_iter().map(|record| self.record(record).unwrap_or_else(Outcome::fail)).collect())
    }
}

/// What `export!` calls; not for transforms themselves.
#[doc(hidden)]
pub mod __export {
    use super::*;

    pub fn configure<T: Transform>(state: &RefCell<Option<T>>, config: &str) -> Result<(), String> {
        let config = crate::config::parse::<T::Config>(config)?;
        *state.borrow_mut() = Some(T::new(config)?);
        Ok(())
    }

    pub fn transform<T: Transform>(state: &RefCell<Option<T>>, batch: wit::Batch) -> Result<Vec<wit::Outcome>, String> {
        let mut state = state.borrow_mut();
        let transform = state.as_mut().ok_or("the transform was called before it was configured")?;
        let outcomes = transform.batch(Batch::from(batch))?;
        // Moved out in place: an `Outcome` is its contract outcome.
        Ok(outcomes.into_iter().map(|outcome| outcome.0).collect())
    }
}

/// Exports a type implementing [`Transform`] as the component's
/// `transformer`: `ferry_transform::export!(Enrich);`, once per crate.
#[macro_export]
macro_rules! export {
    ($transform:ty) => {
        const _: () = {
            ::std::thread_local! {
                static STATE: ::std::cell::RefCell<::std::option::Option<$transform>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            struct FerryGuest;

            impl $crate::bindings::exports::ferry::transform::transformer::Guest for FerryGuest {
                fn configure(config: ::std::string::String) -> ::std::result::Result<(), ::std::string::String> {
                    STATE.with(|state| $crate::__export::configure::<$transform>(state, &config))
                }

                fn transform(
                    batch: $crate::bindings::ferry::transform::types::Batch,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<$crate::bindings::ferry::transform::types::Outcome>,
                    ::std::string::String,
                > {
                    STATE.with(|state| $crate::__export::transform::<$transform>(state, batch))
                }
            }

    $crate::bindings::export_guest!(FerryGuest with_types_in $crate::bindings);
        };
    };
}
