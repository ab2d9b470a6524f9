//! Servers in containers, for machines with a Docker engine.
//!
//! Not exercised on Ferry's development machine (no Docker engine there);
//! it follows testcontainers' documented API and the images' documented
//! settings.

use std::sync::OnceLock;

use mongodb::bson::doc;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

const IGGY_PORT: u16 = 8090;
const MONGO_PORT: u16 = 27017;

pub struct DockerContainer {
    // Boxed: the handle is large and the enums holding it are mostly not Docker.
    _container: Box<ContainerAsync<GenericImage>>,
    host_port: u16,
}

impl DockerContainer {
    /// `apache/iggy:0.8.0` with its root user `iggy`/`iggy`.
    pub async fn iggy() -> Option<Self> {
        let image = GenericImage::new("apache/iggy", "0.8.0")
            .with_exposed_port(IGGY_PORT.tcp())
            .with_wait_for(WaitFor::message_on_stdout("Iggy TCP server has started"))
            .with_env_var("IGGY_TCP_ADDRESS", format!("0.0.0.0:{IGGY_PORT}"))
            .with_env_var("IGGY_ROOT_USERNAME", "iggy")
            .with_env_var("IGGY_ROOT_PASSWORD", "iggy")
            // The server uses io_uring, which Docker's default seccomp profile
            // blocks; Iggy's own compose file runs it the same way.
            .with_security_opt("seccomp=unconfined")
            .with_cap_add("SYS_NICE")
            .with_ulimit("memlock", -1, Some(-1));
        Self::start(image, IGGY_PORT).await
    }

    /// `mongo` as a single-node replica set (change streams need one).
    pub async fn mongo() -> Option<Self> {
        let image = GenericImage::new("mongo", "8")
            .with_exposed_port(MONGO_PORT.tcp())
            .with_wait_for(WaitFor::message_on_stdout("Waiting for connections"))
            .with_cmd(["--replSet", "rs0", "--bind_ip_all"]);
        let container = Self::start(image, MONGO_PORT).await?;
        let client = mongodb::Client::with_uri_str(container.mongo_uri()).await.ok()?;
        let config = doc! { "_id": "rs0", "members": [{ "_id": 0, "host": format!("localhost:{MONGO_PORT}") }] };
        client.database("admin").run_command(doc! { "replSetInitiate": config }).await.ok()?;
        Some(container)
    }

    async fn start(image: impl Into<testcontainers::ContainerRequest<GenericImage>> + Send, port: u16) -> Option<Self> {
        if !docker_answers() {
            return None;
        }
        let container = image.into().start().await.ok()?;
        let host_port = container.get_host_port_ipv4(port.tcp()).await.ok()?;
        Some(Self { _container: Box::new(container), host_port })
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.host_port)
    }

    pub fn mongo_uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.host_port)
    }
}

/// Whether a Docker engine answers (the CLI alone is not enough).
fn docker_answers() -> bool {
    static ANSWERS: OnceLock<bool> = OnceLock::new();
    *ANSWERS.get_or_init(|| {
        std::process::Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output()
            .is_ok_and(|output| output.status.success())
    })
}
