//! What every generation's client shares when it connects and logs in:
//! the SDK's own reconnect settings, a deadline on the login, and how a
//! connection is described in errors.

use std::future::Future;
use std::time::Duration;

use crate::config::{IggyConnection, IggyTls};
use crate::error::ServiceError;

/// How often the SDK itself retries a dropped socket before reporting it;
/// Ferry's own retry loop (with backoff and logging) takes over after that.
pub(super) const SDK_RECONNECT_RETRIES: u32 = 2;
pub(super) const SDK_RECONNECT_INTERVAL: Duration = Duration::from_millis(500);

/// How long a server that accepted the connection has to answer the login.
/// Shorter than the default call timeout, so that a server which will never
/// answer is named for what it likely is before the generic timeout fires.
const LOGIN_ANSWER: Duration = Duration::from_secs(10);

/// A server accepted the TCP connection and then said nothing to the login.
#[derive(Debug, thiserror::Error)]
#[error("the server accepted the connection but did not answer the login within {waited:?}")]
pub struct LoginUnanswered {
    pub waited: Duration,
}

/// Runs a login, and names a server that never answers it for what it
/// likely is.
pub(super) async fn login_within(
    connection: &IggyConnection,
    login: impl Future<Output = Result<(), ServiceError>>,
) -> Result<(), ServiceError> {
    match tokio::time::timeout(LOGIN_ANSWER, login).await {
        Ok(logged_in) => logged_in,
        Err(_) => Err(ServiceError::unanswered(
            format!("logging in to Iggy at {} as {}", connection.address, connection.username),
            LoginUnanswered { waited: LOGIN_ANSWER },
        )),
    }
}

/// What connecting to `connection` is, for errors: a failed TLS handshake
/// reaches Ferry as a bare "cannot establish connection" (the SDK logs the
/// reason), so say that TLS was in play, with which name and roots.
pub(super) fn describe(connection: &IggyConnection) -> String {
    match &connection.tls {
        None => format!("connecting to Iggy at {}", connection.address),
        Some(tls) => {
            format!("connecting to Iggy at {} over TLS ({})", connection.address, describe_tls(tls, connection))
        }
    }
}

/// The server name a TLS connection verifies and the roots it trusts.
fn describe_tls(tls: &IggyTls, connection: &IggyConnection) -> String {
    let name = connection.tls_server_name(tls);
    match &tls.ca_file {
        Some(ca_file) => format!("server name {name}, trusting the CA in {ca_file}"),
        None => format!("server name {name}, trusting the public web roots"),
    }
}
