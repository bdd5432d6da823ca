//! Certificates for TLS tests: a CA, and server or client certificates it signs (valid,
//! expired, or for other names), written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A certificate authority.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// PEM files of one certificate and its key.
pub struct Pem {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes the CA certificate (what peers trust) to `path`.
    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, &self.pem).unwrap();
        path.to_path_buf()
    }

    /// A certificate for 127.0.0.1 and localhost, written as `<dir>/<name>.crt` and `.key`;
    /// `expired`: its validity ended in 2020.
    pub fn issue(&self, dir: &Path, name: &str, expired: bool) -> Pem {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        if expired {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let pem = Pem {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&pem.cert, cert.pem()).unwrap();
        std::fs::write(&pem.key, key.serialize_pem()).unwrap();
        pem
    }

    /// Replaces `pem`'s files in place with a new certificate from this CA, as cert-manager
    /// renews one (same paths, new contents, a later modification time).
    pub fn renew(&self, pem: &Pem, name: &str) {
        let staging = pem.cert.with_extension("renewing");
        std::fs::create_dir_all(&staging).unwrap();
        let fresh = self.issue(&staging, name, false);
        std::fs::copy(&fresh.cert, &pem.cert).unwrap();
        std::fs::copy(&fresh.key, &pem.key).unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
        for f in [&pem.cert, &pem.key] {
            std::fs::File::options()
                .write(true)
                .open(f)
                .unwrap()
                .set_modified(later)
                .unwrap();
        }
    }
}
