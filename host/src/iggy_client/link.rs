//! One connection to an Iggy server, made lazily and remade after failures.
//!
//! After a server restart the SDK's socket may come back without a session
//! (or a consumer-group membership), so rather than patch a broken client
//! Ferry drops it and connects, logs in and re-joins afresh.

use iggy::prelude::{
    Client, CompressionAlgorithm, Identifier, IggyClient, IggyDuration, IggyError, IggyExpiry, MaxTopicSize,
    StreamClient, TopicClient, UserClient,
};

use super::generation::{DetectError, Generation, Unrecognised, detect};
use super::probe_tls;
use crate::config::{IggyConnection, IggyTls};
use crate::error::ServiceError;

/// How often the SDK itself retries a dropped socket before reporting it;
/// Ferry's own retry loop (with backoff and logging) takes over after that.
const SDK_RECONNECT_RETRIES: u32 = 2;

/// How long a server that accepted the connection has to answer the login.
/// Shorter than the default call timeout, so that a server which will never
/// answer is named for what it likely is before the generic timeout fires.
const LOGIN_ANSWER: std::time::Duration = std::time::Duration::from_secs(10);

/// The Iggy servers this Ferry's SDK (`iggy` 0.10) speaks with.
pub const SPOKEN_SERVER_VERSIONS: &str = "iggy-server 0.8";

/// How long the protocol probe before login may take in all.
const PROBE_ANSWER: std::time::Duration = std::time::Duration::from_secs(5);

/// The server speaks a generation of Iggy's protocol this Ferry does not.
#[derive(Debug, thiserror::Error)]
pub enum UnspokenProtocol {
    #[error(
        "the server speaks Iggy's {0} protocol (iggy-server {0}.x); this Ferry speaks with {SPOKEN_SERVER_VERSIONS}"
    )]
    Known(Generation),
    #[error("{}; this Ferry speaks with {SPOKEN_SERVER_VERSIONS}", .0.seen)]
    Unrecognised(Unrecognised),
}

/// A server accepted the TCP connection and then said nothing to the login.
#[derive(Debug, thiserror::Error)]
#[error("the server accepted the connection but did not answer the login within {waited:?}")]
pub struct LoginUnanswered {
    pub waited: std::time::Duration,
}

/// A lazily connected, logged-in client.
pub struct IggyLink {
    connection: IggyConnection,
    client: Option<IggyClient>,
}

impl IggyLink {
    pub fn new(connection: IggyConnection) -> Self {
        Self { connection, client: None }
    }

    pub fn address(&self) -> &str {
        &self.connection.address
    }

    /// The client, connecting and logging in first if needed. The flag is
    /// true when this call made a new connection.
    pub async fn client(&mut self) -> Result<(&IggyClient, bool), ServiceError> {
        let fresh = self.client.is_none();
        if fresh {
            let client = connect(&self.connection).await?;
            self.client = Some(client);
        }
        Ok((self.client.as_ref().expect("connected above"), fresh))
    }

    /// Forgets the client after a failure; the next call reconnects.
    pub async fn reset(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.shutdown().await;
        }
    }
}

impl Drop for IggyLink {
    /// Closes the connection even when the owner is dropped mid-flight (a
    /// cancelled task): the SDK keeps background tasks that would otherwise
    /// hold the socket, and with it a consumer-group membership, open.
    fn drop(&mut self) {
        if let (Some(client), Ok(runtime)) = (self.client.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move {
                let _ = client.shutdown().await;
            });
        }
    }
}

