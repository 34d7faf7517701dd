//! One test CA and a server certificate for `127.0.0.1` signed by it, for the TLS tests of the
//! engines (`rediss://`, `tls://`): made with rcgen at run time, so no key is checked in.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// A CA and a server certificate for the address `127.0.0.1` (and no name, so a client
/// reaching the same server as `localhost` or `127.0.0.2` is refused), all PEM.
#[derive(Clone, Debug)]
pub struct TestPki {
    /// The CA certificate, which clients are told to trust.
    pub ca: String,
    /// The server certificate, signed by the CA.
    pub cert: String,
    /// The server certificate's private key.
    pub key: String,
}

/// Where [`TestPki::write`] put the PEM files.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// `ca.pem`.
    pub ca: PathBuf,
    /// `server.pem`.
    pub cert: PathBuf,
    /// `server.key`.
    pub key: PathBuf,
}

impl TestPki {
    /// A fresh CA named `common_name`, and a server certificate for 127.0.0.1 signed by it.
    pub fn new(common_name: &str) -> TestPki {
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, common_name);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let key = KeyPair::generate().expect("server key");
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("server params")
            .signed_by(&key, &ca)
            .expect("server certificate");
        TestPki {
            ca: ca.pem(),
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// Writes `ca.pem`, `server.pem` and `server.key` to `dir` (made if missing).
    pub fn write(&self, dir: &Path) -> TlsFiles {
        std::fs::create_dir_all(dir).expect("certificates dir");
        let files = TestPki::files(dir);
        for (path, pem) in [
            (&files.ca, &self.ca),
            (&files.cert, &self.cert),
            (&files.key, &self.key),
        ] {
            std::fs::write(path, pem).expect("write a PEM file");
        }
        files
    }

    /// Where [`TestPki::write`] puts the files in `dir`, without writing them.
    pub fn files(dir: &Path) -> TlsFiles {
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        }
    }
}
