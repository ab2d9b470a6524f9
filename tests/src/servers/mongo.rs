//! A MongoDB (or MongoDB-compatible) server for a test.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use mongodb::Client;
use mongodb::bson::doc;

use super::docker::DockerContainer;
use super::process::{ServerProcess, find_binary};
use super::{free_port, missing};

const START_DEADLINE: Duration = Duration::from_secs(60);

pub struct MongoServer {
    uri: String,
    running: Running,
}

enum Running {
    /// `MONGODB_URI`: someone else's server.
    External,
    SecantusDb {
        process: Option<ServerProcess>,
        port: u16,
        storage: tempfile::TempDir,
        binary: PathBuf,
    },
    Docker {
        _container: DockerContainer,
    },
}

impl MongoServer {
    /// A running server, or `None` (after saying so) when none can be had.
    pub async fn start(test: &str) -> Option<Self> {
        if let Ok(uri) = std::env::var("MONGODB_URI") {
            let server = Self { uri, running: Running::External };
            server.wait_ready().await;
            return Some(server);
        }
        if let Some(container) = DockerContainer::mongo().await {
            let server = Self { uri: container.mongo_uri(), running: Running::Docker { _container: container } };
            server.wait_ready().await;
            return Some(server);
        }
        let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/secantusd-py");
        if let Some(binary) = find_binary("SECANTUSD_BIN", "secantusd-py", &[venv]) {
            let port = free_port();
            let storage = tempfile::tempdir().expect("a temporary directory");
            let mut server = Self {
                uri: format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
                running: Running::SecantusDb { process: None, port, storage, binary },
            };
            server.start_secantus().await;
            return Some(server);
        }
        missing(test, "no MongoDB (set MONGODB_URI, run Docker, or `pip install secantusdb` for secantusd-py)");
        None
    }

    /// A SecantusDB not started yet (`start_again` starts it), its URI known
    /// now: for what Ferry does while MongoDB is not up. Needs secantusd-py;
    /// without it, says so and gives `None`.
    pub async fn not_started(test: &str) -> Option<Self> {
        let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/secantusd-py");
        let Some(binary) = find_binary("SECANTUSD_BIN", "secantusd-py", &[venv]) else {
            missing(test, "no secantusd-py (`pip install secantusdb`), which this test starts once Ferry is waiting");
            return None;
        };
        let port = free_port();
        let storage = tempfile::tempdir().expect("a temporary directory");
        Some(Self {
            uri: format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
            running: Running::SecantusDb { process: None, port, storage, binary },
        })
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    pub async fn client(&self) -> Client {
        Client::with_uri_str(&self.uri).await.expect("the test server's URI parses")
    }

    /// Whether this is SecantusDB, whose differences from MongoDB some tests
    /// must allow for (each says which).
    pub fn is_secantusdb(&self) -> bool {
        matches!(self.running, Running::SecantusDb { .. })
    }

    /// Whether `stop`/`start_again` work (only for a server this fixture runs).
    pub fn can_restart(&self) -> bool {
        matches!(self.running, Running::SecantusDb { .. })
    }

    /// Kills the server, keeping its storage.
    pub fn stop(&mut self) {
        if let Running::SecantusDb { process, .. } = &mut self.running {
            process.take();
        }
    }

    /// Starts the server again on the same port and storage.
    pub async fn start_again(&mut self) {
        self.start_secantus().await;
    }

    async fn start_secantus(&mut self) {
        let Running::SecantusDb { process, port, storage, binary } = &mut self.running else {
            panic!("only a SecantusDB started by the test can be restarted");
        };
        let mut command = Command::new(&*binary);
        command
            .arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .arg("--storage-path")
            .arg(storage.path().join("data"))
            .arg("--log-level")
            .arg("WARNING");
        let log = storage.path().join("secantusd.log");
        *process = Some(ServerProcess::spawn(command, &log).expect("secantusd-py starts"));
        self.wait_ready().await;
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + START_DEADLINE;
        let client = self.client().await;
        loop {
            match client.database("admin").run_command(doc! { "ping": 1 }).await {
                Ok(_) => return,
                Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(error) => {
                    let log = match &self.running {
                        Running::SecantusDb { process: Some(process), .. } => process.log_tail(),
                        _ => String::new(),
                    };
                    panic!("MongoDB at {} did not come up: {error}\n{log}", self.uri);
                }
            }
        }
    }
}
