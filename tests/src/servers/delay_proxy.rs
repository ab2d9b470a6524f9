//! A TCP proxy that delays every byte by a set time each way: a real
//! server, reached as if across a network (a cross-region replica set is
//! ~50 ms each way). It forwards bytes untouched; it is not a server.
//!
//! With `jitter`, each connection's delay varies (within a connection
//! bytes keep their order, as TCP's do): commands sent on two connections
//! can then reach the server in the other order, as they can on a real
//! network, so a test can show that nothing depends on them not doing so.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// How long bytes take each way through the proxy.
#[derive(Debug, Clone, Copy)]
pub struct Delay {
    pub one_way: Duration,
    /// Up to this much more, varying from chunk to chunk.
    pub jitter: Duration,
}

/// A running proxy; it stops when dropped.
pub struct DelayProxy {
    address: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl DelayProxy {
    /// Listens on a free loopback port and forwards each connection to
    /// `upstream` (`host:port`). It runs on a thread of its own, so the
    /// delays it adds do not depend on how busy the caller's runtime is.
    pub fn start(upstream: &str, delay: Delay) -> Self {
        let upstream = upstream.to_owned();
        let (stop, stopped) = oneshot::channel::<()>();
        let (bound, address) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("delay-proxy".to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free loopback port");
                    bound.send(listener.local_addr().expect("bound")).expect("the caller waits");
                    tokio::select! {
                        () = serve(listener, upstream, delay) => {}
                        _ = stopped => {}
                    }
                });
            })
            .expect("a thread for the proxy");
        Self { address: address.recv().expect("the proxy bound its port"), _stop: stop }
    }

    /// A proxy in front of the server `uri` (a `mongodb://` URI naming one
    /// host) names; [`Self::mongodb_uri`] gives the URI through it.
    pub fn for_mongodb(uri: &str, delay: Delay) -> Self {
        let after_scheme = uri.split_once("://").map_or(uri, |(_, rest)| rest);
        let after_credentials = after_scheme.rsplit('@').next().unwrap_or(after_scheme);
        let host = after_credentials.split(['/', '?']).next().unwrap_or_default();
        Self::start(host, delay)
    }

    /// `host:port` to connect to instead of the upstream.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `uri` (a `mongodb://` URI naming one host) through this proxy: the
    /// host replaced, and `directConnection=true` so the driver keeps to it
    /// rather than to the addresses the server reports.
    pub fn mongodb_uri(&self, uri: &str) -> String {
        let (scheme, rest) = uri.split_once("://").expect("a URI with a scheme");
        let (credentials, rest) = match rest.split_once('@') {
            Some((credentials, rest)) => (format!("{credentials}@"), rest),
            None => (String::new(), rest),
        };
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let tail = &rest[end..];
        let mut uri = format!("{scheme}://{credentials}{}{tail}", self.address);
        if !uri.contains("directConnection=true") {
            let separator = match (tail.contains('?'), tail.is_empty()) {
                (true, _) => "&",
                (false, true) => "/?",
                (false, false) => "?",
            };
            uri = format!("{uri}{separator}directConnection=true");
        }
        uri
    }
}

async fn serve(listener: TcpListener, upstream: String, delay: Delay) {
    let mut connections = 0u64;
    loop {
        let Ok((inbound, _)) = listener.accept().await else { continue };
        connections += 1;
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(&upstream).await else { return };
            let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
            let (from_client, to_client) = inbound.into_split();
            let (from_server, to_server) = outbound.into_split();
            tokio::join!(
                forward(from_client, to_server, delay, connections * 2),
                forward(from_server, to_client, delay, connections * 2 + 1)
            );
        });
    }
}

/// Copies `from` to `to`, each chunk `delay` after it was read.
async fn forward(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Delay, seed: u64) {
    let (chunks, mut delayed) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let read = async move {
        let mut buffer = vec![0; 64 * 1024];
        let mut jitter = Jitter(seed);
        let mut last = Instant::now();
        while let Ok(read) = from.read(&mut buffer).await {
            if read == 0 {
                break;
            }
            // Never before the chunk ahead of it: bytes keep their order.
            let due = (Instant::now() + delay.one_way + jitter.up_to(delay.jitter)).max(last);
            last = due;
            if chunks.send((due, buffer[..read].to_vec())).is_err() {
                break;
            }
        }
    };
    let write = async move {
        while let Some((due, chunk)) = delayed.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}

/// SplitMix64: varied, repeatable delays without a random-number crate.
struct Jitter(u64);

impl Jitter {
    fn up_to(&mut self, most: Duration) -> Duration {
        if most.is_zero() {
            return Duration::ZERO;
        }
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        most.mul_f64((z >> 11) as f64 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn given_a_delay_then_bytes_arrive_that_much_later_each_way_and_in_order() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = echo.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut socket, _) = echo.accept().await.unwrap();
            let mut buffer = [0; 1024];
            while let Ok(read) = socket.read(&mut buffer).await {
                if read == 0 || socket.write_all(&buffer[..read]).await.is_err() {
                    break;
                }
            }
        });
        let one_way = Duration::from_millis(40);
        let proxy = DelayProxy::start(&upstream, Delay { one_way, jitter: Duration::from_millis(10) });
        let mut client = TcpStream::connect(proxy.address()).await.unwrap();
        let started = std::time::Instant::now();
        for part in [&b"ab"[..], b"cd", b"ef"] {
            client.write_all(part).await.unwrap();
        }
        let mut echoed = [0; 6];
        client.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, b"abcdef");
        assert!(started.elapsed() >= one_way * 2, "a round trip took {:?}", started.elapsed());
    }

    #[test]
    fn given_a_mongodb_uri_then_its_host_is_the_proxy_and_the_connection_direct() {
        let proxy = DelayProxy { address: "127.0.0.1:9".parse().unwrap(), _stop: oneshot::channel().0 };
        assert_eq!(proxy.mongodb_uri("mongodb://db:27017"), "mongodb://127.0.0.1:9/?directConnection=true");
        assert_eq!(
            proxy.mongodb_uri("mongodb://u:p@db:27017/?directConnection=true"),
            "mongodb://u:p@127.0.0.1:9/?directConnection=true"
        );
        assert_eq!(
            proxy.mongodb_uri("mongodb://db:27017/?replicaSet=rs0"),
            "mongodb://127.0.0.1:9/?replicaSet=rs0&directConnection=true"
        );
    }
}
