//! How much memory the broker may count on: the machine's RAM, or the cgroup's limit when one
//! is set (a container's), as a container-aware JVM reports it to RocketMQ.

use std::sync::OnceLock;

/// The memory the broker runs with, in bytes, read once.
pub fn total_memory() -> u64 {
    static TOTAL: OnceLock<u64> = OnceLock::new();
    *TOTAL.get_or_init(|| {
        let ram = physical_memory();
        cgroup_limit().map_or(ram, |limit| limit.min(ram))
    })
}

fn physical_memory() -> u64 {
    // SAFETY: sysinfo only fills the struct we pass.
    unsafe {
        let mut si: libc::sysinfo = std::mem::zeroed();
        if libc::sysinfo(&mut si) == 0 {
            si.totalram as u64 * si.mem_unit as u64
        } else {
            u64::MAX
        }
    }
}

/// cgroup v2 `memory.max`, else v1 `memory.limit_in_bytes`; `None` when unlimited or absent.
fn cgroup_limit() -> Option<u64> {
    [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|path| std::fs::read_to_string(path).ok())
    .and_then(|text| text.trim().parse::<u64>().ok())
    // v1 writes a huge number for "unlimited".
    .filter(|limit| *limit > 0 && *limit < (1 << 60))
}

#[cfg(test)]
mod tests {
    #[test]
    fn total_memory_is_known() {
        let m = super::total_memory();
        assert!(m > 16 << 20 && m < u64::MAX, "{m}");
    }
}
