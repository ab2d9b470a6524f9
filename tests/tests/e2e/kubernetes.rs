//! The manifests of `deploy/kubernetes/`: rendered from its `values.toml`
//! and its pipeline files and compared with what is committed (so the two
//! cannot drift apart), and its pipelines checked as Ferry reads them. CI
//! validates the manifests against Kubernetes' schemas (offline, with the
//! PyPI package kubernetes-validate); no cluster is needed here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferry::config::{PipelineConfig, Route};
use sha2::{Digest, Sha256};

/// The folder of the manifests.
fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// One Deployment's values: `[consumers]` or `[changes]`.
struct Workload {
    /// `consumers` or `changes`: the Deployment is `ferry-<component>`.
    component: &'static str,
    pipeline: String,
    replicas: i64,
    cpu_request: String,
    memory_request: String,
    memory_limit: String,
}

struct Values {
    image: String,
    transforms_image: String,
    transforms_path: String,
    admin_port: i64,
    workloads: [Workload; 2],
}

impl Values {
    fn read() -> Self {
        let text = std::fs::read_to_string(folder().join("values.toml")).expect("values.toml");
        let values: toml::Table = toml::from_str(&text).expect("values.toml is TOML");
        let text_of = |table: &toml::Table, key: &str| {
            table[key].as_str().unwrap_or_else(|| panic!("values.toml: {key} is a string")).to_owned()
        };
        let workload = |component: &'static str| {
            let table = values[component].as_table().expect("a table per workload");
            Workload {
                component,
                pipeline: text_of(table, "pipeline"),
                replicas: table["replicas"].as_integer().expect("replicas is a number"),
                cpu_request: text_of(table, "cpu_request"),
                memory_request: text_of(table, "memory_request"),
                memory_limit: text_of(table, "memory_limit"),
            }
        };
        Self {
            image: text_of(&values, "image"),
            transforms_image: text_of(&values, "transforms_image"),
            transforms_path: text_of(&values, "transforms_path"),
            admin_port: values["admin_port"].as_integer().expect("admin_port is a number"),
            workloads: [workload("consumers"), workload("changes")],
        }
    }
}

/// Every manifest by file name, as the values and pipeline files make it.
fn render(values: &Values) -> BTreeMap<&'static str, String> {
    let pipelines = pipeline_files();
    let mut manifests = BTreeMap::new();
    manifests.insert("configmap.yaml", config_map(&pipelines));
    for workload in &values.workloads {
        let text = &pipelines[&workload.pipeline];
        let file = match workload.component {
            "consumers" => "consumers.yaml",
            _ => "changes.yaml",
        };
        manifests.insert(file, deployment(values, workload, text));
    }
    manifests.insert("service.yaml", service(values));
    manifests.insert("servicemonitor.yaml", SERVICE_MONITOR.to_owned());
    manifests.insert("kustomization.yaml", KUSTOMIZATION.to_owned());
    manifests
}

/// The pipeline files by name.
fn pipeline_files() -> BTreeMap<String, String> {
    let folder = folder().join("pipelines");
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&folder).expect("deploy/kubernetes/pipelines") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "toml") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            files.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    files
}

const HEADER: &str = "# Rendered from values.toml and pipelines/ (see values.toml); edit those, not this file.\n";

fn config_map(pipelines: &BTreeMap<String, String>) -> String {
    let mut text =
        format!("{HEADER}apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ferry-pipelines\n{LABELS}data:\n");
    for (name, file) in pipelines {
        text.push_str(&format!("  {name}: |\n"));
        for line in file.lines() {
            match line.is_empty() {
                true => text.push('\n'),
                false => text.push_str(&format!("    {line}\n")),
            }
        }
    }
    text
}

/// Every container's securityContext: no privileges, nothing written but its
/// volumes.
const LOCKED_DOWN: &str = r#"          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
"#;

const LABELS: &str = "  labels:\n    app.kubernetes.io/name: ferry\n";

