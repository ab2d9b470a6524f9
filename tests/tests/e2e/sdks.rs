//! The Python and JavaScript SDKs, every part of them, through probes that
//! answer the same commands (`tests/guests/python-sdk`, `tests/guests/js-sdk`)
//! in a real component, as Ferry runs it. The Rust SDK has its own unit
//! tests (`sdk/rust`).

use std::path::{Path, PathBuf};

use ferry::config::TransformConfig;
use ferry::record::{Encoding, Header, RecordResult, Write};
use ferry::wasm::{TransformChain, TransformError};
use ferry_tests::records::{batch, emitted, json, text};
use ferry_tests::{logs, toolchains};
use serde_json::json;

fn probe(language: &str, test: &str) -> Option<PathBuf> {
    match language {
        "python" => toolchains::python_component(test, "tests/guests/python-sdk", "python_sdk"),
        _ => toolchains::js_component(test, "tests/guests/js-sdk/sdk-probe.js", "js_sdk"),
    }
}

fn load(wasm: &Path, config: serde_json::Value) -> Result<TransformChain, TransformError> {
    let runtime = ferry_tests::compile_cache::runtime();
    let mut transform_config = TransformConfig::new("probe", wasm);
    transform_config.memory_limit = bytesize::ByteSize::mib(256);
    transform_config.config = toml::Value::try_from(config).unwrap().as_table().unwrap().clone();
    let mut chain = TransformChain::new(vec![runtime.load(&transform_config).unwrap()]);
    chain.start()?;
    Ok(chain)
}

fn failure(result: &RecordResult) -> &str {
    match result {
        RecordResult::Failed(failure) => &failure.reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn every_part_of_the_sdk(language: &str) {
    ferry_tests::init_logging();
    let test = format!("every_part_of_the_{language}_sdk_works_in_a_component");
    let Some(wasm) = probe(language, &test) else { return };
    let mut chain = load(&wasm, json!({"prefix": "p-"})).expect("the probe starts");
    let commands =
        ["route", "many", "insert", "replace", "delete", "dates", "ids", "bad-id", "log", "drop", "fail:why", "raise"];
    let results = chain.run(&batch(&commands)).unwrap();
    let result = |command: &str| &results[commands.iter().position(|each| *each == command).unwrap()];

    // What the record said, and what setup() kept, reach the output.
    let route = &emitted(result("route"))[0];
    assert_eq!(
        json(route),
        json!({"prefix": "p-", "key": "key-1", "source": "test", "headers": {"source": "test"}, "encoding": "json"})
    );
    assert_eq!(route.encoding, Encoding::Json);
    assert_eq!(route.collection.as_deref(), Some("routed"));
    assert_eq!(route.write, Some(Write::Upsert(vec!["a".into(), "b".into()])));
    assert_eq!(route.key.as_deref(), Some(&b"k1"[..]));
    // The host keeps the input's headers ahead of the ones a transform adds.
    let header = |name: &str, value: &str| Header { name: name.into(), value: value.into() };
    assert_eq!(route.headers, [header("source", "test"), header("h", "v")]);

    let many = emitted(result("many"));
    assert_eq!(many.len(), 3);
    assert_eq!((json(&many[0]), many[0].encoding), (json!({"n": 1}), Encoding::Json));
    assert_eq!((text(&many[1]), many[1].encoding), ("text", Encoding::Text));
    assert_eq!((many[2].payload.as_slice(), many[2].encoding), (&[0u8, 1][..], Encoding::Binary));

    assert_eq!(emitted(result("insert"))[0].write, Some(Write::Insert));
    assert_eq!(emitted(result("replace"))[0].write, Some(Write::Replace(vec!["_id".into()])));
    assert_eq!(emitted(result("delete"))[0].write, Some(Write::Delete(vec!["_id".into()])));

    assert_eq!(
        json(&emitted(result("dates"))[0]),
        json!({"relaxed": {"$date": "2026-11-26T02:00:00.500Z"}, "canonical": {"$date": "2026-11-26T03:00:00.000Z"}})
    );
    assert_eq!(
        json(&emitted(result("ids"))[0]),
        json!({"id": {"$oid": "65f1a2b3c4d5e6f708192a3b"}, "price": {"$numberDecimal": "1.10"}})
    );
    assert!(
        failure(result("bad-id")).contains("\"xyz\" is not an ObjectId")
            || failure(result("bad-id")).contains("'xyz' is not an ObjectId"),
        "{}",
        failure(result("bad-id"))
    );

    assert_eq!(result("log"), &RecordResult::Dropped);
    let logged = logs::containing(&format!("hello from {language}"));
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(logged[0].contains("probe") && logged[0].contains("n=1"), "tagged and with its field: {}", logged[0]);

    assert_eq!(result("drop"), &RecordResult::Dropped);
    assert_eq!(failure(result("fail:why")), "why");
    // An exception fails its record alone; the others above went on.
    let raised = failure(result("raise"));
    assert!(raised == "KeyError: 'missing'" || raised == "missing", "{raised}");

    let rejected = load(&wasm, json!({"reject": "no such sink"})).err().expect("the config is rejected");
    assert!(
        matches!(&rejected, TransformError::ConfigRejected { message, .. } if message == "no such sink"),
        "{rejected:?}"
    );
}

#[test]
fn every_part_of_the_python_sdk_works_in_a_component() {
    every_part_of_the_sdk("python");
}

#[test]
fn every_part_of_the_javascript_sdk_works_in_a_component() {
    every_part_of_the_sdk("javascript");
}
