//! `ferry run` as its own process, for what only a process can go through:
//! `kill -9`, SIGSTOP and SIGCONT, SIGTERM. Its admin endpoint is on a free
//! port; its log goes to a file that a failing test prints.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::ferry::sample;
use crate::servers::free_port;

/// The `ferry` binary of this build: `FERRY_BIN`, else the one beside the
/// test executable (`cargo test --workspace` builds it, for the host's own
/// binary tests), else `cargo build --bin ferry` must be run first.
pub fn ferry_executable() -> PathBuf {
    if let Some(binary) = std::env::var_os("FERRY_BIN") {
        return PathBuf::from(binary);
    }
    let exe = std::env::current_exe().expect("the test executable has a path");
    // target/<profile>/deps/<test> → target/<profile>/ferry
    let binary = exe.parent().and_then(Path::parent).map(|profile| profile.join("ferry")).expect("target layout");
    assert!(
        binary.is_file(),
        "{} is missing: run the tests with `cargo test --workspace` (it builds the binary) or run `cargo build --bin \
         ferry` first, or set FERRY_BIN",
        binary.display()
    );
    binary
}

pub struct FerryProcess {
    child: Child,
    pub admin: String,
    file: PathBuf,
    variables: Vec<(String, String)>,
    log: PathBuf,
    http: reqwest::Client,
}

impl FerryProcess {
    /// Starts `ferry run FILE --admin 127.0.0.1:<free port>`, its log in
    /// `log`.
    pub fn start(file: &Path, log: &Path) -> Self {
        Self::start_with(file, log, &[])
    }

    /// As [`Self::start`], with `variables` set in its environment.
    pub fn start_with(file: &Path, log: &Path, variables: &[(&str, &str)]) -> Self {
        let _ = std::fs::remove_file(log);
        let admin = format!("127.0.0.1:{}", free_port());
        let variables: Vec<(String, String)> =
            variables.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
        let child = spawn(file, &admin, &variables, log);
        Self { child, admin, file: file.to_owned(), variables, log: log.to_owned(), http: reqwest::Client::new() }
    }

    /// `kill -9`, as a crash or the OOM killer would, then `ferry run` again
    /// on the same file and admin port, its log carrying on in the same file.
    pub fn crash_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(&self.file, &self.admin, &self.variables, &self.log);
    }

    /// Panics, with the end of its log, if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("the process can be waited on") {
            panic!("ferry exited by itself ({status}):\n{}", self.log_tail(40));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `/pipelines/NAME`, or `None` while the endpoint does not answer
    /// (starting, or frozen).
    pub async fn pipeline(&self, name: &str) -> Option<Value> {
        self.get(&format!("/pipelines/{name}")).await?.json().await.ok()
    }

    /// The pipeline's role, `leader` or `standby`, when it answers.
    pub async fn role(&self, name: &str) -> Option<String> {
        let pipeline = self.pipeline(name).await?;
        pipeline["standby"]["role"].as_str().map(str::to_owned)
    }

    /// The status code of `/ready`, when it answers.
    pub async fn ready(&self) -> Option<u16> {
        Some(self.get("/ready").await?.status().as_u16())
    }

    /// The sum of `/metrics` samples of `series` (see [`sample`]).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        sample(&self.metrics().await, series)
    }

    /// `/metrics` as Prometheus text; empty while it does not answer.
    pub async fn metrics(&self) -> String {
        match self.get("/metrics").await {
            Some(response) => response.text().await.unwrap_or_default(),
            None => String::new(),
        }
    }

    /// GET `path` from the admin endpoint; `None` when it does not answer
    /// within two seconds (a frozen process never does).
    async fn get(&self, path: &str) -> Option<reqwest::Response> {
        let url = format!("http://{}{path}", self.admin);
        self.http.get(url).timeout(Duration::from_secs(2)).send().await.ok()
    }

    /// `kill -9`: the process dies mid-whatever, and is reaped.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Freezes the process (SIGSTOP), as a long pause or a cut-off host does.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Whether the process is stopped (by SIGSTOP, its own or another's).
    pub fn is_frozen(&self) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // The state follows the parenthesised command name.
        stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('T'))
    }

    /// Thaws a frozen process (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// SIGTERM, then waits for the process to exit: whether it exited 0.
    pub fn terminate(mut self) -> bool {
        self.signal("-TERM");
        self.child.wait().is_ok_and(|status| status.success())
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let tail: Vec<&str> = log.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill").arg(signal).arg(self.pid().to_string()).status();
        assert!(sent.is_ok_and(|status| status.success()), "kill {signal} {}", self.pid());
    }
}

impl Drop for FerryProcess {
    fn drop(&mut self) {
        // SIGKILL ends a frozen process too: none outlives its test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ferry run` on `file` with its admin endpoint on `admin`, appending to
/// `log`.
fn spawn(file: &Path, admin: &str, variables: &[(String, String)], log: &Path) -> Child {
    let output = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("the log file opens");
    Command::new(ferry_executable())
        .arg("--cache-dir")
        .arg(crate::compile_cache::dir())
        .args(["run", "--admin", admin])
        .arg(file)
        .env("FERRY_LOG", "info")
        .envs(variables.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .stdout(output.try_clone().unwrap())
        .stderr(output)
        .spawn()
        .expect("ferry starts")
}

/// Which of `processes` leads `pipeline`, when exactly one says so.
pub async fn sole_leader(processes: &[FerryProcess], pipeline: &str) -> Option<usize> {
    let mut leaders = Vec::new();
    for (index, process) in processes.iter().enumerate() {
        if process.role(pipeline).await.as_deref() == Some("leader") {
            leaders.push(index);
        }
    }
    (leaders.len() == 1).then(|| leaders[0])
}
