//! `MessageStoreConfig`: the store's `broker.conf` properties, names and defaults as RocketMQ's.

use std::path::PathBuf;

use rmq_remoting::java_config;

fn default_root() -> String {
    format!(
        "{}/store",
        std::env::var("HOME").unwrap_or_else(|_| ".".into())
    )
}

pub use rmq_remoting::role::FlushDiskType;

java_config! {
    /// The store's settings.
    pub struct MessageStoreConfig {
        store_path_root_dir: String = default_root() => "storePathRootDir",
        /// Empty means `storePathRootDir/commitlog`.
        store_path_commit_log: String = String::new() => "storePathCommitLog",
        mapped_file_size_commit_log: u64 = 1024 * 1024 * 1024 => "mappedFileSizeCommitLog",
        /// Rounded down to a multiple of 20 (one unit).
        mapped_file_size_consume_queue: u64 = 300_000 * 20 => "mappedFileSizeConsumeQueue",
        /// `ASYNC_FLUSH` or `SYNC_FLUSH`; anything else is refused at start.
        flush_disk_type: FlushDiskType = FlushDiskType::AsyncFlush => "flushDiskType",
        flush_interval_commit_log: u64 = 500 => "flushIntervalCommitLog",
        flush_commit_log_least_pages: u64 = 4 => "flushCommitLogLeastPages",
        flush_commit_log_thorough_interval: u64 = 10_000 => "flushCommitLogThoroughInterval",
        flush_interval_consume_queue: u64 = 1000 => "flushIntervalConsumeQueue",
        flush_consume_queue_least_pages: u64 = 2 => "flushConsumeQueueLeastPages",
        flush_consume_queue_thorough_interval: u64 = 60_000 => "flushConsumeQueueThoroughInterval",
        sync_flush_timeout: u64 = 5000 => "syncFlushTimeout",
        max_message_size: usize = 4 * 1024 * 1024 => "maxMessageSize",
        message_index_enable: bool = true => "messageIndexEnable",
        max_hash_slot_num: u32 = 5_000_000 => "maxHashSlotNum",
        max_index_num: u32 = 20_000_000 => "maxIndexNum",
        /// Verify body CRCs when recovering after a crash.
        check_crc_on_recover: bool = true => "checkCRCOnRecover",
        /// Hours a commit-log file is kept after its last write.
        file_reserved_time: u64 = 72 => "fileReservedTime",
        /// Hours of the day (`;`-separated) when expired files are deleted.
        delete_when: String = "04".into() => "deleteWhen",
        /// Above this disk usage (%), expired files are deleted at any hour.
        disk_max_used_space_ratio: u32 = 75 => "diskMaxUsedSpaceRatio",
        /// Above this disk usage (%), the oldest files are deleted even if not expired.
        disk_space_clean_forcibly_ratio: u32 = 85 => "diskSpaceCleanForciblyRatio",
        /// Above this disk usage (%), appends are refused until space is freed.
        disk_space_warning_level_ratio: u32 = 90 => "diskSpaceWarningLevelRatio",
        clean_file_forcibly_enable: bool = true => "cleanFileForciblyEnable",
        clean_resource_interval: u64 = 10_000 => "cleanResourceInterval",
        delete_commit_log_files_interval: u64 = 100 => "deleteCommitLogFilesInterval",
        delete_file_batch_max: usize = 10 => "deleteFileBatchMax",
        /// Touch every page of a new commit-log file when it is created ahead of need, so
        /// appends never fault pages in.
        warm_mapped_file_enable: bool = false => "warmMapedFileEnable",
        /// Most records one batch of the writer thread takes from its queue.
        max_append_batch: usize = 1024 => "maxAppendBatch",
        /// How far behind the newest data (in % of the machine's or container's memory) a
        /// message still counts as in memory: pulls reading further back are pointed at a
        /// slave, and a new group's first offset query is answered 0 only while the queue's
        /// first message is within it.
        access_message_in_memory_max_ratio: u32 = 40 => "accessMessageInMemoryMaxRatio",
        /// Delay of each level (1-based), for `DELAY=n` messages and consumer retries.
        message_delay_level: String = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h".into() => "messageDelayLevel",
    }
}

impl MessageStoreConfig {
    /// `messageDelayLevel` in milliseconds, level 1 first (units s, m, h, d as RocketMQ).
    pub fn delay_levels(&self) -> Result<Vec<i64>, String> {
        parse_delay_levels(&self.message_delay_level)
    }

    pub fn root(&self) -> PathBuf {
        PathBuf::from(&self.store_path_root_dir)
    }

    pub fn commit_log_dir(&self) -> PathBuf {
        if self.store_path_commit_log.is_empty() {
            self.root().join("commitlog")
        } else {
            PathBuf::from(&self.store_path_commit_log)
        }
    }

    pub fn consume_queue_dir(&self) -> PathBuf {
        self.root().join("consumequeue")
    }

    pub fn index_dir(&self) -> PathBuf {
        self.root().join("index")
    }

    pub fn checkpoint_path(&self) -> PathBuf {
        self.root().join("checkpoint")
    }

    pub fn abort_path(&self) -> PathBuf {
        self.root().join("abort")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.root().join("lock")
    }

    /// Consume-queue file size in bytes, a whole number of 20-byte units.
    pub fn consume_queue_file_size(&self) -> u64 {
        (self.mapped_file_size_consume_queue / 20).max(1) * 20
    }

    /// The hours of `deleteWhen`.
    pub fn delete_hours(&self) -> Vec<u32> {
        self.delete_when
            .split(';')
            .filter_map(|h| h.trim().parse().ok())
            .collect()
    }
}

/// Parses `messageDelayLevel` ("1s 5s 10s 30s 1m ... 2h").
pub fn parse_delay_levels(text: &str) -> Result<Vec<i64>, String> {
    let levels: Vec<i64> = text
        .split_whitespace()
        .map(|item| {
            let unit = item
                .chars()
                .last()
                .ok_or_else(|| "empty delay level".to_string())?;
            let ms = match unit {
                's' => 1000,
                'm' => 60_000,
                'h' => 3_600_000,
                'd' => 86_400_000,
                _ => {
                    return Err(format!(
                        "messageDelayLevel `{item}`: the unit must be s, m, h or d"
                    ))
                }
            };
            let n: i64 = item[..item.len() - 1]
                .parse()
                .map_err(|_| format!("messageDelayLevel `{item}` is not a number and a unit"))?;
            if n < 0 {
                return Err(format!("messageDelayLevel `{item}` is negative"));
            }
            Ok(n * ms)
        })
        .collect::<Result<_, _>>()?;
    if levels.is_empty() {
        return Err("messageDelayLevel has no levels".into());
    }
    Ok(levels)
}

#[cfg(test)]
mod delay_tests {
    use super::*;

    #[test]
    fn default_levels_and_bad_ones() {
        let d = MessageStoreConfig::default().delay_levels().unwrap();
        assert_eq!(d.len(), 18);
        assert_eq!((d[0], d[4], d[17]), (1000, 60_000, 7_200_000));
        assert_eq!(
            parse_delay_levels("1s 2d").unwrap(),
            vec![1000, 172_800_000]
        );
        assert!(parse_delay_levels("1x").unwrap_err().contains("unit"));
        assert!(parse_delay_levels("s").is_err());
        assert!(parse_delay_levels("").is_err());
    }
}
