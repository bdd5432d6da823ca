//! TLS on remoting connections, with RocketMQ's settings (`TlsSystemConfig`): the server mode
//! (`disabled`, `permissive` — TLS and plaintext told apart by the first byte, 0x16 starting a
//! TLS handshake —, `enforcing`), client certificates (`tls.server.need.client.auth`), key,
//! certificate and trust paths for both sides, `tls.config.file`, and the test mode's
//! self-signed certificate. Server certificates are read again when their files change, so
//! they rotate without a restart. rustls with the ring provider: no OpenSSL.

use std::io::{BufReader, Cursor};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Mutex, RwLock};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpStream;

use crate::config::{ConfigValue, JavaConfig};

/// `tls.server.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disabled,
    /// TLS and plaintext on the same port (RocketMQ's default).
    Permissive,
    /// TLS only: a plaintext connection is closed.
    Enforcing,
}

impl ConfigValue for TlsMode {
    fn parse_value(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "disabled" => Some(TlsMode::Disabled),
            "permissive" => Some(TlsMode::Permissive),
            "enforcing" => Some(TlsMode::Enforcing),
            _ => None,
        }
    }
    fn print_value(&self) -> String {
        match self {
            TlsMode::Disabled => "disabled",
            TlsMode::Permissive => "permissive",
            TlsMode::Enforcing => "enforcing",
        }
        .into()
    }
}

/// `tls.server.need.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// A client may present a certificate; if it does, it must be trusted.
    Optional,
    /// A client must present a trusted certificate.
    Require,
}

impl ConfigValue for ClientAuth {
    fn parse_value(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "none" => Some(ClientAuth::None),
            "optional" => Some(ClientAuth::Optional),
            "require" => Some(ClientAuth::Require),
            _ => None,
        }
    }
    fn print_value(&self) -> String {
        match self {
            ClientAuth::None => "none",
            ClientAuth::Optional => "optional",
            ClientAuth::Require => "require",
        }
        .into()
    }
}

crate::java_config! {
    /// RocketMQ's TLS settings, by their property names. They may also come from
    /// `tls.config.file` (read if it exists), which wins over the server's own file.
    pub struct TlsConfig {
        server_mode: TlsMode = TlsMode::Permissive => "tls.server.mode",
        server_need_client_auth: ClientAuth = ClientAuth::None => "tls.server.need.client.auth",
        server_key_path: String = String::new() => "tls.server.keyPath",
        /// Encrypted keys are not supported: give an unencrypted PKCS#8, PKCS#1 or SEC1 key.
        server_key_password: String = String::new() => "tls.server.keyPassword",
        server_cert_path: String = String::new() => "tls.server.certPath",
        /// Accepted for RocketMQ's files; client certificates are always verified (ours).
        server_auth_client: bool = false => "tls.server.authClient",
        server_trust_cert_path: String = String::new() => "tls.server.trustCertPath",
        /// Outgoing connections (to name servers, masters, brokers) use TLS.
        client_enable: bool = false => "tls.enable",
        client_key_path: String = String::new() => "tls.client.keyPath",
        client_key_password: String = String::new() => "tls.client.keyPassword",
        client_cert_path: String = String::new() => "tls.client.certPath",
        /// Verify the server's certificate against `tls.client.trustCertPath`. RocketMQ's
        /// default is false; ours is true: an unverified server could be anyone.
        client_auth_server: bool = true => "tls.client.authServer",
        client_trust_cert_path: String = String::new() => "tls.client.trustCertPath",
        /// Without `tls.server.certPath`, serve TLS with a self-signed certificate made at
        /// start (RocketMQ's test mode, on by default as there).
        test_mode_enable: bool = true => "tls.test.mode.enable",
        config_file: String = "/etc/rocketmq/tls.properties".into() => "tls.config.file",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("TLS settings: {0}")]
    Config(String),
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

fn file_err(path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        path: path.into(),
        reason: reason.to_string(),
    }
}

impl TlsConfig {
    /// These settings with `tls.config.file` applied on top, if it exists.
    pub fn resolved(&self) -> Result<TlsConfig, TlsError> {
        let path = Path::new(&self.config_file);
        if self.config_file.trim().is_empty() || !path.exists() {
            return Ok(self.clone());
        }
        let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
        let props = crate::config::parse_properties(&text).map_err(|e| file_err(path, e))?;
        let mut c = self.clone();
        c.apply(&props).map_err(|e| file_err(path, e))?;
        Ok(c)
    }

    /// Whether servers with these settings speak TLS at all.
    pub fn server_enabled(&self) -> bool {
        self.server_mode != TlsMode::Disabled
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, e))?;
    let certs = CertificateDer::pem_reader_iter(&mut BufReader::new(Cursor::new(bytes)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, e))?;
    if certs.is_empty() {
        return Err(file_err(path, "no PEM certificate in it"));
    }
    Ok(certs)
}

