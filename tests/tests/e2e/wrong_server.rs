//! Servers of other protocol generations, and listeners that are no Iggy
//! server at all: Ferry asks which protocol a server speaks before logging
//! in, and a server it cannot speak with stops the pipeline at once with an
//! error saying what was seen — never a silent retry loop.

use std::time::Duration;

use ferry::iggy_link::{DetectError, Generation, detect};
use ferry::pipeline::PipelineError;
use ferry_tests::pipeline_file::PipelineFile;
use ferry_tests::pipelines::RunningPipeline;
use ferry_tests::servers::IggyServer;
use ferry_tests::wait;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Long enough for the probe's own deadline (5 s) and a start-up.
const PATIENCE: Duration = Duration::from_secs(60);

/// Accepts TCP connections and answers each with `answer` (nothing, if
/// empty), keeping them open.
async fn listener(answer: &'static [u8]) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            if !answer.is_empty() {
                let _ = socket.write_all(answer).await;
            }
            held.push(socket);
        }
    });
    (address, task)
}

/// A pipeline reading from the Iggy server at `address`.
fn pipeline_from(address: &str) -> RunningPipeline {
    pipeline_speaking(address, "auto")
}

/// A pipeline reading from the Iggy server at `address`, with `protocol` set.
fn pipeline_speaking(address: &str, protocol: &str) -> RunningPipeline {
    let file = PipelineFile::named("elsewhere")
        .set("source.iggy.address", address)
        .set("source.iggy.protocol", protocol)
        .set("source.iggy.stream", "sensors")
        .set("source.iggy.topic", "readings")
        .set("source.iggy.consumer_group", "ferry")
        // Nothing listens there: these tests end at the Iggy side.
        .set("sink.mongodb.uri", "mongodb://127.0.0.1:1")
        .set("sink.mongodb.database", "iot")
        .set("sink.mongodb.collection", "readings")
        .set("delivery.retry_initial", "50ms")
        .set("delivery.retry_max", "1s");
    RunningPipeline::start(file.config())
}

/// The error the pipeline stopped with by itself, as its chain reads.
async fn stopped_with(pipeline: RunningPipeline) -> String {
    let result = tokio::time::timeout(PATIENCE, pipeline.task).await.expect("the pipeline stops by itself");
    let error: PipelineError = result.expect("no panic").expect_err("it stops with an error");
    ferry::error::error_chain(&error)
}

