//! A certificate authority made for one test, and a server certificate it
//! signed, so that TLS tests verify certificates for real (no "accept any
//! certificate" switch) without a file checked into the repository.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// The name the server certificate is for (and its loopback address).
pub const SERVER_NAME: &str = "localhost";

pub struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    /// A fresh CA and a server certificate for `localhost` and `127.0.0.1`,
    /// written as PEM files.
    pub fn new() -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "Ferry test CA");
        let ca_key = KeyPair::generate().expect("a CA key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("the CA signs itself");
        let issuer = Issuer::new(ca_params, ca_key);

        let mut server_params =
            CertificateParams::new(vec![SERVER_NAME.to_owned(), "127.0.0.1".to_owned()]).expect("server parameters");
        server_params.distinguished_name.push(DnType::CommonName, SERVER_NAME);
        let server_key = KeyPair::generate().expect("a server key");
        let server_cert = server_params.signed_by(&server_key, &issuer).expect("the CA signs the server");

        let dir = tempfile::tempdir().expect("a temporary directory");
        let ca = Self { dir };
        std::fs::write(ca.ca_file(), ca_cert.pem()).expect("the CA file is written");
        std::fs::write(ca.cert_file(), server_cert.pem()).expect("the certificate is written");
        std::fs::write(ca.key_file(), server_key.serialize_pem()).expect("the key is written");
        ca
    }

    /// The CA certificate clients trust.
    pub fn ca_file(&self) -> PathBuf {
        self.path().join("ca.pem")
    }

    /// The server's certificate.
    pub fn cert_file(&self) -> PathBuf {
        self.path().join("server.pem")
    }

    /// The server's private key.
    pub fn key_file(&self) -> PathBuf {
        self.path().join("server-key.pem")
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}