fn read_key(path: &Path, password: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    if !password.is_empty() {
        return Err(file_err(
            path,
            "encrypted keys are not supported: give an unencrypted PEM key (openssl pkcs8 -nocrypt)",
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| file_err(path, e))?;
    PrivateKeyDer::from_pem_reader(&mut BufReader::new(Cursor::new(bytes)))
        .map_err(|e| file_err(path, format!("no PEM private key: {e}")))
}

fn roots(path: &str, what: &str) -> Result<RootCertStore, TlsError> {
    if path.trim().is_empty() {
        return Err(TlsError::Config(format!(
            "{what} needs a trust certificate path"
        )));
    }
    let mut store = RootCertStore::empty();
    for cert in read_certs(Path::new(path))? {
        store.add(cert).map_err(|e| file_err(Path::new(path), e))?;
    }
    Ok(store)
}

/// A self-signed certificate for the test mode.
fn test_certificate() -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let ck = rcgen::generate_simple_self_signed(names)
        .map_err(|e| TlsError::Config(format!("test certificate: {e}")))?;
    let key = PrivateKeyDer::try_from(ck.signing_key.serialize_der())
        .map_err(|e| TlsError::Config(format!("test certificate: {e}")))?;
    Ok((vec![ck.cert.der().clone()], key))
}

fn server_config(c: &TlsConfig) -> Result<ServerConfig, TlsError> {
    let (certs, key) = if c.server_cert_path.trim().is_empty() {
        if !c.test_mode_enable {
            return Err(TlsError::Config(
                "tls.server.mode is not disabled but there is no tls.server.certPath (and tls.test.mode.enable=false)".into(),
            ));
        }
        // RocketMQ's default: worth a line, not a warning, on every local start.
        tracing::info!("TLS test mode: permissive port with a self-signed certificate; set tls.server.certPath and tls.server.keyPath, or tls.server.mode=disabled");
        test_certificate()?
    } else {
        (
            read_certs(Path::new(&c.server_cert_path))?,
            read_key(Path::new(&c.server_key_path), &c.server_key_password)?,
        )
    };
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match c.server_need_client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        auth => {
            let roots = Arc::new(roots(
                &c.server_trust_cert_path,
                "tls.server.need.client.auth",
            )?);
            let v = WebPkiClientVerifier::builder_with_provider(roots, provider());
            let v = if auth == ClientAuth::Optional {
                v.allow_unauthenticated()
            } else {
                v
            };
            builder.with_client_cert_verifier(
                v.build()
                    .map_err(|e| TlsError::Config(format!("client verifier: {e}")))?,
            )
        }
    };
    Ok(builder.with_single_cert(certs, key)?)
}

/// Something built from certificate files (an acceptor, a connector), built again when
/// their modification times change — looked at no more than once a second, when it is next
/// used. Files that do not load keep the previous value in use.
struct Reloading<T> {
    config: TlsConfig,
    files: Vec<String>,
    build: fn(&TlsConfig) -> Result<T, TlsError>,
    current: RwLock<T>,
    /// When the files were last looked at, and their modification times then.
    seen: Mutex<(Instant, Vec<Option<SystemTime>>)>,
}

impl<T: Clone> Reloading<T> {
    fn new(
        config: TlsConfig,
        files: Vec<String>,
        build: fn(&TlsConfig) -> Result<T, TlsError>,
    ) -> Result<Self, TlsError> {
        let current = build(&config)?;
        let seen = (Instant::now(), modified(&files));
        Ok(Reloading {
            config,
            files,
            build,
            current: RwLock::new(current),
            seen: Mutex::new(seen),
        })
    }

    fn get(&self) -> T {
        let mut seen = self.seen.lock();
        if seen.0.elapsed() >= Duration::from_secs(1) {
            seen.0 = Instant::now();
            let now = modified(&self.files);
            if now != seen.1 {
                seen.1 = now;
                match (self.build)(&self.config) {
                    Ok(v) => {
                        *self.current.write() = v;
                        tracing::info!(files = ?self.files, "TLS files changed; reloaded");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "TLS files changed but do not load; keeping the previous ones")
                    }
                }
            }
        }
        self.current.read().clone()
    }
}

fn modified(files: &[String]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// The server side: the mode, and an acceptor rebuilt when its files change.
pub struct ServerTls {
    mode: TlsMode,
    acceptor: Reloading<tokio_rustls::TlsAcceptor>,
}

impl ServerTls {
    /// `None` when the mode is `disabled`.
    pub fn new(config: &TlsConfig) -> Result<Option<Arc<ServerTls>>, TlsError> {
        let config = config.resolved()?;
        if !config.server_enabled() {
            return Ok(None);
        }
        let files = vec![
            config.server_cert_path.clone(),
            config.server_key_path.clone(),
            config.server_trust_cert_path.clone(),
        ];
        let mode = config.server_mode;
        let build = |c: &TlsConfig| {
            server_config(c).map(|sc| tokio_rustls::TlsAcceptor::from(Arc::new(sc)))
        };
        Ok(Some(Arc::new(ServerTls {
            mode,
            acceptor: Reloading::new(config, files, build)?,
        })))
    }

    pub fn mode(&self) -> TlsMode {
        self.mode
    }

    /// The acceptor, rebuilt first if a certificate, key or trust file changed.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        self.acceptor.get()
    }
}

