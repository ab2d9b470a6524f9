//! Reading a MongoDB change stream — optionally after copying the existing
//! documents — as batches of change records.
//!
//! The position lives with the data: every message Ferry produces carries
//! its change's position, and a checkpoint covers stretches where nothing
//! was produced (see `crate::resume`). On start the source resumes from
//! there; the Iggy sink recognises what each partition already holds, so a
//! restart after a crash at any moment writes every change exactly once.

mod change_stream;
mod event;
mod oplog;

use std::time::Duration;

use bson::{Bson, Document, Timestamp, doc};
use futures::TryStreamExt;
use mongodb::{Client, Cursor};

pub use event::{change_position, change_record, copy_record};
pub use oplog::watch_oplog;

use super::{Polled, Source};
use crate::config::{HistoryLost, MongoSourceConfig, StreamStart};
use crate::error::ServiceError;
use crate::record::{Batch, BatchSource, Record};
use crate::resume::{ChangePosition, PositionStore};
use crate::telemetry::PipelineTelemetry;
use crate::telemetry::events::{ChangesCommitted, ChangesPolled};
use change_stream::{ChangeStream, StartingPointError, StreamFrom, is_resumable};

/// Error codes meaning the stored resume point is gone: InvalidResumeToken,
/// ChangeStreamFatalError, ChangeStreamHistoryLost. (SecantusDB answers an
/// unknown token with 9, FailedToParse; only counted when resuming.)
const HISTORY_LOST_CODES: [i32; 3] = [260, 280, 286];
const FAILED_TO_PARSE: i32 = 9;

pub struct MongoSource {
    config: MongoSourceConfig,
    pipeline: String,
    client: Client,
    store: PositionStore,
    state: State,
    /// The last position handed out; a reopened stream resumes after it.
    polled: Option<ChangePosition>,
    /// The last position committed, saved once more on close.
    committed: Option<ChangePosition>,
    telemetry: PipelineTelemetry,
}

enum State {
    /// The stored position has not been read yet.
    Starting,
    // Boxed: a copy's cursor is large and the state lives for the whole run.
    Copying(Box<CopyRun>),
    Streaming {
        // Boxed for the same reason.
        stream: Option<Box<ChangeStream>>,
        from: StreamFrom,
    },
}

/// A copy of the existing documents of the watched collection.
struct CopyRun {
    started: Timestamp,
    /// Where the stream goes on after the copy: a resume token taken before
    /// the first document was read. `None` for a copy an earlier build
    /// began, which stored only `started` (the stream then begins there).
    stream_token: Option<Document>,
    copied: u64,
    last_id: Option<Bson>,
    cursor: Option<Cursor<Document>>,
}

impl MongoSource {
    /// A source reading with `client` (made for `config.uri`; with
    /// standbys its pool also serves the lease). `store` is where the
    /// destination keeps positions (see `PositionStore`).
    pub fn new(
        config: MongoSourceConfig,
        pipeline: &str,
        store: PositionStore,
        client: Client,
        telemetry: &PipelineTelemetry,
    ) -> Self {
        Self {
            config,
            pipeline: pipeline.to_owned(),
            client,
            store,
            state: State::Starting,
            polled: None,
            committed: None,
            telemetry: telemetry.clone(),
        }
    }

    /// The MongoDB client the stream is read with (its pool is shared).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    fn scope(&self) -> String {
        match (&self.config.database, &self.config.collection) {
            (Some(database), Some(collection)) => format!("{database}.{collection}"),
            (Some(database), None) => format!("database {database}"),
            _ => "the deployment".to_owned(),
        }
    }

    /// Decides where to begin: the stored position, else `start`.
    async fn begin(&mut self) -> Result<(), ServiceError> {
        self.state = match self.store.load().await? {
            Some(ChangePosition::Stream { token, .. }) => {
                tracing::info!(scope = %self.scope(), "resuming the change stream after its stored position");
                State::Streaming { stream: None, from: StreamFrom::After(token) }
            }
            Some(ChangePosition::Copy { started, copied, last_id, stream_token }) => {
                tracing::info!(scope = %self.scope(), copied, "continuing the copy of existing documents");
                let started = Timestamp { time: started.0, increment: started.1 };
                State::Copying(Box::new(CopyRun {
                    started,
                    stream_token,
                    copied,
                    last_id: Some(last_id),
                    cursor: None,
                }))
            }
            None => match self.config.start {
                StreamStart::Now => State::Streaming { stream: None, from: StreamFrom::Now },
                StreamStart::Timestamp(seconds) => {
                    State::Streaming { stream: None, from: StreamFrom::At(Timestamp { time: seconds, increment: 0 }) }
                }
                StreamStart::CopyExisting => {
                    State::Copying(Box::new(new_copy(&self.client, &self.config, &self.scope()).await?))
                }
            },
        };
        Ok(())
    }
}

