//! An Iggy server for a test.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ferry::config::{IggyConnection, IggyProtocol, IggyTls};
use ferry::iggy_link::{Generation, Session};
use iggy::prelude::{Client, IggyClient, UserClient};

use super::docker::DockerContainer;
use super::iggy_segments::{TrimmedSegment, only_partition, trim_unindexed_tails, unindex_last_messages};
use super::process::{ServerProcess, find_binary};
use super::tls::{SERVER_NAME, TestCa};
use super::{free_port, missing};

const START_DEADLINE: Duration = Duration::from_secs(60);

pub struct IggyServer {
    address: String,
    /// The protocol generation the server speaks.
    generation: Generation,
    /// How clients reach a server that speaks TLS only.
    tls: Option<IggyTls>,
    running: Running,
    _data: Option<tempfile::TempDir>,
}

enum Running {
    /// `IGGY_ADDRESS`: someone else's server.
    External,
    Process {
        process: ServerProcess,
        command: Box<dyn Fn() -> Command + Send + Sync>,
    },
    Docker {
        _container: DockerContainer,
    },
}

impl IggyServer {
    /// A running server, or `None` (after saying so) when none can be had.
    pub async fn start(test: &str) -> Option<Self> {
        if let Ok(address) = std::env::var("IGGY_ADDRESS") {
            let server =
                Self { address, generation: Generation::V0_8, tls: None, running: Running::External, _data: None };
            server.wait_ready().await;
            return Some(server);
        }
        if let Some(binary) = find_binary("IGGY_SERVER_BIN", "iggy-server", &[]) {
            return Some(Self::spawn(binary, Generation::V0_8, None, false).await);
        }
        if let Some(container) = DockerContainer::iggy().await {
            let address = container.address();
            let server = Self {
                address,
                generation: Generation::V0_8,
                tls: None,
                running: Running::Docker { _container: container },
                _data: None,
            };
            server.wait_ready().await;
            return Some(server);
        }
        missing(
            test,
            "no Iggy server (set IGGY_ADDRESS, put iggy-server on PATH or in IGGY_SERVER_BIN, or run Docker)",
        );
        None
    }

    /// A server of its own that speaks TLS only, with the certificate `ca`
    /// signed; `connection` trusts `ca`. Needs the `iggy-server` binary (an
    /// external server or image has its own certificates).
    pub async fn start_tls(test: &str, ca: &TestCa) -> Option<Self> {
        let Some(binary) = find_binary("IGGY_SERVER_BIN", "iggy-server", &[]) else {
            missing(test, "no iggy-server binary (on PATH or in IGGY_SERVER_BIN) to start with a test certificate");
            return None;
        };
        Some(Self::spawn(binary, Generation::V0_8, Some(ca), false).await)
    }

    /// As `start_tls`, an iggy-server 0.9 (`IGGY_SERVER_09_BIN`, or
    /// `iggy-server-0.9` on PATH).
    pub async fn start_0_9_tls(test: &str, ca: &TestCa) -> Option<Self> {
        let Some(binary) = find_binary("IGGY_SERVER_09_BIN", "iggy-server-0.9", &[]) else {
            missing(test, "no iggy-server 0.9 (put iggy-server-0.9 on PATH or set IGGY_SERVER_09_BIN)");
            return None;
        };
        Some(Self::spawn(binary, Generation::V0_9, Some(ca), false).await)
    }

    /// A server of its own that saves every message batch to disk (fsync)
    /// before acknowledging it, so that kill -9 loses nothing it
    /// acknowledged: by default iggy-server buffers up to 1024 messages or
    /// 30 s in memory. For fault tests that crash the server.
    pub async fn start_durable(test: &str) -> Option<Self> {
        let Some(binary) = find_binary("IGGY_SERVER_BIN", "iggy-server", &[]) else {
            missing(test, "no iggy-server binary (on PATH or in IGGY_SERVER_BIN) to start, crash and restart");
            return None;
        };
        Some(Self::spawn(binary, Generation::V0_8, None, true).await)
    }

