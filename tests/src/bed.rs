//! What an end-to-end test runs on: an Iggy server, a MongoDB, and a stream
//! and database no other test uses. Each area's `Setup` adds what only it
//! needs (its pipeline files, its waits) and derefs to this, so a test reads
//! `setup.iggy`, `setup.collection("readings")` whichever area it is in.

use futures::TryStreamExt;
use mongodb::Collection;
use mongodb::bson::{Document, doc};

use crate::pipelines::unique;
use crate::servers::{IggyServer, MongoServer};

pub struct TestBed {
    pub iggy: IggyServer,
    pub mongo: MongoServer,
    /// The Iggy stream the test's topics live in.
    pub stream: String,
    /// The MongoDB database the test's collections live in.
    pub database: String,
}

impl TestBed {
    /// iggy-server 0.8 and a MongoDB, with the test's logs captured; `None`
    /// after saying which server is missing. `prefix` starts the names.
    pub async fn start(test: &str, prefix: &str) -> Option<Self> {
        crate::init_logging();
        let iggy = IggyServer::start(test).await?;
        Self::around(test, iggy, prefix).await
    }

    /// The bed around an Iggy server the test chose (0.9, TLS, ...).
    pub async fn around(test: &str, iggy: IggyServer, prefix: &str) -> Option<Self> {
        crate::init_logging();
        let mongo = MongoServer::start(test).await?;
        Some(Self::with(iggy, mongo, prefix))
    }

    /// The bed on both servers the test chose.
    pub fn with(iggy: IggyServer, mongo: MongoServer, prefix: &str) -> Self {
        Self { iggy, mongo, stream: unique(prefix), database: unique(prefix) }
    }

    /// A collection of the test's database.
    pub async fn collection(&self, name: &str) -> Collection<Document> {
        self.mongo.client().await.database(&self.database).collection(name)
    }

    /// Every document of a collection of the test's database.
    pub async fn documents(&self, collection: &str) -> Vec<Document> {
        let cursor = self.collection(collection).await.find(doc! {}).await.unwrap();
        cursor.try_collect().await.unwrap()
    }

    /// How many documents of `collection` match `filter`; 0 while MongoDB
    /// cannot say (it is down), which a wait reads as "not yet".
    pub async fn count(&self, collection: &str, filter: Document) -> u64 {
        self.collection(collection).await.count_documents(filter).await.unwrap_or(0)
    }

    /// Sends `payloads` to `topic` of the test's stream, as an application
    /// on the server's own generation of the SDK would.
    pub async fn produce(&self, topic: &str, payloads: impl IntoIterator<Item = Vec<u8>>) {
        self.iggy.produce(&self.stream, topic, payloads).await;
    }
}

/// Lets an area's `Setup` (a struct with a `bed: TestBed` field) be used as
/// its bed: `setup.iggy`, `setup.collection(..)`.
#[macro_export]
macro_rules! setup_on_bed {
    ($setup:ty) => {
        impl std::ops::Deref for $setup {
            type Target = $crate::bed::TestBed;
            fn deref(&self) -> &$crate::bed::TestBed {
                &self.bed
            }
        }

        impl std::ops::DerefMut for $setup {
            fn deref_mut(&mut self) -> &mut $crate::bed::TestBed {
                &mut self.bed
            }
        }
    };
}
