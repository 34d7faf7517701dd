//! HTTPS for the demo, and with it HTTP/2: browsers speak HTTP/2 only over TLS (negotiated
//! with ALPN), and over HTTP/2 all of a browser's streams and requests to the server share one
//! connection, instead of at most six HTTP/1.1 connections per origin.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// The TLS flags of the demo.
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// PEM certificate chain: serve HTTPS (and HTTP/2) with it and `--tls-key`.
    #[arg(long, env = "TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve HTTPS (and HTTP/2) with a development certificate for localhost and 127.0.0.1,
    /// made at start. Browsers warn about it.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub tls_self_signed: bool,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file is missing or not PEM.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The certificate file holds no certificate.
    #[error("no certificate in {0}")]
    NoCertificate(PathBuf),
    /// rcgen failed (`--tls-self-signed`).
    #[error("cannot make a self-signed certificate: {0}")]
    SelfSigned(#[from] rcgen::Error),
    /// rustls refused the certificate or key.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

impl TlsArgs {
    /// The rustls configuration the flags ask for, or `None` for plain HTTP.
    ///
    /// ```
    /// let args = sse_demo::tls::TlsArgs { tls_cert: None, tls_key: None, tls_self_signed: true };
    /// assert!(args.server_config().unwrap().is_some());
    /// ```
    pub fn server_config(&self) -> Result<Option<ServerConfig>, TlsError> {
        let (certs, key) = match (&self.tls_cert, &self.tls_key, self.tls_self_signed) {
            (Some(cert), Some(key), _) => (read_certs(cert)?, read_key(key)?),
            (_, _, true) => self_signed()?,
            _ => return Ok(None),
        };
        // `ring`, explicitly: the only provider built (no process-wide default to install).
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        // actix's `bind_rustls_0_23` sets ALPN to h2 and http/1.1.
        Ok(Some(config))
    }
}

fn read_certs(path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |reason: String| TlsError::Read {
        path: path.clone(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| read(err.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| read(err.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.clone()));
    }
    Ok(certs)
}

fn read_key(path: &PathBuf) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|err| TlsError::Read {
        path: path.clone(),
        reason: err.to_string(),
    })
}

/// A certificate for `localhost` and `127.0.0.1`, new at each start.
fn self_signed() -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let names = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names)?;
    let key = PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    Ok((vec![certified.cert.der().clone()], key))
}
