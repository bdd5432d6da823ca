//! The HA port's handshake. Before any record moves, the master sends a random challenge; the
//! slave answers with its group, broker id and term, signed with the cluster's admin
//! credential over the challenge. The master refuses a slave that cannot sign (when the
//! control plane is authenticated), that belongs to another group, or that has seen a newer
//! term than the master's own (then the master is the stale one).
//!
//! The slave speaks first, with the 4 bytes `RMQH`: a permissive port tells TLS from
//! plaintext by a connection's first byte, and a port that waited for the master to speak
//! would wait for ever.
//!
//! Frames, master → slave: `[i64 tag][i32 length][body]` (tag -2: challenge, -3: refusal
//! with its reason, -1: epochs, as before). Slave → master: `[i32 length][JSON hello]`.

use bytes::{Buf, BufMut, BytesMut};
use rand::RngCore;
use rmq_remoting::Credentials;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What a slave sends first.
pub const MAGIC: [u8; 4] = *b"RMQH";

pub const EPOCHS: i64 = -1;
pub const CHALLENGE: i64 = -2;
pub const REFUSED: i64 = -3;

/// Hellos are small; anything larger is not a slave.
const MAX_HELLO: usize = 64 * 1024;

/// What a slave says of itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    pub broker_name: String,
    pub broker_id: i64,
    pub epoch: i32,
    #[serde(default)]
    pub access_key: Option<String>,
    #[serde(default)]
    pub signature: Option<String>,
}

impl Hello {
    /// A hello for `challenge`, signed if there is a credential.
    pub fn new(
        broker_name: String,
        broker_id: i64,
        epoch: i32,
        challenge: &[u8],
        credential: Option<&Credentials>,
    ) -> Hello {
        let mut h = Hello {
            broker_name,
            broker_id,
            epoch,
            access_key: None,
            signature: None,
        };
        if let Some(c) = credential {
            h.access_key = Some(c.access_key.clone());
            h.signature = Some(rmq_remoting::auth::signature(
                &c.secret_key,
                &h.content(challenge),
            ));
        }
        h
    }

    /// What the signature covers: the challenge, then every claim.
    fn content(&self, challenge: &[u8]) -> Vec<u8> {
        let mut c = challenge.to_vec();
        c.extend_from_slice(
            format!("\n{}\n{}\n{}", self.broker_name, self.broker_id, self.epoch).as_bytes(),
        );
        c
    }

    fn signed_by(&self, challenge: &[u8], c: &Credentials) -> bool {
        let (Some(ak), Some(sig)) = (&self.access_key, &self.signature) else {
            return false;
        };
        if *ak != c.access_key {
            return false;
        }
        let expected = rmq_remoting::auth::signature(&c.secret_key, &self.content(challenge));
        // Constant-time: compare MACs of both, not the strings.
        let a = rmq_remoting::auth::signature(&c.secret_key, expected.as_bytes());
        let b = rmq_remoting::auth::signature(&c.secret_key, sig.as_bytes());
        a == b
    }

    /// The master's decision. `required`: the admin credential, if the control plane is
    /// authenticated.
    pub fn check(
        &self,
        challenge: &[u8],
        required: Option<&Credentials>,
        group: &str,
        master_epoch: i32,
    ) -> Result<(), String> {
        if let Some(c) = required {
            if !self.signed_by(challenge, c) {
                return Err(
                    "the slave did not sign the challenge with the cluster's admin credential"
                        .into(),
                );
            }
        }
        if self.broker_name != group {
            return Err(format!(
                "the slave belongs to group {}, this master to {group}",
                self.broker_name
            ));
        }
        if self.broker_id <= 0 {
            return Err(format!("broker id {} is not a slave's", self.broker_id));
        }
        if self.epoch > master_epoch {
            return Err(format!(
                "the slave has seen epoch {}, newer than this master's {master_epoch}: this \
                 master has been replaced",
                self.epoch
            ));
        }
        Ok(())
    }
}

