//! The cluster's admin credential: the access key and secret that sign control-plane requests
//! (role changes, config updates, deletions, broker registrations, the HA handshake).
//!
//! The file has the shape of RocketMQ's `conf/tools.yml`, so the same file also lets the Java
//! `mqadmin` drive our brokers:
//!
//! ```yaml
//! accessKey: rocketmq-admin
//! secretKey: 2b7e151628aed2a6abf7158809cf4f3c
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use rand::RngCore;
use rmq_remoting::Credentials;
use serde::{Deserialize, Serialize};

/// Where a local cluster keeps its admin credential when no `adminCredentialFile` is set:
/// `$HOME/.rocketmq/admin-credential.yml`, readable by its owner only. Every process of the
/// same user on this machine (name servers, brokers, mqadmin) finds it there.
pub fn default_path() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home)
        .join(".rocketmq")
        .join("admin-credential.yml")
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot read the admin credential {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the admin credential {path} is not `accessKey: …` / `secretKey: …` YAML: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("cannot create the admin credential {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    access_key: String,
    secret_key: String,
}

/// The credential a server or tool signs with, from its settings: the configured file (which
/// must exist: a credential invented on one host would not match the others'), else the local
/// default — created if control-plane authentication is on, used if present otherwise.
pub fn resolve(
    auth_enabled: bool,
    configured: &str,
) -> Result<Option<Credentials>, CredentialError> {
    let configured = configured.trim();
    if !configured.is_empty() {
        return load(Path::new(configured)).map(Some);
    }
    if auth_enabled {
        return load_or_create(&default_path()).map(Some);
    }
    Ok(load(&default_path()).ok())
}

/// Reads the credential at `path`: a YAML file, or a directory holding the files `accessKey`
/// and `secretKey` (a Kubernetes Secret mounted as a volume).
pub fn load(path: &Path) -> Result<Credentials, CredentialError> {
    if path.is_dir() {
        let read = |name: &str| {
            std::fs::read_to_string(path.join(name)).map_err(|source| CredentialError::Read {
                path: path.join(name),
                source,
            })
        };
        let (ak, sk) = (read("accessKey")?, read("secretKey")?);
        let (ak, sk) = (ak.trim(), sk.trim());
        if ak.is_empty() || sk.is_empty() {
            return Err(CredentialError::Format {
                path: path.into(),
                reason: "accessKey and secretKey must not be empty".into(),
            });
        }
        return Ok(Credentials::new(ak, sk));
    }
    let text = std::fs::read_to_string(path).map_err(|source| CredentialError::Read {
        path: path.into(),
        source,
    })?;
    let f: File = serde_yaml::from_str(&text).map_err(|e| CredentialError::Format {
        path: path.into(),
        reason: e.to_string(),
    })?;
    let (ak, sk) = (f.access_key.trim(), f.secret_key.trim());
    if ak.is_empty() || sk.is_empty() {
        return Err(CredentialError::Format {
            path: path.into(),
            reason: "accessKey and secretKey must not be empty".into(),
        });
    }
    Ok(Credentials::new(ak, sk))
}

/// Reads the credential at `path`, creating one with a random secret if there is none. Two
/// processes starting at once end with the same credential: the file appears whole or not at
/// all (written aside, then linked into place, which fails if another process won).
pub fn load_or_create(path: &Path) -> Result<Credentials, CredentialError> {
    match load(path) {
        Err(CredentialError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound => {}
        other => return other,
    }
    let create = |source| CredentialError::Create {
        path: path.into(),
        source,
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(d) = dir {
        std::fs::create_dir_all(d).map_err(create)?;
    }
    let mut secret = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let file = File {
        access_key: "rocketmq-admin".into(),
        secret_key: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
    };
    let text = serde_yaml::to_string(&file).map_err(|e| create(std::io::Error::other(e)))?;
    // Unique per call: threads of one process may race here too.
    let tmp = path.with_extension(format!(
        "tmp.{}.{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp).map_err(create)?;
        f.write_all(text.as_bytes()).map_err(create)?;
        f.sync_all().map_err(create)?;
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created the cluster's admin credential");
            Ok(Credentials::new(file.access_key, file.secret_key))
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load(path),
        Err(e) => Err(create(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_racing_to_create_end_with_one_credential() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.yml");
        let all: Vec<Credentials> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_create(&path).unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(all.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn created_once_then_read_back_by_everyone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/admin.yml");
        let a = load_or_create(&path).unwrap();
        let b = load_or_create(&path).unwrap();
        assert_eq!(a, b);
        assert!(a.secret_key.len() >= 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A mounted Secret: one file per key.
        let secret = dir.path().join("secret");
        std::fs::create_dir(&secret).unwrap();
        std::fs::write(secret.join("accessKey"), "ops\n").unwrap();
        std::fs::write(secret.join("secretKey"), "s3cret").unwrap();
        assert_eq!(load(&secret).unwrap(), Credentials::new("ops", "s3cret"));
        // Java's tools.yml shape.
        std::fs::write(&path, "accessKey: ops\nsecretKey: s3cret\n").unwrap();
        assert_eq!(load(&path).unwrap(), Credentials::new("ops", "s3cret"));
        std::fs::write(&path, "accessKey: ops\n").unwrap();
        assert!(matches!(load(&path), Err(CredentialError::Format { .. })));
        assert!(matches!(
            load(&dir.path().join("missing")),
            Err(CredentialError::Read { .. })
        ));
    }
}
