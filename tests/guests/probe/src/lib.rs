//! A transform that does what each record's payload tells it to, so tests
//! can provoke every failure a real guest might cause:
//!
//! | payload        | what happens                                              |
//! |----------------|-----------------------------------------------------------|
//! | `trap`         | panics (a trap)                                           |
//! | `loop`         | never returns                                             |
//! | `hog`          | allocates until memory runs out                           |
//! | `short`        | returns one outcome too few                               |
//! | `reject-batch` | fails the whole batch                                     |
//! | `fail:WHY`     | fails this record with reason `WHY`                       |
//! | `drop`         | drops this record                                         |
//! | `count`        | emits how many batches this instance has seen             |
//! | `leak:KIB`     | leaks KIB kibibytes for good, then does as `count`        |
//! | `split:N`      | emits N outputs `0`..`N-1` (as `emit-many`)               |
//! | `env:NAME`     | emits the variable's value, or `<unset>`                  |
//! | `read:PATH`    | emits the file's content, or fails with the error         |
//! | `print:TEXT`   | writes TEXT to stdout and stderr, then emits it           |
//! | `log:TEXT`     | logs TEXT through the host, then emits it                 |
//! | anything else  | emits the payload unchanged                               |
//!
//! `configure` rejects a config with a `reject` string, using it as reason.

wit_bindgen::generate!({ path: "../../../wit", world: "transform" });

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use exports::ferry::transform::transformer::Guest;
use ferry::transform::logging::{Level, log};
use ferry::transform::types::{Batch, Encoding, Outcome, Output};

static BATCHES_SEEN: AtomicU64 = AtomicU64::new(0);

struct Probe;

impl Guest for Probe {
    fn configure(config: String) -> Result<(), String> {
        let config: serde_json::Value = serde_json::from_str(&config).map_err(|error| error.to_string())?;
        match config.get("reject").and_then(|reason| reason.as_str()) {
            Some(reason) => Err(reason.to_owned()),
            None => Ok(()),
        }
    }

    fn transform(batch: Batch) -> Result<Vec<Outcome>, String> {
        let seen = BATCHES_SEEN.fetch_add(1, Ordering::Relaxed) + 1;
        let mut outcomes = Vec::with_capacity(batch.records.len());
        for record in &batch.records {
            let command = String::from_utf8_lossy(&record.payload).into_owned();
            let outcome = match command.split_once(':').unwrap_or((command.as_str(), "")) {
                ("trap", _) => panic!("probe was told to trap"),
                ("loop", _) => loop {
                    black_box(&outcomes);
                },
                ("hog", _) => hog(),
                ("short", _) => return Ok(Vec::new()),
                ("reject-batch", _) => return Err("probe rejects this batch".to_owned()),
                ("fail", why) => Outcome::Fail(why.to_owned()),
                ("drop", _) => Outcome::Drop,
                ("count", _) => emit(seen.to_string()),
                ("leak", kib) => {
                    // Like a guest runtime that never frees what it returns.
                    black_box(Vec::<u8>::leak(vec![1; kib.parse::<usize>().unwrap_or(0) << 10]));
                    emit(seen.to_string())
                }
                ("split", n) => {
                    Outcome::EmitMany((0..n.parse().unwrap_or(0)).map(|i: u32| output(i.to_string())).collect())
                }
                ("env", name) => emit(std::env::var(name).unwrap_or_else(|_| "<unset>".to_owned())),
                ("read", path) => match std::fs::read_to_string(path) {
                    Ok(text) => emit(text),
                    Err(error) => Outcome::Fail(format!("cannot read {path}: {error}")),
                },
                ("print", text) => {
                    println!("{text}");
                    eprintln!("{text}");
                    emit(text.to_owned())
                }
                ("log", text) => {
                    log(Level::Warn, text, &[]);
                    emit(text.to_owned())
                }
                _ => Outcome::Emit(Output {
                    payload: record.payload.clone(),
                    encoding: record.encoding,
                    collection: None,
                    write: None,
                    key: None,
                    headers: Vec::new(),
                }),
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }
}

fn emit(text: String) -> Outcome {
    Outcome::Emit(output(text))
}

fn output(text: String) -> Output {
    Output {
        payload: text.into_bytes(),
        encoding: Encoding::Text,
        collection: None,
        write: None,
        key: None,
        headers: Vec::new(),
    }
}

fn hog() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1; 1 << 20]);
        black_box(&hoard);
    }
}

export!(Probe);
