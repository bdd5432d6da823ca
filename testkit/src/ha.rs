//! A slave driven by hand on a master's HA port: the handshake step by step, so tests can
//! claim what a real slave would not (a log the master does not have, a silent link).

use rmq_broker::ha::handshake::{self, Hello, Probe, Terms};
use rmq_broker::store::MessageStore;
use tokio::net::TcpStream;

/// Connects to `ha` as broker `id` of `group` at `epoch`, signed with the admin credential,
/// and reads the master's terms (panics on a refusal).
pub async fn connect(ha: &str, group: &str, id: i64, epoch: i32) -> (TcpStream, Terms) {
    use tokio::io::AsyncWriteExt;
    let mut s = TcpStream::connect(ha)
        .await
        .expect("connect to the HA port");
    s.write_all(&handshake::MAGIC).await.unwrap();
    let (tag, nonce) = handshake::read_frame(&mut s, 1 << 20).await.unwrap();
    assert_eq!(tag, handshake::CHALLENGE);
    let admin = crate::admin_credential();
    let hello = Hello::new(group.into(), id, epoch, &nonce, Some(&admin));
    handshake::send_hello(&mut s, &hello).await.unwrap();
    let (tag, body) = handshake::read_frame(&mut s, 16 << 20).await.unwrap();
    assert_eq!(tag, handshake::TERMS, "{}", String::from_utf8_lossy(&body));
    let terms = handshake::parse_terms(&body).expect("the master's terms");
    (s, terms)
}

/// A probe claiming `store`'s log up to `offset` (its real bytes and epochs), `ready` or not.
pub fn probe_of(
    store: &MessageStore,
    epochs: &[rmq_broker::role::EpochEntry],
    offset: i64,
    ready: bool,
) -> Probe {
    let (from, crc) = store
        .window_digest(offset)
        .expect("the bytes before the offset");
    Probe {
        offset,
        from,
        crc,
        epoch_list: epochs.to_vec(),
        ready,
    }
}

/// Sends `probe` and returns the master's answer (tag, body).
pub async fn ask(s: &mut TcpStream, probe: &Probe) -> (i64, Vec<u8>) {
    handshake::send_json(s, probe).await.unwrap();
    handshake::read_frame(s, 1 << 20).await.unwrap()
}

/// Reconciles at `offset` of the master's own log (`master` is the master's store): the
/// probe, then READY. Returns once the master counts this slave.
pub async fn reconcile_at(
    s: &mut TcpStream,
    master: &MessageStore,
    epochs: &[rmq_broker::role::EpochEntry],
    offset: i64,
) {
    let (tag, body) = ask(s, &probe_of(master, epochs, offset, false)).await;
    assert_eq!(tag, handshake::MATCH, "{}", String::from_utf8_lossy(&body));
    let (tag, body) = ask(s, &probe_of(master, epochs, offset, true)).await;
    assert_eq!(tag, handshake::MATCH, "{}", String::from_utf8_lossy(&body));
}
