//! Connections as production has them: TLS verified against a CA, users
//! with passwords, and no password ever shown back.

use std::path::Path;
use std::time::Duration;

use ferry::cli::{CliError, Verdict};
use ferry::error::error_chain;
use ferry_tests::cli::ferry;
use ferry_tests::ferry::RunningFerry;
use ferry_tests::guests;
use ferry_tests::pipeline_file::PipelineFile;
use ferry_tests::pipelines::{RunningPipeline, reading, unique};
use ferry_tests::servers::{IggyServer, MongoServer, SERVER_NAME, SecantusOptions, TestCa};
use ferry_tests::{logs, wait};
use mongodb::bson::{Document, doc};

const PATIENCE: Duration = Duration::from_secs(90);

/// `file` with TLS to Iggy at `section` (`source.iggy` or `sink.iggy`),
/// trusting `ca` (and only it).
fn iggy_tls(file: PipelineFile, section: &str, ca: Option<&TestCa>) -> PipelineFile {
    match ca {
        Some(ca) => file
            .set(&format!("{section}.tls.domain"), SERVER_NAME)
            .set(&format!("{section}.tls.ca_file"), ca.ca_file().display().to_string()),
        None => file,
    }
}

/// Readings from `topic` through sensor-enrich into `database.readings`,
/// bad ones to `readings-dlq` on the same Iggy server.
fn readings_in(
    iggy: &IggyServer,
    ca: Option<&TestCa>,
    stream: &str,
    mongo: &MongoServer,
    database: &str,
) -> PipelineFile {
    let file = PipelineFile::iggy_to_mongo("readings-in", iggy, stream, "readings", mongo, database, "readings")
        .set("source.iggy.consumer_group", "ferry-tests")
        .transform("enrich", guests::SENSOR_ENRICH)
        .dead_letter(stream, "readings-dlq")
        .test_pace();
    iggy_tls(file, "source.iggy", ca)
}

/// The change stream of `database.readings` (existing documents first)
/// into the `changes` topic.
fn readings_out(
    iggy: &IggyServer,
    ca: Option<&TestCa>,
    stream: &str,
    mongo: &MongoServer,
    database: &str,
) -> PipelineFile {
    let file = PipelineFile::changes_to_iggy("readings-out", mongo, Some(database), iggy, stream, "changes")
        .set("source.mongodb.collection", "readings")
        .set("source.mongodb.start", "copy-existing")
        .set("sink.iggy.create.partitions", 1)
        .test_pace();
    iggy_tls(file, "sink.iggy", ca)
}

/// 100 readings and one that is not JSON, in a fresh topic.
async fn produce_readings(iggy: &IggyServer, stream: &str) {
    iggy.ensure_topic(stream, "readings", 1).await;
    iggy.produce(stream, "readings", (0..100).map(reading).chain([b"not json".to_vec()])).await;
}

async fn count(mongo: &MongoServer, database: &str) -> u64 {
    let client = mongo.client().await;
    client.database(database).collection::<Document>("readings").count_documents(doc! {}).await.unwrap_or(0)
}

