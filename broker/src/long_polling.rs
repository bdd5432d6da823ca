//! Long polling: pulls that found nothing wait here until a message reaches their queue (the
//! store's dispatch listener wakes them) or their suspend time runs out.

use std::collections::HashMap;

use parking_lot::Mutex;
use tokio::sync::oneshot;

struct Held {
    offset: i64,
    wake: oneshot::Sender<()>,
}

#[derive(Default)]
pub struct PullRequestHoldService {
    held: Mutex<HashMap<(String, i32), Vec<Held>>>,
}

impl PullRequestHoldService {
    /// Parks a pull for `offset` of a queue; the receiver fires when a message at or past
    /// that offset is dispatched (or is dropped when the service is cleared).
    pub fn hold(&self, topic: &str, queue_id: i32, offset: i64) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut held = self.held.lock();
        let list = held.entry((topic.to_string(), queue_id)).or_default();
        // Drop entries whose pull already gave up.
        list.retain(|h| !h.wake.is_closed());
        list.push(Held { offset, wake: tx });
        rx
    }

    /// Called after dispatch: the queue's next offset is now `max_offset`.
    pub fn notify(&self, topic: &str, queue_id: i32, max_offset: i64) {
        let mut held = self.held.lock();
        if held.is_empty() {
            return;
        }
        let key = (topic.to_string(), queue_id);
        let Some(list) = held.get_mut(&key) else {
            return;
        };
        let mut i = 0;
        while i < list.len() {
            if list[i].offset < max_offset || list[i].wake.is_closed() {
                let h = list.swap_remove(i);
                let _ = h.wake.send(());
            } else {
                i += 1;
            }
        }
        if list.is_empty() {
            held.remove(&key);
        }
    }

    /// Number of parked pulls (metrics and tests).
    pub fn held_count(&self) -> usize {
        self.held.lock().values().map(Vec::len).sum()
    }

    /// Wakes everything (shutdown).
    pub fn wake_all(&self) {
        let mut held = self.held.lock();
        for (_, list) in held.drain() {
            for h in list {
                let _ = h.wake.send(());
            }
        }
    }
}
