//! One `ferry run` of a benchmark's pipeline over a topic filled before it
//! starts: the release binary as its own process, timed from Ferry's own
//! metrics (no count of the sink is polled, which would load the server
//! being measured).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::ferry::sample;
use crate::pipeline_file::PipelineFile;
use crate::process_stats::{cpu_time, rss_bytes, stop};
use crate::servers::free_port;

/// A run: steady messages/s, CPU µs per message, RSS at the end.
pub struct Measured {
    /// Instances of the first transform Ferry ran (what `auto` resolved
    /// to), from its status; 0 without transforms.
    pub instances: usize,
    pub rate: f64,
    pub cpu_us: f64,
    pub rss_mib: f64,
    /// Cores Ferry kept busy from the first commit to the last.
    pub ferry_cores: f64,
    /// Cores the Iggy server kept busy over the same span, when the bench
    /// started it (the machine's cores are shared with it).
    pub server_cores: Option<f64>,
}

/// Runs `file` (an Iggy source of one partition holding `messages`
/// messages, read by a consumer group of its own) until every message is
/// committed. The rate counts from the first commit seen to the last, so
/// start-up (compiling, instantiating) is left out; the rate from process
/// start and where a batch's time went are printed on one line. `server`
/// is the Iggy server's process id, whose CPU is counted over the same
/// span.
pub async fn until_committed(
    ferry: &Path,
    work: &Path,
    name: &str,
    file: &PipelineFile,
    messages: usize,
    server: Option<u32>,
) -> Measured {
    let pipeline = work.join(format!("{name}.toml"));
    std::fs::write(&pipeline, file.text()).unwrap();
    let admin = format!("127.0.0.1:{}", free_port());
    let command = |verb: &str| {
        let mut command = Command::new(ferry);
        command.arg(verb).arg(&pipeline).env("FERRY_CACHE_DIR", work.join("cache")).env("FERRY_LOG", "warn");
        command
    };
    assert!(command("validate").stdout(Stdio::null()).status().unwrap().success());
    let started = Instant::now();
    let mut process = command("run").args(["--admin", &admin]).stdout(Stdio::null()).spawn().expect("ferry starts");
    let pid = process.id();
    let http = reqwest::Client::new();
    let last = (messages - 1) as f64;
    let mut first: Option<(Instant, f64)> = None;
    // CPU time of Ferry and of the server when the first commit was seen.
    let mut cpu_at_first = (Duration::ZERO, Duration::ZERO);
    let (finished, metrics) = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let metrics = match http.get(format!("http://{admin}/metrics")).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => continue,
        };
        let committed = sample(&metrics, "ferry_iggy_committed_offset");
        if let (None, Some(offset)) = (first, committed) {
            first = Some((Instant::now(), offset));
            cpu_at_first = (cpu_time(pid), server.map_or(Duration::ZERO, cpu_time));
        }
        if committed.is_some_and(|offset| offset >= last) {
            break (Instant::now(), metrics);
        }
        assert!(process.try_wait().unwrap().is_none(), "ferry exited early");
    };
    let (elapsed, cpu, rss) = (started.elapsed(), cpu_time(pid), rss_bytes(pid));
    let server_cpu = server.map(cpu_time);
    let instances = instances_running(&http, &admin).await;
    stop(&mut process);
    let (first_at, first_offset) = first.expect("seen before the last");
    let span = (finished - first_at).as_secs_f64();
    let steady = (last - first_offset) / span;
    let ferry_cores = (cpu - cpu_at_first.0).as_secs_f64() / span;
    let server_cores = server_cpu.map(|cpu| (cpu - cpu_at_first.1).as_secs_f64() / span);
    let series = |series: &str| sample(&metrics, series).unwrap_or(f64::NAN);
    let mean_ms = |stage: &str| {
        let sum = series(&format!(r#"ferry_stage_duration_seconds_sum{{stage="{stage}"}}"#));
        1000.0 * sum / series(&format!(r#"ferry_stage_duration_seconds_count{{stage="{stage}"}}"#))
    };
    println!(
        "    (from process start: {:.0} messages/s; first commit after {} ms; {:.0} records a batch; \
         mean poll {:.2} ms, transform {:.2} ms, write {:.2} ms, commit {:.2} ms)",
        messages as f64 / elapsed.as_secs_f64(),
        (first_at - started).as_millis(),
        series("ferry_records_read_total") / series("ferry_batches_total"),
        mean_ms("poll"),
        mean_ms("transform"),
        mean_ms("write"),
        mean_ms("commit"),
    );
    Measured {
        instances,
        rate: steady,
        cpu_us: cpu.as_secs_f64() * 1e6 / messages as f64,
        rss_mib: rss as f64 / 1048576.0,
        ferry_cores,
        server_cores,
    }
}

/// How many instances of its first transform the (only) pipeline runs: its
/// status lists each one's memory.
async fn instances_running(http: &reqwest::Client, admin: &str) -> usize {
    let status: serde_json::Value =
        http.get(format!("http://{admin}/pipelines")).send().await.unwrap().json().await.unwrap();
    status[0]["transforms"][0]["instance_memory_bytes"].as_array().map_or(0, Vec::len)
}
