//! Failures talking to Iggy or MongoDB, and the one place that decides which
//! of them are transient (wait and retry, holding the position) and which are
//! not (stop and say why).

/// A boxed cause, kept whole for source chains.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failed call to a server.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct ServiceError {
    /// What Ferry was doing, e.g. "polling sensors/readings".
    pub what: String,
    /// Whether retrying later can succeed.
    pub transient: bool,
    /// Which kind of failure it was, for metrics.
    pub kind: FailureKind,
    #[source]
    pub cause: BoxError,
}

/// Which kind of failure a [`ServiceError`] is: the `cause` label of the
/// retry counter, so a small fixed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Iggy refused the call, or could not be reached.
    Iggy,
    /// MongoDB refused the call, or could not be reached.
    Mongodb,
    /// No answer within the call's deadline.
    Timeout,
    /// The server is not ready for this yet.
    NotReady,
    Other,
}

impl FailureKind {
    pub const ALL: [FailureKind; 5] =
        [FailureKind::Iggy, FailureKind::Mongodb, FailureKind::Timeout, FailureKind::NotReady, FailureKind::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Iggy => "iggy",
            FailureKind::Mongodb => "mongodb",
            FailureKind::Timeout => "timeout",
            FailureKind::NotReady => "not_ready",
            FailureKind::Other => "other",
        }
    }
}

impl ServiceError {
    /// Iggy refused the call, or could not be reached; whether that is
    /// `transient` is for the link's generation to say (`iggy_link`).
    pub fn iggy(what: impl Into<String>, transient: bool, cause: impl Into<BoxError>) -> Self {
        Self { what: what.into(), transient, kind: FailureKind::Iggy, cause: cause.into() }
    }

    pub fn mongo(what: impl Into<String>, error: mongodb::error::Error) -> Self {
        let transient = mongo_is_transient(&error);
        Self { what: what.into(), transient, kind: FailureKind::Mongodb, cause: Box::new(error) }
    }

    /// MongoDB answered, but with a failure that retrying can clear (a
    /// write concern not yet satisfied, a transient write error).
    pub fn mongo_transient(what: impl Into<String>, cause: impl Into<BoxError>) -> Self {
        Self { what: what.into(), transient: true, kind: FailureKind::Mongodb, cause: cause.into() }
    }

    /// A call that took longer than `limit`; retrying may well succeed.
    pub fn timed_out(what: impl Into<String>, limit: std::time::Duration) -> Self {
        let cause = format!("no answer within {limit:?}").into();
        Self { what: what.into(), transient: true, kind: FailureKind::Timeout, cause }
    }

    /// A server that took the connection and never answered: retried, and
    /// counted as a timeout, with `cause` saying what it likely means.
    pub fn unanswered(what: impl Into<String>, cause: impl Into<BoxError>) -> Self {
        Self { what: what.into(), transient: true, kind: FailureKind::Timeout, cause: cause.into() }
    }

    /// A server that is not ready for this yet (say, a topic still being
    /// created); asking again later can succeed.
    pub fn not_yet(what: impl Into<String>, cause: impl Into<BoxError>) -> Self {
        Self { what: what.into(), transient: true, kind: FailureKind::NotReady, cause: cause.into() }
    }

    /// A failure that retrying cannot fix.
    pub fn fatal(what: impl Into<String>, cause: impl Into<BoxError>) -> Self {
        Self { what: what.into(), transient: false, kind: FailureKind::Other, cause: cause.into() }
    }
}

/// MongoDB error codes that mean "the server or its role is changing; try
/// again": not primary, shutting down, stepped down, network and time-outs.
const TRANSIENT_MONGO_CODES: [i32; 16] =
    [6, 7, 89, 91, 189, 262, 9001, 10058, 10107, 11600, 11602, 13435, 13436, 50, 112, 134];

/// Whether a MongoDB error code (a command's or a single write's) is one
/// that retrying can clear.
pub fn mongo_code_is_transient(code: i32) -> bool {
    TRANSIENT_MONGO_CODES.contains(&code)
}

fn mongo_is_transient(error: &mongodb::error::Error) -> bool {
    use mongodb::error::ErrorKind;
    if error.contains_label(mongodb::error::RETRYABLE_WRITE_ERROR) || error.contains_label("TransientTransactionError")
    {
        return true;
    }
    match error.kind.as_ref() {
        ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } | ErrorKind::ServerSelection { .. } => true,
        ErrorKind::DnsResolve { .. } => true,
        ErrorKind::Command(command) => mongo_code_is_transient(command.code),
        ErrorKind::Write(mongodb::error::WriteFailure::WriteConcernError(_)) => true,
        _ => false,
    }
}

/// Runs a server call with a deadline; running out is a transient failure.
pub async fn with_timeout<T>(
    limit: std::time::Duration,
    what: &str,
    call: impl std::future::Future<Output = Result<T, ServiceError>>,
) -> Result<T, ServiceError> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| Err(ServiceError::timed_out(what, limit)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::error::{Error, ErrorKind};

    #[test]
    fn given_io_trouble_then_mongo_error_is_transient() {
        let error = Error::from(ErrorKind::from(std::io::Error::other("connection reset")));
        assert!(mongo_is_transient(&error));
        assert!(!mongo_is_transient(&Error::custom("a bug")));
    }

    #[test]
    fn given_not_primary_codes_then_transient() {
        assert!(mongo_code_is_transient(10107));
        assert!(!mongo_code_is_transient(121));
    }
}
