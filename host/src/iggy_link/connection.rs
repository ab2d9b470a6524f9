//! One connection to an Iggy server, made lazily and remade after failures,
//! in the protocol generation the server speaks.
//!
//! After a server restart the SDK's socket may come back without a session
//! (or a consumer-group membership), so rather than patch a broken client
//! Ferry drops it and connects, logs in and re-joins afresh.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::generation::{DetectError, Generation, Unrecognised, detect};
use super::login::describe;
use super::session::Session;
use super::{probe_tls, v0_8, v0_9};
use crate::config::{IggyConnection, IggyProtocol};
use crate::error::ServiceError;

/// The Iggy servers this Ferry speaks with.
pub const SPOKEN_SERVER_VERSIONS: &str = "iggy-server 0.8 and 0.9";

/// How long the protocol probe before login may take in all.
const PROBE_ANSWER: Duration = Duration::from_secs(5);

/// The server speaks a generation of Iggy's protocol this Ferry does not,
/// or not the one the pipeline pinned.
#[derive(Debug, thiserror::Error)]
pub enum UnspokenProtocol {
    #[error("{}; this Ferry speaks with {SPOKEN_SERVER_VERSIONS}", .0.seen)]
    Unrecognised(Unrecognised),
    #[error(
        "the server speaks Iggy's {seen} protocol (iggy-server {seen}.x), but the pipeline sets `protocol = \"{pinned}\"`; \
         set `protocol = \"auto\"` or \"{seen}\""
    )]
    NotPinned { seen: Generation, pinned: Generation },
}

/// A lazily connected, logged-in session.
pub struct IggyLink {
    connection: IggyConnection,
    session: Option<Session>,
}

impl IggyLink {
    pub fn new(connection: IggyConnection) -> Self {
        Self { connection, session: None }
    }

    pub fn address(&self) -> &str {
        &self.connection.address
    }

    /// The session, connecting and logging in first if needed. The flag is
    /// true when this call made a new connection.
    pub async fn session(&mut self) -> Result<(&Session, bool), ServiceError> {
        let fresh = self.session.is_none();
        if fresh {
            self.session = Some(connect(&self.connection).await?);
        }
        Ok((self.session.as_ref().expect("connected above"), fresh))
    }

    /// Forgets the session after a failure; the next call reconnects.
    pub async fn reset(&mut self) {
        if let Some(session) = self.session.take() {
            session.shutdown().await;
        }
    }
}

impl Drop for IggyLink {
    /// Closes the connection even when the owner is dropped mid-flight (a
    /// cancelled task): the SDK keeps background tasks that would otherwise
    /// hold the socket, and with it a consumer-group membership, open.
    fn drop(&mut self) {
        if let (Some(session), Ok(runtime)) = (self.session.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(session.shutdown());
        }
    }
}

/// Asks the server which generation it speaks, then connects and logs in
/// with that generation's client.
pub async fn connect(connection: &IggyConnection) -> Result<Session, ServiceError> {
    // A remembered answer that disagrees with the pin may be stale: ask.
    let known =
        remembered(&connection.address).filter(|&seen| pinned(connection.protocol).is_none_or(|pinned| pinned == seen));
    let seen = match known {
        Some(seen) => Some(seen),
        None => probe_protocol(connection).await?,
    };
    // When the probe could not tell (the server dropped the probe, or its TLS
    // handshake failed), the client of the pinned generation, or of the
    // oldest one, connects and reports why it cannot, as it always has.
    let generation = seen.or(pinned(connection.protocol)).unwrap_or(Generation::V0_8);
    let connected = match generation {
        Generation::V0_8 => v0_8::connect(connection).await.map(Session::V0_8),
        Generation::V0_9 => v0_9::connect(connection).await.map(Session::V0_9),
    };
    match (&connected, seen) {
        (Ok(_), Some(seen)) if known.is_none() => remember(&connection.address, Some(seen)),
        (Err(_), _) => remember(&connection.address, None),
        _ => {}
    }
    connected
}

