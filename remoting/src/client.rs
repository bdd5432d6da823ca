//! An async remoting client: one connection per address, reused by every request to it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::TcpStream;

use crate::command::RemotingCommand;
use crate::connection::{Connection, ConnectionConfig, RequestProcessor};
use crate::error::{RemotingError, Result};

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub connect_timeout: Duration,
    pub connection: ConnectionConfig,
    /// Signs every request (RocketMQ's ACL hook) when set.
    pub credentials: Option<crate::auth::Credentials>,
    /// Connects over TLS when set (`tls.enable=true`).
    pub tls: Option<crate::tls::ClientTls>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(3),
            connection: ConnectionConfig::default(),
            credentials: None,
            tls: None,
        }
    }
}

/// Sends requests to any number of addresses. Cloning shares the connections.
#[derive(Clone)]
pub struct RemotingClient {
    inner: Arc<ClientInner>,
}

type Slot = Arc<tokio::sync::Mutex<Option<Connection>>>;

struct ClientInner {
    config: ClientConfig,
    /// Answers requests that servers send us on our connections.
    processor: Option<Arc<dyn RequestProcessor>>,
    /// One slot per address; the slot's lock serializes connecting to that address only.
    slots: Mutex<HashMap<String, Slot>>,
}

impl Default for RemotingClient {
    fn default() -> Self {
        Self::new(ClientConfig::default(), None)
    }
}

impl RemotingClient {
    /// A client; `processor` handles requests initiated by the servers it talks to.
    pub fn new(config: ClientConfig, processor: Option<Arc<dyn RequestProcessor>>) -> Self {
        RemotingClient {
            inner: Arc::new(ClientInner {
                config,
                processor,
                slots: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The live connection to `addr`, connecting if there is none.
    pub async fn connection(&self, addr: &str) -> Result<Connection> {
        let slot = self
            .inner
            .slots
            .lock()
            .entry(addr.to_string())
            .or_default()
            .clone();
        let mut guard = slot.lock().await;
        if let Some(conn) = guard.as_ref() {
            if !conn.is_closed() {
                return Ok(conn.clone());
            }
        }
        let stream =
            tokio::time::timeout(self.inner.config.connect_timeout, TcpStream::connect(addr))
                .await
                .map_err(|_| RemotingError::Timeout {
                    addr: addr.to_string(),
                    timeout: self.inner.config.connect_timeout,
                })?
                .map_err(|source| RemotingError::Connect {
                    addr: addr.to_string(),
                    source,
                })?;
        let conn = match &self.inner.config.tls {
            None => Connection::spawn(
                stream,
                self.inner.processor.clone(),
                &self.inner.config.connection,
                None,
            )?,
            Some(tls) => {
                let (peer, local) = (stream.peer_addr()?, stream.local_addr()?);
                let _ = stream.set_nodelay(true);
                let timeout = self.inner.config.connect_timeout;
                let session = tokio::time::timeout(timeout, tls.connect(addr, stream))
                    .await
                    .map_err(|_| RemotingError::Timeout {
                        addr: addr.to_string(),
                        timeout,
                    })?
                    .map_err(|source| RemotingError::Connect {
                        addr: addr.to_string(),
                        source,
                    })?;
                Connection::spawn_stream(
                    session,
                    peer,
                    local,
                    self.inner.processor.clone(),
                    &self.inner.config.connection,
                    None,
                )
            }
        };
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// Sends `request` to `addr` and waits for its response.
    pub async fn invoke(
        &self,
        addr: &str,
        mut request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        self.sign(&mut request);
        let conn = self.connection(addr).await?;
        conn.invoke(request, timeout).await.map_err(|e| match e {
            RemotingError::Timeout { timeout, .. } => RemotingError::Timeout {
                addr: addr.to_string(),
                timeout,
            },
            RemotingError::ConnectionClosed(_) => RemotingError::ConnectionClosed(addr.to_string()),
            other => other,
        })
    }

    /// Sends `request` to `addr` flagged oneway.
    pub async fn invoke_oneway(&self, addr: &str, mut request: RemotingCommand) -> Result<()> {
        self.sign(&mut request);
        self.connection(addr).await?.invoke_oneway(request).await
    }

    /// A client that signs its requests with `credentials` (and shares no connection with
    /// this one).
    pub fn with_credentials(&self, credentials: Option<crate::auth::Credentials>) -> Self {
        let mut config = self.inner.config.clone();
        config.credentials = credentials;
        Self::new(config, self.inner.processor.clone())
    }

    /// A client that connects over `tls` (and shares no connection with this one).
    pub fn with_tls(&self, tls: Option<crate::tls::ClientTls>) -> Self {
        let mut config = self.inner.config.clone();
        config.tls = tls;
        Self::new(config, self.inner.processor.clone())
    }

    fn sign(&self, request: &mut RemotingCommand) {
        if let Some(c) = &self.inner.config.credentials {
            c.sign(request);
        }
    }

    /// Closes the connection to `addr`, if any.
    pub fn close(&self, addr: &str) {
        if let Some(slot) = self.inner.slots.lock().remove(addr) {
            if let Ok(guard) = slot.try_lock() {
                if let Some(conn) = guard.as_ref() {
                    conn.close();
                }
            }
        }
    }

    /// Closes every connection.
    pub fn close_all(&self) {
        let slots: Vec<Slot> = self.inner.slots.lock().drain().map(|(_, s)| s).collect();
        for slot in slots {
            if let Ok(guard) = slot.try_lock() {
                if let Some(conn) = guard.as_ref() {
                    conn.close();
                }
            }
        }
    }
}
