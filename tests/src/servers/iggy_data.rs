//! Producing to and reading back an Iggy topic in whichever generation the
//! test server speaks: with the SDK that generation's users produce with
//! (`iggy` 0.10 for 0.8, `iggy` 0.11 for 0.9), and reading through Ferry's
//! own link.

use bytes::Bytes;
use ferry::iggy_link::{Generation, Message, Polled, Reader, Start};

use super::IggyServer;

/// The reader name tests read topics as (never a group member).
const TEST_READER: &str = "ferry-tests-reader";

impl IggyServer {
    /// Sends `payloads` to the topic, balanced over its partitions, as an
    /// application on this generation's SDK would.
    pub async fn produce(&self, stream: &str, topic: &str, payloads: impl IntoIterator<Item = Vec<u8>>) {
        match self.generation() {
            Generation::V0_8 => crate::pipelines::produce(&self.client().await, stream, topic, payloads).await,
            Generation::V0_9 => produce_0_11(self.address(), stream, topic, payloads).await,
        }
    }

    /// Every message of a topic, partition by partition, from the start.
    pub async fn read_topic(&self, stream: &str, topic: &str) -> Vec<Message> {
        let session = self.session().await;
        let partitions = session.topic(stream, topic).await.expect("the topic can be read");
        let mut messages = Vec::new();
        for partition in partitions.map(|topic| topic.partitions).unwrap_or_default() {
            let mut next = 0;
            loop {
                let polled = session
                    .poll(stream, topic, partition.id, Reader::Named(TEST_READER), Start::At(next), 1000)
                    .await
                    .expect("the topic can be read");
                let Polled::Messages(batch) = polled else { panic!("the partition cannot be read: {polled:?}") };
                let Some(last) = batch.last() else { break };
                next = last.offset + 1;
                messages.extend(batch);
            }
        }
        session.shutdown().await;
        messages
    }
}

/// Produces with the `iggy` 0.11 SDK, as a user of iggy-server 0.9 does.
async fn produce_0_11(address: &str, stream: &str, topic: &str, payloads: impl IntoIterator<Item = Vec<u8>>) {
    use iggy_0_11::prelude::{Client, Identifier, IggyClient, IggyMessage, MessageClient, Partitioning, UserClient};
    let client = IggyClient::builder().with_tcp().with_server_address(address.to_owned()).build().expect("a client");
    client.connect().await.expect("the server accepts a 0.11 client");
    client.login_user("iggy", "iggy").await.expect("the server accepts the login");
    let (stream, topic) = (Identifier::named(stream).unwrap(), Identifier::named(topic).unwrap());
    let payloads: Vec<Vec<u8>> = payloads.into_iter().collect();
    for chunk in payloads.chunks(1000) {
        let mut messages: Vec<IggyMessage> = chunk
            .iter()
            .map(|payload| IggyMessage::builder().payload(Bytes::from(payload.clone())).build().expect("a message"))
            .collect();
        client.send_messages(&stream, &topic, &Partitioning::balanced(), &mut messages).await.expect("sent");
    }
    let _ = client.shutdown().await;
}
