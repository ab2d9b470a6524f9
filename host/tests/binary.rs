//! The `ferry` binary as an operator runs it: its logs (JSON or text, no
//! colour codes into a pipe, the Iggy SDK's chatter left out), its exit
//! codes, and its refusal of a bad set of files before anything starts.
//! No servers are needed: the pipelines point at closed ports (or one that
//! hangs up on every connection).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
const PATIENCE: Duration = Duration::from_secs(60);

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A loopback port that accepts each connection and closes it at once: no
/// Iggy server, but one its SDK connects to (and so logs about), unlike a
/// closed port, which Ferry's protocol probe turns away before the SDK.
fn hanging_up_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for connection in listener.incoming() {
            drop(connection);
        }
    });
    port
}

/// A pipeline file `name` whose servers are not there.
fn unreachable_pipeline(dir: &Path, name: &str, transforms: &str) -> std::path::PathBuf {
    pipeline_at(dir, name, transforms, closed_port())
}

/// A pipeline file `name` whose Iggy server is at `iggy_port` and whose
/// MongoDB is not there.
fn pipeline_at(dir: &Path, name: &str, transforms: &str, iggy_port: u16) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "name = \"{name}\"\n[source.iggy]\naddress = \"127.0.0.1:{iggy}\"\nstream = \"s\"\ntopic = \"t\"\n\
         consumer_group = \"g\"\n{transforms}\n[sink.mongodb]\nuri = \"mongodb://127.0.0.1:{mongo}\"\ndatabase = \"d\"\n\
         collection = \"c\"\n[delivery]\nretry_initial = \"50ms\"\nretry_max = \"200ms\"\n",
        iggy = iggy_port,
        mongo = closed_port(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// `ferry` with its stderr collected line by line as it comes.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(FERRY);
        command
            .args(args)
            .env_remove("FERRY_LOG")
            .env_remove("FERRY_LOG_FORMAT")
            .env("FERRY_CACHE_DIR", "/nonexistent-ferry-cache");
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("ferry starts");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collected = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                collected.lock().unwrap().push(line);
            }
        });
        Self { child, lines }
    }

    /// Waits until a stderr line satisfies `check`.
    fn wait_for_line(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(line) = self.lines.lock().unwrap().iter().find(|line| check(line)) {
                return line.clone();
            }
            assert!(Instant::now() < deadline, "no {what} within {PATIENCE:?}: {:#?}", self.lines.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the exit code; then all of stderr.
    fn terminate(self) -> (i32, Vec<String>) {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
        self.finish()
    }

    fn finish(mut self) -> (i32, Vec<String>) {
        let code = self.child.wait().unwrap().code().expect("an exit code, not a signal");
        // The reader thread has the rest once the pipe closes.
        std::thread::sleep(Duration::from_millis(50));
        let lines = self.lines.lock().unwrap().clone();
        (code, lines)
    }
}

#[test]
fn json_logs_are_one_object_per_line_naming_the_pipeline_and_a_signal_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    // The SDK gets to connect, so that leaving its lines out means something.
    let file = pipeline_at(dir.path(), "unreachable", "", hanging_up_port());
    let ferry = Running::start(&["run", file.to_str().unwrap(), "--log-format", "json", "--admin", "127.0.0.1:0"], &[]);
    let retry = ferry.wait_for_line("a retry warning", |line| line.contains("\"WARN\"") && line.contains("retry_in"));
    let retry: serde_json::Value = serde_json::from_str(&retry).unwrap();
    assert_eq!(retry["span"]["pipeline"], "unreachable", "the pipeline's span names it: {retry}");
    assert_eq!(retry["fields"]["stage"], "connect", "{retry}");
    let (code, lines) = ferry.terminate();
    assert_eq!(code, 0, "{lines:#?}");
    for line in &lines {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("not a JSON line ({error}): {line}"));
        let target = event["target"].as_str().unwrap_or_default();
        assert!(!target.starts_with("iggy"), "the Iggy SDK's own lines stay out by default: {line}");
    }
}

#[test]
fn text_logs_into_a_pipe_carry_no_colour_codes_show_progress_and_the_sdk_speaks_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    // The SDK gets to connect, and so has something to say.
    let file = pipeline_at(dir.path(), "quiet", "", hanging_up_port());
    let ferry = Running::start(&["run", file.to_str().unwrap(), "--admin", "off", "--progress-interval", "100ms"], &[]);
    ferry.wait_for_line("a retry warning", |line| line.contains("WARN") && line.contains("retry_in"));
    let progress = ferry.wait_for_line("a progress line", |line| line.contains("records/s"));
    assert!(progress.contains("quiet: "), "names the pipeline: {progress}");
    assert!(progress.contains(", 0 records/s, lag unknown, 0 dead letters since the last line"), "{progress}");
    let (code, lines) = ferry.terminate();
    assert_eq!(code, 0);
    assert!(lines.iter().all(|line| !line.contains('\u{1b}')), "no escape codes in a pipe: {lines:#?}");
    assert!(lines.iter().all(|line| !line.contains(" iggy::")), "no SDK lines by default: {lines:#?}");

    let ferry = Running::start(&["run", file.to_str().unwrap(), "--admin", "off"], &[("FERRY_LOG", "info,iggy=info")]);
    ferry.wait_for_line("the SDK's own line", |line| line.contains(" iggy::"));
    assert_eq!(ferry.terminate().0, 0);
}

