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
//! Protocol 2 then reconciles the two logs before anything counts. The master sends its
//! terms (epochs with their start offsets, its end offset and current epoch); the slave
//! works out how much of its log the master shares and *probes* it: the end offset, its
//! epochs, and a CRC of the bytes before that offset (a window holding at least the whole
//! last record). The master answers MATCH only if the offset is within its log, the slave's
//! epochs below it are the master's, and the bytes are the same; else MISMATCH, and the
//! slave probes an earlier point (where an earlier shared term began, at last 0). On a
//! MATCH the slave cuts its log there and says READY with its new end; the master checks
//! that it is the matched offset and only then counts the slave, streaming from there.
//! Each report after that carries the epoch it is made under, and counts only while it is
//! the master's.
//!
//! Frames, master → slave: `[i64 tag][i32 length][body]` (tag -2: challenge, -3: refusal
//! with its reason, -1: epochs (protocol 1), -4: terms, -5: match, -6: mismatch with its
//! reason). Slave → master: `[i32 length][JSON]` (the hello, then probes).

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
pub const TERMS: i64 = -4;
pub const MATCH: i64 = -5;
pub const MISMATCH: i64 = -6;

/// The protocol a slave of this version speaks: 2 reconciles before counting (see above).
/// A hello without it is protocol 1 (epochs, then the slave's offset, trusted as it came).
pub const PROTOCOL: u32 = 2;

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
    /// The HA protocol the slave speaks (absent: 1). Not signed: a master of this version
    /// refuses anything older, and an old master ignores it.
    #[serde(default)]
    pub protocol: u32,
}

/// Master → slave (protocol 2): where the master's terms begin, where its log ends, and the
/// term it serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Terms {
    pub epoch: i32,
    pub epoch_list: Vec<crate::role::EpochEntry>,
    pub max_offset: i64,
}

/// Reads the master's terms (a TERMS frame's body).
pub fn parse_terms(body: &[u8]) -> Result<Terms, String> {
    serde_json::from_slice(body).map_err(|e| format!("master terms: {e}"))
}

/// Slave → master (protocol 2): "my log up to `offset` is yours". `crc` covers the bytes
/// `[from, offset)` (nothing when they are equal); `epoch_list` is the slave's own, as it was
/// before it took the master's. With `ready`, the slave has cut its log to `offset` and holds
/// nothing past it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub offset: i64,
    pub from: i64,
    pub crc: u32,
    pub epoch_list: Vec<crate::role::EpochEntry>,
    #[serde(default)]
    pub ready: bool,
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
            protocol: PROTOCOL,
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
    read_json(rd, "hello").await
}

/// Master: reads one `[i32 length][JSON]` message of the slave's (`what` names it in errors).
pub async fn read_json<R, T>(rd: &mut R, what: &str) -> std::io::Result<T>
where
    R: AsyncRead + Unpin,
    T: serde::de::DeserializeOwned,
{
    let len = rd.read_i32().await?;
    if len <= 0 || len as usize > MAX_HELLO {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad {what} length {len}: not one of our slaves"),
        ));
    }
    let mut body = vec![0u8; len as usize];
    rd.read_exact(&mut body).await?;
    serde_json::from_slice(&body)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{what}: {e}")))
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
    send_json(wr, hello).await
}

/// Slave: one `[i32 length][JSON]` message (the hello, a probe).
pub async fn send_json<W, T>(wr: &mut W, msg: &T) -> Result<(), String>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let body = serde_json::to_vec(msg).map_err(|e| e.to_string())?;
    let mut frame = BytesMut::with_capacity(4 + body.len());
    frame.put_i32(body.len() as i32);
    frame.put_slice(&body);
    wr.write_all(&frame).await.map_err(|e| e.to_string())
}

/// Slave (protocol 2): one offset report, made under `epoch` (the term the slave follows).
pub async fn send_report<W: AsyncWrite + Unpin>(
    wr: &mut W,
    offset: i64,
    epoch: i32,
) -> std::io::Result<()> {
    let mut b = [0u8; 12];
    b[..8].copy_from_slice(&offset.to_be_bytes());
    b[8..].copy_from_slice(&epoch.to_be_bytes());
    wr.write_all(&b).await
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
