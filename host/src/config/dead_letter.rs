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
    /// The connection to use, filling unset fields from `fallback`.
    pub fn connection(&self, fallback: Option<&IggyConnection>) -> Option<IggyConnection> {
        let address = self.address.clone().or_else(|| fallback.map(|f| f.address.clone()))?;
        Some(IggyConnection {
            address,
            username: self
                .username
                .clone()
                .or_else(|| fallback.map(|f| f.username.clone()))
                .unwrap_or_else(super::defaults::iggy_username),
            password: self
                .password
                .clone()
                .or_else(|| fallback.map(|f| f.password.clone()))
                .unwrap_or_else(super::defaults::iggy_password),
            tls: self.tls.clone().or_else(|| fallback.and_then(|f| f.tls.clone())),
            protocol: self.protocol.unwrap_or(match (&self.address, fallback) {
                (None, Some(fallback)) => fallback.protocol,
                _ => IggyProtocol::Auto,
            }),
        })
    }

    pub(crate) fn validate(&self, fallback: Option<&IggyConnection>, problems: &mut Problems) {
        validate_name(&self.stream, "dead_letter.stream", problems);
        validate_name(&self.topic, "dead_letter.topic", problems);
        match (&self.address, fallback) {
            (None, None) => {
                problems.add("dead_letter.address", "must be set: the pipeline has no Iggy connection to share")
            }
            // An inherited connection was checked where it is written.
            (None, Some(_)) => {}
            (Some(_), _) => {
                if let Some(connection) = self.connection(fallback) {
                    connection.validate("dead_letter", problems);
                }
            }
        }
    }
}
