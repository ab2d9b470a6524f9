//! The admin endpoint: an HTTP listener for operators and orchestrators.
//!
//! - `GET /metrics`: Prometheus (OpenMetrics) text, names `ferry_*`.
//! - `GET /health`: the process is alive (liveness).
//! - `GET /ready`: 200 when every pipeline is connected to both ends and
//!   running, else 503 with a JSON body naming each one that is not, and
//!   why (readiness).
//! - `GET /pipelines`, `GET /pipelines/{name}`: each pipeline's status as
//!   JSON.
//!
//! Everything here reads the process's [`Telemetry`]; nothing in it comes
//! from a pipeline's configuration beyond names, so no credential can leak
//! through it.

mod routes;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::telemetry::Telemetry;

/// The admin listener could not be opened.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen for the admin endpoint on {address} (another ferry run on this host? give it another address \
     with --admin ADDR, or --admin off)"
)]
pub struct AdminError {
    pub address: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// A bound admin listener, serving until its stop token fires.
pub struct AdminServer {
    address: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl AdminServer {
    /// Binds `address` (port 0 picks a free one) and starts serving.
    pub async fn start(address: SocketAddr, telemetry: Telemetry) -> Result<Self, AdminError> {
        let listener = TcpListener::bind(address).await.map_err(|source| AdminError { address, source })?;
        let address = listener.local_addr().map_err(|source| AdminError { address, source })?;
        let stop = CancellationToken::new();
        let shutdown = stop.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, routes::router(telemetry))
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "the admin endpoint stopped");
            }
        });
        tracing::info!(%address, "admin endpoint listening (/metrics, /health, /ready, /pipelines)");
        Ok(Self { address, stop, task })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops listening and waits for requests in progress.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}