/// Runs both directions and checks what arrived: 100 documents and one dead
/// letter in, then 100 changes out.
async fn both_directions(iggy: &IggyServer, ca: Option<&TestCa>, mongo: &MongoServer, stream: &str, database: &str) {
    produce_readings(iggy, stream).await;
    let inbound = RunningPipeline::start(readings_in(iggy, ca, stream, mongo, database).config());
    wait::until("100 documents", PATIENCE, || async { (count(mongo, database).await == 100).then_some(()) }).await;
    let letters = wait::until("the dead letter", PATIENCE, || async {
        let letters = iggy.read_topic(stream, "readings-dlq").await;
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    let counts = inbound.stop().await.expect("a clean stop");
    assert_eq!((counts.records, counts.dead_lettered), (101, 1));
    assert_eq!(letters.len(), 1);
    assert_eq!(&letters[0].payload[..], b"not json");
    assert!(letters[0].header("ferry-reason").unwrap().starts_with("payload is not a JSON object"));

    let outbound = RunningPipeline::start(readings_out(iggy, ca, stream, mongo, database).config());
    let changes = wait::until("100 changes", PATIENCE, || async {
        let changes = iggy.read_topic(stream, "changes").await;
        (changes.len() >= 100).then_some(changes)
    })
    .await;
    outbound.stop().await.expect("a clean stop");
    assert_eq!(changes.len(), 100, "each document once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iggy_over_tls_carries_the_source_the_sink_and_dead_letters() {
    const TEST: &str = "iggy_over_tls_carries_the_source_the_sink_and_dead_letters";
    ferry_tests::init_logging();
    let ca = TestCa::new();
    let Some(iggy) = IggyServer::start_tls(TEST, &ca).await else { return };
    let Some(mongo) = MongoServer::start(TEST).await else { return };
    let (stream, database) = (unique("tls"), unique("tls"));
    both_directions(&iggy, Some(&ca), &mongo, &stream, &database).await;
    // The protocol probe ran over TLS too (a failed handshake would have
    // left it to the client, saying nothing of the protocol).
    let probed = logs::containing("the Iggy server speaks the 0.8 protocol");
    assert!(probed.iter().any(|line| line.contains(iggy.address())), "{probed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iggy_0_9_over_tls_carries_the_source_the_sink_and_dead_letters() {
    const TEST: &str = "iggy_0_9_over_tls_carries_the_source_the_sink_and_dead_letters";
    ferry_tests::init_logging();
    let ca = TestCa::new();
    let Some(iggy) = IggyServer::start_0_9_tls(TEST, &ca).await else { return };
    let Some(mongo) = MongoServer::start(TEST).await else { return };
    let (stream, database) = (unique("tls-09"), unique("tls-09"));
    both_directions(&iggy, Some(&ca), &mongo, &stream, &database).await;
    // The probe told 0.9 from 0.8 through the TLS handshake.
    let probed = logs::containing("the Iggy server speaks the 0.9 protocol");
    assert!(probed.iter().any(|line| line.contains(iggy.address())), "{probed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_untrusted_ca_is_refused() {
    const TEST: &str = "a_certificate_from_an_untrusted_ca_is_refused";
    ferry_tests::init_logging();
    let (ca, other_ca) = (TestCa::new(), TestCa::new());
    let Some(iggy) = IggyServer::start_tls(TEST, &ca).await else { return };
    let Some(mongo) = MongoServer::start(TEST).await else { return };
    let (stream, database) = (unique("untrusted"), unique("untrusted"));
    produce_readings(&iggy, &stream).await;
    let inbound = RunningPipeline::start(readings_in(&iggy, Some(&other_ca), &stream, &mongo, &database).config());
    // The SDK logs the handshake's verdict; Ferry says TLS was in play,
    // retries, and writes nothing.
    logs::wait_for("invalid peer certificate", PATIENCE).await;
    let trusting = format!("over TLS (server name localhost, trusting the CA in {})", other_ca.ca_file().display());
    logs::wait_for(&format!("connecting to Iggy at {} {trusting}", iggy.address()), PATIENCE).await;
    inbound.stop().await.expect("a clean stop after failed connections");
    assert_eq!(count(&mongo, &database).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_over_tls_with_a_password_carries_both_directions() {
    const TEST: &str = "mongodb_over_tls_with_a_password_carries_both_directions";
    const PASSWORD: &str = "s3cret-tls-mongo-password";
    ferry_tests::init_logging();
    let ca = TestCa::new();
    let options = SecantusOptions { tls: Some(&ca), user: Some(("ferry", PASSWORD)) };
    let Some(mongo) = MongoServer::start_secantusdb(TEST, options).await else { return };
    let Some(iggy) = IggyServer::start(TEST).await else { return };
    assert!(mongo.uri().contains("tls=true") && mongo.uri().contains(PASSWORD), "{}", mongo.uri());
    let (stream, database) = (unique("mongo-tls"), unique("mongo-tls"));
    both_directions(&iggy, None, &mongo, &stream, &database).await;
    assert_eq!(logs::containing(PASSWORD), Vec::<String>::new(), "a log line shows the password");
}

/// Writes `text` to `dir/name` and returns the path as text.
fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `ferry validate PATH`, which runs a runtime of its own, off this one.
async fn validate(path: String) -> (Result<Verdict, CliError>, String) {
    tokio::task::spawn_blocking(move || ferry(&["validate", &path])).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_appears_in_validate_output_errors_status_or_logs() {
    const TEST: &str = "no_password_appears_in_validate_output_errors_status_or_logs";
    const PASSWORD: &str = "s3cret-right-password";
    const WRONG: &str = "s3cret-wrong-password";
    const IGGY_WRONG: &str = "s3cret-wrong-iggy-password";
    ferry_tests::init_logging();
    let options = SecantusOptions { tls: None, user: Some(("ferry", PASSWORD)) };
    let Some(mongo) = MongoServer::start_secantusdb(TEST, options).await else { return };
    let Some(iggy) = IggyServer::start(TEST).await else { return };
    let (stream, database) = (unique("secrets"), unique("secrets"));
    produce_readings(&iggy, &stream).await;
    let files = tempfile::tempdir().unwrap();
    let secrets = [PASSWORD, WRONG, IGGY_WRONG];
    let shows_no_secret = |what: &str, text: &str| {
        for secret in secrets {
            assert!(!text.contains(secret), "{what} shows a password: {text}");
        }
    };

    // `ferry validate` on a good file, then on files broken where the passwords are.
    let good = readings_in(&iggy, None, &stream, &mongo, &database).text();
    let good_path = write(files.path(), "good.toml", &good);
    let (verdict, output) = validate(good_path).await;
    assert!(verdict.is_ok(), "{output}");
    shows_no_secret("ferry validate", &output);
    let iggy_password = format!("[source.iggy]\npassword = \"{IGGY_WRONG}\"\n");
    let broken = [
        ("unterminated.toml", good.replace("[source.iggy]\n", &format!("[source.iggy]\npassword = \"{IGGY_WRONG}\n"))),
        ("not-text.toml", good.replace("[source.iggy]\n", "[source.iggy]\npassword = 31415926\n")),
        ("scheme.toml", good.replace("mongodb://", "mongo://")),
        ("syntax-on-uri.toml", good.replace(&format!("uri = \"{}\"", mongo.uri()), &format!("uri = {}", mongo.uri()))),
    ];
    for (name, text) in broken {
        let path = write(files.path(), name, &text);
        let (verdict, output) = validate(path).await;
        let error = error_chain(&verdict.expect_err("the file is refused"));
        assert!(error.contains(name), "the error names the file: {error}");
        shows_no_secret(name, &(error + &output));
    }

    // Running: a wrong MongoDB password, and a wrong Iggy password.
    let run = tempfile::tempdir().unwrap();
    let wrong_mongo = good.replace(PASSWORD, WRONG).replace("readings-in", "wrong-mongo");
    write(run.path(), "wrong-mongo.toml", &wrong_mongo);
    let wrong_iggy = good.replace("readings-in", "wrong-iggy").replace("[source.iggy]\n", &iggy_password);
    write(run.path(), "wrong-iggy.toml", &wrong_iggy);
    let ferry = RunningFerry::start(&[run.path().to_owned()], true).await;
    for (name, refusal) in [("wrong-mongo", "authentication failed"), ("wrong-iggy", "logging in to Iggy")] {
        let error = wait::until("the refused login in the status", PATIENCE, || async {
            let status = ferry.pipeline(name).await;
            status["last_error"]["message"].as_str().filter(|error| error.contains(refusal)).map(str::to_owned)
        })
        .await;
        shows_no_secret(name, &error);
    }
    for path in ["/metrics", "/pipelines", "/ready", "/pipelines/wrong-mongo", "/pipelines/wrong-iggy"] {
        shows_no_secret(path, &ferry.get(path).await.1);
    }
    ferry.stop().await;
    for secret in secrets {
        assert_eq!(logs::containing(secret), Vec::<String>::new(), "a log line shows a password");
    }
    assert_eq!(count(&mongo, &database).await, 0, "neither pipeline got in");
}
