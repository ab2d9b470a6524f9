//! The TLS handshake of the protocol probe, made as the iggy SDK makes its
//! own: the CA file's certificates if one is given, else the public web
//! roots, and the server name `domain` or the host of `address`.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::{IggyConnection, IggyTls};
use crate::error::BoxError;

/// Runs the client side of a TLS handshake on `stream`.
pub(super) async fn handshake(
    stream: TcpStream,
    connection: &IggyConnection,
    tls: &IggyTls,
) -> Result<TlsStream<TcpStream>, BoxError> {
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca_file {
        Some(ca_file) => {
            for certificate in CertificateDer::pem_file_iter(ca_file)? {
                roots.add(certificate?)?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(connection.tls_server_name(tls).to_owned())?;
    Ok(TlsConnector::from(Arc::new(config)).connect(name, stream).await?)
}
