//! The transform engine against real components: the example transforms and
//! the misbehaving `probe` guest.

use std::time::{Duration, Instant};

use bytesize::ByteSize;
use ferry::config::{DirGrant, TransformConfig};
use ferry::record::{Failure, RecordResult};
use ferry::wasm::{TransformChain, TransformError, WasmRuntime};
use ferry_tests::guests;
use ferry_tests::records::{batch, emitted, json, text};
use serde_json::json;

fn runtime() -> WasmRuntime {
    ferry_tests::compile_cache::runtime()
}

fn chain(configs: &[TransformConfig]) -> TransformChain {
    let runtime = runtime();
    let transforms = configs.iter().map(|config| runtime.load(config).expect("the transform loads")).collect();
    let mut chain = TransformChain::new(transforms);
    chain.start().expect("the chain starts");
    chain
}

fn probe() -> TransformConfig {
    TransformConfig::new("probe", guests::PROBE)
}

#[test]
fn identity_passes_every_record_through_unchanged() {
    let mut chain = chain(&[TransformConfig::new("identity", guests::IDENTITY)]);
    let input = batch(&[r#"{"a":1}"#, "not json", ""]);
    let results = chain.run(&input).unwrap();
    assert_eq!(results.len(), 3);
    for (result, record) in results.iter().zip(&input.records) {
        let outputs = emitted(result);
        assert_eq!(outputs.len(), 1);
        assert_eq!(outputs[0].payload, record.payload);
        assert_eq!(outputs[0].key, record.key);
        assert_eq!(Some(&outputs[0].headers), record.headers.as_ref());
        assert_eq!((outputs[0].collection.as_deref(), outputs[0].write.as_ref()), (None, None));
    }
}

#[test]
fn sensor_enrich_emits_drops_and_fails() {
    let mut chain = chain(&[TransformConfig::new("enrich", guests::SENSOR_ENRICH)]);
    let results = chain
        .run(&batch(&[
            r#"{"sensor_id":"s1","temp":22.5,"ts":"2026-11-26T03:00:00Z"}"#,
            r#"{"sensor_id":"s2"}"#,
            "[1,2]",
        ]))
        .unwrap();
    let reading = emitted(&results[0]);
    assert_eq!(reading[0].collection.as_deref(), Some("readings"));
    assert_eq!(
        json(&reading[0]),
        json!({"sensor_id": "s1", "temp": 22.5, "temp_f": 72.5, "ts": {"$date": "2026-11-26T03:00:00.000Z"}})
    );
    assert_eq!(results[1], RecordResult::Dropped);
    let RecordResult::Failed(Failure { transform, reason }) = &results[2] else {
        panic!("expected a failure, got {:?}", results[2]);
    };
    assert_eq!(transform, "enrich");
    assert!(reason.starts_with("payload is not a JSON object: invalid type: sequence"), "{reason}");
}

#[test]
fn pii_redact_masks_configured_fields() {
    let mut config = TransformConfig::new("redact", guests::PII_REDACT);
    config.config = toml::from_str("fields = ['email', 'contact.phone']\nmask = 'X'").unwrap();
    let mut chain = chain(&[config]);
    let results = chain.run(&batch(&[r#"{"email":"a@b.c","contact":{"phone":"123","city":"Oslo"},"n":1}"#])).unwrap();
    assert_eq!(
        json(&emitted(&results[0])[0]),
        json!({"email": "X", "contact": {"phone": "X", "city": "Oslo"}, "n": 1})
    );
}

#[test]
fn a_rejected_configuration_names_the_transform_and_reason() {
    let mut config = TransformConfig::new("redact", guests::PII_REDACT);
    config.config = toml::from_str("fields = []").unwrap();
    let mut transform = runtime().load(&config).unwrap();
    let error = transform.start().unwrap_err();
    assert!(matches!(error, TransformError::ConfigRejected { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "transform `redact` rejected its configuration: `fields` is empty: name at least one field to mask"
    );

    config.config = toml::Table::new();
    let error = runtime().load(&config).unwrap().start().unwrap_err();
    assert!(error.to_string().contains("invalid configuration: missing field `fields`"), "{error}");
}

#[test]
fn transforms_run_in_file_order() {
    let mut redact = TransformConfig::new("redact", guests::PII_REDACT);
    redact.config = toml::from_str("fields = ['temp']").unwrap();
    let enrich = TransformConfig::new("enrich", guests::SENSOR_ENRICH);
    let reading = r#"{"sensor_id":"s1","temp":20}"#;

    // Masking first leaves no numeric temp, so enrich drops the reading.
    let results = chain(&[redact.clone(), enrich.clone()]).run(&batch(&[reading])).unwrap();
    assert_eq!(results[0], RecordResult::Dropped);

    // Enriching first computes temp_f, then the temp itself is masked.
    let results = chain(&[enrich, redact]).run(&batch(&[reading])).unwrap();
    let output = json(&emitted(&results[0])[0]);
    assert_eq!((output["temp"].clone(), output["temp_f"].clone()), (json!("***"), json!(68.0)));
}

#[test]
fn outputs_of_one_input_stay_in_order_and_a_later_failure_fails_the_input() {
    let mut chain = chain(&[probe(), TransformConfig::new("identity", guests::IDENTITY)]);
    let results = chain.run(&batch(&["split:3", "drop", "fail:no good"])).unwrap();
    let texts: Vec<&str> = emitted(&results[0]).iter().map(text).collect();
    assert_eq!(texts, ["0", "1", "2"]);
    assert_eq!(results[1], RecordResult::Dropped);
    assert_eq!(results[2], RecordResult::Failed(Failure { transform: "probe".into(), reason: "no good".into() }));

    let mut second = probe();
    second.name = "second".into();
    let mut chain = self::chain(&[TransformConfig::new("identity", guests::IDENTITY), second]);
    let results = chain.run(&batch(&["fail:late", "ok"])).unwrap();
    assert_eq!(results[0], RecordResult::Failed(Failure { transform: "second".into(), reason: "late".into() }));
    assert_eq!(text(&emitted(&results[1])[0]), "ok");
}

#[test]
fn a_runaway_guest_is_stopped_at_its_deadline_and_the_next_batch_runs() {
    let mut config = probe();
    // Equal, so every call's deadline is exactly 200ms whatever was learned.
    (config.timeout, config.record_timeout) = (Duration::from_millis(200), Duration::from_millis(200));
    let mut chain = chain(&[config]);
    let started = Instant::now();
    // Nothing was measured yet, so the first record runs alone first.
    let error = chain.run(&batch(&["ok", "ok", "loop"])).unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(error, TransformError::Timeout { records: 2, .. }), "{error:?}");
    assert_eq!(error.to_string(), "transform `probe` timed out: a call on 2 records ran longer than 200ms");
    assert!(elapsed >= Duration::from_millis(200), "stopped early, after {elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "stopped late, after {elapsed:?}");
    assert_eq!(text(&emitted(&chain.run(&batch(&["count"])).unwrap()[0])[0]), "1");

    // A record alone has `record_timeout`.
    let error = chain.run(&batch(&["loop"])).unwrap_err();
    assert_eq!(error.to_string(), "transform `probe` timed out: one record ran longer than 200ms (record_timeout)");
}

/// A hundred records the probe passes through at once: `{"n":0}` … `{"n":99}`.
fn cheap_records() -> Vec<String> {
    (0..100).map(|i| format!("{{\"n\":{i}}}")).collect()
}

/// Runs five batches of `records`, so the transform has a recent cost per
/// record to set its deadlines by.
fn learn_the_cost_of(chain: &mut TransformChain, records: &[&str]) {
    for _ in 0..5 {
        chain.run(&batch(records)).unwrap();
    }
}

#[test]
fn once_batches_have_run_a_hanging_batch_is_cut_short_long_before_its_timeout() {
    let mut config = probe();
    config.timeout = Duration::from_secs(30);
    let mut chain = chain(&[config]);
    let cheap = cheap_records();
    let cheap: Vec<&str> = cheap.iter().map(String::as_str).collect();
    assert_eq!(chain.transforms()[0].deadline(100), Duration::from_secs(30), "nothing measured yet");
    learn_the_cost_of(&mut chain, &cheap);
    // Twenty times what such a batch costs, but never under record_timeout.
    let deadline = chain.transforms()[0].deadline(100);
    assert!(deadline >= Duration::from_millis(100) && deadline < Duration::from_secs(2), "{deadline:?}");
    let mut hanging = cheap.clone();
    hanging[50] = "loop";
    let error = chain.run(&batch(&hanging)).unwrap_err();
    let TransformError::Timeout { records: 100, deadline: cut_at, .. } = error else { panic!("{error:?}") };
    assert_eq!(cut_at, deadline);
}

#[test]
fn calls_on_one_record_leave_the_learned_cost_alone() {
    let mut config = probe();
    // A timeout far above any learned deadline, so neither bound hides a change.
    config.timeout = Duration::from_secs(3600);
    let mut chain = chain(&[config]);
    let cheap = cheap_records();
    let cheap: Vec<&str> = cheap.iter().map(String::as_str).collect();
    learn_the_cost_of(&mut chain, &cheap);
    let learned = chain.transforms()[0].deadline(1_000_000);
    // What a record-by-record retry does: many calls, one record each, where
    // the call's own overhead is most of the cost.
    for _ in 0..50 {
        chain.run(&batch(&["ok"])).unwrap();
    }
    assert_eq!(chain.transforms()[0].deadline(1_000_000), learned);
    chain.run(&batch(&cheap[..2])).unwrap();
    assert_ne!(chain.transforms()[0].deadline(1_000_000), learned, "a call on two records is learned from");
}

/// `cheap_records` with the probe told to hang at each of `at`.
fn hanging_at(at: &[usize]) -> Vec<String> {
    let mut records = cheap_records();
    for &i in at {
        records[i] = "loop".to_owned();
    }
    records
}

/// The probe with an hour's `timeout`, so only a measured deadline can cut a
/// batch short in a test's time.
fn patient_probe() -> TransformChain {
    let mut config = probe();
    config.timeout = Duration::from_secs(3600);
    chain(&[config])
}

/// How a fresh probe's first batch, hanging at each of `at`, was cut short.
fn first_batch_cut_short(at: &[usize]) -> TransformError {
    let records = hanging_at(at);
    let records: Vec<&str> = records.iter().map(String::as_str).collect();
    patient_probe().run(&batch(&records)).unwrap_err()
}

#[test]
fn before_anything_was_measured_a_first_record_that_hangs_costs_its_record_timeout_not_the_timeout() {
    let error = first_batch_cut_short(&[0]);
    let TransformError::Timeout { records: 1, deadline, .. } = error else { panic!("{error:?}") };
    assert_eq!(deadline, Duration::from_millis(100));
}

#[test]
fn before_anything_was_measured_the_first_record_alone_sets_the_deadline_of_the_rest() {
    let error = first_batch_cut_short(&[50]);
    // Twenty times what one record alone took for each of the 99, but never
    // under record_timeout: far below the hour the batch could have had.
    let TransformError::Timeout { records: 99, deadline, .. } = error else { panic!("{error:?}") };
    assert!(deadline >= Duration::from_millis(100) && deadline < Duration::from_secs(2), "{deadline:?}");
}

#[test]
fn when_every_batch_holds_hanging_records_a_clean_batch_after_them_still_runs_whole_within_its_bounds() {
    let mut chain = patient_probe();
    let poisoned = hanging_at(&[0, 10, 90]);
    let poisoned: Vec<&str> = poisoned.iter().map(String::as_str).collect();
    for _ in 0..3 {
        // As a pipeline does: cut short, then record by record.
        let results = ferry::pipeline::run_isolating(&mut chain, &batch(&poisoned));
        let timed_out = results.iter().filter(|result| matches!(result, RecordResult::Failed(_))).count();
        assert_eq!(timed_out, 3);
        // Only the calls on one record succeeded, yet they set the deadline.
        let deadline = chain.transforms()[0].deadline(100);
        assert!(deadline >= Duration::from_millis(100) && deadline < Duration::from_secs(2), "{deadline:?}");
    }
    let cheap = cheap_records();
    let cheap: Vec<&str> = cheap.iter().map(String::as_str).collect();
    let instantiations = chain.transforms()[0].instantiations();
    assert_eq!(chain.run(&batch(&cheap)).unwrap().len(), 100, "the clean batch runs as one call");
    assert_eq!(chain.transforms()[0].instantiations(), instantiations, "and nothing was cut");
}

#[test]
fn a_memory_hog_is_reported_as_out_of_memory() {
    let mut config = probe();
    config.memory_limit = ByteSize::mib(16);
    let mut chain = chain(&[config]);
    let error = chain.run(&batch(&["hog"])).unwrap_err();
    assert!(matches!(error, TransformError::OutOfMemory { .. }), "{error:?}");
    assert_eq!(error.to_string(), "transform `probe` ran out of memory: it needed more than its limit of 16.0 MiB");
}

#[test]
fn after_a_trap_the_next_batch_runs_on_a_fresh_instance() {
    let mut chain = chain(&[probe()]);
    assert_eq!(text(&emitted(&chain.run(&batch(&["count"])).unwrap()[0])[0]), "1");
    assert_eq!(text(&emitted(&chain.run(&batch(&["count"])).unwrap()[0])[0]), "2");

    let error = chain.run(&batch(&["ok", "trap"])).unwrap_err();
    let TransformError::Trap { message, .. } = &error else { panic!("expected a trap, got {error:?}") };
    assert!(message.contains("unreachable"), "{message}");
    assert!(error.to_string().starts_with("transform `probe` trapped: "), "{error}");

    // A fresh instance counts its batches from one again.
    assert_eq!(text(&emitted(&chain.run(&batch(&["count"])).unwrap()[0])[0]), "1");
    assert_eq!(chain.transforms()[0].instantiations(), 2);
}

#[test]
fn an_empty_chain_passes_records_through() {
    let batch = batch(&["as is"]);
    let results = TransformChain::new(Vec::new()).run(&batch).unwrap();
    assert_eq!(results, [RecordResult::Unchanged]);
    let outputs: Vec<_> = results[0].outputs(&batch.records[0]).collect();
    assert_eq!(outputs.len(), 1);
    assert_eq!((outputs[0].payload, outputs[0].headers), (&b"as is"[..], batch.records[0].headers.as_deref().unwrap()));
}

#[test]
fn contract_breaches_fail_the_batch_naming_the_transform() {
    let mut chain = chain(&[probe()]);
    // The first record runs alone (nothing was measured yet); the breach is
    // in the call on the other two.
    let error = chain.run(&batch(&["x", "short", "y"])).unwrap_err();
    assert_eq!(error.to_string(), "transform `probe` broke the contract: it returned 0 outcomes for 2 records");
    let error = chain.run(&batch(&["reject-batch"])).unwrap_err();
    assert_eq!(error.to_string(), "transform `probe` failed the batch: probe rejects this batch");
    // Neither was a trap, so the instance lives on.
    assert_eq!(chain.transforms()[0].instantiations(), 1);
}

#[test]
fn environment_is_hidden_unless_granted() {
    // cargo sets CARGO_PKG_NAME for the test process, so no test has to
    // mutate the environment.
    let asks = ["env:CARGO_PKG_NAME", "env:PATH"];
    let results = chain(&[probe()]).run(&batch(&asks)).unwrap();
    assert_eq!(text(&emitted(&results[0])[0]), "<unset>");
    assert_eq!(text(&emitted(&results[1])[0]), "<unset>");

    let mut config = probe();
    config.grants.env = vec!["CARGO_PKG_NAME".into()];
    let results = chain(&[config]).run(&batch(&asks)).unwrap();
    assert_eq!(text(&emitted(&results[0])[0]), "ferry-tests");
    assert_eq!(text(&emitted(&results[1])[0]), "<unset>");
}

#[test]
fn guest_output_reaches_the_log_only_when_granted_and_host_logging_always() {
    let run = |config: TransformConfig| {
        capture_logs(|| {
            chain(&[config]).run(&batch(&["print:printed line", "log:logged line"])).unwrap();
        })
    };
    let silent = run(probe());
    assert!(!silent.contains("printed line"), "{silent}");
    assert!(silent.contains("WARN ferry::guest: logged line transform=\"probe\""), "{silent}");

    let mut config = probe();
    config.grants.stdio = true;
    let granted = run(config);
    assert!(granted.contains("printed line transform=probe stream=\"stdout\""), "{granted}");
    assert!(granted.contains("printed line transform=probe stream=\"stderr\""), "{granted}");
}

#[test]
fn guest_log_fields_join_the_message() {
    let mut config = TransformConfig::new("redact", guests::PII_REDACT);
    config.config = toml::from_str("fields = ['email', 'phone']").unwrap();
    let log = capture_logs(|| {
        chain(&[config]);
    });
    assert!(log.contains("INFO ferry::guest: masking fields fields=email,phone transform=\"redact\""), "{log}");
}

/// Runs `f` with a subscriber that records formatted log lines, and returns them.
fn capture_logs(f: impl FnOnce()) -> String {
    let log = LogCapture::default();
    let subscriber = tracing_subscriber::fmt().with_writer(log.clone()).with_ansi(false).finish();
    tracing::subscriber::with_default(subscriber, f);
    log.text()
}

/// Collects formatted log lines in memory.
#[derive(Clone, Default)]
struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = Self;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[test]
fn files_are_hidden_unless_a_directory_is_granted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lookup.txt"), "from the host").unwrap();
    let results = chain(&[probe()]).run(&batch(&["read:/data/lookup.txt"])).unwrap();
    assert!(matches!(&results[0], RecordResult::Failed(failure) if failure.reason.starts_with("cannot read")));

    let mut config = probe();
    config.grants.dirs = vec![DirGrant { host: dir.path().to_owned(), guest: "/data".into(), writable: false }];
    let results = chain(&[config]).run(&batch(&["read:/data/lookup.txt"])).unwrap();
    assert_eq!(text(&emitted(&results[0])[0]), "from the host");
}

#[test]
fn a_missing_or_invalid_component_is_named() {
    let error = runtime().load(&TransformConfig::new("ghost", "/no/such/file.wasm")).err().unwrap();
    assert_eq!(error.to_string(), "transform `ghost`: cannot read /no/such/file.wasm");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.wasm");
    std::fs::write(&path, b"not wasm").unwrap();
    let error = runtime().load(&TransformConfig::new("junk", &path)).err().unwrap();
    assert!(matches!(error, TransformError::Compile { .. }), "{error:?}");
    assert!(error.to_string().contains("junk.wasm is not a WebAssembly component"), "{error}");
}

#[test]
fn cdc_replicate_turns_changes_into_replaces_and_deletes_by_id() {
    use ferry::record::Write;
    let mut chain = chain(&[TransformConfig::new("replicate", guests::CDC_REPLICATE)]);
    let results = chain
        .run(&batch(&[
            r#"{"operationType":"insert","documentKey":{"_id":1},"fullDocument":{"_id":1,"a":1}}"#,
            r#"{"operationType":"update","documentKey":{"_id":1},"fullDocument":{"_id":1,"a":2}}"#,
            r#"{"operationType":"update","documentKey":{"_id":1},"updateDescription":{}}"#,
            r#"{"operationType":"update","documentKey":{"_id":1},"fullDocument":null}"#,
            r#"{"operationType":"delete","documentKey":{"_id":{"$oid":"65f0a1b2c3d4e5f601234567"}}}"#,
            r#"{"operationType":"drop","ns":{"db":"shop","coll":"orders"}}"#,
        ]))
        .unwrap();
    let replace = Some(Write::Replace(vec!["_id".into()]));
    assert_eq!((json(&emitted(&results[0])[0]), &emitted(&results[0])[0].write), (json!({"_id": 1, "a": 1}), &replace));
    assert_eq!(json(&emitted(&results[1])[0]), json!({"_id": 1, "a": 2}));
    let RecordResult::Failed(failure) = &results[2] else { panic!("an update without its document fails") };
    assert!(failure.reason.contains("full_document = \"update-lookup\""), "{}", failure.reason);
    assert_eq!(results[3], RecordResult::Dropped, "the document was deleted since; its delete follows");
    let delete = &emitted(&results[4])[0];
    assert_eq!(
        (json(delete), &delete.write),
        (json!({"_id": {"$oid": "65f0a1b2c3d4e5f601234567"}}), &Some(Write::Delete(vec!["_id".into()])))
    );
    assert_eq!(results[5], RecordResult::Dropped);
}

#[test]
fn every_stop_and_restart_of_an_instance_is_counted_by_reason() {
    let telemetry = ferry::telemetry::Telemetry::new();
    let pipeline = telemetry.pipeline("p");
    let mut config = probe();
    config.timeout = Duration::from_millis(100);
    config.memory_limit = ByteSize::mib(16);
    let mut transform = runtime().load(&config).unwrap();
    transform.observe(pipeline.transform("probe"));
    let mut chain = TransformChain::new(vec![transform]);
    for command in ["trap", "loop", "hog", "count", "trap"] {
        let _ = chain.run(&batch(&[command]));
    }
    let text = telemetry.encode_metrics();
    let series = |labels: &str| ferry_tests::ferry::sample(&text, labels);
    let stops = |reason: &str| {
        series(&format!(r#"ferry_transform_stops_total{{pipeline="p",transform="probe",reason="{reason}"}}"#))
    };
    assert_eq!((stops("trap"), stops("timeout"), stops("out_of_memory")), (Some(2.0), Some(1.0), Some(1.0)));
    assert_eq!(
        series(r#"ferry_transform_restarts_total{pipeline="p",transform="probe"}"#),
        Some(3.0),
        "one per stop a batch came after"
    );
    assert_eq!(series(r#"ferry_transform_call_duration_seconds_count{pipeline="p",transform="probe"}"#), Some(5.0));
}

#[test]
fn an_instance_whose_memory_passes_the_threshold_is_replaced_between_batches() {
    let telemetry = ferry::telemetry::Telemetry::new();
    let pipeline = telemetry.pipeline("p");
    let mut config = probe();
    // Every batch leaks 1 MiB: without recycling, the 8 MiB limit stops the
    // instance within seven batches.
    config.memory_limit = ByteSize::mib(8);
    let mut transform = runtime().load(&config).unwrap();
    transform.observe(pipeline.transform("probe"));
    let mut chain = TransformChain::new(vec![transform]);

    let mut batches_seen_by_instance = Vec::new();
    for _ in 0..40 {
        let results = chain.run(&batch(&["leak:1024"])).expect("no batch runs out of memory");
        batches_seen_by_instance.push(text(&emitted(&results[0])[0]).parse::<u32>().unwrap());
    }
    let recycles = chain.transforms()[0].recycles();
    assert!(recycles >= 5, "40 MiB leaked under a 6 MiB threshold, yet only {recycles} recycles");
    // The next instance is made when a batch needs it, so after a recycle
    // on the last batch there is one fewer.
    let instantiations = chain.transforms()[0].instantiations();
    assert!([recycles, recycles + 1].contains(&instantiations), "{instantiations} instances, {recycles} recycles");
    // A fresh instance counts its batches from 1 again: replaced, not reused.
    assert_eq!(batches_seen_by_instance.iter().filter(|&&seen| seen == 1).count() as u64, instantiations);
    assert!(batches_seen_by_instance.iter().all(|&seen| seen <= 6), "{batches_seen_by_instance:?}");

    let text = telemetry.encode_metrics();
    let series =
        |name: &str| ferry_tests::ferry::sample(&text, &format!(r#"{name}{{pipeline="p",transform="probe"}}"#));
    assert_eq!(series("ferry_transform_recycles_total"), Some(recycles as f64));
    assert_eq!(series("ferry_transform_restarts_total"), Some(0.0), "a recycle is not a restart after a stop");
    let memory = series("ferry_transform_memory_bytes").expect("the memory gauge is set");
    assert!(memory > 1e6 && memory <= 8.0 * 1048576.0, "memory gauge {memory}");
}

#[test]
fn a_recycle_threshold_at_the_limit_keeps_one_instance_until_memory_runs_out() {
    let mut config = probe();
    config.memory_limit = ByteSize::mib(8);
    config.recycle_memory_above = Some(ByteSize::mib(8));
    let mut chain = chain(&[config]);
    let error = (0..40).find_map(|_| chain.run(&batch(&["leak:1024"])).err()).expect("the leak exhausts the limit");
    assert!(matches!(error, TransformError::OutOfMemory { .. }), "{error:?}");
    assert_eq!(chain.transforms()[0].recycles(), 0);
}
