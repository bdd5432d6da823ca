//! What passes through the broker: message counts and rates for runtime info, how long it
//! has been up, and the gate that bounds sends in flight.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One per broker; counters are private and only move through these calls.
pub struct Traffic {
    started: Instant,
    put_messages: AtomicU64,
    get_messages: AtomicU64,
    /// One `(put, get)` sample per second, newest last, ten minutes of them.
    samples: parking_lot::Mutex<VecDeque<(u64, u64)>>,
    send_permits: Arc<Semaphore>,
    max_sends: usize,
}

impl Traffic {
    /// `max_in_flight_sends`: sends processed at once before SYSTEM_BUSY.
    pub fn new(max_in_flight_sends: usize) -> Traffic {
        let max_sends = max_in_flight_sends.max(1);
        Traffic {
            started: Instant::now(),
            put_messages: AtomicU64::new(0),
            get_messages: AtomicU64::new(0),
            samples: Default::default(),
            send_permits: Arc::new(Semaphore::new(max_sends)),
            max_sends,
        }
    }

    /// A place for one more send, or `None` when `maxInFlightSends` are being processed.
    pub fn admit_send(&self) -> Option<OwnedSemaphorePermit> {
        self.send_permits.clone().try_acquire_owned().ok()
    }

    /// Sends being processed right now.
    pub fn sends_in_flight(&self) -> usize {
        self.max_sends
            .saturating_sub(self.send_permits.available_permits())
    }

    /// `count` messages were stored.
    pub fn stored(&self, count: u64) {
        self.put_messages.fetch_add(count, Relaxed);
    }

    /// `count` messages were handed to consumers.
    pub fn delivered(&self, count: u64) {
        self.get_messages.fetch_add(count, Relaxed);
    }

    /// Messages stored and delivered since start: `(put, get)`.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.put_messages.load(Relaxed),
            self.get_messages.load(Relaxed),
        )
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Takes the once-a-second sample behind the TPS figures.
    pub fn sample(&self) {
        let now = self.totals();
        let mut s = self.samples.lock();
        s.push_back(now);
        while s.len() > 601 {
            s.pop_front();
        }
    }

    /// Messages per second over the last 10 s, 60 s and 600 s, as RocketMQ prints `putTps`
    /// and `getTransferredTps`: `(put, get)`.
    pub fn tps(&self) -> (String, String) {
        let s = self.samples.lock();
        let rate = |secs: usize, pick: fn(&(u64, u64)) -> u64| -> f64 {
            let n = s.len();
            if n < 2 {
                return 0.0;
            }
            let back = secs.min(n - 1);
            (pick(&s[n - 1]) - pick(&s[n - 1 - back])) as f64 / back as f64
        };
        let fmt = |pick: fn(&(u64, u64)) -> u64| {
            format!(
                "{:.2} {:.2} {:.2}",
                rate(10, pick),
                rate(60, pick),
                rate(600, pick)
            )
        };
        (fmt(|x| x.0), fmt(|x| x.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_the_samples_and_the_gate_counts_sends() {
        let t = Traffic::new(2);
        assert_eq!(t.tps().0, "0.00 0.00 0.00");
        t.sample();
        t.stored(30);
        t.delivered(10);
        t.sample();
        // Two samples one "second" apart: the whole difference is one second's rate.
        assert_eq!(
            t.tps(),
            ("30.00 30.00 30.00".into(), "10.00 10.00 10.00".into())
        );
        assert_eq!(t.totals(), (30, 10));
        let a = t.admit_send().unwrap();
        let _b = t.admit_send().unwrap();
        assert!(t.admit_send().is_none());
        assert_eq!(t.sends_in_flight(), 2);
        drop(a);
        assert_eq!(t.sends_in_flight(), 1);
    }
}
