//! How Ferry reaches an Iggy server, shared by every Iggy section.
//!
//! `[source.iggy]`, `[sink.iggy]` and `[dead_letter]` each declare the
//! connection keys (`address`, `username`, `password`, `tls`, `protocol`)
//! beside their own, and each gives them to the rest of Ferry as one
//! [`IggyConnection`]. The keys are not one `#[serde(flatten)]`ed struct on
//! purpose: flattening buffers the table, so `deny_unknown_fields` stops
//! working and an error no longer names its key (serde#1183,
//! serde_path_to_error#9; uv and numbat dropped `flatten` for the same
//! reason). A user's typo must be refused, and an error must say
//! `source.iggy.protocol`, not just `source.iggy`.

use serde::Deserialize;

use super::problems::Problems;

/// Connection settings of an Iggy server (TCP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IggyConnection {
    /// `host:port` of the server's TCP transport.
    pub address: String,
    pub username: String,
    pub password: String,
    pub tls: Option<IggyTls>,
    pub protocol: IggyProtocol,
}

/// `protocol = "auto" | "0.8" | "0.9"`: which generation of Iggy's wire
/// protocol to speak. `auto` asks the server before logging in; a pinned
/// generation makes a server that speaks another one a clear error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum IggyProtocol {
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "0.8")]
    V0_8,
    #[serde(rename = "0.9")]
    V0_9,
}

/// TLS for the Iggy connection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IggyTls {
    /// The server name to verify; by default the host of `address`.
    #[serde(default)]
    pub domain: Option<String>,
    /// A CA certificate file to trust, in PEM.
    #[serde(default)]
    pub ca_file: Option<String>,
}

impl IggyConnection {
    /// The server name a TLS connection verifies: `tls.domain`, else the host
    /// of `address`.
    pub fn tls_server_name<'a>(&'a self, tls: &'a IggyTls) -> &'a str {
        let host = self.address.rsplit_once(':').map_or(self.address.as_str(), |(host, _)| host);
        tls.domain.as_deref().unwrap_or(host)
    }

    pub(crate) fn validate(&self, path: &str, problems: &mut Problems) {
        let has_port =
            self.address.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !has_port {
            problems.add(format!("{path}.address"), format!("{:?} is not host:port", self.address));
        }
        if self.username.is_empty() {
            problems.add(format!("{path}.username"), "must not be empty");
        }
    }
}

/// `create = { partitions = 3 }`: create the stream and topic if missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    pub partitions: u32,
}

impl CreateTopic {
    pub(crate) fn validate(&self, path: &str, problems: &mut Problems) {
        if self.partitions == 0 || self.partitions > 10_000 {
            problems.add(format!("{path}.create.partitions"), "must be between 1 and 10000");
        }
    }
}

/// Checks an Iggy stream or topic name.
pub(crate) fn validate_name(value: &str, path: &str, problems: &mut Problems) {
    if value.trim().is_empty() {
        problems.add(path, "must not be empty");
    } else if value.len() > 255 {
        problems.add(path, "must be at most 255 bytes");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(address: &str) -> Vec<String> {
        let connection = IggyConnection {
            address: address.into(),
            username: "iggy".into(),
            password: "iggy".into(),
            tls: None,
            protocol: IggyProtocol::Auto,
        };
        let mut problems = Problems::default();
        connection.validate("source.iggy", &mut problems);
        problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn given_host_and_port_then_valid() {
        assert!(problems("127.0.0.1:8090").is_empty());
        assert!(problems("iggy.internal:8090").is_empty());
    }

    #[test]
    fn given_no_port_then_names_the_field() {
        assert_eq!(problems("localhost"), ["source.iggy.address: \"localhost\" is not host:port"]);
        assert_eq!(problems(":8090").len(), 1);
    }
}