    /// An iggy-server 0.9 of its own (`IGGY_SERVER_09_BIN`, or
    /// `iggy-server-0.9` on PATH), or `None` after saying so.
    pub async fn start_0_9(test: &str) -> Option<Self> {
        let Some(binary) = find_binary("IGGY_SERVER_09_BIN", "iggy-server-0.9", &[]) else {
            missing(test, "no iggy-server 0.9 (put iggy-server-0.9 on PATH or set IGGY_SERVER_09_BIN)");
            return None;
        };
        Some(Self::spawn(binary, Generation::V0_9, None, false).await)
    }

    async fn spawn(binary: std::path::PathBuf, generation: Generation, ca: Option<&TestCa>, durable: bool) -> Self {
        let data = tempfile::tempdir().expect("a temporary directory");
        let address = format!("127.0.0.1:{}", free_port());
        let (bind, system_path) = (address.clone(), data.path().join("iggy"));
        let certificate = ca.map(|ca| (ca.cert_file(), ca.key_file()));
        let command = move || {
            let mut command = Command::new(&binary);
            command
                .current_dir(system_path.parent().expect("a parent"))
                .env("IGGY_TCP_ADDRESS", &bind)
                .env("IGGY_HTTP_ENABLED", "false")
                .env("IGGY_QUIC_ENABLED", "false")
                .env("IGGY_WEBSOCKET_ENABLED", "false")
                .env("IGGY_SYSTEM_PATH", &system_path)
                .env("IGGY_ROOT_USERNAME", "iggy")
                .env("IGGY_ROOT_PASSWORD", "iggy");
            if durable {
                command
                    .env("IGGY_SYSTEM_PARTITION_MESSAGES_REQUIRED_TO_SAVE", "1")
                    .env("IGGY_SYSTEM_PARTITION_ENFORCE_FSYNC", "true")
                    .env("IGGY_SYSTEM_STATE_ENFORCE_FSYNC", "true");
            }
            if let Some((cert_file, key_file)) = &certificate {
                command
                    .env("IGGY_TCP_TLS_ENABLED", "true")
                    .env("IGGY_TCP_TLS_SELF_SIGNED", "false")
                    .env("IGGY_TCP_TLS_CERT_FILE", cert_file)
                    .env("IGGY_TCP_TLS_KEY_FILE", key_file);
            }
            command
        };
        let tls = ca.map(|ca| IggyTls {
            domain: Some(SERVER_NAME.to_owned()),
            ca_file: Some(ca.ca_file().display().to_string()),
        });
        let process =
            ServerProcess::spawn(command(), &data.path().join("iggy-server.log")).expect("iggy-server starts");
        let server = Self {
            address,
            generation,
            tls,
            running: Running::Process { process, command: Box::new(command) },
            _data: Some(data),
        };
        server.wait_ready().await;
        server
    }

