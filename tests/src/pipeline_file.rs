//! Pipeline files built from typed parts: one place that knows how a test
//! pipeline is laid out, so a test names only what it is about.
//!
//! ```ignore
//! let file = PipelineFile::iggy_to_mongo("sensors", &iggy, &stream, "readings", &mongo, &database, "readings")
//!     .test_pace()
//!     .transform("enrich", guests::SENSOR_ENRICH)
//!     .dead_letter(&stream, "readings-dlq")
//!     .set("source.iggy.batch_size", 100);
//! let pipeline = RunningPipeline::start(file.config());
//! ```
//!
//! A file holds what its route needs and Ferry's defaults for the rest, as a
//! benchmark wants it; `test_pace` gives the end-to-end tests' quicker pace.

use std::path::{Path, PathBuf};

use ferry::config::PipelineConfig;
use toml::{Table, Value};

use crate::servers::{IggyServer, MongoServer};

/// A pipeline file being put together; `text` is what a user would write.
#[derive(Clone, Debug)]
pub struct PipelineFile {
    table: Table,
}

impl PipelineFile {
    /// Iggy → MongoDB: the topic `stream`/`topic` read by a consumer group
    /// named after the pipeline, written to `database`.`collection`.
    pub fn iggy_to_mongo(
        name: &str,
        iggy: &IggyServer,
        stream: &str,
        topic: &str,
        mongo: &MongoServer,
        database: &str,
        collection: &str,
    ) -> Self {
        Self::named(name)
            .set("source.iggy.address", iggy.address())
            .set("source.iggy.stream", stream)
            .set("source.iggy.topic", topic)
            .set("source.iggy.consumer_group", name)
            .set("sink.mongodb.uri", mongo.uri())
            .set("sink.mongodb.database", database)
            .set("sink.mongodb.collection", collection)
    }

    /// MongoDB → Iggy: the change stream of `database` (the whole
    /// deployment if `None`) produced to `stream`/`topic`.
    pub fn changes_to_iggy(
        name: &str,
        mongo: &MongoServer,
        database: Option<&str>,
        iggy: &IggyServer,
        stream: &str,
        topic: &str,
    ) -> Self {
        let mut file = Self::named(name)
            .set("source.mongodb.uri", mongo.uri())
            .set("sink.iggy.address", iggy.address())
            .set("sink.iggy.stream", stream)
            .set("sink.iggy.topic", topic);
        if let Some(database) = database {
            file = file.set("source.mongodb.database", database);
        }
        file
    }

    /// A file with only its name: the sections are for the caller to `set`.
    pub fn named(name: &str) -> Self {
        Self { table: Table::new() }.set("name", name)
    }

    /// The end-to-end tests' pace: retries from 50 ms to 1 s and 5 s calls,
    /// so a test waits for seconds, not minutes; Iggy polled every 5 ms;
    /// change streams read in batches of 100 and awaited 100 ms at most.
    pub fn test_pace(self) -> Self {
        let mut file = self
            .set("delivery.retry_initial", "50ms")
            .set("delivery.retry_max", "1s")
            .set("delivery.call_timeout", "5s");
        if file.has("source.iggy") {
            file = file.set("source.iggy.poll_interval", "5ms");
        }
        if file.has("source.mongodb") {
            file = file.set("source.mongodb.batch_size", 100).set("source.mongodb.max_await", "100ms");
        }
        file
    }

    /// Whether the file has a key or table at the dotted `path`.
    fn has(&self, path: &str) -> bool {
        let mut value = None;
        let mut table = Some(&self.table);
        for name in path.split('.') {
            value = table.and_then(|table| table.get(name));
            table = value.and_then(Value::as_table);
        }
        value.is_some()
    }

    /// Appends a transform to the chain.
    pub fn transform(mut self, name: &str, wasm: &str) -> Self {
        let mut transform = Table::new();
        transform.insert("name".to_owned(), name.into());
        transform.insert("wasm".to_owned(), wasm.into());
        let transforms = self.table.entry("transforms").or_insert_with(|| Value::Array(Vec::new()));
        transforms.as_array_mut().expect("`transforms` is an array of tables").push(Value::Table(transform));
        self
    }

