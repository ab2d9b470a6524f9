//! Producing to and reading back an Iggy topic in whichever generation the
//! test server speaks: with the SDK that generation's users produce with
//! (`iggy` 0.10 for 0.8, `iggy` 0.11 for 0.9), and reading through Ferry's
//! own link.

use bytes::Bytes;
use ferry::iggy_link::{Generation, Message, Polled, Reader, Session, Start};

use super::IggyServer;

/// The reader name tests read topics as (never a group member).
const TEST_READER: &str = "ferry-tests-reader";

impl IggyServer {
    /// A logged-in client of the `iggy` 0.11 SDK, which speaks iggy-server
    /// 0.9 only: for tests that drive the server as that SDK's users do.
    pub async fn client_0_11(&self) -> iggy_0_11::prelude::IggyClient {
        use iggy_0_11::prelude::{Client, IggyClient, UserClient};
        assert_eq!(self.generation(), Generation::V0_9, "the 0.11 SDK speaks only iggy-server 0.9; use session()");
        let mut builder = IggyClient::builder().with_tcp().with_server_address(self.address().to_owned());
        if let Some(tls) = self.tls() {
            builder = builder.with_tls_enabled(true);
            if let Some(domain) = &tls.domain {
                builder = builder.with_tls_domain(domain.clone());
            }
            if let Some(ca_file) = &tls.ca_file {
                builder = builder.with_tls_ca_file(ca_file.clone());
            }
        }
        let client = builder.build().expect("a client");
        client.connect().await.expect("the server accepts a 0.11 client");
        client.login_user("iggy", "iggy").await.expect("the server accepts the login");
        client
    }

    /// Sends `payloads` to the topic, balanced over its partitions, as an
    /// application on this generation's SDK would.
    pub async fn produce(&self, stream: &str, topic: &str, payloads: impl IntoIterator<Item = Vec<u8>>) {
        match self.generation() {
            Generation::V0_8 => crate::pipelines::produce(&self.client().await, stream, topic, payloads).await,
            Generation::V0_9 => produce_0_11(&self.client_0_11().await, stream, topic, payloads).await,
        }
    }

    /// Every message of a topic, partition by partition, from the start.
    pub async fn read_topic(&self, stream: &str, topic: &str) -> Vec<Message> {
        let session = self.session().await;
        let partitions = session.topic(stream, topic).await.expect("the topic can be read");
        let mut messages = Vec::new();
        for partition in partitions.map(|topic| topic.partitions).unwrap_or_default() {
            let (read, unreadable) = read_partition(&session, stream, topic, partition.id).await;
            if let Some(reason) = unreadable {
                panic!("partition {} cannot be read: {reason}", partition.id);
            }
            messages.extend(read);
        }
        session.shutdown().await;
        messages
    }

    /// The messages of a partition from the start up to its end, or up to
    /// where the server cannot read it back (and why).
    pub async fn read_partition(&self, stream: &str, topic: &str, partition: u32) -> (Vec<Message>, Option<String>) {
        let session = self.session().await;
        let read = read_partition(&session, stream, topic, partition).await;
        session.shutdown().await;
        read
    }
}

async fn read_partition(
    session: &Session,
    stream: &str,
    topic: &str,
    partition: u32,
) -> (Vec<Message>, Option<String>) {
    let mut messages: Vec<Message> = Vec::new();
    loop {
        let next = messages.last().map_or(0, |message| message.offset + 1);
        let polled = session
            .poll(stream, topic, partition, Reader::Named(TEST_READER), Start::At(next), 1000)
            .await
            .expect("the topic can be read");
        match polled {
            Polled::Messages(batch) if batch.is_empty() => return (messages, None),
            Polled::Messages(batch) => messages.extend(batch),
            Polled::Unreadable(reason) => return (messages, Some(reason.to_string())),
            Polled::NotOwned => panic!("a named reader owns no partition, yet the server said not owned"),
        }
    }
}

/// Produces with the `iggy` 0.11 SDK, as a user of iggy-server 0.9 does.
async fn produce_0_11(
    client: &iggy_0_11::prelude::IggyClient,
    stream: &str,
    topic: &str,
    payloads: impl IntoIterator<Item = Vec<u8>>,
) {
    use iggy_0_11::prelude::{Client, Identifier, IggyMessage, MessageClient, Partitioning};
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

impl IggyServer {
    /// On iggy-server 0.9, where durability is a topic's own setting: creates
    /// a topic whose every message is saved to disk (fsync) before it is
    /// acknowledged, so that kill -9 loses nothing acknowledged. Sent raw,
    /// as the 0.11 SDK's topic options are refused by this 0.9 build.
    pub async fn create_durable_topic(&self, stream: &str, topic: &str, partitions: u32) {
        use iggy_0_11::prelude::{Client, StreamClient};
        use iggy_binary_protocol_0_11::codes::CREATE_TOPIC_CODE;
        use iggy_binary_protocol_0_11::primitives::user_headers::encode_user_headers;
        use iggy_binary_protocol_0_11::requests::topics::CreateTopicRequest;
        use iggy_binary_protocol_0_11::{WireEncode, WireIdentifier, WireName, WireOptions};
        assert_eq!(self.generation(), Generation::V0_9, "iggy-server 0.8 sets durability for the whole server");
        let client = self.client_0_11().await;
        let _ = client.create_stream(stream).await;
        // String values, which the server parses by each key's own type.
        let text = 2;
        let mut options = bytes::BytesMut::new();
        encode_user_headers(
            &[(text, &b"enforce_fsync"[..], text, &b"true"[..]), (text, b"messages_required_to_save", text, b"1")],
            &mut options,
        );
        let request = CreateTopicRequest {
            stream_id: WireIdentifier::named(stream).unwrap(),
            partitions_count: partitions,
            name: WireName::new(topic).unwrap(),
            options: WireOptions::from_bytes(options.freeze()).expect("valid options"),
        };
        client.send_binary_request(CREATE_TOPIC_CODE, request.to_bytes()).await.expect("the durable topic is created");
        let _ = client.shutdown().await;
    }
}