/// A copy starting now, with the stream to follow from a point taken before
/// the first document is read, so nothing falls in a gap.
async fn new_copy(client: &Client, config: &MongoSourceConfig, scope: &str) -> Result<CopyRun, ServiceError> {
    let what = format!("opening the change stream of {scope} to follow its copy");
    let point = ChangeStream::starting_point(client, config).await.map_err(|error| match error {
        StartingPointError::Server(error) => ServiceError::mongo(what, error),
        other => ServiceError::fatal(what, other),
    })?;
    tracing::info!(%scope, "copying the existing documents, then streaming");
    Ok(CopyRun {
        started: point.operation_time,
        stream_token: Some(point.token),
        copied: 0,
        last_id: None,
        cursor: None,
    })
}

impl MongoSource {
    async fn poll_copy(&mut self) -> Result<Option<Polled<ChangePosition>>, ServiceError> {
        // Validation asks for a collection with copy-existing; a copy left
        // half done by an earlier version of the file may not have one.
        let Some((database, collection)) = self.config.copied_collection() else {
            return Err(ServiceError::fatal(
                "continuing the copy of existing documents",
                "the stored position is in the middle of a copy, and `[source.mongodb]` no longer names the \
                 collection it copies (set `database` and `collection` again, or delete the stored position)",
            ));
        };
        let (database, collection) = (database.to_owned(), collection.to_owned());
        let State::Copying(copy) = &mut self.state else { unreachable!("called while copying") };
        if copy.cursor.is_none() {
            let filter = match &copy.last_id {
                Some(last_id) => doc! { "_id": { "$gt": last_id.clone() } },
                None => doc! {},
            };
            let cursor = self
                .client
                .database(&database)
                .collection::<Document>(&collection)
                .find(filter)
                .sort(doc! { "_id": 1 })
                .batch_size(self.config.batch_size)
                .await
                .map_err(|error| ServiceError::mongo(format!("copying {database}.{collection}"), error))?;
            copy.cursor = Some(cursor);
        }
        let cursor = copy.cursor.as_mut().expect("opened above");
        let mut records = Vec::new();
        let mut position = None;
        while records.len() < self.config.batch_size as usize {
            let next = cursor.try_next().await;
            let document = match next {
                Ok(Some(document)) => document,
                Ok(None) => break,
                Err(error) => {
                    copy.cursor = None;
                    return Err(ServiceError::mongo(format!("copying {database}.{collection}"), error));
                }
            };
            let last_id = document.get("_id").cloned().unwrap_or(Bson::Null);
            copy.copied += 1;
            copy.last_id = Some(last_id.clone());
            let here = ChangePosition::Copy {
                started: (copy.started.time, copy.started.increment),
                copied: copy.copied,
                last_id,
                stream_token: copy.stream_token.clone(),
            };
            match copy_record(document, &database, &collection, &here, self.config.format) {
                Ok(record) => records.push(record),
                Err(reason) => return Err(ServiceError::fatal("copying existing documents", reason)),
            }
            position = Some(here);
        }
        if records.is_empty() {
            tracing::info!(copied = copy.copied, "copy of existing documents finished; streaming changes");
            let from = match copy.stream_token.take() {
                Some(token) => StreamFrom::After(token),
                None => StreamFrom::At(copy.started),
            };
            self.state = State::Streaming { stream: None, from };
            return Ok(None);
        }
        Ok(Some(self.handed_out(records, position.expect("set with the records"))))
    }

    async fn poll_stream(&mut self) -> Result<Option<Polled<ChangePosition>>, ServiceError> {
        let State::Streaming { stream, from } = &mut self.state else { unreachable!("called while streaming") };
        if stream.is_none() {
            match ChangeStream::open(&self.client, &self.config, from).await {
                Ok(opened) => *stream = Some(Box::new(opened)),
                Err(error) => return self.stream_failed(error).await,
            }
        }
        let State::Streaming { stream: Some(stream), .. } = &mut self.state else { unreachable!("opened above") };
        let batch_size = self.config.batch_size as usize;
        let mut records = Vec::new();
        // The position after the last event read: the batch's position.
        let mut after_last_event = None;
        // A steady trickle never leaves the stream empty: past max_await of
        // filling, what was read goes on, so a batch waits at most that long.
        let filling = std::time::Instant::now();
        while records.len() < batch_size {
            if after_last_event.is_some() && filling.elapsed() >= self.config.max_await {
                break;
            }
            let events = match stream.next_events().await {
                Ok(events) => events,
                Err(error) => return self.stream_failed(error).await,
            };
            let before = records.len();
            for event in events.take(batch_size - before) {
                let record = event
                    .and_then(|event| change_record(event, self.config.format))
                    .map_err(|reason| ServiceError::fatal("reading a change event", reason))?;
                records.push(record);
            }
            if records.len() == before {
                break;
            }
            // Taken now, while the reply holding that event is still the
            // stream's: the next getMore replaces it.
            let last = stream.last_event().and_then(|event| change_position(event.ok_or("no event was read")?));
            after_last_event = Some(last.map_err(|reason| ServiceError::fatal("reading a change event", reason))?);
        }
        ChangesPolled { events: records.len() }.emit(&self.telemetry);
        let after = match after_last_event {
            Some(position) => position,
            // With no events, the post-batch resume token still moves on past
            // filtered-out changes; handing it out keeps the stored position
            // fresh.
            None => match stream.post_batch_token() {
                Some(token) if self.polled_token() != Some(&token) => {
                    ChangePosition::Stream { token, cluster_time: None }
                }
                _ => return Ok(None),
            },
        };
        Ok(Some(self.handed_out(records, after)))
    }

