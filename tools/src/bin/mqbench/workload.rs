//! Workload files: a run's settings in TOML, so it can be repeated as it was.
//!
//! Precedence, per setting: a flag given on the command line, then the file, then the flag's
//! default. A key the file does not know is an error, and so is a producer key in a file run
//! by `mqbench consumer` (and the reverse): a setting silently dropped would make two runs of
//! "the same" workload differ.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rmq_remoting::role::FlushDiskType;
use serde::Deserialize;

use crate::{consumer, producer, SendMode};

/// One workload file. Every key is optional; a missing one leaves the flag's value.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Shown in the summary row (default: the file name without `.toml`).
    pub name: Option<String>,
    pub description: Option<String>,
    pub topic: Option<String>,
    pub seconds: Option<u64>,
    pub count: Option<u64>,
    /// The `flushDiskType` every broker of the topic must have, else mqbench refuses to run.
    #[serde(default, deserialize_with = "flush_disk_type")]
    pub flush_disk_type: Option<FlushDiskType>,
    // Producer (`mqbench producer`).
    pub size: Option<usize>,
    pub senders: Option<usize>,
    pub batch: Option<usize>,
    pub mode: Option<SendMode>,
    pub inflight: Option<usize>,
    pub tags: Option<usize>,
    pub keys: Option<bool>,
    pub queues: Option<i32>,
    // Consumer (`mqbench consumer`).
    pub group: Option<String>,
    pub from_first: Option<bool>,
    pub pull_batch: Option<i32>,
}

fn flush_disk_type<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<FlushDiskType>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map(Some).map_err(serde::de::Error::custom)
}

/// Which command a file is for, from the keys it sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Producer,
    Consumer,
    /// Only keys both commands take.
    Either,
}

/// A loaded file: its path and settings.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub workload: Workload,
}

