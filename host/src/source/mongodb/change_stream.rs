//! A change stream read a server batch at a time, its events borrowed from
//! the server's reply.
//!
//! The driver's `ChangeStream` copies every event out of its batch and
//! parses its resume token, which Ferry does not need: Ferry reads each
//! event once, in place, and keeps the position of the last one it handed
//! out. Opening the stream is the same `aggregate` with a `$changeStream`
//! stage the driver sends. After an error the source opens the stream again
//! after the last position it handed out, as after any other failure.

use bson::raw::RawBsonRef;
use bson::{Document, RawDocument, Timestamp, doc};
use futures::StreamExt;
use mongodb::Client;
use mongodb::error::{Error, ErrorKind};
use mongodb::raw_batch_cursor::{RawBatch, RawBatchCursor};

use crate::config::{FullDocument, FullDocumentBeforeChange, MongoSourceConfig};
use crate::error::error_chain;

/// The server's code for a cursor it no longer has (it timed out, or the
/// server restarted): resumable, like network errors.
const CURSOR_NOT_FOUND: i32 = 43;

/// Where a (re)opened change stream begins.
#[derive(Clone)]
pub enum StreamFrom {
    Now,
    At(Timestamp),
    After(Document),
}

pub struct ChangeStream {
    cursor: RawBatchCursor,
    /// The server's last reply, and how many of its events were handed out.
    reply: Option<RawBatch>,
    taken: usize,
}

impl ChangeStream {
    /// Opens the change stream `config` describes, beginning at `from`.
    pub async fn open(client: &Client, config: &MongoSourceConfig, from: &StreamFrom) -> Result<Self, Error> {
        let cursor = aggregate(client, config, from, config.batch_size).await?;
        Ok(Self { cursor, reply: None, taken: 0 })
    }

    /// Where a stream opened now begins: the post-batch resume token of an
    /// opening that returns no events (`batchSize: 0`), and the server's
    /// operation time. A copy of existing documents takes this before it
    /// reads, then streams after the token.
    ///
    /// The token, not a cluster time, because a cluster time can pass a
    /// write that is not visible yet: SecantusDB answers with the last time
    /// it handed out, and a write given an earlier time may still be
    /// committing. A copy would miss that write, and a stream from the later
    /// time would too. A stream opened now begins where every earlier write
    /// is visible, so each write is in the copy, in the stream, or in both.
    pub async fn starting_point(
        client: &Client,
        config: &MongoSourceConfig,
    ) -> Result<StartingPoint, StartingPointError> {
        let mut cursor = aggregate(client, config, &StreamFrom::Now, 0).await?;
        let reply = cursor.next().await.ok_or(StartingPointError::NoReply)??;
        let reply = reply.as_raw_document();
        let token = reply
            .get_document("cursor")
            .and_then(|cursor| cursor.get_document("postBatchResumeToken"))
            .ok()
            .and_then(|token| Document::try_from(token).ok())
            .ok_or(StartingPointError::NoToken)?;
        let operation_time = reply
            .get_timestamp("operationTime")
            .or_else(|_| reply.get_document("$clusterTime").and_then(|time| time.get_timestamp("clusterTime")))
            .map_err(|_| StartingPointError::NoClusterTime)?;
        Ok(StartingPoint { token, operation_time })
    }

    /// The events not yet handed out of the server's last reply; when it has
    /// none left, those of the next reply (one `getMore`, which the server
    /// holds up to `max_await` for changes to arrive). Empty when none did.
    /// Each event the iterator yields counts as handed out.
    pub async fn next_events(&mut self) -> Result<Events<'_>, Error> {
        if !self.has_unread_events()? {
            let reply = match self.cursor.next().await {
                Some(reply) => reply?,
                // A stream that ended (after an `invalidate` event) has no
                // more events; the server closed the cursor.
                None => return Ok(Events { events: None, taken: &mut self.taken }),
            };
            self.reply = Some(reply);
            self.taken = 0;
        }
        let events = match &self.reply {
            Some(reply) => {
                let mut events = reply.doc_slices()?.into_iter();
                // Walking past the handed-out events reads only their lengths.
                for _ in 0..self.taken {
                    events.next();
                }
                Some(events)
            }
            None => None,
        };
        Ok(Events { events, taken: &mut self.taken })
    }

    /// The last event handed out, if it came from the last reply.
    pub fn last_event(&self) -> Result<Option<&RawDocument>, String> {
        let Some(last) = self.taken.checked_sub(1) else { return Ok(None) };
        let Some(reply) = &self.reply else { return Ok(None) };
        let events = reply.doc_slices().map_err(|error| error_chain(&error))?;
        events.into_iter().nth(last).map(event_document).transpose()
    }

    /// The server's post-batch resume token of its last reply: the point
    /// after every change it has looked at, filtered-out ones included.
    pub fn post_batch_token(&self) -> Option<Document> {
        let cursor = self.reply.as_ref()?.as_raw_document().get_document("cursor").ok()?;
        Document::try_from(cursor.get_document("postBatchResumeToken").ok()?).ok()
    }

    /// Whether the last reply has events not handed out yet.
    fn has_unread_events(&self) -> Result<bool, Error> {
        match &self.reply {
            Some(reply) => Ok(reply.doc_slices()?.into_iter().nth(self.taken).is_some()),
            None => Ok(false),
        }
    }
}

