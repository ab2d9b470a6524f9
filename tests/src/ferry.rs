//! Ferry as `ferry run` runs it — many pipeline files, the admin endpoint,
//! reloads — in this test process, on a free admin port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ferry::admin::AdminServer;
use ferry::runner::{self, ReloadCause, RunOptions, RunReport};
use ferry::telemetry::Telemetry;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running `ferry run`.
pub struct RunningFerry {
    pub admin: SocketAddr,
    pub telemetry: Telemetry,
    shutdown: CancellationToken,
    reloads: mpsc::Sender<ReloadCause>,
    task: JoinHandle<RunReport>,
    http: reqwest::Client,
}

impl RunningFerry {
    /// Runs the pipeline files (or folders) in `paths`, as `ferry run
    /// [--watch] PATHS...` does, with progress lines off.
    pub async fn start(paths: &[PathBuf], watch: bool) -> Self {
        let files = runner::load_all(paths).unwrap_or_else(|error| panic!("the pipeline files are valid: {error}"));
        let runtime = Arc::new(crate::compile_cache::runtime());
        let telemetry = Telemetry::new();
        let admin = AdminServer::start("127.0.0.1:0".parse().unwrap(), telemetry.clone()).await.expect("admin binds");
        let address = admin.address();
        let (shutdown, (reloads, reload_requests)) = (CancellationToken::new(), mpsc::channel(4));
        let options = RunOptions { paths: paths.to_vec(), watch, progress_every: None };
        let (run_telemetry, run_shutdown) = (telemetry.clone(), shutdown.clone());
        let task = tokio::spawn(async move {
            let report = runner::run(files, options, runtime, run_telemetry, run_shutdown, reload_requests).await;
            admin.stop().await;
            report
        });
        Self { admin: address, telemetry, shutdown, reloads, task, http: reqwest::Client::new() }
    }

    /// As SIGHUP does.
    pub async fn reload(&self) {
        self.reloads.send(ReloadCause::Signal).await.expect("ferry is running");
    }

    /// GET `path` from the admin endpoint: the status code and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("http://{}{path}", self.admin))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        let status = response.status().as_u16();
        (status, response.text().await.expect("a body"))
    }

    /// GET `path` as JSON.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.get(path).await;
        (status, serde_json::from_str(&body).unwrap_or_else(|error| panic!("GET {path}: not JSON ({error}): {body}")))
    }

    /// `/pipelines/NAME`.
    pub async fn pipeline(&self, name: &str) -> Value {
        self.get_json(&format!("/pipelines/{name}")).await.1
    }

    /// The samples of `/metrics` whose name and labels start with `series`
    /// (say `ferry_records_read_total{pipeline="p"}`), summed.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (_, text) = self.get("/metrics").await;
        sample(&text, series)
    }

    /// Stops every pipeline as SIGTERM does and says how each ended.
    pub async fn stop(self) -> RunReport {
        self.shutdown.cancel();
        self.task.await.expect("ferry's run does not panic")
    }

    /// Whether every pipeline has stopped by itself.
    pub fn finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// The sum of the samples in Prometheus text of the metric `series` names
/// that carry every label it gives (`x_total{pipeline="p"}` sums all of
/// pipeline p's `x_total` series); `None` when there are none.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    let (name, wanted) = split_series(series);
    let values: Vec<f64> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (line_series, value) = line.rsplit_once(' ')?;
            let (line_name, labels) = split_series(line_series);
            (line_name == name && wanted.iter().all(|label| labels.contains(label))).then(|| value.parse().ok())?
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// `name{a="1",b="2"}` as `name` and its `a="1"`, `b="2"`.
fn split_series(series: &str) -> (&str, Vec<&str>) {
    match series.split_once('{') {
        Some((name, labels)) => {
            (name, labels.trim_end_matches('}').split(',').filter(|label| !label.is_empty()).collect())
        }
        None => (series, Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::sample;

    #[test]
    fn given_prometheus_text_then_samples_are_found_by_name_and_leading_labels() {
        let text = "# TYPE x counter\nx_total{pipeline=\"p\",stage=\"a\"} 2\nx_total{pipeline=\"p\",stage=\"b\"} 3\n\
                    x_total{pipeline=\"q\"} 7\ny 1.5\n";
        assert_eq!(sample(text, "x_total{pipeline=\"p\"}"), Some(5.0));
        assert_eq!(sample(text, "x_total{pipeline=\"p\",stage=\"b\"}"), Some(3.0));
        assert_eq!(sample(text, "x_total"), Some(12.0));
        assert_eq!(sample(text, "y"), Some(1.5));
        assert_eq!(sample(text, "z"), None);
    }
}
