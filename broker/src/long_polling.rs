//! Long polling: pulls that found nothing wait here until a message reaches their queue (the
//! store's dispatch listener wakes them) or their suspend time runs out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::oneshot;

struct Held {
    id: u64,
    offset: i64,
    wake: oneshot::Sender<()>,
}

#[derive(Default)]
pub struct PullRequestHoldService {
    held: Mutex<HashMap<(String, i32), Vec<Held>>>,
    count: std::sync::atomic::AtomicUsize,
    next_id: AtomicU64,
}

/// One parked pull: wait on `woken`, then [`PullRequestHoldService::release`] it.
pub struct Hold {
    key: (String, i32),
    id: u64,
    pub woken: oneshot::Receiver<()>,
}

impl PullRequestHoldService {
    /// Parks a pull for `offset` of a queue; `woken` fires when a message at or past that
    /// offset is dispatched (or is dropped when the service is cleared). `None` when `max`
    /// pulls are parked already.
    pub fn hold(&self, topic: &str, queue_id: i32, offset: i64, max: usize) -> Option<Hold> {
        let (tx, rx) = oneshot::channel();
        let mut held = self.held.lock();
        if max > 0 && self.count.load(Ordering::Acquire) >= max {
            return None;
        }
        let key = (topic.to_string(), queue_id);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        held.entry(key.clone()).or_default().push(Held {
            id,
            offset,
            wake: tx,
        });
        self.count.fetch_add(1, Ordering::AcqRel);
        Some(Hold { key, id, woken: rx })
    }

    /// Unparks a pull that is done waiting (woken, timed out, or its connection closed).
    pub fn release(&self, hold: Hold) {
        let mut held = self.held.lock();
        if let Some(list) = held.get_mut(&hold.key) {
            if let Some(i) = list.iter().position(|h| h.id == hold.id) {
                list.swap_remove(i);
                self.count.fetch_sub(1, Ordering::AcqRel);
            }
            if list.is_empty() {
                held.remove(&hold.key);
            }
        }
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
                self.count.fetch_sub(1, Ordering::AcqRel);
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
        self.count.load(Ordering::Acquire)
    }

    /// Wakes everything (shutdown).
    pub fn wake_all(&self) {
        let mut held = self.held.lock();
        for (_, list) in held.drain() {
            for h in list {
                self.count.fetch_sub(1, Ordering::AcqRel);
                let _ = h.wake.send(());
            }
        }
    }
}
