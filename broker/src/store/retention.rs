//! Retention and disk protection, as RocketMQ's clean services: expired commit-log files go at
//! `deleteWhen` (or at any hour once the disk is past `diskMaxUsedSpaceRatio`), the oldest go
//! even unexpired past `diskSpaceCleanForciblyRatio`, and appends are refused past
//! `diskSpaceWarningLevelRatio` until space is back. Queue and index files follow the commit
//! log they point into.

use std::path::Path;
use std::sync::atomic::Ordering;

use rmq_remoting::util::now_millis;

use super::message_store::Inner;

/// Used space of the file system holding `path`, in percent (`None` if unknown).
pub fn disk_usage_percent(path: &Path) -> Option<f64> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the struct we pass; the path is NUL-terminated.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 || s.f_blocks == 0 {
        return None;
    }
    let total = s.f_blocks as f64;
    let free = s.f_bfree as f64;
    Some((total - free) / total * 100.0)
}

/// The local hour of the day, as RocketMQ compares `deleteWhen` with.
fn local_hour() -> u32 {
    // SAFETY: localtime_r writes into the struct we pass.
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return 25;
        }
        tm.tm_hour as u32
    }
}

/// One pass. `force_hour` acts as if it were a `deleteWhen` hour.
pub(crate) fn run(inner: &Inner, force_hour: bool) {
    let cfg = &inner.config;
    let usage =
        disk_usage_percent(&cfg.commit_log_dir()).or_else(|| disk_usage_percent(&cfg.root()));
    let usage_pct = usage.unwrap_or(0.0);
    let full = usage.is_some() && usage_pct > cfg.disk_space_warning_level_ratio as f64;
    let was_full = inner.disk_full.swap(full, Ordering::AcqRel);
    if full && !was_full {
        tracing::error!(
            usage = usage_pct,
            limit = cfg.disk_space_warning_level_ratio,
            "disk almost full: refusing appends"
        );
    } else if !full && was_full {
        tracing::info!(usage = usage_pct, "disk space is back: accepting appends");
    }
    let clean_immediately =
        cfg.clean_file_forcibly_enable && usage_pct > cfg.disk_space_clean_forcibly_ratio as f64;
    let space_low = usage_pct > cfg.disk_max_used_space_ratio as f64;
    let hour_ok = force_hour || cfg.delete_hours().contains(&local_hour());
    if hour_ok || space_low || clean_immediately {
        let expire_ms = cfg.file_reserved_time as i64 * 3_600_000;
        let deleted = inner.commit_log.delete_expired(
            now_millis(),
            expire_ms,
            clean_immediately,
            cfg.delete_file_batch_max,
        );
        if deleted > 0 {
            tracing::info!(
                deleted,
                usage = usage_pct,
                forced = clean_immediately,
                "commit log files deleted by retention"
            );
        }
    }
    let min = inner.commit_log.min_offset() as i64;
    let queues: Vec<_> = inner
        .queues
        .read()
        .values()
        .flat_map(|m| m.values().cloned())
        .collect();
    for q in queues {
        if let Err(e) = q.delete_expired(min) {
            tracing::error!(topic = q.topic(), queue = q.queue_id(), error = %e, "cannot delete expired consume queue files");
        }
    }
    if let Some(index) = &inner.index {
        index.delete_files_before(min);
    }
}