    /// Appends a transform with its `config` table.
    pub fn transform_with(self, name: &str, wasm: &str, config: Table) -> Self {
        let mut file = self.transform(name, wasm);
        let transforms = file.table.get_mut("transforms").and_then(Value::as_array_mut).expect("added above");
        let last = transforms.last_mut().and_then(Value::as_table_mut).expect("added above");
        last.insert("config".to_owned(), Value::Table(config));
        file
    }

    /// Sends what cannot be processed to `stream`/`topic`.
    pub fn dead_letter(self, stream: &str, topic: &str) -> Self {
        self.set("dead_letter.stream", stream).set("dead_letter.topic", topic)
    }

    /// Sets the key at a dotted `path` (`"source.iggy.batch_size"`), making
    /// the tables on the way.
    pub fn set(mut self, path: &str, value: impl Into<Value>) -> Self {
        let (tables, key) = path.rsplit_once('.').map_or((None, path), |(tables, key)| (Some(tables), key));
        let mut table = &mut self.table;
        for name in tables.into_iter().flat_map(|tables| tables.split('.')) {
            let entry = table.entry(name).or_insert_with(|| Value::Table(Table::new()));
            table = entry.as_table_mut().unwrap_or_else(|| panic!("`{name}` in `{path}` is not a table"));
        }
        table.insert(key.to_owned(), value.into());
        self
    }

    /// Removes the key at a dotted `path`, if there is one.
    pub fn remove(mut self, path: &str) -> Self {
        let (tables, key) = path.rsplit_once('.').map_or((None, path), |(tables, key)| (Some(tables), key));
        let mut table = Some(&mut self.table);
        for name in tables.into_iter().flat_map(|tables| tables.split('.')) {
            table = table.and_then(|table| table.get_mut(name)).and_then(Value::as_table_mut);
        }
        if let Some(table) = table {
            table.remove(key);
        }
        self
    }

    /// The file as a user would write it.
    pub fn text(&self) -> String {
        toml::to_string(&self.table).expect("a TOML table writes out")
    }

    /// The file parsed as `ferry run` parses it (with no variables set).
    pub fn config(&self) -> PipelineConfig {
        crate::pipelines::parse(&self.text())
    }

    /// Writes the file into `folder` as `<name>.toml`, and returns its path.
    pub fn write(&self, folder: &Path) -> PathBuf {
        let name = self.table.get("name").and_then(Value::as_str).expect("every pipeline file has a name");
        let path = folder.join(format!("{name}.toml"));
        std::fs::write(&path, self.text()).expect("the pipeline file is written");
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_dotted_paths_then_keys_land_in_their_tables_and_can_be_removed() {
        let file = PipelineFile::named("p")
            .set("source.iggy.create.partitions", 2)
            .test_pace()
            .set("source.iggy.topic", "t")
            .transform("a", "a.wasm")
            .transform_with("b", "b.wasm", Table::from_iter([("level".to_owned(), Value::Integer(3))]))
            .remove("delivery.call_timeout")
            .remove("no.such.key");
        let table: Table = toml::from_str(&file.text()).unwrap();
        assert_eq!(table["source"]["iggy"]["create"]["partitions"].as_integer(), Some(2));
        assert_eq!(table["source"]["iggy"]["topic"].as_str(), Some("t"));
        let transforms = table["transforms"].as_array().unwrap();
        assert_eq!(
            (transforms[0]["name"].as_str(), transforms[1]["config"]["level"].as_integer()),
            (Some("a"), Some(3))
        );
        assert!(table["delivery"].get("call_timeout").is_none());
        assert_eq!(table["delivery"]["retry_initial"].as_str(), Some("50ms"));
        assert_eq!(table["source"]["iggy"]["poll_interval"].as_str(), Some("5ms"), "paced as a test");
        assert!(table["source"].get("mongodb").is_none(), "no MongoDB source made up");
    }
}
