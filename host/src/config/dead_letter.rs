//! `[dead_letter]`: the Iggy topic that receives records Ferry cannot
//! process, with the reason.

use serde::Deserialize;

use super::iggy::{IggyConnection, IggyProtocol, IggyTls, validate_name};
use super::problems::Problems;

/// Where failed records go. Connection fields default to the pipeline's own
/// Iggy connection.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    pub stream: String,
    /// Created (with one partition) if missing.
    pub topic: String,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub tls: Option<IggyTls>,
    /// Which generation of Iggy's protocol to speak; by default the
    /// source's or sink's when the address is theirs, else asked.
    #[serde(default)]
    pub protocol: Option<IggyProtocol>,
}

impl DeadLetterConfig {
    /// The connection to use: unset fields are the pipeline's own (`shared`).
    /// The generation follows the pipeline's only while the server does.
    pub fn connection(&self, shared: &IggyConnection) -> IggyConnection {
        IggyConnection {
            address: self.address.clone().unwrap_or_else(|| shared.address.clone()),
            username: self.username.clone().unwrap_or_else(|| shared.username.clone()),
            password: self.password.clone().unwrap_or_else(|| shared.password.clone()),
            tls: self.tls.clone().or_else(|| shared.tls.clone()),
            protocol: self.protocol.unwrap_or(match &self.address {
                None => shared.protocol,
                Some(_) => IggyProtocol::Auto,
            }),
        }
    }

    pub(crate) fn validate(&self, shared: &IggyConnection, problems: &mut Problems) {
        validate_name(&self.stream, "dead_letter.stream", problems);
        validate_name(&self.topic, "dead_letter.topic", problems);
        // An inherited connection was checked where it is written.
        if self.address.is_some() {
            self.connection(shared).validate("dead_letter", problems);
        }
    }
}