/// The generation each server address answered the probe with. Asking costs
/// a 0.9 server half a second (the wait for a 0.8 answer first), and every
/// link to one server (the source, the lag probe, the dead letters) and every
/// reconnect would ask again. An answer is forgotten when a connection made
/// on it fails, so a server replaced by another generation is asked afresh.
static KNOWN: Mutex<BTreeMap<String, Generation>> = Mutex::new(BTreeMap::new());

fn remembered(address: &str) -> Option<Generation> {
    KNOWN.lock().unwrap_or_else(PoisonError::into_inner).get(address).copied()
}

/// Remembers what `address` speaks, or forgets it (`None`).
fn remember(address: &str, generation: Option<Generation>) {
    let mut known = KNOWN.lock().unwrap_or_else(PoisonError::into_inner);
    match generation {
        Some(generation) => known.insert(address.to_owned(), generation),
        None => known.remove(address),
    };
}

/// Stops a pipeline whose pinned generation is not the one the server speaks.
fn check_pin(connection: &IggyConnection, seen: Generation) -> Result<(), ServiceError> {
    match pinned(connection.protocol) {
        Some(pinned) if pinned != seen => Err(ServiceError::fatal(
            format!("asking the Iggy server at {} which protocol it speaks", connection.address),
            UnspokenProtocol::NotPinned { seen, pinned },
        )),
        _ => Ok(()),
    }
}

/// The generation a pipeline pinned, if it did.
fn pinned(protocol: IggyProtocol) -> Option<Generation> {
    match protocol {
        IggyProtocol::Auto => None,
        IggyProtocol::V0_8 => Some(Generation::V0_8),
        IggyProtocol::V0_9 => Some(Generation::V0_9),
    }
}

/// Asks the server which protocol it speaks, on a connection of its own,
/// and stops here unless it is one this Ferry speaks (and the pipeline
/// pinned): a server of another generation never will answer, so retrying
/// would only hide why. A server the probe cannot reach is a transient
/// error. One that drops the probe's connection, or a TLS handshake the probe
/// cannot complete, gives `None`, left to the client's own connect, which
/// reports it (and retries).
async fn probe_protocol(connection: &IggyConnection) -> Result<Option<Generation>, ServiceError> {
    let what = || format!("asking the Iggy server at {} which protocol it speaks", connection.address);
    let connecting = tokio::time::timeout(PROBE_ANSWER, tokio::net::TcpStream::connect(&connection.address)).await;
    // Unreachable is retried here, never left to a guessed generation's
    // client: a server still starting would accept that client's retries,
    // and a 0.9 server then leaves a 0.8 login unanswered for its deadline.
    let stream = match connecting {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return Err(ServiceError::iggy(describe(connection), true, error)),
        Err(_) => return Err(ServiceError::timed_out(describe(connection), PROBE_ANSWER)),
    };
    let _ = stream.set_nodelay(true);
    let detected = match &connection.tls {
        None => detect(&mut { stream }, PROBE_ANSWER).await,
        Some(tls) => match tokio::time::timeout(PROBE_ANSWER, probe_tls::handshake(stream, connection, tls)).await {
            Ok(Ok(mut stream)) => detect(&mut stream, PROBE_ANSWER).await,
            Ok(Err(error)) => {
                tracing::debug!(address = %connection.address, "the protocol probe's TLS handshake failed: {error}");
                return Ok(None);
            }
            Err(_) => return Err(ServiceError::timed_out(what(), PROBE_ANSWER)),
        },
    };
    let seen = match detected {
        Ok(generation) => generation,
        Err(DetectError::Lost(error)) => {
            tracing::debug!(address = %connection.address, "the protocol probe's connection was lost: {error}");
            return Ok(None);
        }
        Err(DetectError::Unrecognised(unrecognised)) => {
            return Err(ServiceError::fatal(what(), UnspokenProtocol::Unrecognised(unrecognised)));
        }
    };
    check_pin(connection, seen)?;
    tracing::info!(address = %connection.address, generation = %seen, "the Iggy server speaks the {seen} protocol");
    Ok(Some(seen))
}
