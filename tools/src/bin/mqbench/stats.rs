//! Per-second and whole-run throughput and latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// Shared counters; senders record, the reporter prints.
pub struct Stats {
    inner: Mutex<Window>,
    total: Mutex<Window>,
    started: Instant,
}

struct Window {
    ok: u64,
    failed: u64,
    bytes: u64,
    latency: Histogram<u64>,
}

impl Window {
    fn new() -> Window {
        Window {
            ok: 0,
            failed: 0,
            bytes: 0,
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
        }
    }
}

impl Stats {
    pub fn new() -> Arc<Stats> {
        Arc::new(Stats {
            inner: Mutex::new(Window::new()),
            total: Mutex::new(Window::new()),
            started: Instant::now(),
        })
    }

    /// `n` messages of `bytes` total, with one latency sample (µs) if there is one.
    pub fn ok(&self, n: u64, bytes: u64, latency_us: Option<u64>) {
        for w in [&self.inner, &self.total] {
            let mut w = w.lock();
            w.ok += n;
            w.bytes += bytes;
            if let Some(l) = latency_us {
                let _ = w.latency.record(l.max(1));
            }
        }
    }

    pub fn failed(&self, n: u64) {
        self.inner.lock().failed += n;
        self.total.lock().failed += n;
    }

    fn line(label: &str, w: &Window, secs: f64) -> String {
        let ms = |q: f64| w.latency.value_at_quantile(q) as f64 / 1000.0;
        if w.latency.is_empty() {
            format!(
                "{label} TPS: {:.0}  MB/s: {:.2}  failed: {}",
                w.ok as f64 / secs,
                w.bytes as f64 / secs / 1_048_576.0,
                w.failed
            )
        } else {
            format!(
                "{label} TPS: {:.0}  MB/s: {:.2}  RT ms p50: {:.2}  p99: {:.2}  p999: {:.2}  max: {:.2}  failed: {}",
                w.ok as f64 / secs,
                w.bytes as f64 / secs / 1_048_576.0,
                ms(0.50),
                ms(0.99),
                ms(0.999),
                w.latency.max() as f64 / 1000.0,
                w.failed
            )
        }
    }

    /// Prints a line every second until `stop` resolves.
    pub async fn report_every_second(
        self: Arc<Self>,
        label: &'static str,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let mut last = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            let w = std::mem::replace(&mut *self.inner.lock(), Window::new());
            let secs = last.elapsed().as_secs_f64();
            last = Instant::now();
            println!("{}", Stats::line(label, &w, secs));
        }
    }

    /// The whole run: its summary line and the same figures as numbers.
    pub fn summary(&self, label: &str) -> (String, Totals) {
        let w = self.total.lock();
        let secs = self.started.elapsed().as_secs_f64();
        let ms = |q: f64| w.latency.value_at_quantile(q) as f64 / 1000.0;
        let totals = Totals {
            ok: w.ok,
            tps: w.ok as f64 / secs,
            latency_ms: (!w.latency.is_empty()).then(|| [ms(0.50), ms(0.99), ms(0.999)]),
        };
        (Stats::line(&format!("[summary] {label}"), &w, secs), totals)
    }
}

/// A run's totals, for the result row.
#[derive(Debug, Clone, Copy)]
pub struct Totals {
    pub ok: u64,
    pub tps: f64,
    /// p50, p99 and p999 in ms (none without answers: oneway sends).
    pub latency_ms: Option<[f64; 3]>,
}
