//! A MongoDB (or MongoDB-compatible) server for a test.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use mongodb::Client;
use mongodb::bson::doc;

use super::docker::DockerContainer;
use super::process::{ServerProcess, find_binary};
use super::tls::TestCa;
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
        /// `--tls-*` and `--auth` flags, for servers started with options.
        flags: Vec<String>,
    },
    Docker {
        _container: DockerContainer,
    },
}

/// What [`MongoServer::start_secantusdb`] starts a server with.
#[derive(Default)]
pub struct SecantusOptions<'a> {
    pub tls: Option<&'a TestCa>,
    /// A user and password the server requires.
    pub user: Option<(&'a str, &'a str)>,
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
                running: Running::SecantusDb { process: None, port, storage, binary, flags: Vec::new() },
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
            missing(test, "no secantusd-py (`pip install secantusdb`), a server this test starts and controls itself");
            return None;
        };
        let port = free_port();
        let storage = tempfile::tempdir().expect("a temporary directory");
        Some(Self {
            uri: format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
            running: Running::SecantusDb { process: None, port, storage, binary, flags: Vec::new() },
        })
    }

    /// A SecantusDB of the test's own with TLS (a certificate `ca` signed)
    /// and/or a user it requires (SCRAM-SHA-256); `uri` carries both.
    /// Needs secantusd-py: an external server or image has its own setup.
    pub async fn start_secantusdb(test: &str, options: SecantusOptions<'_>) -> Option<Self> {
        let mut server = Self::not_started(test).await?;
        let Running::SecantusDb { port, flags, .. } = &mut server.running else { unreachable!("made above") };
        let mut query = "directConnection=true".to_owned();
        if let Some(ca) = options.tls {
            for (flag, file) in [("--tls-cert-file", ca.cert_file()), ("--tls-key-file", ca.key_file())] {
                flags.extend([flag.to_owned(), file.display().to_string()]);
            }
            query += &format!("&tls=true&tlsCAFile={}", ca.ca_file().display());
        }
        let port = *port;
        server.uri = format!("mongodb://127.0.0.1:{port}/?{query}");
        if let Some((user, password)) = options.user {
            // Users are made on a server without --auth, which then restarts with it.
            server.start_secantus().await;
            let command = doc! { "createUser": user, "pwd": password, "roles": ["root"] };
            server.client().await.database("admin").run_command(command).await.expect("the user is created");
            // A graceful stop: after kill -9 SecantusDB may not have the user on disk yet.
            let Running::SecantusDb { process, flags, .. } = &mut server.running else { unreachable!("made above") };
            process.take().expect("started above").terminate();
            flags.push("--auth".to_owned());
            server.uri = format!("mongodb://{user}:{password}@127.0.0.1:{port}/?{query}");
        }
        server.start_secantus().await;
        Some(server)
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

    /// Stops the server as a service manager would (SIGTERM), keeping its
    /// storage; `start_again` brings it back.
    pub fn stop_gracefully(&mut self) {
        if let Running::SecantusDb { process, .. } = &mut self.running
            && let Some(mut process) = process.take()
        {
            process.terminate();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open and go unanswered.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    fn signal(&self, signal: &str) {
        match &self.running {
            Running::SecantusDb { process: Some(process), .. } => process.signal(signal),
            _ => panic!("only a running SecantusDB started by the test can be signalled"),
        }
    }

    /// Starts the server again on the same port and storage.
    pub async fn start_again(&mut self) {
        self.start_secantus().await;
    }

    async fn start_secantus(&mut self) {
        let Running::SecantusDb { process, port, storage, binary, flags } = &mut self.running else {
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
            .arg("WARNING")
            .args(&*flags);
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
