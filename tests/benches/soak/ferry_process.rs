//! `ferry run` as its own process, to be killed with SIGKILL and started
//! again on the same pipeline file, and watched through its admin endpoint.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferry_tests::process_stats::{ferry_binary, rss_bytes};
use serde_json::Value;

pub struct FerryProcess {
    binary: PathBuf,
    pipeline: PathBuf,
    work: PathBuf,
    admin: String,
    child: Option<Child>,
    http: reqwest::Client,
}

impl FerryProcess {
    /// Writes `pipeline` (TOML) into `work`, compiles its transforms into
    /// the cache, and starts `ferry run` on it.
    pub fn start(work: &Path, pipeline: &str) -> Self {
        let path = work.join("pipeline.toml");
        std::fs::write(&path, pipeline).expect("the pipeline file is written");
        let mut ferry = Self {
            binary: ferry_binary(),
            pipeline: path,
            work: work.to_owned(),
            admin: format!("127.0.0.1:{}", ferry_tests::servers::free_port()),
            child: None,
            http: reqwest::Client::new(),
        };
        let validated = ferry.command("validate").stdout(Stdio::null()).status().expect("ferry validate runs");
        assert!(validated.success(), "the soak's pipeline is valid");
        ferry.restart();
        ferry
    }

    fn command(&self, verb: &str) -> Command {
        let mut command = Command::new(&self.binary);
        command.arg(verb).arg(&self.pipeline).env("FERRY_CACHE_DIR", self.work.join("cache")).env("FERRY_LOG", "warn");
        if verb == "run" {
            command.args(["--admin", &self.admin, "--progress-interval", "0s"]);
        }
        command
    }

    /// Starts `ferry run` (after a kill, on the same file and port).
    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.work.join("ferry.log"))
            .expect("the log file opens");
        let child = self
            .command("run")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log)
            .spawn()
            .expect("ferry starts");
        self.child = Some(child);
    }

    /// SIGKILL, as a crash or the OOM killer would, and reaps the process.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("ferry is running");
        child.kill().expect("SIGKILL is delivered");
        let _ = child.wait();
    }

    /// SIGTERM, and checks that ferry exits 0.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("ferry is running");
        ferry_tests::process_stats::stop(&mut child);
    }

    /// Panics (with the log's tail) if ferry has exited on its own.
    pub fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("ferry was started");
        if let Some(status) = child.try_wait().expect("the process can be waited on") {
            panic!("ferry exited by itself ({status}):\n{}", self.log_tail(20));
        }
    }

    pub fn rss(&self) -> u64 {
        self.child.as_ref().map_or(0, |child| rss_bytes(child.id()))
    }

    /// The pipeline's status, or `None` while ferry is starting.
    pub async fn status(&self, pipeline: &str) -> Option<Value> {
        let url = format!("http://{}/pipelines/{pipeline}", self.admin);
        let response = self.http.get(url).timeout(Duration::from_secs(5)).send().await.ok()?;
        response.json().await.ok()
    }

    /// `/metrics` as Prometheus text (empty while ferry is starting).
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.admin);
        match self.http.get(url).timeout(Duration::from_secs(5)).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The last `lines` lines ferry logged.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.work.join("ferry.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// How many messages of its Iggy source the pipeline has committed, over
    /// all partitions (`None` while ferry is starting).
    pub async fn committed(&self, pipeline: &str) -> Option<u64> {
        let status = self.status(pipeline).await?;
        let partitions = status["position"]["partitions"].as_array()?;
        Some(partitions.iter().filter_map(|p| p["committed_offset"].as_u64()).map(|offset| offset + 1).sum())
    }
}

impl Drop for FerryProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
