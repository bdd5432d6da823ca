//! One client's run: its cluster state, frames sent and checked, and what the broker stored.

use super::*;

/// A message the broker stored for a frame, with the properties the client gave it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub record: MessageExt,
    pub client_props: HashMap<String, String>,
}

pub struct Run {
    pub client: String,
    pub frames: Vec<Frame>,
    pub vars: BTreeMap<&'static str, String>,
    pub inner: Arc<BrokerInner>,
    pub broker_addr: String,
    pub ns_addr: String,
    pub wire: Wire,
    pub admin: RemotingClient,
    /// Messages in `${topic}`, in the order stored.
    pub stored: Vec<Stored>,
    pub failures: Vec<String>,
    pub done: Vec<bool>,
    pub next_opaque: i32,
}

impl Run {
    pub fn frames(&self, op: &str) -> Vec<(usize, Frame)> {
        self.frames
            .iter()
            .enumerate()
            .filter(|(_, f)| f.op == op)
            .map(|(i, f)| (i, f.clone()))
            .collect()
    }

    pub fn fail(&mut self, i: usize, msg: impl std::fmt::Display) {
        let f = &self.frames[i];
        self.failures.push(format!(
            "[{}] {} \"{}\" ({}): {msg}",
            self.client, f.op, f.name, f.source
        ));
    }

    pub fn topic(&self) -> String {
        self.vars["topic"].clone()
    }

    /// Vars for one frame: the run's, a fresh opaque and UNIQ_KEY, and `extra`.
    pub fn vars_for(&mut self, extra: &[(&'static str, String)]) -> BTreeMap<&'static str, String> {
        self.next_opaque += 1;
        let mut v = self.vars.clone();
        v.insert("opaque", self.next_opaque.to_string());
        v.insert("now", rmq_remoting::util::now_millis().to_string());
        v.insert(
            "uniq_key",
            rmq_remoting::message::create_uniq_id(std::net::Ipv4Addr::LOCALHOST),
        );
        for (k, val) in extra {
            v.insert(k, val.clone());
        }
        v
    }

    /// Prepares and sends frame `i`; marks it done. Errors are recorded as failures.
    pub async fn send_frame(
        &mut self,
        i: usize,
        extra: &[(&'static str, String)],
    ) -> Option<(Prepared, Option<RemotingCommand>)> {
        self.done[i] = true;
        let vars = self.vars_for(extra);
        let frame = self.frames[i].clone();
        let p = match prepare(&frame, &vars) {
            Ok(p) => p,
            Err(e) => {
                self.fail(i, e);
                return None;
            }
        };
        match self.wire.exchange(&p).await {
            Ok(r) => Some((p, r)),
            Err(e) => {
                self.fail(i, e);
                // The connection may be unusable now; the client would reconnect.
                self.wire = Wire::connect(&self.broker_addr).await;
                None
            }
        }
    }

    /// Sends frame `i` and expects `code` (any code when the frame is oneway by flag).
    pub async fn expect(
        &mut self,
        i: usize,
        extra: &[(&'static str, String)],
        code: i32,
    ) -> Option<(Prepared, Option<RemotingCommand>)> {
        let (p, r) = self.send_frame(i, extra).await?;
        if let Some(r) = &r {
            if r.code != code {
                self.fail(
                    i,
                    format!(
                        "answered {} ({}) {:?}, expected {code}",
                        r.code,
                        r.code_name(),
                        r.remark
                    ),
                );
                return None;
            }
        }
        Some((p, r))
    }

    /// The properties a stored copy of the client's message must have: every client property
    /// with its exact value, `CLUSTER` this broker's cluster, a `UNIQ_KEY`, and no value
    /// holding a separator (the symptom of a property appended without one).
    pub fn check_props(
        &mut self,
        i: usize,
        what: &str,
        stored: &MessageExt,
        client: &HashMap<String, String>,
        overridden: &[&str],
    ) {
        let got = &stored.properties;
        for (k, v) in client {
            if overridden.contains(&k.as_str()) {
                continue;
            }
            if got.get(k) != Some(v) {
                self.fail(
                    i,
                    format!(
                        "{what}: property {k:?} stored as {:?}, the client sent {v:?}",
                        got.get(k)
                    ),
                );
            }
        }
        if got.get(property::CLUSTER).map(String::as_str) != Some(CLUSTER) {
            self.fail(
                i,
                format!("{what}: CLUSTER = {:?}", got.get(property::CLUSTER)),
            );
        }
        if got
            .get(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
            .is_none_or(|u| u.is_empty())
        {
            self.fail(i, format!("{what}: no UNIQ_KEY"));
        }
        for (k, v) in got {
            if k.contains([NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR])
                || v.contains([NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR])
            {
                self.fail(
                    i,
                    format!("{what}: property {k:?} = {v:?} holds a separator"),
                );
            }
        }
    }

    pub fn record_at(&self, offset: i64) -> Option<MessageExt> {
        self.inner.store.look_message_by_offset(offset)
    }

    /// Every message of `topic` (all queues), once what was appended is dispatched.
    pub async fn messages_of(&self, topic: &str) -> Vec<MessageExt> {
        let store = &self.inner.store;
        let deadline = Instant::now() + T;
        while store.dispatched_phy_offset() < store.max_phy_offset() {
            assert!(
                Instant::now() < deadline,
                "the store's dispatch did not catch up in 10 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut out = Vec::new();
        for q in 0..16 {
            let max = store.max_offset_in_queue(topic, q, true);
            for off in store.min_offset_in_queue(topic, q)..max {
                if let Some(m) = store
                    .queue_unit(topic, q, off)
                    .and_then(|u| store.look_message_by_offset(u.commit_log_offset))
                {
                    out.push(m);
                }
            }
        }
        out
    }

    /// Waits for a message of `topic` (any queue) matching `f`.
    pub async fn wait_for(
        &self,
        topic: &str,
        f: impl Fn(&MessageExt) -> bool,
    ) -> Option<MessageExt> {
        let deadline = Instant::now() + T;
        while Instant::now() < deadline {
            if let Some(m) = self.messages_of(topic).await.into_iter().find(|m| f(m)) {
                return Some(m);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// The records a send response names (`msgId`, comma-separated for batches).
    pub fn records_of(&mut self, i: usize, r: &RemotingCommand) -> Vec<MessageExt> {
        let ids = r.ext_fields.get("msgId").cloned().unwrap_or_default();
        if !r.ext_fields.contains_key("queueId") || !r.ext_fields.contains_key("queueOffset") {
            self.fail(
                i,
                format!(
                    "send response lacks queueId/queueOffset: {:?}",
                    r.ext_fields
                ),
            );
        }
        let mut out = Vec::new();
        for id in ids.split(',').filter(|s| !s.is_empty()) {
            match decode_offset_msg_id(id) {
                Ok((_, offset)) if id.len() == 32 => match self.record_at(offset) {
                    Some(m) => out.push(m),
                    None => self.fail(i, format!("msgId {id}: nothing stored at {offset}")),
                },
                _ => self.fail(i, format!("msgId {id:?} is not a 32-digit IPv4 offset id")),
            }
        }
        out
    }
}