#[test]
fn run_exits_1_naming_the_pipeline_that_failed_once_every_pipeline_has_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let transform = "[[transforms]]\nname = \"gone\"\nwasm = \"missing.wasm\"";
    let file = unreachable_pipeline(dir.path(), "broken", transform);
    let mut ferry = Running::start(&["run", file.to_str().unwrap(), "--admin", "off"], &[]);
    let mut stdout = ferry.child.stdout.take().unwrap();
    let (code, lines) = ferry.finish();
    let mut stdout_text = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut stdout_text).unwrap();
    let stdout = stdout_text;
    assert_eq!(code, 1, "{lines:#?}");
    assert!(stdout.contains("pipeline \"broken\" failed: "), "{stdout}");
    assert!(stdout.contains("missing.wasm"), "says why: {stdout}");
}

#[test]
fn the_same_pipeline_name_in_two_files_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let first = unreachable_pipeline(dir.path(), "twice", "");
    let second = dir.path().join("copy.toml");
    std::fs::copy(&first, &second).unwrap();
    let ferry = Running::start(&["run", dir.path().to_str().unwrap(), "--admin", "off"], &[]);
    let (code, lines) = ferry.finish();
    assert_eq!(code, 2, "{lines:#?}");
    let error = lines.join("\n");
    assert!(error.contains("pipeline \"twice\" is defined twice"), "{error}");
    assert!(error.contains("copy.toml") && error.contains("twice.toml"), "names both files: {error}");
    assert!(!error.contains("pipeline starting"), "nothing started: {error}");

    let validate = Command::new(FERRY).args(["validate", dir.path().to_str().unwrap()]).output().unwrap();
    assert_eq!(validate.status.code(), Some(2), "validate takes the same arguments");
}

#[test]
fn sighup_reloads_a_changed_file_and_refuses_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = unreachable_pipeline(dir.path(), "hup", "");
    let ferry = Running::start(&["run", file.to_str().unwrap(), "--admin", "off"], &[]);
    ferry.wait_for_line("the pipeline to start", |line| line.contains("pipeline starting"));
    let hangup = || {
        let status = Command::new("kill").arg("-HUP").arg(ferry.child.id().to_string()).status().unwrap();
        assert!(status.success());
    };

    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("retry_max = \"200ms\"", "retry_max = \"300ms\"")).unwrap();
    hangup();
    ferry.wait_for_line("the swap", |line| line.contains("reloaded: the new version resumes"));

    std::fs::write(&file, "name = \"hup\"\nthis is not TOML").unwrap();
    hangup();
    let refused = ferry.wait_for_line("the refusal", |line| line.contains("reload refused"));
    assert!(refused.contains("hup.toml is not valid TOML"), "says why: {refused}");
    let (code, lines) = ferry.terminate();
    assert_eq!(code, 0, "the old version ran on and stopped on the signal: {lines:#?}");
}

#[test]
fn a_folder_without_pipeline_files_is_refused_unless_watched() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().to_str().unwrap();
    for args in [vec!["run", folder, "--admin", "off"], vec!["validate", folder]] {
        let output = Command::new(FERRY).args(&args).output().unwrap();
        let command = args[0];
        assert_eq!(output.status.code(), Some(2), "{command}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("no pipeline files found"), "{command}");
    }
    // Watching, an empty folder waits for its first file.
    let ferry = Running::start(&["run", dir.path().to_str().unwrap(), "--admin", "off", "--watch"], &[]);
    ferry.wait_for_line("the watch", |line| line.contains("watching for changes"));
    unreachable_pipeline(dir.path(), "arrived", "");
    ferry.wait_for_line("the new file's pipeline", |line| line.contains("new pipeline file: starting it"));
    assert_eq!(ferry.terminate().0, 0);
}

#[test]
fn an_admin_address_in_use_is_an_error_that_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let file = unreachable_pipeline(dir.path(), "second", "");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = Command::new(FERRY).args(["run", file.to_str().unwrap(), "--admin", &address]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains(&format!("cannot listen for the admin endpoint on {address}")), "{error}");
    assert!(error.contains("--admin off"), "says what to do: {error}");
}
