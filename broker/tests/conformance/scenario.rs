//! The scenario every client runs, step by step; each step replays the frames of its op.

use super::*;

impl Run {
    // ----- the scenario

    pub async fn routes(&mut self, exists: bool) {
        for (i, _) in self.frames("get_route") {
            let vars = self.vars_for(&[]);
            self.done[i] = true;
            let p = match prepare(&self.frames[i].clone(), &vars) {
                Ok(p) => p,
                Err(e) => {
                    self.fail(i, e);
                    continue;
                }
            };
            let mut ns = Wire::connect(&self.ns_addr).await;
            let r = match ns.exchange(&p).await {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    self.fail(i, e);
                    continue;
                }
            };
            if !exists {
                if r.code != ResponseCode::TOPIC_NOT_EXIST {
                    self.fail(i, format!("unknown topic answered {}", r.code));
                }
                continue;
            }
            if r.code != ResponseCode::SUCCESS {
                self.fail(i, format!("answered {} {:?}", r.code, r.remark));
                continue;
            }
            match rmq_remoting::fastjson::from_slice::<TopicRouteData>(&r.body) {
                Ok(route) => {
                    let ok = route.broker_datas.iter().any(|b| {
                        b.broker_name == BROKER_NAME
                            && b.broker_addrs.values().any(|a| *a == self.broker_addr)
                    }) && route
                        .queue_datas
                        .iter()
                        .any(|q| q.broker_name == BROKER_NAME);
                    if !ok {
                        self.fail(i, format!("route lacks this broker: {route:?}"));
                    }
                }
                Err(e) => self.fail(i, format!("route body: {e}")),
            }
        }
    }

    /// The group's consumers as GET_CONSUMER_LIST_BY_GROUP lists them (RocketMQ answers
    /// SYSTEM_ERROR "no consumer for this group" for none).
    pub async fn consumer_listed(&self) -> Result<Vec<String>, String> {
        let req = RemotingCommand::request_with_header(
            RequestCode::GET_CONSUMER_LIST_BY_GROUP,
            &GetConsumerListByGroupRequestHeader {
                consumer_group: self.vars["consumer_group"].clone(),
            },
        );
        let r = self
            .admin
            .invoke(&self.broker_addr, req, T)
            .await
            .map_err(|e| format!("GET_CONSUMER_LIST_BY_GROUP: {e}"))?;
        if r.code == ResponseCode::SYSTEM_ERROR {
            return Ok(Vec::new());
        }
        if r.code != ResponseCode::SUCCESS {
            return Err(format!("GET_CONSUMER_LIST_BY_GROUP answered {}", r.code));
        }
        let v: serde_json::Value = serde_json::from_slice(&r.body)
            .map_err(|e| format!("GET_CONSUMER_LIST_BY_GROUP body: {e}"))?;
        Ok(v["consumerIdList"]
            .as_array()
            .ok_or("no consumerIdList")?
            .iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect())
    }

    pub async fn heartbeats(&mut self) {
        let mut consumer = None;
        for (i, _) in self.frames("heartbeat") {
            let Some((p, _)) = self.expect(i, &[], ResponseCode::SUCCESS).await else {
                continue;
            };
            let body: serde_json::Value = serde_json::from_slice(&p.body).unwrap_or_default();
            if body["consumerDataSet"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["groupName"] == self.vars["consumer_group"].as_str())
            }) {
                consumer = Some(i);
            }
        }
        if let Some(i) = consumer {
            let id = self.vars["client_id"].clone();
            match self.consumer_listed().await {
                Ok(l) if l.contains(&id) => {}
                other => self.fail(i, format!("{id} not listed: {other:?}")),
            }
        }
    }

    pub async fn query_offsets(&mut self, phase: &str) {
        for (i, _) in self.frames("query_offset") {
            let Some((_, Some(r))) = self.expect(i, &[], ResponseCode::SUCCESS).await else {
                continue;
            };
            if r.ext_fields.get("offset").map(String::as_str) != Some("0") {
                self.fail(
                    i,
                    format!(
                        "{phase}: a new group on a queue starting at 0 in memory got {:?}, not 0",
                        r.ext_fields
                    ),
                );
            }
        }
    }

    /// A single send (plain, oneway or delayed): the stored record and the client's map.
    pub async fn send_one(&mut self, i: usize) -> Option<(MessageExt, HashMap<String, String>)> {
        let before = self.messages_of(&self.topic()).await.len() as i64;
        let (p, r) = self.expect(i, &[], ResponseCode::SUCCESS).await?;
        let client = java_properties(p.properties.as_deref().unwrap_or(""));
        let record = match r {
            Some(r) => self.records_of(i, &r).into_iter().next()?,
            None => {
                // Oneway: the broker said nothing; the record is the queue's next one.
                let topic = self.topic();
                let found = self
                    .wait_for(&topic, |m| m.queue_id == 0 && m.queue_offset == before)
                    .await;
                match found {
                    Some(m) => m,
                    None => {
                        self.fail(i, "the oneway message was not stored");
                        return None;
                    }
                }
            }
        };
        Some((record, client))
    }

    pub async fn sends(&mut self) {
        let topic = self.topic();
        for op in ["send", "send.oneway"] {
            for (i, _) in self.frames(op) {
                let Some((record, client)) = self.send_one(i).await else {
                    continue;
                };
                if record.topic != topic {
                    self.fail(i, format!("stored in {} not {topic}", record.topic));
                }
                self.check_props(i, "stored", &record, &client, &[property::CLUSTER]);
                self.stored.push(Stored {
                    record,
                    client_props: client,
                });
            }
        }
        for (i, _) in self.frames("send.batch") {
            let Some((p, Some(r))) = self.expect(i, &[], ResponseCode::SUCCESS).await else {
                continue;
            };
            let records = self.records_of(i, &r);
            if records.len() != p.batch.len() {
                self.fail(
                    i,
                    format!(
                        "{} items sent, {} msgIds answered",
                        p.batch.len(),
                        records.len()
                    ),
                );
            }
            for (record, item) in records.into_iter().zip(&p.batch) {
                // Each item keeps its own properties, as RocketMQ 5 stores them (the batch's
                // own, such as the Java 5.x client's batch UNIQ_KEY, are not copied in).
                let client = item.properties.clone();
                if record.body != item.body {
                    self.fail(
                        i,
                        format!("item body {:?} stored as {:?}", item.body, record.body),
                    );
                }
                self.check_props(i, "batch item", &record, &client, &[property::CLUSTER]);
                self.stored.push(Stored {
                    record,
                    client_props: client,
                });
            }
        }
        for (i, _) in self.frames("send.delay") {
            let Some((record, client)) = self.send_one(i).await else {
                continue;
            };
            if record.topic != rmq_broker::store::SCHEDULE_TOPIC
                || record.properties.get(property::REAL_TOPIC) != Some(&topic)
            {
                self.fail(i, format!("not waiting in the schedule topic: {record:?}"));
                continue;
            }
            let uniq = record.uniq_key().unwrap_or_default().to_string();
            let Some(delivered) = self
                .wait_for(&topic, |m| m.uniq_key() == Some(uniq.as_str()))
                .await
            else {
                self.fail(i, "the delayed message was never delivered");
                continue;
            };
            self.check_props(i, "delivered", &delivered, &client, &[property::CLUSTER]);
            for k in [
                property::DELAY_TIME_LEVEL,
                property::REAL_TOPIC,
                property::REAL_QUEUE_ID,
            ] {
                if !delivered.properties.contains_key(k) {
                    self.fail(i, format!("delivered without {k}, which RocketMQ keeps"));
                }
            }
            self.stored.push(Stored {
                record: delivered,
                client_props: client,
            });
        }
    }

    pub async fn transactions(&mut self) {
        let topic = self.topic();
        let halves = self.frames("send.transaction");
        let ends = self.frames("end_transaction");
        let Some((half_frame, _)) = halves.first().cloned() else {
            for (i, _) in ends {
                self.fail(i, "no send.transaction frame to end");
            }
            return;
        };
        // One half for each END_TRANSACTION form (a half ends once), or one on its own.
        let rounds: Vec<Option<usize>> = if ends.is_empty() {
            vec![None]
        } else {
            ends.iter().map(|(i, _)| Some(*i)).collect()
        };
        for end in rounds {
            let Some((record, client)) = self.send_one(half_frame).await else {
                continue;
            };
            if record.topic != "RMQ_SYS_TRANS_HALF_TOPIC" {
                self.fail(half_frame, format!("the half went to {}", record.topic));
                continue;
            }
            let uniq = record.uniq_key().unwrap_or_default().to_string();
            let Some(end) = end else { continue };
            let extra = [
                ("commit_log_offset", record.commit_log_offset.to_string()),
                ("tran_state_table_offset", record.queue_offset.to_string()),
                ("msg_id", record.offset_msg_id()),
                ("uniq_key", uniq.clone()),
            ];
            if self
                .expect(end, &extra, ResponseCode::SUCCESS)
                .await
                .is_none()
            {
                continue;
            }
            let Some(committed) = self
                .wait_for(&topic, |m| m.uniq_key() == Some(uniq.as_str()))
                .await
            else {
                self.fail(end, "the committed message never reached its topic");
                continue;
            };
            self.check_props(end, "committed", &committed, &client, &[property::CLUSTER]);
            self.stored.push(Stored {
                record: committed,
                client_props: client,
            });
        }
    }

    pub async fn pulls(&mut self) {
        let topic = self.topic();
        // What a consumer of "A || C" must get from queue 0, in order.
        let store = &self.inner.store;
        let max = store.max_offset_in_queue(&topic, 0, true);
        let wanted: Vec<MessageExt> = (0..max)
            .filter_map(|o| {
                store
                    .queue_unit(&topic, 0, o)
                    .and_then(|u| store.look_message_by_offset(u.commit_log_offset))
            })
            .filter(|m| m.tags().is_some_and(|t| SUBSCRIBED.contains(&t)))
            .collect();
        for (i, _) in self.frames("pull") {
            if wanted.is_empty() {
                self.fail(i, "nothing tagged A or C was stored to pull");
                self.done[i] = true;
                continue;
            }
            let extra = [
                ("queue_offset", "0".to_string()),
                ("next_offset", "0".to_string()),
            ];
            let Some((_, Some(r))) = self.expect(i, &extra, ResponseCode::SUCCESS).await else {
                continue;
            };
            for k in [
                "nextBeginOffset",
                "minOffset",
                "maxOffset",
                "suggestWhichBrokerId",
            ] {
                if r.ext_fields
                    .get(k)
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_none()
                {
                    self.fail(i, format!("pull response without a numeric {k}"));
                }
            }
            let got = match MessageExt::decode_all(r.body.clone()) {
                Ok(got) => got,
                Err(e) => {
                    self.fail(i, format!("pull body: {e}"));
                    continue;
                }
            };
            if got.is_empty() {
                self.fail(i, "FOUND with no messages");
            }
            // Stored as Java brokers store them: no trailing separator (ali-ons re-sends what
            // it consumed, and a trailing one would grow an empty pair).
            match raw_properties(&r.body) {
                Ok(raw) => {
                    if raw.iter().any(|p| p.last() == Some(&2)) {
                        self.fail(i, "a stored properties string ends with \\x02");
                    }
                }
                Err(e) => self.fail(i, format!("walking the pull body: {e}")),
            }
            for (n, m) in got.iter().enumerate() {
                match wanted.get(n) {
                    Some(w) if w.commit_log_offset == m.commit_log_offset => {}
                    other => self.fail(
                        i,
                        format!(
                            "message {n} of the pull: tag {:?} at queue offset {}, expected {:?}",
                            m.tags(),
                            m.queue_offset,
                            other.map(|w| (w.tags(), w.queue_offset))
                        ),
                    ),
                }
                if let Some(s) = self
                    .stored
                    .iter()
                    .find(|s| s.record.commit_log_offset == m.commit_log_offset)
                    .cloned()
                {
                    self.check_props(i, "pulled", m, &s.client_props, &[property::CLUSTER]);
                }
            }
        }
    }

    pub async fn offsets(&mut self) {
        let topic = self.topic();
        let max = self.inner.store.max_offset_in_queue(&topic, 0, true);
        for (i, _) in self.frames("update_offset") {
            if self
                .expect(
                    i,
                    &[("next_offset", max.to_string())],
                    ResponseCode::SUCCESS,
                )
                .await
                .is_none()
            {
                continue;
            }
            // A oneway commit may still be in flight: poll.
            let group = self.vars["consumer_group"].clone();
            let deadline = Instant::now() + T;
            let mut committed = self.inner.offsets.query(&group, &topic, 0);
            while committed != max && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
                committed = self.inner.offsets.query(&group, &topic, 0);
            }
            if committed != max {
                self.fail(i, format!("committed offset is {committed}, not {max}"));
            }
        }
        let store = self.inner.store.clone();
        for (i, _) in self.frames("get_max_offset") {
            if let Some((_, Some(r))) = self.expect(i, &[], ResponseCode::SUCCESS).await {
                if r.ext_fields.get("offset") != Some(&max.to_string()) {
                    self.fail(i, format!("max offset {:?}, expected {max}", r.ext_fields));
                }
            }
        }
        for (i, _) in self.frames("get_min_offset") {
            if let Some((_, Some(r))) = self.expect(i, &[], ResponseCode::SUCCESS).await {
                if r.ext_fields.get("offset").map(String::as_str) != Some("0") {
                    self.fail(i, format!("min offset {:?}, expected 0", r.ext_fields));
                }
            }
        }
        let first_time = store.message_store_timestamp(&topic, 0, 0).unwrap_or(-1);
        for (i, _) in self.frames("get_earliest_time") {
            if let Some((_, Some(r))) = self.expect(i, &[], ResponseCode::SUCCESS).await {
                if r.ext_fields.get("timestamp") != Some(&first_time.to_string()) {
                    self.fail(
                        i,
                        format!("earliest {:?}, expected {first_time}", r.ext_fields),
                    );
                }
            }
        }
        for (i, _) in self.frames("search_offset") {
            if let Some((_, Some(r))) = self.expect(i, &[], ResponseCode::SUCCESS).await {
                let o = r
                    .ext_fields
                    .get("offset")
                    .and_then(|o| o.parse::<i64>().ok());
                if !o.is_some_and(|o| (0..=max).contains(&o)) {
                    self.fail(
                        i,
                        format!("search answered {:?} for a queue of {max}", r.ext_fields),
                    );
                }
            }
        }
    }

    /// The first stored message the consumer would have got (tag A or C), as a frame's target.
    pub fn target(&self) -> Option<Stored> {
        self.stored
            .iter()
            .find(|s| s.record.tags().is_some_and(|t| SUBSCRIBED.contains(&t)))
            .cloned()
    }

    pub fn target_vars(t: &Stored) -> Vec<(&'static str, String)> {
        vec![
            ("commit_log_offset", t.record.commit_log_offset.to_string()),
            ("msg_id", t.record.offset_msg_id()),
            (
                "uniq_key",
                t.record.uniq_key().unwrap_or_default().to_string(),
            ),
            ("queue_offset", t.record.queue_offset.to_string()),
        ]
    }

    /// The dead-letter path: the client's send-back of a message already reconsumed as often
    /// as its limit allows (the limit the frame carries, else the group's 16) moves it to
    /// `%DLQ%<group>` with its properties intact.
    pub async fn dead_letters(&mut self) {
        let topic = self.topic();
        let dlq = format!("%DLQ%{}", self.vars["consumer_group"]);
        for (i, frame) in self.frames("send_back") {
            let Some(base) = self.target() else { continue };
            let limit = prepare(&frame, &self.vars_for(&[]))
                .ok()
                .and_then(|p| {
                    p.ext.get("maxReconsumeTimes").and_then(|v| match v {
                        serde_json::Value::String(s) => s.parse::<i32>().ok(),
                        v => v.as_i64().map(|n| n as i32),
                    })
                })
                .unwrap_or(16);
            // A copy of the consumed message that has been retried `limit` times already.
            let mut put = rmq_broker::store::PutMessage::copy_of(
                &base.record,
                &base.record.properties,
                self.inner.store_host,
            );
            put.reconsume_times = limit;
            let r = self.inner.store.put_message(put).await;
            let Some(record) = r
                .append
                .and_then(|a| a.offsets.first().copied())
                .and_then(|o| self.record_at(o))
            else {
                self.fail(
                    i,
                    format!("setting up the dead-letter case: {:?}", r.status),
                );
                continue;
            };
            let exhausted = Stored {
                record,
                client_props: base.client_props.clone(),
            };
            if self
                .expect(i, &Self::target_vars(&exhausted), ResponseCode::SUCCESS)
                .await
                .is_none()
            {
                continue;
            }
            let uniq = exhausted.record.uniq_key().unwrap_or_default().to_string();
            let Some(m) = self
                .wait_for(&dlq, |m| {
                    m.uniq_key() == Some(uniq.as_str())
                        && m.properties.get(property::DLQ_ORIGIN_TOPIC) == Some(&topic)
                })
                .await
            else {
                self.fail(
                    i,
                    format!("a message past {limit} reconsumes never reached {dlq}"),
                );
                continue;
            };
            self.check_props(
                i,
                "dead letter",
                &m,
                &exhausted.client_props,
                &[
                    property::CLUSTER,
                    property::DELAY_TIME_LEVEL,
                    property::WAIT_STORE_MSG_OK,
                ],
            );
        }
    }

    pub async fn send_backs(&mut self) {
        let retry = self.vars["retry_topic"].clone();
        let topic = self.topic();
        for (i, _) in self.frames("send_back") {
            let Some(t) = self.target() else {
                self.fail(i, "no message to send back");
                self.done[i] = true;
                continue;
            };
            if self
                .expect(i, &Self::target_vars(&t), ResponseCode::SUCCESS)
                .await
                .is_none()
            {
                continue;
            }
            let uniq = t.record.uniq_key().unwrap_or_default().to_string();
            let Some(m) = self
                .wait_for(&retry, |m| {
                    m.uniq_key() == Some(uniq.as_str())
                        && m.properties.get(property::RETRY_TOPIC) == Some(&topic)
                })
                .await
            else {
                self.fail(i, format!("nothing reached {retry}"));
                continue;
            };
            self.check_props(
                i,
                "retry",
                &m,
                &t.client_props,
                &[
                    property::CLUSTER,
                    property::DELAY_TIME_LEVEL,
                    property::WAIT_STORE_MSG_OK,
                ],
            );
            if m.reconsume_times < 1 || !m.properties.contains_key(property::ORIGIN_MESSAGE_ID) {
                self.fail(
                    i,
                    format!("retry lacks its reconsume count or ORIGIN_MESSAGE_ID: {m:?}"),
                );
            }
        }
        // The group allows one reconsume: the limit that decides must be the client's own
        // (header maxReconsumeTimes from V3_4_9 on, as RocketMQ reads it).
        let group = self.vars["consumer_group"].clone();
        self.inner
            .groups
            .put(rmq_remoting::protocol::admin::SubscriptionGroupConfig {
                group_name: group.clone(),
                retry_max_times: 1,
                ..Default::default()
            });
        for (i, _) in self.frames("send.retry") {
            let Some(t) = self.target() else {
                self.fail(i, "no message to retry");
                self.done[i] = true;
                continue;
            };
            let Some((p, r)) = self
                .expect(i, &Self::target_vars(&t), ResponseCode::SUCCESS)
                .await
            else {
                continue;
            };
            let client = java_properties(p.properties.as_deref().unwrap_or(""));
            let limit = ext_i64(&p.ext, &["maxReconsumeTimes", "l"])
                .filter(|_| p.version >= 121)
                .unwrap_or(1);
            let reconsumed = ext_i64(&p.ext, &["reconsumeTimes", "j"]).unwrap_or(0);
            let Some(first) = r.and_then(|r| self.records_of(i, &r).into_iter().next()) else {
                continue;
            };
            // The message lands in the retry topic (after its delay) or, past its limit, in
            // the dead-letter topic: a record there that was not before, with its UNIQ_KEY.
            let uniq = first.uniq_key().unwrap_or_default().to_string();
            let dlq = format!("%DLQ%{}", self.vars["consumer_group"]);
            let mut seen = std::collections::HashSet::new();
            for topic in [&retry, &dlq] {
                seen.extend(
                    self.messages_of(topic)
                        .await
                        .iter()
                        .map(|m| m.commit_log_offset),
                );
            }
            seen.remove(&first.commit_log_offset);
            let deadline = Instant::now() + T;
            let mut found = None;
            while found.is_none() && Instant::now() < deadline {
                for topic in [&retry, &dlq] {
                    found = found.or(self.messages_of(topic).await.into_iter().find(|m| {
                        !seen.contains(&m.commit_log_offset) && m.uniq_key() == Some(uniq.as_str())
                    }));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let want = if reconsumed >= limit { &dlq } else { &retry };
            match found {
                Some(m) if &m.topic == want => {
                    self.check_props(i, "retried", &m, &client, &[property::CLUSTER])
                }
                Some(m) => self.fail(
                    i,
                    format!(
                        "reconsumed {reconsumed} of {limit}: stored in {}, not {want}",
                        m.topic
                    ),
                ),
                None => self.fail(
                    i,
                    "the retry was stored in neither the retry nor the dead-letter topic",
                ),
            }
        }
        self.inner
            .groups
            .put(rmq_remoting::protocol::admin::SubscriptionGroupConfig {
                group_name: group,
                ..Default::default()
            });
    }

    pub async fn locks(&mut self) {
        for (i, _) in self.frames("lock") {
            let Some((p, Some(r))) = self.expect(i, &[], ResponseCode::SUCCESS).await else {
                continue;
            };
            let asked: serde_json::Value = serde_json::from_slice(&p.body).unwrap_or_default();
            let got: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let asked = asked["mqSet"].as_array().cloned().unwrap_or_default();
            let locked = got["lockOKMQSet"].as_array().cloned().unwrap_or_default();
            if asked.is_empty() || locked.len() != asked.len() {
                self.fail(i, format!("asked to lock {asked:?}, locked {locked:?}"));
            }
        }
        let first_lock = self.frames("lock").first().map(|(i, _)| *i);
        for (i, _) in self.frames("unlock") {
            // The client holds the queue (its own lock frame), then lets it go.
            if let Some(l) = first_lock {
                self.expect(l, &[], ResponseCode::SUCCESS).await;
            }
            if self.expect(i, &[], ResponseCode::SUCCESS).await.is_none() {
                continue;
            }
            // Unlocked: another client can take the queue now (a oneway unlock may still be in
            // flight: poll), and then gives it back.
            let (group, topic) = (self.vars["consumer_group"].clone(), self.topic());
            let another = |code| {
                let body = rmq_remoting::protocol::heartbeat::LockBatchRequestBody {
                    consumer_group: group.clone(),
                    client_id: "127.0.0.1@another".into(),
                    only_this_broker: true,
                    mq_set: [rmq_remoting::protocol::heartbeat::MessageQueue {
                        topic: topic.clone(),
                        broker_name: BROKER_NAME.into(),
                        queue_id: 0,
                    }]
                    .into(),
                };
                RemotingCommand::request(code).with_body(rmq_remoting::JsonBody::encode(&body))
            };
            let deadline = Instant::now() + T;
            let mut taken = false;
            while !taken && Instant::now() < deadline {
                taken = match self
                    .admin
                    .invoke(&self.broker_addr, another(RequestCode::LOCK_BATCH_MQ), T)
                    .await
                {
                    Ok(r) => String::from_utf8_lossy(&r.body).contains(&topic),
                    Err(_) => false,
                };
                if !taken {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            if !taken {
                self.fail(i, "the queue is still locked after UNLOCK_BATCH_MQ");
            }
            let _ = self
                .admin
                .invoke(&self.broker_addr, another(RequestCode::UNLOCK_BATCH_MQ), T)
                .await;
        }
    }

    pub async fn lookups(&mut self) {
        for (i, _) in self.frames("get_consumer_list") {
            let Some((_, Some(r))) = self.expect(i, &[], ResponseCode::SUCCESS).await else {
                continue;
            };
            if !String::from_utf8_lossy(&r.body).contains(&self.vars["client_id"]) {
                self.fail(
                    i,
                    format!(
                        "{} not in {:?}",
                        self.vars["client_id"],
                        String::from_utf8_lossy(&r.body)
                    ),
                );
            }
        }
        for (i, _) in self.frames("view_message") {
            let Some(t) = self.target() else { continue };
            let Some((_, Some(r))) = self
                .expect(i, &Self::target_vars(&t), ResponseCode::SUCCESS)
                .await
            else {
                continue;
            };
            match MessageExt::decode_all(r.body.clone()) {
                Ok(m) if m.len() == 1 && m[0].commit_log_offset == t.record.commit_log_offset => {}
                other => self.fail(i, format!("viewed {other:?}")),
            }
        }
        for (i, _) in self.frames("query_message") {
            // By key (a send used `${key}`) or by the target's unique key.
            let Some(t) = self.target() else { continue };
            let Some((p, Some(r))) = self
                .expect(i, &Self::target_vars(&t), ResponseCode::SUCCESS)
                .await
            else {
                continue;
            };
            let wanted_key = p
                .ext
                .get("key")
                .and_then(|k| k.as_str())
                .unwrap_or_default()
                .to_string();
            match MessageExt::decode_all(r.body.clone()) {
                Ok(found)
                    if !found.is_empty()
                        && found.iter().all(|m| {
                            m.keys().any(|k| k == wanted_key)
                                || m.uniq_key() == Some(wanted_key.as_str())
                        }) => {}
                other => self.fail(i, format!("query for {wanted_key:?} found {other:?}")),
            }
        }
    }

    pub async fn unregister(&mut self) {
        for (i, _) in self.frames("unregister") {
            if self.expect(i, &[], ResponseCode::SUCCESS).await.is_none() {
                continue;
            }
            let id = self.vars["client_id"].clone();
            match self.consumer_listed().await {
                Ok(l) if !l.contains(&id) => {}
                other => self.fail(i, format!("after UNREGISTER_CLIENT: {other:?}")),
            }
        }
    }
}