fn deployment(values: &Values, workload: &Workload, pipeline: &str) -> String {
    let Values { image, transforms_image, transforms_path, admin_port, .. } = values;
    let Workload { component, pipeline: file, replicas, cpu_request, memory_request, memory_limit } = workload;
    // A changed pipeline file changes the pod template, so the pods roll.
    let checksum = hex::encode(Sha256::digest(pipeline.as_bytes()));
    // One workload's labels, at each depth they appear at.
    let labels = |indent: usize| {
        let pad = " ".repeat(indent);
        format!("{pad}app.kubernetes.io/name: ferry\n{pad}app.kubernetes.io/component: {component}\n")
    };
    let (labels_4, labels_6, labels_8) = (labels(4), labels(6), labels(8));
    let what = match *component {
        "consumers" => "Iggy → MongoDB: the replicas share the topic's partitions as one consumer group",
        _ => "MongoDB → Iggy: one replica leads, the others stand by to take over",
    };
    format!(
        r#"{HEADER}# {what}.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ferry-{component}
  labels:
{labels_4}spec:
  replicas: {replicas}
  selector:
    matchLabels:
{labels_6}  template:
    metadata:
      labels:
{labels_8}      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "{admin_port}"
        prometheus.io/path: /metrics
        ferry/pipeline-sha256: "{checksum}"
    spec:
      # SIGTERM finishes the batches in flight (and releases a standby's lease).
      terminationGracePeriodSeconds: 60
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        fsGroup: 65532
      initContainers:
        - name: transforms
          image: {transforms_image}
          command: ["sh", "-c", "cp {transforms_path}/*.wasm /transforms/"]
{LOCKED_DOWN}          volumeMounts:
            - name: transforms
              mountPath: /transforms
      containers:
        - name: ferry
          image: {image}
          args: ["run", "/etc/ferry/pipelines/{file}"]
          env:
            - name: FERRY_ADMIN
              value: "0.0.0.0:{admin_port}"
            - name: FERRY_LOG_FORMAT
              value: json
            - name: FERRY_CACHE_DIR
              value: /var/cache/ferry
          envFrom:
            # MONGODB_URI, IGGY_ADDRESS, IGGY_USERNAME, IGGY_PASSWORD
            - secretRef:
                name: ferry-connections
          ports:
            - name: admin
              containerPort: {admin_port}
          livenessProbe:
            httpGet:
              path: /health
              port: admin
            periodSeconds: 10
          readinessProbe:
            httpGet:
              path: /ready
              port: admin
            periodSeconds: 5
          resources:
            requests:
              cpu: {cpu_request}
              memory: {memory_request}
            limits:
              memory: {memory_limit}
{LOCKED_DOWN}          volumeMounts:
            - name: pipelines
              mountPath: /etc/ferry/pipelines
              readOnly: true
            - name: transforms
              mountPath: /transforms
              readOnly: true
            - name: cache
              mountPath: /var/cache/ferry
      volumes:
        - name: pipelines
          configMap:
            name: ferry-pipelines
        - name: transforms
          emptyDir: {{}}
        - name: cache
          emptyDir: {{}}
---
# A voluntary disruption (a node drain) takes one replica at a time.
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: ferry-{component}
  labels:
{labels_4}spec:
  maxUnavailable: 1
  selector:
    matchLabels:
{labels_6}"#
    )
}

fn service(values: &Values) -> String {
    let port = values.admin_port;
    format!(
        r#"{HEADER}# The admin endpoint of every Ferry pod, for the ServiceMonitor.
apiVersion: v1
kind: Service
metadata:
  name: ferry
{LABELS}spec:
  selector:
    app.kubernetes.io/name: ferry
  ports:
    - name: admin
      port: {port}
      targetPort: admin
"#
    )
}

const SERVICE_MONITOR: &str = r#"# Rendered from values.toml and pipelines/ (see values.toml); edit those, not this file.
# For the Prometheus Operator; without it, the pods' prometheus.io annotations serve.
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: ferry
  labels:
    app.kubernetes.io/name: ferry
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: ferry
  endpoints:
    - port: admin
      path: /metrics
      interval: 30s
"#;

const KUSTOMIZATION: &str = r#"# Rendered from values.toml and pipelines/ (see values.toml); edit those, not this file.
# kubectl apply -k deploy/kubernetes (after creating the ferry-connections Secret)
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - configmap.yaml
  - consumers.yaml
  - changes.yaml
  - service.yaml
  - servicemonitor.yaml
"#;

#[test]
fn the_manifests_are_rendered_from_the_values() {
    let rendered = render(&Values::read());
    let rewrite = std::env::var_os("FERRY_RENDER_MANIFESTS").is_some();
    let mut stale = Vec::new();
    for (file, text) in &rendered {
        let path = folder().join(file);
        if rewrite {
            std::fs::write(&path, text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(*file);
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from what values.toml and pipelines/ render; run \
         FERRY_RENDER_MANIFESTS=1 cargo test -p ferry-tests --test e2e kubernetes:: to write them"
    );
}

#[test]
fn the_deployed_pipelines_are_valid_and_each_scales_its_own_way() {
    let values = Values::read();
    let pipelines = pipeline_files();
    // The Secret's keys, as a pod's environment has them.
    let lookup = |name: &str| match name {
        "MONGODB_URI" => Some("mongodb://mongodb-0.mongodb:27017/?replicaSet=rs0".to_owned()),
        "IGGY_ADDRESS" => Some("iggy:8090".to_owned()),
        "IGGY_USERNAME" | "IGGY_PASSWORD" => Some("ferry".to_owned()),
        _ => None,
    };
    for workload in &values.workloads {
        let path = folder().join("pipelines").join(&workload.pipeline);
        let config = PipelineConfig::parse(&pipelines[&workload.pipeline], &path, &lookup)
            .unwrap_or_else(|error| panic!("{}: {error}", workload.pipeline));
        for transform in &config.transforms {
            // The init container copies the transforms image's components
            // into /transforms; the example ones are built here too.
            let name = transform.wasm.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                transform.wasm.starts_with("/transforms"),
                "{}: {name} is read from the transforms volume",
                workload.pipeline
            );
            assert!(guest_example(&name).is_file(), "{name} is one of the example transforms Ferry's image carries");
        }
        match workload.component {
            "consumers" => {
                let Route::IggyToMongo { source, .. } = &config.route else { panic!("consumers read Iggy") };
                let partitions = source.create.as_ref().map_or(0, |create| create.partitions);
                assert!(
                    workload.replicas as u32 <= partitions,
                    "no more consumer replicas ({}) than partitions ({partitions}): the rest would stand idle",
                    workload.replicas
                );
            }
            _ => {
                assert!(config.standby().is_some(), "the change-stream pipeline has standby settings");
                assert!(workload.replicas >= 2, "a leader and at least one standby");
            }
        }
    }
}

fn guest_example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-examples/target/wasm32-wasip2/release").join(name)
}
