//! What the end-to-end benchmarks start with: their size, taken from the
//! environment, and the two servers.

use crate::servers::{IggyServer, MongoServer};

/// The number in environment variable `name`, or `default`.
pub fn size_from_env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|n| n.parse().ok()).unwrap_or(default)
}

/// Iggy and MongoDB for benchmark `name`; exits with code 2 (after the
/// fixtures have said what is missing) if either cannot be had.
pub async fn servers(name: &str) -> (IggyServer, MongoServer) {
    match (IggyServer::start(name).await, MongoServer::start(name).await) {
        (Some(iggy), Some(mongo)) => (iggy, mongo),
        _ => std::process::exit(2),
    }
}