impl Loaded {
    pub fn load(path: &Path) -> anyhow::Result<Loaded> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read workload file {}", path.display()))?;
        let workload: Workload = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("workload file {}: {e}", path.display()))?;
        let loaded = Loaded {
            path: path.to_path_buf(),
            workload,
        };
        loaded.side()?;
        Ok(loaded)
    }

    /// The name in the summary row: `name`, else the file's stem.
    pub fn name(&self) -> String {
        self.workload.name.clone().unwrap_or_else(|| {
            self.path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
    }

    pub fn side(&self) -> anyhow::Result<Side> {
        let w = &self.workload;
        let producer: Vec<&str> = [
            ("size", w.size.is_some()),
            ("senders", w.senders.is_some()),
            ("batch", w.batch.is_some()),
            ("mode", w.mode.is_some()),
            ("inflight", w.inflight.is_some()),
            ("tags", w.tags.is_some()),
            ("keys", w.keys.is_some()),
            ("queues", w.queues.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
        let consumer: Vec<&str> = [
            ("group", w.group.is_some()),
            ("from_first", w.from_first.is_some()),
            ("pull_batch", w.pull_batch.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
        match (producer.is_empty(), consumer.is_empty()) {
            (true, true) => Ok(Side::Either),
            (false, true) => Ok(Side::Producer),
            (true, false) => Ok(Side::Consumer),
            (false, false) => bail!(
                "workload file {}: producer keys ({}) and consumer keys ({}) in one file; \
                 write one file per command",
                self.path.display(),
                producer.join(", "),
                consumer.join(", ")
            ),
        }
    }

    fn ensure_side(&self, want: Side, command: &str) -> anyhow::Result<()> {
        let side = self.side()?;
        if side != Side::Either && side != want {
            bail!(
                "workload file {} is for `mqbench {}`, not `mqbench {command}`",
                self.path.display(),
                if side == Side::Producer {
                    "producer"
                } else {
                    "consumer"
                }
            );
        }
        Ok(())
    }

    /// Sets the producer's options from the file, except those given on the command line
    /// (`explicit` says which, by argument id).
    pub fn apply_producer(
        &self,
        o: &mut producer::Options,
        explicit: &dyn Fn(&str) -> bool,
    ) -> anyhow::Result<()> {
        self.ensure_side(Side::Producer, "producer")?;
        let w = &self.workload;
        self.apply_common(&mut o.common, explicit);
        set(&mut o.size, w.size, explicit("size"));
        set(&mut o.threads, w.senders, explicit("threads"));
        set(&mut o.batch, w.batch, explicit("batch"));
        set(&mut o.mode, w.mode, explicit("mode"));
        set(&mut o.inflight, w.inflight, explicit("inflight"));
        set(&mut o.tags, w.tags, explicit("tags"));
        set(&mut o.keys, w.keys, explicit("keys"));
        set(&mut o.queues, w.queues, explicit("queues"));
        Ok(())
    }

    /// As [`Loaded::apply_producer`], for the consumer.
    pub fn apply_consumer(
        &self,
        o: &mut consumer::Options,
        explicit: &dyn Fn(&str) -> bool,
    ) -> anyhow::Result<()> {
        self.ensure_side(Side::Consumer, "consumer")?;
        let w = &self.workload;
        self.apply_common(&mut o.common, explicit);
        set(&mut o.group, w.group.clone(), explicit("group"));
        set(&mut o.from_first, w.from_first, explicit("from_first"));
        set(&mut o.pull_batch, w.pull_batch, explicit("pull_batch"));
        Ok(())
    }

    fn apply_common(&self, c: &mut crate::Common, explicit: &dyn Fn(&str) -> bool) {
        let w = &self.workload;
        set(&mut c.topic, w.topic.clone(), explicit("topic"));
        set(&mut c.seconds, w.seconds, explicit("seconds"));
        set(&mut c.count, w.count, explicit("count"));
        if !explicit("flush_disk_type") && w.flush_disk_type.is_some() {
            c.flush_disk_type = w.flush_disk_type;
        }
    }
}

fn set<T>(dst: &mut T, from_file: Option<T>, explicit: bool) {
    if let (Some(v), false) = (from_file, explicit) {
        *dst = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Vec<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }

    #[test]
    fn every_shipped_workload_parses() {
        let files = shipped();
        assert!(files.len() >= 4, "{files:?}");
        for f in files {
            assert_eq!(
                f.extension().and_then(|e| e.to_str()),
                Some("toml"),
                "{f:?}"
            );
            let l = Loaded::load(&f).unwrap_or_else(|e| panic!("{e:#}"));
            assert!(l.workload.name.is_some(), "{f:?} has no name");
            assert!(
                l.workload.flush_disk_type.is_some(),
                "{f:?} has no flush_disk_type"
            );
            assert_eq!(l.name(), f.file_stem().unwrap().to_string_lossy(), "{f:?}");
        }
    }

    fn parse(text: &str) -> anyhow::Result<Loaded> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.toml");
        std::fs::write(&p, text).unwrap();
        Loaded::load(&p)
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_file() {
        let e = format!("{:#}", parse("sizee = 10\n").unwrap_err());
        assert!(
            e.contains("w.toml") && e.contains("unknown field `sizee`"),
            "{e}"
        );
        let e = format!("{:#}", parse("flush_disk_type = \"SYNC\"\n").unwrap_err());
        assert!(e.contains("w.toml") && e.contains("SYNC_FLUSH"), "{e}");
        let e = format!("{:#}", parse("mode = \"fast\"\n").unwrap_err());
        assert!(e.contains("w.toml") && e.contains("fast"), "{e}");
        let e = format!("{:#}", parse("size = 1\ngroup = \"g\"\n").unwrap_err());
        assert!(e.contains("producer keys (size)"), "{e}");
    }

    #[test]
    fn command_line_flags_win_over_the_file() {
        use clap::{CommandFactory, FromArgMatches};
        let l = parse(
            "name = \"x\"\nsize = 1024\nsenders = 16\nmode = \"async\"\nseconds = 30\n\
             flush_disk_type = \"sync_flush\"\n",
        )
        .unwrap();
        let m = crate::Cli::command()
            .try_get_matches_from(["mqbench", "producer", "-w", "2", "--seconds", "1"])
            .unwrap();
        let cli = crate::Cli::from_arg_matches(&m).unwrap();
        let sub = m.subcommand_matches("producer").unwrap();
        let crate::Cmd::Producer(mut o) = cli.cmd else {
            panic!()
        };
        l.apply_producer(&mut o, &|id| crate::given(sub, id))
            .unwrap();
        assert_eq!(o.threads, 2);
        assert_eq!(o.common.seconds, 1);
        assert_eq!(o.size, 1024);
        assert_eq!(o.mode, SendMode::Async);
        assert_eq!(o.batch, 1, "the flag's default stays");
        assert_eq!(o.common.flush_disk_type, Some(FlushDiskType::SyncFlush));
        let mut c = consumer::Options {
            common: o.common.clone(),
            group: "g".into(),
            from_first: false,
            pull_batch: 32,
        };
        let e = l.apply_consumer(&mut c, &|_| false).unwrap_err();
        assert!(e.to_string().contains("for `mqbench producer`"), "{e}");
    }
}
