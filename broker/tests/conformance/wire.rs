//! A raw connection to a server, as the client's own.

use super::*;

pub struct Wire {
    pub write: OwnedWriteHalf,
    pub read: FramedRead<OwnedReadHalf, RemotingCodec>,
}

impl Wire {
    pub async fn connect(addr: &str) -> Wire {
        let s = TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).unwrap();
        let (r, w) = s.into_split();
        Wire {
            write: w,
            read: FramedRead::new(r, RemotingCodec::default()),
        }
    }

    /// Sends a prepared frame; the response, or `None` for a oneway one (checked: the broker
    /// sends nothing for it before answering the next request on this connection).
    pub async fn exchange(&mut self, p: &Prepared) -> Result<Option<RemotingCommand>, String> {
        self.write
            .write_all(&p.bytes)
            .await
            .map_err(|e| format!("write: {e}"))?;
        if !p.oneway {
            return self.response(p.opaque).await.map(Some);
        }
        // A sentinel request on the same connection: its answer must be the next response.
        let mut sentinel = RemotingCommand::request(RequestCode::GET_BROKER_RUNTIME_INFO);
        sentinel.opaque = p.opaque.wrapping_add(1_000_000);
        let mut buf = BytesMut::new();
        tokio_util::codec::Encoder::encode(
            &mut RemotingCodec::default(),
            sentinel.clone(),
            &mut buf,
        )
        .map_err(|e| e.to_string())?;
        self.write
            .write_all(&buf)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let next = self.next_response().await?;
        if next.opaque != sentinel.opaque {
            return Err(format!(
                "a ONEWAY request was answered (code {} opaque {})",
                next.code, next.opaque
            ));
        }
        Ok(None)
    }

    /// The next response on the connection, skipping requests the broker sends the client
    /// (NOTIFY_CONSUMER_IDS_CHANGED, CHECK_TRANSACTION_STATE).
    pub async fn next_response(&mut self) -> Result<RemotingCommand, String> {
        loop {
            let cmd = tokio::time::timeout(T, self.read.next())
                .await
                .map_err(|_| "no response within 10 s".to_string())?
                .ok_or("connection closed by the broker")?
                .map_err(|e| format!("bad frame from the broker: {e}"))?;
            if cmd.is_response() {
                return Ok(cmd);
            }
        }
    }

    pub async fn response(&mut self, opaque: i32) -> Result<RemotingCommand, String> {
        let r = self.next_response().await?;
        if r.opaque != opaque {
            return Err(format!("response opaque {} for request {opaque}", r.opaque));
        }
        Ok(r)
    }
}