/// Where a stream opened now begins (see `ChangeStream::starting_point`).
pub struct StartingPoint {
    pub token: Document,
    pub operation_time: Timestamp,
}

#[derive(Debug, thiserror::Error)]
pub enum StartingPointError {
    #[error(transparent)]
    Server(#[from] Error),
    #[error("the server did not answer the opening of a change stream")]
    NoReply,
    #[error("the server gave no post-batch resume token (MongoDB 4.0.7 or later gives one)")]
    NoToken,
    #[error("the server reported no cluster time (change streams need a replica set)")]
    NoClusterTime,
}

/// The `aggregate` with a `$changeStream` stage that `config` describes,
/// beginning at `from`, its first reply holding at most `batch_size` events.
async fn aggregate(
    client: &Client,
    config: &MongoSourceConfig,
    from: &StreamFrom,
    batch_size: u32,
) -> Result<RawBatchCursor, Error> {
    let mut stage = Document::new();
    let full_document = match config.full_document {
        FullDocument::Default => None,
        FullDocument::UpdateLookup => Some("updateLookup"),
        FullDocument::WhenAvailable => Some("whenAvailable"),
        FullDocument::Required => Some("required"),
    };
    if let Some(full_document) = full_document {
        stage.insert("fullDocument", full_document);
    }
    let before_change = match config.full_document_before_change {
        FullDocumentBeforeChange::Off => None,
        FullDocumentBeforeChange::WhenAvailable => Some("whenAvailable"),
        FullDocumentBeforeChange::Required => Some("required"),
    };
    if let Some(before_change) = before_change {
        stage.insert("fullDocumentBeforeChange", before_change);
    }
    match from {
        StreamFrom::Now => {}
        StreamFrom::At(time) => {
            stage.insert("startAtOperationTime", *time);
        }
        StreamFrom::After(token) => {
            stage.insert("resumeAfter", token.clone());
        }
    }
    if config.database.is_none() {
        stage.insert("allChangesForCluster", true);
    }
    let mut pipeline = vec![doc! { "$changeStream": stage }];
    pipeline.extend(config.stages.documents().iter().cloned());
    // A deployment's changes are watched from the admin database.
    let database = client.database(config.database.as_deref().unwrap_or("admin"));
    let collection = config.collection.as_ref().map(|name| database.collection::<Document>(name));
    let aggregate = match &collection {
        Some(collection) => collection.aggregate(pipeline),
        None => database.aggregate(pipeline),
    };
    aggregate.batch_size(batch_size).max_await_time(config.max_await).batch().await
}

/// Events of one server reply, borrowed from it; an event that cannot be
/// read gives the reason.
pub struct Events<'s> {
    events: Option<bson::raw::RawArrayIter<'s>>,
    taken: &'s mut usize,
}

impl<'s> Iterator for Events<'s> {
    type Item = Result<&'s RawDocument, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let event = self.events.as_mut()?.next()?;
        *self.taken += 1;
        Some(event_document(event))
    }
}

fn event_document(element: bson::error::Result<RawBsonRef<'_>>) -> Result<&RawDocument, String> {
    let element = element.map_err(|error| format!("cannot read a change event: {}", error_chain(&error)))?;
    element.as_document().ok_or_else(|| "a change event is not a document".to_owned())
}

/// Whether the change-streams specification calls `error` resumable: the
/// stream can be opened again after its last position. Network trouble, a
/// lost cursor, and what the server labels so.
pub fn is_resumable(error: &Error) -> bool {
    match error.kind.as_ref() {
        ErrorKind::Command(command) => {
            command.code == CURSOR_NOT_FOUND || error.contains_label("ResumableChangeStreamError")
        }
        ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } | ErrorKind::ServerSelection { .. } => true,
        _ => error.contains_label("ResumableChangeStreamError"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_network_trouble_then_the_stream_resumes_but_not_after_other_errors() {
        let network = Error::from(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        assert!(is_resumable(&network));
        let other = Error::custom("a bug");
        assert!(!is_resumable(&other));
    }
}