    fn polled_token(&self) -> Option<&Document> {
        match &self.polled {
            Some(ChangePosition::Stream { token, .. }) => Some(token),
            _ => None,
        }
    }

    fn handed_out(&mut self, records: Vec<Record>, position: ChangePosition) -> Polled<ChangePosition> {
        self.polled = Some(position.clone());
        if let (State::Streaming { from, .. }, ChangePosition::Stream { token, .. }) = (&mut self.state, &position) {
            *from = StreamFrom::After(token.clone());
        }
        Polled { batch: Batch { source: BatchSource::Mongodb, records }, checkpoint: position }
    }

    /// Turns a stream error into the policy's answer: a lost history is
    /// either fatal (with how to recover), a jump to now, or a new copy.
    async fn stream_failed(
        &mut self,
        error: mongodb::error::Error,
    ) -> Result<Option<Polled<ChangePosition>>, ServiceError> {
        let scope = self.scope();
        let State::Streaming { stream, from } = &mut self.state else { unreachable!("called while streaming") };
        *stream = None;
        let resuming = matches!(from, StreamFrom::After(_));
        let code = match error.kind.as_ref() {
            mongodb::error::ErrorKind::Command(command) => Some(command.code),
            _ => None,
        };
        let lost = code.is_some_and(|code| HISTORY_LOST_CODES.contains(&code) || (resuming && code == FAILED_TO_PARSE));
        if !lost {
            let resumable = is_resumable(&error);
            let mut failure = ServiceError::mongo(format!("reading the change stream of {scope}"), error);
            // Opened again after its last position, the stream goes on.
            failure.transient |= resumable;
            return Err(failure);
        }
        match self.config.on_history_lost {
            HistoryLost::Fail => Err(ServiceError::fatal(
                format!(
                    "the change stream of {scope} cannot resume: MongoDB no longer has the history after the stored position \
                     (the oplog rolled past it, or the token is not valid here), so the changes in between are lost to \
                     this pipeline. To go on, set on_history_lost = \"copy-existing\" (copy the collection again, then \
                     stream; consumers see each current document once more) or \"restart-from-now\" (skip the gap)"
                ),
                error,
            )),
            HistoryLost::RestartFromNow => {
                tracing::error!(%scope, %error, "change stream history lost: restarting from now; changes in the gap are skipped");
                *from = StreamFrom::Now;
                Ok(None)
            }
            HistoryLost::CopyExisting => {
                tracing::error!(%scope, %error, "change stream history lost: copying the existing documents again");
                self.state = State::Copying(Box::new(new_copy(&self.client, &self.config, &scope).await?));
                Ok(None)
            }
        }
    }
}

impl Source for MongoSource {
    type Checkpoint = ChangePosition;

    async fn poll(&mut self) -> Result<Option<Polled<ChangePosition>>, ServiceError> {
        if matches!(self.state, State::Starting) {
            self.begin().await?;
        }
        match self.state {
            State::Starting => unreachable!("begun above"),
            State::Copying(_) => self.poll_copy().await,
            State::Streaming { .. } => self.poll_stream().await,
        }
    }

    async fn connect(&mut self) -> Result<(), ServiceError> {
        crate::mongo_client::ping(&self.client, "reaching the MongoDB change stream source").await?;
        self.store.connect().await
    }

    async fn commit(&mut self, checkpoint: ChangePosition) -> Result<(), ServiceError> {
        self.committed = Some(checkpoint.clone());
        self.store.save(&checkpoint, &self.pipeline, false).await?;
        ChangesCommitted { resume_time: checkpoint.cluster_seconds(), last_change: checkpoint.change_seconds() }
            .emit(&self.telemetry);
        Ok(())
    }

    /// One stream, one position: the later one covers every earlier one.
    fn covers(_later: &ChangePosition, _earlier: &ChangePosition) -> bool {
        true
    }

    fn idle_pause(&self) -> Duration {
        // The stream itself waits up to `max_await` on the server.
        Duration::ZERO
    }

    async fn close(&mut self) {
        if let Some(position) = self.committed.take()
            && let Err(error) = self.store.save(&position, &self.pipeline, true).await
        {
            tracing::warn!(%error, "cannot save the final change stream position (the data carries it anyway)");
        }
    }
}
