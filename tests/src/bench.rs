//! What the end-to-end benchmarks start with: their size, taken from the
//! environment, and the two servers.

use ferry::iggy_link::Generation;

use crate::servers::{IggyServer, MongoServer};

/// The iggy-server generations a benchmark runs on: `FERRY_BENCH_IGGY` is
/// `0.8`, `0.9` or `both`; `default` when unset.
pub fn iggy_generations(default: &str) -> Vec<Generation> {
    let chosen = std::env::var("FERRY_BENCH_IGGY").unwrap_or_else(|_| default.to_owned());
    match chosen.as_str() {
        "0.8" => vec![Generation::V0_8],
        "0.9" => vec![Generation::V0_9],
        "both" => vec![Generation::V0_8, Generation::V0_9],
        other => {
            eprintln!("FERRY_BENCH_IGGY={other}: expected 0.8, 0.9 or both");
            std::process::exit(2)
        }
    }
}

/// An iggy-server of `generation` for benchmark `name`; exits with code 2
/// (after the fixture has said what is missing) if none can be had.
pub async fn iggy_server(name: &str, generation: Generation) -> IggyServer {
    let server = match generation {
        Generation::V0_8 => IggyServer::start(name).await,
        Generation::V0_9 => IggyServer::start_0_9(name).await,
    };
    server.unwrap_or_else(|| std::process::exit(2))
}

/// The number in environment variable `name`, or `default`.
pub fn size_from_env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|n| n.parse().ok()).unwrap_or(default)
}

/// Iggy and MongoDB for benchmark `name`; exits with code 2 (after the
/// fixtures have said what is missing) if either cannot be had.
pub async fn servers(name: &str) -> (IggyServer, MongoServer) {
    let generation = *iggy_generations("0.8").first().expect("one generation");
    let iggy = iggy_server(name, generation).await;
    match MongoServer::start(name).await {
        Some(mongo) => (iggy, mongo),
        None => std::process::exit(2),
    }
}