/// Accepts any server certificate (`tls.client.authServer=false`, RocketMQ's default).
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The client side: connects over TLS when `tls.enable=true`. Its files are read again when
/// they change, so a client certificate rotated by cert-manager is presented without a
/// restart.
#[derive(Clone)]
pub struct ClientTls {
    connector: Arc<Reloading<tokio_rustls::TlsConnector>>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls")
    }
}

fn client_connector(c: &TlsConfig) -> Result<tokio_rustls::TlsConnector, TlsError> {
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = if c.client_auth_server {
        builder.with_root_certificates(roots(
            &c.client_trust_cert_path,
            "tls.client.authServer=true",
        )?)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider())))
    };
    let config = if c.client_cert_path.trim().is_empty() {
        builder.with_no_client_auth()
    } else {
        builder.with_client_auth_cert(
            read_certs(Path::new(&c.client_cert_path))?,
            read_key(Path::new(&c.client_key_path), &c.client_key_password)?,
        )?
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

impl ClientTls {
    /// `None` unless `tls.enable=true`.
    pub fn new(config: &TlsConfig) -> Result<Option<ClientTls>, TlsError> {
        let c = config.resolved()?;
        if !c.client_enable {
            return Ok(None);
        }
        let files = vec![
            c.client_cert_path.clone(),
            c.client_key_path.clone(),
            c.client_trust_cert_path.clone(),
        ];
        Ok(Some(ClientTls {
            connector: Arc::new(Reloading::new(c, files, client_connector)?),
        }))
    }

    /// A tool's TLS (`--tls`, `--tlsConfigFile`): `None` unless asked for; the file's
    /// `tls.client.*` keys apply (default file: /etc/rocketmq/tls.properties, if present).
    pub fn for_tool(enable: bool, file: Option<&Path>) -> Result<Option<ClientTls>, TlsError> {
        if !enable && file.is_none() {
            return Ok(None);
        }
        if let Some(f) = file.filter(|f| !f.exists()) {
            return Err(file_err(f, "no such file"));
        }
        let mut c = TlsConfig {
            client_enable: true,
            ..Default::default()
        };
        if let Some(f) = file {
            c.config_file = f.display().to_string();
        }
        ClientTls::new(&c)
    }

    /// TLS over `stream` to `addr` (`host:port`): the host is checked against the server's
    /// certificate.
    pub async fn connect(
        &self,
        addr: &str,
        stream: TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let host = addr
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(addr)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = ServerName::try_from(host.to_string()).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{host}: {e}"))
        })?;
        self.connector.get().connect(name, stream).await
    }
}

/// The first byte of a TLS connection (a handshake record).
pub const HANDSHAKE_RECORD: u8 = 0x16;

/// An accepted connection: TLS or, on a permissive port, plaintext.
pub enum MaybeTls {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl MaybeTls {
    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            MaybeTls::Plain($s) => $e,
            MaybeTls::Tls($s) => $e,
        }
    };
}

impl tokio::io::AsyncRead for MaybeTls {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        delegate!(self, s => std::pin::Pin::new(s).poll_read(cx, buf))
    }
}

impl tokio::io::AsyncWrite for MaybeTls {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        delegate!(self, s => std::pin::Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        delegate!(self, s => std::pin::Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        delegate!(self, s => std::pin::Pin::new(s).poll_shutdown(cx))
    }
}

/// How long a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl ServerTls {
    /// Takes an accepted connection as the mode says: in permissive mode the first byte
    /// (waited for up to `wait`) tells a TLS handshake from plaintext; in enforcing mode it
    /// must be TLS. An error closes the connection.
    pub async fn accept(&self, stream: TcpStream, wait: Duration) -> std::io::Result<MaybeTls> {
        let use_tls = match self.mode {
            TlsMode::Enforcing => true,
            TlsMode::Disabled => false,
            TlsMode::Permissive => {
                let mut first = [0u8; 1];
                match tokio::time::timeout(wait, stream.peek(&mut first)).await {
                    Ok(Ok(1)) => first[0] == HANDSHAKE_RECORD,
                    Ok(Ok(_)) => {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "closed before its first byte",
                        ))
                    }
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "silent before its first byte",
                        ))
                    }
                }
            }
        };
        if !use_tls {
            return Ok(MaybeTls::Plain(stream));
        }
        let _ = stream.set_nodelay(true);
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor().accept(stream)).await {
            Ok(Ok(s)) => Ok(MaybeTls::Tls(Box::new(s))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }
}