async fn detected(address: &str) -> Result<Generation, String> {
    let mut stream = TcpStream::connect(address).await.unwrap();
    detect(&mut stream, Duration::from_secs(5)).await.map_err(|error| error.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iggy_server_0_8_is_detected_as_the_0_8_protocol() {
    ferry_tests::init_logging();
    let Some(iggy) = IggyServer::start("iggy_server_0_8_is_detected_as_the_0_8_protocol").await else { return };
    assert_eq!(detected(iggy.address()).await, Ok(Generation::V0_8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iggy_server_0_9_is_detected_as_the_0_9_protocol_and_a_pin_to_0_8_stops_the_pipeline_saying_so() {
    let test = "iggy_server_0_9_is_detected_as_the_0_9_protocol_and_a_pin_to_0_8_stops_the_pipeline_saying_so";
    ferry_tests::init_logging();
    let Some(iggy) = IggyServer::start_0_9(test).await else { return };
    assert_eq!(detected(iggy.address()).await, Ok(Generation::V0_9));
    let error = stopped_with(pipeline_speaking(iggy.address(), "0.8")).await;
    let expected = format!("asking the Iggy server at {} which protocol it speaks: ", iggy.address());
    assert!(error.contains(&expected), "{error}");
    assert!(
        error.contains(
            "the server speaks Iggy's 0.9 protocol (iggy-server 0.9.x), but the pipeline sets `protocol = \"0.8\"`"
        ),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_to_0_9_against_iggy_server_0_8_stops_the_pipeline_saying_so() {
    ferry_tests::init_logging();
    let Some(iggy) = IggyServer::start("a_pin_to_0_9_against_iggy_server_0_8_stops_the_pipeline_saying_so").await
    else {
        return;
    };
    let error = stopped_with(pipeline_speaking(iggy.address(), "0.9")).await;
    assert!(
        error.contains(
            "the server speaks Iggy's 0.8 protocol (iggy-server 0.8.x), but the pipeline sets `protocol = \"0.9\"`"
        ),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_never_answers_stops_the_pipeline_saying_so() {
    ferry_tests::init_logging();
    let (address, listener) = listener(b"").await;
    let error = stopped_with(pipeline_from(&address)).await;
    assert!(error.contains(&format!("asking the Iggy server at {address} which protocol it speaks: ")), "{error}");
    assert!(error.contains("the server said nothing to a 0.8 PING or a 0.9 PING within 5s"), "{error}");
    assert!(error.contains("this Ferry speaks with iggy-server 0.8 and 0.9"), "{error}");
    listener.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_answers_garbage_stops_the_pipeline_quoting_it() {
    ferry_tests::init_logging();
    let (address, listener) = listener(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    let error = stopped_with(pipeline_from(&address)).await;
    // "HTTP/1.1", the first 8 bytes, in hex.
    assert!(error.contains("the server answered a 0.8 PING with 485454502f312e31"), "{error}");
    listener.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_drops_the_probe_is_retried_like_one_going_down_not_stopped_for() {
    ferry_tests::init_logging();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    // Accepts each connection and closes it at once.
    let closing = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    let mut stream = TcpStream::connect(&address).await.unwrap();
    let probed = detect(&mut stream, Duration::from_secs(5)).await;
    assert!(matches!(probed, Err(DetectError::Lost(_))), "{probed:?}");
    let pipeline = pipeline_from(&address);
    let note = wait::until("a retried connection failure in the status", PATIENCE, || async {
        pipeline.telemetry.status().failing.get("connect").map(|note| note.message.clone())
    })
    .await;
    // The client's own connect or login reports it, not the probe.
    assert!(note.contains(&format!("Iggy at {address}")) && !note.contains("which protocol"), "{note}");
    assert!(!pipeline.task.is_finished(), "and the pipeline goes on retrying");
    pipeline.stop().await.expect("a clean stop");
    closing.abort();
}

/// A 0.9 server that comes up after Ferry first tries it (a compose file
/// starting both at once) is asked which protocol it speaks once it listens.
/// Ferry never falls back to guessing 0.8 while it is unreachable: that
/// client would connect the moment the server listened, and a 0.9 server
/// leaves a 0.8 login unanswered for the whole login deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_9_server_starting_after_ferry_is_asked_its_protocol_not_sent_a_0_8_login() {
    const TEST: &str = "a_0_9_server_starting_after_ferry_is_asked_its_protocol_not_sent_a_0_8_login";
    ferry_tests::init_logging();
    let Some(mut iggy) = IggyServer::start_0_9(TEST).await else { return };
    let connection = iggy.connection();
    iggy.kill();
    let failures = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let attempts = tokio::spawn({
        let failures = failures.clone();
        async move {
            loop {
                match ferry::iggy_link::connect(&connection).await {
                    Ok(session) => {
                        let generation = session.generation();
                        session.shutdown().await;
                        return generation;
                    }
                    Err(error) => {
                        failures.lock().unwrap().push(ferry::error::error_chain(&error));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    });
    // The attempts meet a closed port first.
    wait::until("a failed attempt", PATIENCE, || async { (!failures.lock().unwrap().is_empty()).then_some(()) }).await;
    iggy.restart().await;
    let generation = tokio::time::timeout(PATIENCE, attempts).await.expect("connected").unwrap();
    assert_eq!(generation, Generation::V0_9);
    let failures = failures.lock().unwrap().clone();
    assert!(failures.iter().all(|failure| !failure.contains("did not answer the login")), "{failures:#?}");
}
