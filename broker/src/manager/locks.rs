//! Queue locks for orderly consumption (RocketMQ's `RebalanceLockManager`): a queue of a
//! consumer group is consumed by one client at a time. A lock is granted when the queue is
//! free, its lock expired (`rebalanceLockMaxLiveTime`, 60 s), or it is already that client's;
//! clients renew theirs every 20 s and release them on rebalance and shutdown.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rmq_remoting::protocol::heartbeat::MessageQueue;

/// Queue → (client id, last lock or renewal), for one group.
type GroupLocks = HashMap<MessageQueue, (String, Instant)>;

#[derive(Default)]
pub struct RebalanceLockManager {
    table: Mutex<HashMap<String, GroupLocks>>,
}

impl RebalanceLockManager {
    /// Locks (or renews) what `client_id` may hold of `mqs`; returns the queues it now holds.
    pub fn try_lock_batch(
        &self,
        group: &str,
        mqs: &HashSet<MessageQueue>,
        client_id: &str,
        max_live: Duration,
    ) -> HashSet<MessageQueue> {
        let now = Instant::now();
        let mut table = self.table.lock();
        let locks = table.entry(group.to_string()).or_default();
        let mut granted = HashSet::new();
        for mq in mqs {
            match locks.get_mut(mq) {
                Some((holder, at)) if holder == client_id => {
                    *at = now;
                    granted.insert(mq.clone());
                }
                Some((holder, at)) if now.duration_since(*at) <= max_live => {
                    tracing::debug!(group, queue = ?mq, holder = %holder, wanted_by = client_id, "queue locked by another client");
                }
                Some((holder, _)) => {
                    tracing::info!(group, queue = ?mq, expired = %holder, new = client_id, "expired queue lock taken over");
                    locks.insert(mq.clone(), (client_id.to_string(), now));
                    granted.insert(mq.clone());
                }
                None => {
                    locks.insert(mq.clone(), (client_id.to_string(), now));
                    granted.insert(mq.clone());
                }
            }
        }
        granted
    }

    /// Releases the queues of `mqs` that `client_id` holds; others' locks stay.
    pub fn unlock_batch(&self, group: &str, mqs: &HashSet<MessageQueue>, client_id: &str) {
        let mut table = self.table.lock();
        if let Some(locks) = table.get_mut(group) {
            for mq in mqs {
                if locks.get(mq).is_some_and(|(holder, _)| holder == client_id) {
                    locks.remove(mq);
                }
            }
        }
    }

    /// Whether some client holds an unexpired lock on a queue of `group`.
    pub fn is_locked(&self, group: &str, mq: &MessageQueue, max_live: Duration) -> bool {
        self.table
            .lock()
            .get(group)
            .and_then(|l| l.get(mq))
            .is_some_and(|(_, at)| at.elapsed() <= max_live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mq(q: i32) -> MessageQueue {
        MessageQueue {
            topic: "T".into(),
            broker_name: "b".into(),
            queue_id: q,
        }
    }

    #[test]
    fn one_holder_per_queue_until_release_or_expiry() {
        let m = RebalanceLockManager::default();
        let live = Duration::from_millis(100);
        let both: HashSet<_> = [mq(0), mq(1)].into();
        assert_eq!(m.try_lock_batch("g", &both, "a", live), both);
        let only1: HashSet<_> = [mq(1)].into();
        m.unlock_batch("g", &only1, "a");
        // b gets the released queue, not a's.
        assert_eq!(m.try_lock_batch("g", &both, "b", live), only1);
        // b cannot release a's lock.
        m.unlock_batch("g", &[mq(0)].into(), "b");
        assert!(m.is_locked("g", &mq(0), live));
        // Another group is independent.
        assert_eq!(m.try_lock_batch("h", &both, "b", live), both);
        // Expired: taken over.
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(
            m.try_lock_batch("g", &[mq(0)].into(), "b", live),
            [mq(0)].into()
        );
    }
}
