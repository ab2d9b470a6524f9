//! A server that takes the connection and never answers — as an Iggy 0.9
//! server does to this Ferry's 0.8 protocol — is named for what it likely
//! is, in the log and in the status, rather than retried as a silent
//! timeout.

use std::time::Duration;

use ferry_tests::pipelines::{RunningPipeline, parse};
use ferry_tests::{logs, wait};

/// Accepts TCP connections, keeps them open, and never says a word.
async fn silent_listener() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (address, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_the_login_is_named_as_likely_another_iggy_version() {
    ferry_tests::init_logging();
    let (address, listener) = silent_listener().await;
    let pipeline = RunningPipeline::start(parse(&format!(
        r#"
name = "silent"
[source.iggy]
address = "{address}"
stream = "sensors"
topic = "readings"
consumer_group = "ferry"
[sink.mongodb]
uri = "mongodb://127.0.0.1:1"
database = "iot"
collection = "readings"
[delivery]
retry_initial = "50ms"
retry_max = "1s"
"#
    )));
    let note = wait::until("the status to say why", Duration::from_secs(60), || async {
        pipeline.telemetry.status().failing.get("connect").map(|note| note.message.clone())
    })
    .await;
    assert!(note.contains(&format!("logging in to Iggy at {address} as iggy: ")), "{note}");
    assert!(note.contains("accepted the connection but did not answer the login within 10s"), "{note}");
    assert!(note.contains("likely another Iggy server version") && note.contains("iggy-server 0.8"), "{note}");
    let logged = logs::containing("did not answer the login");
    assert!(!logged.is_empty(), "the log says it too");
    pipeline.stop().await.expect("a clean stop");
    listener.abort();
}
