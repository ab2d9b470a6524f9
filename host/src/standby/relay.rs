//! A loopback relay between the leader's Iggy clients and the Iggy server
//! that forwards a byte only while the fence proves the lease held.
//!
//! Why it exists: Iggy has no conditional append, so nothing on the server
//! turns a former leader's late write away. Checking the fence before
//! calling the SDK leaves a gap: a process frozen after the check, while the
//! SDK encodes and queues the request, sends it when thawed, after a
//! standby took over (the freeze test found exactly that, first time). The
//! relay moves the check to the last instruction before each write to the
//! server's socket: it waits until the socket is writable, checks, then
//! writes without waiting again, so a freeze anywhere before finds the
//! proof gone on waking. Once the lease is lost the relay drops every
//! connection, and a request cut part-way is discarded by the server.

use std::io::ErrorKind;
use std::net::SocketAddr;

use tokio::io::AsyncReadExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::Fence;
use crate::config::IggyConnection;

/// Bytes read from a client before they are forwarded.
const CHUNK: usize = 64 * 1024;

/// A relay listening on a loopback port of its own; it stops when the fence
/// is lost or it is dropped.
pub struct FencedRelay {
    address: SocketAddr,
    _stop: DropGuard,
}

impl FencedRelay {
    /// Starts relaying connections to `upstream` (`host:port`).
    pub fn start(upstream: String, fence: Fence) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let listener = TcpListener::from_std(listener)?;
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = fence.lost() => return,
                    () = stopped.cancelled() => return,
                };
                let Ok((client, _)) = accepted else { continue };
                tokio::spawn(relay(client, upstream.clone(), fence.clone()));
            }
        });
        Ok(Self { address, _stop: stop.drop_guard() })
    }

    /// Where clients connect instead of the server.
    pub fn address(&self) -> String {
        self.address.to_string()
    }
}

/// One client connection: requests go up through the fence, answers come
/// back as they are.
async fn relay(client: TcpStream, upstream: String, fence: Fence) {
    // Dropping the client's connection tells its SDK, which reconnects.
    let server = match TcpStream::connect(&upstream).await {
        Ok(server) => server,
        Err(error) => {
            tracing::debug!(%upstream, %error, "the fenced relay cannot reach the Iggy server");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, mut client_write) = client.into_split();
    let (mut server_read, server_write) = server.into_split();
    tokio::select! {
        _ = forward_fenced(client_read, server_write, &fence) => {}
        _ = tokio::io::copy(&mut server_read, &mut client_write) => {}
        () = fence.lost() => {}
    }
}

/// Copies `from` to `to`, checking the fence right before every write.
async fn forward_fenced(mut from: OwnedReadHalf, to: OwnedWriteHalf, fence: &Fence) -> std::io::Result<()> {
    let mut buffer = vec![0; CHUNK];
    loop {
        let read = from.read(&mut buffer).await?;
        if read == 0 {
            return Ok(());
        }
        let mut written = 0;
        while written < read {
            to.as_ref().writable().await?;
            // Nothing may wait between this check and the write below.
            if !fence.permits_traffic() {
                return Err(ErrorKind::PermissionDenied.into());
            }
            match to.try_write(&buffer[written..read]) {
                Ok(count) => written += count,
                Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
        }
    }
}

/// `connection` reaching its server through a new relay fenced by `fence`:
/// the connection to hand the Iggy clients, and the relay to keep while
/// they run.
pub fn fenced_connection(connection: &IggyConnection, fence: &Fence) -> std::io::Result<(IggyConnection, FencedRelay)> {
    let relay = FencedRelay::start(connection.address.clone(), fence.clone())?;
    let mut fenced = connection.clone();
    fenced.address = relay.address();
    // TLS still names the server, not the relay's loopback address.
    if let Some(tls) = &mut fenced.tls
        && tls.domain.is_none()
    {
        tls.domain = connection.address.rsplit_once(':').map(|(host, _)| host.trim_matches(['[', ']']).to_owned());
    }
    Ok((fenced, relay))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::mpsc;

    use super::*;

    /// A listener standing for the server: it reports each piece that
    /// reaches it, and everything once the connection closes.
    async fn upstream() -> (String, mpsc::UnboundedReceiver<Vec<u8>>, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (pieces, arrived) = mpsc::unbounded_channel();
        let received = tokio::spawn(async move {
            let (mut connection, _) = listener.accept().await.unwrap();
            let (mut received, mut buffer) = (Vec::new(), [0; 1024]);
            while let Ok(read @ 1..) = connection.read(&mut buffer).await {
                received.extend_from_slice(&buffer[..read]);
                let _ = pieces.send(buffer[..read].to_vec());
            }
            received
        });
        (address, arrived, received)
    }

    /// Waits until `bytes` have reached the upstream.
    async fn arrived(arrived: &mut mpsc::UnboundedReceiver<Vec<u8>>, bytes: &[u8]) {
        let mut seen = Vec::new();
        while seen.len() < bytes.len() {
            let piece = tokio::time::timeout(Duration::from_secs(5), arrived.recv()).await.unwrap().unwrap();
            seen.extend(piece);
        }
        assert_eq!(seen, bytes);
    }

    #[tokio::test]
    async fn given_a_proven_lease_then_bytes_pass_and_once_it_runs_out_nothing_more_does() {
        let (address, mut pieces, received) = upstream().await;
        let fence = Fence::new(Duration::from_millis(100));
        let held_until = Instant::now() + Duration::from_secs(1);
        fence.held(Instant::now(), Duration::from_secs(1));
        let relay = FencedRelay::start(address, fence.clone()).unwrap();
        let mut client = TcpStream::connect(relay.address()).await.unwrap();
        client.write_all(b"while held;").await.unwrap();
        arrived(&mut pieces, b"while held;").await;
        // Past the lease less the margin: the proof is gone.
        tokio::time::sleep_until(held_until.into()).await;
        assert!(!fence.permits_traffic());
        let _ = client.write_all(b"too late").await;
        let received = tokio::time::timeout(Duration::from_secs(5), received).await.unwrap().unwrap();
        assert_eq!(received, b"while held;", "nothing sent after the proof ran out reaches the server");
    }

    #[tokio::test]
    async fn given_a_lost_lease_then_the_relay_drops_its_connections() {
        let (address, mut pieces, received) = upstream().await;
        let fence = Fence::new(Duration::from_millis(100));
        let relay = FencedRelay::start(address, fence.clone()).unwrap();
        let mut client = TcpStream::connect(relay.address()).await.unwrap();
        client.write_all(b"before it was taken;").await.unwrap();
        arrived(&mut pieces, b"before it was taken;").await;
        fence.lose();
        let received = tokio::time::timeout(Duration::from_secs(5), received).await.unwrap().unwrap();
        assert_eq!(received, b"before it was taken;", "a standby's own traffic passes until the lease is lost");
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest)).await.unwrap();
        assert!(closed.is_ok_and(|read| read == 0), "the client sees its connection closed");
    }
}