/// Connects over TCP and logs in.
pub async fn connect(connection: &IggyConnection) -> Result<IggyClient, ServiceError> {
    let what = || match &connection.tls {
        None => format!("connecting to Iggy at {}", connection.address),
        // A failed handshake reaches Ferry as a bare "cannot establish
        // connection" (the SDK logs the reason); say that TLS was in play.
        Some(tls) => {
            format!("connecting to Iggy at {} over TLS ({})", connection.address, describe_tls(tls, connection))
        }
    };
    probe_protocol(connection).await?;
    let mut builder = IggyClient::builder()
        .with_tcp()
        .with_server_address(connection.address.clone())
        .with_reconnection_max_retries(Some(SDK_RECONNECT_RETRIES))
        .with_reconnection_interval(IggyDuration::from(std::time::Duration::from_millis(500)))
        .with_no_delay();
    if let Some(tls) = &connection.tls {
        builder = builder.with_tls_enabled(true);
        if let Some(domain) = &tls.domain {
            builder = builder.with_tls_domain(domain.clone());
        }
        if let Some(ca_file) = &tls.ca_file {
            builder = builder.with_tls_ca_file(ca_file.clone());
        }
    }
    let client = builder.build().map_err(|error| ServiceError::iggy(what(), error))?;
    client.connect().await.map_err(|error| ServiceError::iggy(what(), error))?;
    let logging_in = || format!("logging in to Iggy at {} as {}", connection.address, connection.username);
    match tokio::time::timeout(LOGIN_ANSWER, client.login_user(&connection.username, &connection.password)).await {
        Ok(logged_in) => logged_in.map_err(|error| ServiceError::iggy(logging_in(), error))?,
        Err(_) => {
            return Err(ServiceError::unanswered(logging_in(), LoginUnanswered { waited: LOGIN_ANSWER }));
        }
    };
    Ok(client)
}

/// Asks the server which protocol it speaks, on a connection of its own,
/// and stops here unless it is one this Ferry speaks: a server of another
/// generation never will answer, so retrying would only hide why. A server
/// the probe cannot reach, one that drops the probe's connection, or a TLS
/// handshake the probe cannot complete is left to the client's own connect,
/// which reports it (and retries) as it always has.
async fn probe_protocol(connection: &IggyConnection) -> Result<Option<Generation>, ServiceError> {
    let what = || format!("asking the Iggy server at {} which protocol it speaks", connection.address);
    let connecting = tokio::time::timeout(PROBE_ANSWER, tokio::net::TcpStream::connect(&connection.address)).await;
    let stream = match connecting {
        Ok(Ok(stream)) => stream,
        // Nothing to ask: the client's own connect reports an unreachable
        // server (and is retried) as it always has.
        Ok(Err(_)) | Err(_) => return Ok(None),
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
    let generation = match detected {
        Ok(generation) => generation,
        Err(DetectError::Lost(error)) => {
            tracing::debug!(address = %connection.address, "the protocol probe's connection was lost: {error}");
            return Ok(None);
        }
        Err(DetectError::Unrecognised(unrecognised)) => {
            return Err(ServiceError::fatal(what(), UnspokenProtocol::Unrecognised(unrecognised)));
        }
    };
    tracing::info!(address = %connection.address, %generation, "the Iggy server speaks the {generation} protocol");
    match generation {
        Generation::V0_8 => Ok(Some(generation)),
        other => Err(ServiceError::fatal(what(), UnspokenProtocol::Known(other))),
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

/// An Iggy identifier from a stream, topic or group name.
pub fn named(name: &str) -> Result<Identifier, ServiceError> {
    Identifier::named(name).map_err(|error| ServiceError::iggy(format!("{name:?} is not a valid Iggy name"), error))
}

/// Creates `stream` and `topic` (with `partitions`) unless they exist.
pub async fn ensure_topic(client: &IggyClient, stream: &str, topic: &str, partitions: u32) -> Result<(), ServiceError> {
    let stream_id = named(stream)?;
    let what = |action: &str| format!("{action} Iggy stream {stream:?}");
    let existing = client.get_stream(&stream_id).await.map_err(|error| ServiceError::iggy(what("reading"), error))?;
    if existing.is_none() {
        match client.create_stream(stream).await {
            Ok(_) | Err(IggyError::StreamNameAlreadyExists(_)) => {}
            Err(error) => return Err(ServiceError::iggy(what("creating"), error)),
        }
    }
    let topic_id = named(topic)?;
    let what = |action: &str| format!("{action} Iggy topic {stream}/{topic}");
    let existing =
        client.get_topic(&stream_id, &topic_id).await.map_err(|error| ServiceError::iggy(what("reading"), error))?;
    if existing.is_none() {
        let created = client
            .create_topic(
                &stream_id,
                topic,
                partitions,
                CompressionAlgorithm::None,
                None,
                IggyExpiry::NeverExpire,
                MaxTopicSize::ServerDefault,
            )
            .await;
        match created {
            Ok(_) | Err(IggyError::TopicNameAlreadyExists(..)) => {}
            Err(error) => return Err(ServiceError::iggy(what("creating"), error)),
        }
    }
    Ok(())
}