    /// The server's process id, when this crate started it (for the
    /// benchmarks' CPU accounting).
    pub fn pid(&self) -> Option<u32> {
        match &self.running {
            Running::Process { process, .. } => process.pid(),
            _ => None,
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn connection(&self) -> IggyConnection {
        IggyConnection {
            address: self.address.clone(),
            username: "iggy".into(),
            password: "iggy".into(),
            tls: self.tls.clone(),
            protocol: IggyProtocol::Auto,
        }
    }

    /// A logged-in client of the `iggy` 0.10 SDK, which speaks 0.8 servers
    /// only: for tests that drive the server as that SDK's users do.
    pub async fn client(&self) -> IggyClient {
        assert_eq!(self.generation, Generation::V0_8, "the 0.10 SDK speaks only iggy-server 0.8; use session()");
        let mut builder = IggyClient::builder().with_tcp().with_server_address(self.address.clone()).with_no_delay();
        if let Some(tls) = &self.tls {
            builder = builder.with_tls_enabled(true);
            if let Some(domain) = &tls.domain {
                builder = builder.with_tls_domain(domain.clone());
            }
            if let Some(ca_file) = &tls.ca_file {
                builder = builder.with_tls_ca_file(ca_file.clone());
            }
        }
        let client = builder.build().expect("a client");
        client.connect().await.expect("the test server accepts a client");
        client.login_user("iggy", "iggy").await.expect("the test server accepts the login");
        client
    }

    /// A logged-in session of Ferry's own Iggy link, in whichever generation
    /// the server speaks.
    pub async fn session(&self) -> Session {
        ferry::iggy_link::connect(&self.connection()).await.expect("the test server accepts a session")
    }

    /// How many messages `stream`/`topic` holds (0 before it exists).
    pub async fn messages_in(&self, stream: &str, topic: &str) -> u64 {
        let session = self.session().await;
        let topic = session.topic(stream, topic).await.expect("the topic can be read");
        session.shutdown().await;
        topic.map_or(0, |topic| topic.messages())
    }

    /// Creates the stream and topic (with `partitions`) unless they exist.
    pub async fn ensure_topic(&self, stream: &str, topic: &str, partitions: u32) {
        let session = self.session().await;
        session.ensure_topic(stream, topic, partitions).await.expect("the topic is created");
        session.shutdown().await;
    }

    /// Kills the server (keeping its data) and starts it again on the same
    /// port. Only for servers this fixture started itself.
    pub async fn restart(&mut self) {
        self.relaunch(|_| ()).await;
    }

    /// Kills the server, then, before starting it again, cuts off what a
    /// flush the kill interrupted left in the log beyond the index (see
    /// [`trim_unindexed_tails`]): a batch the server never acknowledged,
    /// which its client sends again, and whose offsets 0.8 would otherwise
    /// reuse. For tests of what clients do through a crash, not of 0.8's
    /// recovery. Returns the segments it cut.
    pub async fn restart_recovered(&mut self) -> Vec<TrimmedSegment> {
        let mut trimmed = Vec::new();
        self.relaunch(|system| trimmed = trim_unindexed_tails(system).expect("the segments can be trimmed")).await;
        trimmed
    }

    /// Kills the server as if between a flush's `.log` and `.index` writes
    /// of the last `messages` messages of `partition` (of the one topic the
    /// server holds), and starts it again: the state iggy-server 0.8 cannot
    /// recover from.
    pub async fn crash_between_log_and_index(&mut self, partition: u32, messages: u64) {
        self.relaunch(|system| {
            let dir = only_partition(system, partition);
            unindex_last_messages(&dir, messages).expect("the index can be cut");
        })
        .await;
    }

    /// Kills the server, runs `while_down` on its system folder, and starts
    /// it again on the same port. Only for servers this fixture started.
    async fn relaunch(&mut self, while_down: impl FnOnce(&Path)) {
        let Running::Process { process, command } = &mut self.running else {
            panic!("only a server started by the test can be restarted");
        };
        process.kill();
        let data = self._data.as_ref().expect("own server").path();
        while_down(&data.join("iggy"));
        *process =
            ServerProcess::spawn(command(), &data.join("iggy-server-restarted.log")).expect("iggy-server restarts");
        self.wait_ready().await;
    }

    /// Kills the server for good (its data stays until the fixture drops).
    pub fn kill(&mut self) {
        if let Running::Process { process, .. } = &mut self.running {
            process.kill();
        }
    }

    /// The protocol generation the server speaks.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// How clients reach it when it speaks TLS only.
    pub(super) fn tls(&self) -> Option<&IggyTls> {
        self.tls.as_ref()
    }

    /// Whether the server answers a login, in the generation expected.
    async fn ready(&self) -> Result<(), String> {
        let session = ferry::iggy_link::connect(&self.connection()).await.map_err(|error| error.to_string())?;
        let generation = session.generation();
        session.shutdown().await;
        assert_eq!(generation, self.generation, "Iggy at {} speaks another generation", self.address);
        Ok(())
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            match self.ready().await {
                Ok(()) => return,
                Err(error) if Instant::now() < deadline => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => {
                    let log = match &self.running {
                        Running::Process { process, .. } => process.log_tail(),
                        _ => String::new(),
                    };
                    panic!("Iggy at {} did not come up: {error}\n{log}", self.address);
                }
            }
        }
    }
}
