//! How Ferry reaches MongoDB, for its sink and its change-stream source
//! alike: one client construction (name, timeouts, write concern) and one
//! reachability check. The counterpart of `iggy_link` for the other end.

use mongodb::options::{Acknowledgment, ClientOptions, WriteConcern};

pub use mongodb::Client;

use crate::error::ServiceError;

/// How long the driver looks for a usable server before an operation fails
/// (and Ferry's retry loop logs and tries again), unless the URI says.
const SERVER_SELECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A client for `uri` named "ferry" in server logs. Unless the URI says
/// otherwise, writes are acknowledged only once journaled on a majority:
/// Ferry commits its source position on that acknowledgement, so it must
/// survive a crash of the database.
pub async fn client(uri: &str) -> Result<Client, ServiceError> {
    let what = "reading the MongoDB connection string";
    let mut options = ClientOptions::parse(uri).await.map_err(|error| ServiceError::mongo(what, error))?;
    options.app_name.get_or_insert_with(|| "ferry".to_owned());
    options.server_selection_timeout.get_or_insert(SERVER_SELECTION_TIMEOUT);
    options
        .write_concern
        .get_or_insert_with(|| WriteConcern::builder().w(Acknowledgment::Majority).journal(true).build());
    Client::with_options(options).map_err(|error| ServiceError::mongo(what, error))
}

/// Asks the server for a `ping`: whether it can be reached at all.
pub async fn ping(client: &Client, what: &str) -> Result<(), ServiceError> {
    client
        .database("admin")
        .run_command(bson::doc! { "ping": 1 })
        .await
        .map(|_| ())
        .map_err(|error| ServiceError::mongo(what, error))
}
