//! The admin endpoint's routes and their answers.

use std::time::SystemTime;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde::Serialize;

use crate::telemetry::{PipelineReport, Telemetry};

/// The content type of the OpenMetrics text `prometheus-client` writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub fn router(telemetry: Telemetry) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/pipelines", get(pipelines))
        .route("/pipelines/{name}", get(pipeline))
        .with_state(telemetry)
}

async fn metrics(State(telemetry): State<Telemetry>) -> Response {
    ([(header::CONTENT_TYPE, OPENMETRICS)], telemetry.encode_metrics()).into_response()
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

async fn health() -> Json<Health> {
    Json(Health { status: "alive" })
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    /// The pipelines that are not ready, and why.
    not_ready: Vec<NotReady>,
}

#[derive(Serialize)]
struct NotReady {
    pipeline: String,
    state: crate::telemetry::State,
    reason: String,
}

async fn ready(State(telemetry): State<Telemetry>) -> Response {
    let now = SystemTime::now();
    let pipelines = telemetry.pipelines();
    let mut not_ready: Vec<NotReady> = pipelines
        .iter()
        .map(|pipeline| pipeline.report(now))
        .filter_map(|report| Some(NotReady { reason: report.reason?, pipeline: report.name, state: report.state }))
        .collect();
    if pipelines.is_empty() {
        not_ready.push(NotReady {
            pipeline: String::new(),
            state: crate::telemetry::State::Stopped,
            reason: "no pipelines are loaded".to_owned(),
        });
    }
    let ready = not_ready.is_empty();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Readiness { ready, not_ready })).into_response()
}

async fn pipelines(State(telemetry): State<Telemetry>) -> Json<Vec<PipelineReport>> {
    let now = SystemTime::now();
    Json(telemetry.pipelines().iter().map(|pipeline| pipeline.report(now)).collect())
}

async fn pipeline(State(telemetry): State<Telemetry>, Path(name): Path<String>) -> Response {
    match telemetry.pipelines().into_iter().find(|pipeline| pipeline.name() == name) {
        Some(pipeline) => Json(pipeline.report(SystemTime::now())).into_response(),
        None => (StatusCode::NOT_FOUND, Json(serde_json::json!({ "error": format!("no pipeline named {name:?}") })))
            .into_response(),
    }
}
