//! Delay levels, as RocketMQ's `ScheduleMessageService`: a message sent with `DELAY=n` is
//! stored in `SCHEDULE_TOPIC_XXXX` queue `n - 1` with its real topic and queue saved in
//! `REAL_TOPIC` / `REAL_QID`, and its consume-queue tags code set to the time it is due. This
//! service walks each level's queue in order (due times only grow within a level), re-puts
//! every due message to its real queue, and persists how far it got per level in
//! `config/delayOffset.json`, so a restart neither loses nor repeats more than the last
//! moments of progress.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rmq_remoting::message::{property, sys_flag, MessageExt};
use rmq_remoting::util::now_millis;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::broker::BrokerInner;
use crate::store::{PutMessage, SCHEDULE_TOPIC};

/// Longest sleep between looks at the delay queues: bounds how late a message can be.
const TICK: Duration = Duration::from_millis(100);
/// Most messages moved per level per pass, so one busy level cannot starve the others.
const BATCH: usize = 2048;

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DelayOffsets {
    #[serde(default)]
    offset_table: BTreeMap<i32, i64>,
}

/// `delayOffset.json`: ours, or Java's with bare numeric keys.
fn parse(bytes: &[u8]) -> Option<DelayOffsets> {
    let text = rmq_remoting::fastjson::normalize(bytes).ok()?;
    serde_json::from_str(&text).ok()
}

/// Progress per delay level (the next schedule-queue offset to deliver).
pub struct ScheduleOffsets {
    path: PathBuf,
    table: Mutex<BTreeMap<i32, i64>>,
}

impl ScheduleOffsets {
    /// Reads `delayOffset.json` (ours, or Java's with bare numeric keys); missing or
    /// unreadable means start from the beginning of every level.
    pub fn load(path: PathBuf) -> ScheduleOffsets {
        let table = crate::manager::load(&path, parse)
            .map(|d| d.offset_table)
            .unwrap_or_default();
        ScheduleOffsets {
            path,
            table: Mutex::new(table),
        }
    }

    pub fn get(&self, level: i32) -> i64 {
        self.table.lock().get(&level).copied().unwrap_or(0)
    }

    fn set(&self, level: i32, offset: i64) {
        self.table.lock().insert(level, offset);
    }

    /// A slave takes the master's progress (GET_ALL_DELAY_OFFSET's body).
    pub fn replace_from_json(&self, body: &[u8]) {
        if let Some(d) = parse(body) {
            *self.table.lock() = d.offset_table;
            self.persist();
        }
    }

    /// The JSON RocketMQ's GET_ALL_DELAY_OFFSET returns and `delayOffset.json` holds.
    pub fn encode(&self) -> String {
        let d = DelayOffsets {
            offset_table: self.table.lock().clone(),
        };
        serde_json::to_string(&d).unwrap_or_default()
    }

    /// Writes the file through a temporary and a rename, so a crash leaves the old or the new.
    pub fn persist(&self) {
        if let Err(e) = crate::manager::persist(&self.path, || self.encode().into_bytes()) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot persist delay offsets");
        }
    }
}

/// Turns a message with a delay level into its waiting form, as the broker stores it:
/// topic `SCHEDULE_TOPIC_XXXX`, queue `level - 1`, real topic and queue saved. Levels above
/// the highest are capped to it. Transaction halves and rollbacks are never delayed.
pub fn apply_delay(msg: &mut PutMessage, levels: usize) {
    let tran = sys_flag::transaction_value(msg.sys_flag);
    if tran == sys_flag::TRANSACTION_PREPARED_TYPE || tran == sys_flag::TRANSACTION_ROLLBACK_TYPE {
        return;
    }
    let Some(level) = msg
        .properties
        .get(property::DELAY_TIME_LEVEL)
        .and_then(|l| l.trim().parse::<i64>().ok())
        .filter(|l| *l > 0)
    else {
        return;
    };
    let capped = level.min(levels.max(1) as i64);
    if capped != level {
        msg.properties
            .insert(property::DELAY_TIME_LEVEL, &capped.to_string());
    }
    let level = capped;
    msg.properties.insert(property::REAL_TOPIC, &msg.topic);
    msg.properties
        .insert(property::REAL_QUEUE_ID, &msg.queue_id.to_string());
    msg.topic = SCHEDULE_TOPIC.into();
    msg.queue_id = (level - 1) as i32;
}

/// The message to deliver for a due schedule-queue record: its real topic and queue. Its
/// properties stay as they were (`DELAY`, `REAL_TOPIC` and `REAL_QID` included, as RocketMQ
/// stores them). `None` for a record that lacks them (written by something else).
fn restore(inner: &BrokerInner, m: &MessageExt) -> Option<PutMessage> {
    let topic = m.properties.get(property::REAL_TOPIC)?.clone();
    let queue_id: i32 = m.properties.get(property::REAL_QUEUE_ID)?.parse().ok()?;
    Some(PutMessage {
        topic,
        queue_id,
        ..PutMessage::copy_of(m, &m.properties, inner.store_host)
    })
}

/// Delivers what is due on every level; returns how long until the next message is due
/// (at most [`TICK`]).
async fn deliver_due(inner: &Arc<BrokerInner>) -> Duration {
    let store = &inner.store;
    let levels = store.delay_levels().len() as i32;
    let mut wait = TICK;
    for level in 1..=levels {
        let queue_id = level - 1;
        let start = inner
            .schedule
            .get(level)
            .max(store.min_offset_in_queue(SCHEDULE_TOPIC, queue_id));
        let mut offset = start;
        for _ in 0..BATCH {
            let Some(unit) = store.queue_unit(SCHEDULE_TOPIC, queue_id, offset) else {
                break;
            };
            if unit.size == i32::MAX {
                offset += 1; // a blank unit
                continue;
            }
            let now = now_millis();
            if unit.tags_code > now {
                wait = wait.min(Duration::from_millis((unit.tags_code - now) as u64));
                break;
            }
            let Some(msg) = store.look_message_by_offset(unit.commit_log_offset) else {
                tracing::warn!(
                    level,
                    offset,
                    "delayed message no longer in the commit log; skipped"
                );
                offset += 1;
                continue;
            };
            let Some(put) = restore(inner, &msg) else {
                tracing::warn!(
                    level,
                    offset,
                    "delayed message without REAL_TOPIC/REAL_QID; skipped"
                );
                offset += 1;
                continue;
            };
            let r = store.put_message(put).await;
            if r.status.is_stored() {
                offset += 1;
            } else {
                // Try again later; order within the level is kept.
                tracing::warn!(level, offset, status = ?r.status, "delayed message not delivered yet");
                wait = Duration::from_secs(1);
                break;
            }
        }
        if offset != start || inner.schedule.get(level) != offset {
            inner.schedule.set(level, offset);
        }
    }
    wait
}

/// Runs until `stop`; persists progress every second and at the end.
pub async fn run(inner: Arc<BrokerInner>, stop: CancellationToken) {
    let mut last_persist = Instant::now();
    let mut persisted = inner.schedule.encode();
    loop {
        let wait = deliver_due(&inner).await;
        if last_persist.elapsed() >= Duration::from_secs(1) {
            last_persist = Instant::now();
            let now = inner.schedule.encode();
            if now != persisted {
                persisted = now;
                let i = inner.clone();
                let _ = tokio::task::spawn_blocking(move || i.schedule.persist()).await;
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
        }
    }
    let i = inner.clone();
    let _ = tokio::task::spawn_blocking(move || i.schedule.persist()).await;
    tracing::debug!("schedule service stopped");
}