pub async fn write_frame<W: AsyncWrite + Unpin>(
    wr: &mut W,
    tag: i64,
    body: &[u8],
) -> std::io::Result<()> {
    let mut frame = BytesMut::with_capacity(12 + body.len());
    frame.put_i64(tag);
    frame.put_i32(body.len() as i32);
    frame.put_slice(body);
    wr.write_all(&frame).await
}

/// Master: checks the slave's opening bytes.
pub async fn expect_magic<R: AsyncRead + Unpin>(rd: &mut R) -> std::io::Result<()> {
    let mut m = [0u8; 4];
    rd.read_exact(&mut m).await?;
    if m != MAGIC {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not one of our slaves (no RMQH opening)",
        ));
    }
    Ok(())
}

/// Master: sends a fresh challenge and returns it.
pub async fn challenge<W: AsyncWrite + Unpin>(wr: &mut W) -> std::io::Result<[u8; 16]> {
    let mut nonce = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    write_frame(wr, CHALLENGE, &nonce).await?;
    Ok(nonce)
}

/// Master: reads the slave's hello.
pub async fn read_hello<R: AsyncRead + Unpin>(rd: &mut R) -> std::io::Result<Hello> {
    let len = rd.read_i32().await?;
    if len <= 0 || len as usize > MAX_HELLO {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad hello length {len}: not one of our slaves"),
        ));
    }
    let mut body = vec![0u8; len as usize];
    rd.read_exact(&mut body).await?;
    serde_json::from_slice(&body)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("hello: {e}")))
}

/// Slave: reads a master frame header and its body (bounded by `max`).
pub async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    max: usize,
) -> Result<(i64, Vec<u8>), String> {
    let mut h = [0u8; 12];
    rd.read_exact(&mut h).await.map_err(|e| e.to_string())?;
    let mut hb = &h[..];
    let (tag, len) = (hb.get_i64(), hb.get_i32());
    if len < 0 || len as usize > max {
        return Err(format!("bad frame from the master ({tag}, {len})"));
    }
    let mut body = vec![0u8; len as usize];
    rd.read_exact(&mut body).await.map_err(|e| e.to_string())?;
    Ok((tag, body))
}

/// Slave: answers the challenge.
pub async fn send_hello<W: AsyncWrite + Unpin>(wr: &mut W, hello: &Hello) -> Result<(), String> {
    let body = serde_json::to_vec(hello).map_err(|e| e.to_string())?;
    let mut frame = BytesMut::with_capacity(4 + body.len());
    frame.put_i32(body.len() as i32);
    frame.put_slice(&body);
    wr.write_all(&frame).await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_signed_slave_of_this_group_and_term_passes() {
        let admin = Credentials::new("cluster-admin", "cluster-secret");
        let nonce = [7u8; 16];
        let good = Hello::new("broker-a".into(), 1, 3, &nonce, Some(&admin));
        assert_eq!(good.check(&nonce, Some(&admin), "broker-a", 3), Ok(()));
        // Replayed against another challenge.
        assert!(good.check(&[8u8; 16], Some(&admin), "broker-a", 3).is_err());
        // Claims changed after signing.
        let mut forged = good.clone();
        forged.epoch = 2;
        assert!(forged.check(&nonce, Some(&admin), "broker-a", 3).is_err());
        let wrong_key = Credentials::new("cluster-admin", "guess");
        let bad = Hello::new("broker-a".into(), 1, 3, &nonce, Some(&wrong_key));
        assert!(bad.check(&nonce, Some(&admin), "broker-a", 3).is_err());
        let unsigned = Hello::new("broker-a".into(), 1, 3, &nonce, None);
        assert!(unsigned.check(&nonce, Some(&admin), "broker-a", 3).is_err());
        // Without control-plane authentication the claims are still checked.
        assert_eq!(unsigned.check(&nonce, None, "broker-a", 3), Ok(()));
        assert!(unsigned.check(&nonce, None, "broker-b", 3).is_err());
        assert!(unsigned.check(&nonce, None, "broker-a", 2).is_err());
        let master = Hello::new("broker-a".into(), 0, 3, &nonce, None);
        assert!(master.check(&nonce, None, "broker-a", 3).is_err());
    }
}
