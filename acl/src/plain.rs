//! `plain_acl.yml`: RocketMQ's file of global white addresses and accounts, read with its
//! rules (numbers where strings are expected are taken as strings, a permission that is not
//! PUB/SUB/PUB|SUB/DENY means DENY, keys shorter than 7 characters are refused, a key defined
//! in an earlier file wins).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::address::AddressPattern;
use crate::AclError;

/// Permission bits (RocketMQ's `Permission`).
pub mod perm {
    pub const DENY: u8 = 1;
    pub const ANY: u8 = 2;
    pub const PUB: u8 = 4;
    pub const SUB: u8 = 8;

    /// `PUB`, `SUB`, `PUB|SUB`, `SUB|PUB`, `DENY`; anything else (or nothing) is DENY.
    pub fn parse(s: Option<&str>) -> u8 {
        match s.map(str::trim) {
            Some("PUB") => PUB,
            Some("SUB") => SUB,
            Some("PUB|SUB") | Some("SUB|PUB") => PUB | SUB,
            _ => DENY,
        }
    }

    /// Whether `owned` grants `needed`.
    pub fn allows(needed: u8, owned: u8) -> bool {
        if owned & DENY != 0 {
            return false;
        }
        if needed & ANY != 0 {
            return owned & (PUB | SUB) != 0;
        }
        needed & owned != 0
    }

    pub fn name(p: u8) -> &'static str {
        match p {
            PUB => "PUB",
            SUB => "SUB",
            x if x == PUB | SUB => "PUB|SUB",
            ANY => "ANY",
            _ => "DENY",
        }
    }
}

/// Group resources are keyed by their retry topic, as RocketMQ keys them.
pub const RETRY_PREFIX: &str = "%RETRY%";

/// One file as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlainAclFile {
    #[serde(default, deserialize_with = "strings")]
    pub global_white_remote_addresses: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub accounts: Vec<AccountConfig>,
    #[serde(default, deserialize_with = "nullable")]
    pub data_version: Vec<DataVersion>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccountConfig {
    #[serde(default, deserialize_with = "string")]
    pub access_key: String,
    #[serde(default, deserialize_with = "string")]
    pub secret_key: String,
    #[serde(default, deserialize_with = "string")]
    pub white_remote_address: String,
    #[serde(default, deserialize_with = "boolean")]
    pub admin: bool,
    #[serde(default, deserialize_with = "string")]
    pub default_topic_perm: String,
    #[serde(default, deserialize_with = "string")]
    pub default_group_perm: String,
    #[serde(default, deserialize_with = "strings")]
    pub topic_perms: Vec<String>,
    #[serde(default, deserialize_with = "strings")]
    pub group_perms: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DataVersion {
    #[serde(default)]
    pub counter: i64,
    #[serde(default)]
    pub timestamp: i64,
}

/// An account, compiled.
#[derive(Debug, Clone)]
pub struct Account {
    pub access_key: String,
    pub secret_key: String,
    pub white: AddressPattern,
    pub admin: bool,
    pub default_topic: u8,
    pub default_group: u8,
    /// Topics by name, groups by `%RETRY%group`.
    pub resources: HashMap<String, u8>,
}

/// Every file merged.
#[derive(Debug, Default)]
pub struct AclConfig {
    pub global_white: Vec<AddressPattern>,
    pub accounts: HashMap<String, Account>,
    /// Each file read and its data version.
    pub files: Vec<(PathBuf, DataVersion)>,
}

impl AclConfig {
    /// Reads and merges `files` in order.
    pub fn load(files: &[PathBuf]) -> Result<AclConfig, AclError> {
        let mut config = AclConfig::default();
        for path in files {
            let file = read_file(path)?;
            config.merge(path, file)?;
        }
        Ok(config)
    }

    /// Whether `file` would load.
    pub fn check(file: &PlainAclFile) -> Result<(), AclError> {
        AclConfig::default().merge(Path::new(""), file.clone())
    }

    fn merge(&mut self, path: &Path, file: PlainAclFile) -> Result<(), AclError> {
        for w in &file.global_white_remote_addresses {
            self.global_white
                .push(AddressPattern::parse(w).map_err(|e| AclError::new(e.to_string()))?);
        }
        for a in file.accounts {
            let account = compile(a)?;
            if self.accounts.contains_key(&account.access_key) {
                tracing::warn!(file = %path.display(), access_key = %account.access_key, "accessKey defined in an earlier ACL file; this one is ignored");
                continue;
            }
            self.accounts.insert(account.access_key.clone(), account);
        }
        let version = file.data_version.first().copied().unwrap_or_default();
        self.files.push((path.to_path_buf(), version));
        Ok(())
    }
}

pub fn read_file(path: &Path) -> Result<PlainAclFile, AclError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| AclError::new(format!("cannot read {}: {e}", path.display())))?;
    if text.trim().is_empty() {
        return Ok(PlainAclFile::default());
    }
    serde_yaml::from_str(&text)
        .map_err(|e| AclError::new(format!("cannot parse {}: {e}", path.display())))
}

fn compile(a: AccountConfig) -> Result<Account, AclError> {
    if a.access_key.len() <= 6 || a.secret_key.len() <= 6 {
        return Err(AclError::new(format!(
            "The accessKey={} and secretKey=*** cannot be null and length should longer than 6",
            a.access_key
        )));
    }
    let mut resources = HashMap::new();
    // Groups first, then topics, into one table: as RocketMQ, a later entry wins.
    for (list, prefix) in [(&a.group_perms, RETRY_PREFIX), (&a.topic_perms, "")] {
        for entry in list {
            let (res, p) = entry.split_once('=').ok_or_else(|| {
                let kind = if prefix.is_empty() { "topic" } else { "group" };
                AclError::new(format!(
                    "Parse resource permission failed for {kind}:{entry}"
                ))
            })?;
            resources.insert(format!("{prefix}{}", res.trim()), perm::parse(Some(p)));
        }
    }
    Ok(Account {
        white: AddressPattern::parse(&a.white_remote_address)
            .map_err(|e| AclError::new(e.to_string()))?,
        admin: a.admin,
        default_topic: perm::parse(Some(&a.default_topic_perm)),
        default_group: perm::parse(Some(&a.default_group_perm)),
        access_key: a.access_key,
        secret_key: a.secret_key,
        resources,
    })
}

/// The files of an ACL home: the main file, then every `*.yml` / `*.yaml` below `conf/acl/`
/// (RocketMQ's layout), sorted so the merge order does not depend on the directory.
pub fn acl_files(main: &Path, acl_dir: &Path) -> Vec<PathBuf> {
    let mut more = Vec::new();
    collect_yaml(acl_dir, &mut more, 0);
    more.sort();
    more.retain(|p| p != main);
    let mut files = vec![main.to_path_buf()];
    files.extend(more);
    files
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    // Bounded: a symlink loop must not hang the reload.
    if depth > 8 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_yaml(&p, out, depth + 1);
        } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
            out.push(p);
        }
    }
}

/// YAML scalars of any kind as the string RocketMQ would read (`secretKey: 12345678`).
fn scalar(v: serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::Null => None,
        serde_yaml::Value::String(s) => Some(s),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        other => serde_yaml::to_string(&other)
            .ok()
            .map(|s| s.trim().to_string()),
    }
}

fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(scalar(serde_yaml::Value::deserialize(d)?).unwrap_or_default())
}

fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match serde_yaml::Value::deserialize(d)? {
        serde_yaml::Value::Sequence(items) => items.into_iter().filter_map(scalar).collect(),
        // A comma list written as one string, as mqadmin writes it.
        other => scalar(other)
            .map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
    })
}

fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(scalar(serde_yaml::Value::deserialize(d)?).is_some_and(|s| s.trim() == "true"))
}

fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RocketMQ's distribution sample, as shipped.
    pub const SAMPLE: &str = r#"
globalWhiteRemoteAddresses:
  - 10.10.103.*
  - 192.168.0.*

accounts:
  - accessKey: RocketMQ
    secretKey: 12345678
    whiteRemoteAddress:
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - topicA=DENY
      - topicB=PUB|SUB
      - topicC=SUB
    groupPerms:
      # the group should convert to retry topic
      - groupA=DENY
      - groupB=PUB|SUB
      - groupC=SUB

  - accessKey: rocketmq2
    secretKey: 12345678
    whiteRemoteAddress: 192.168.1.*
    # if it is admin, it could access all resources
    admin: true
"#;

    #[test]
    fn the_distribution_sample_reads_as_rocketmq_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("plain_acl.yml");
        std::fs::write(&p, SAMPLE).unwrap();
        let c = AclConfig::load(std::slice::from_ref(&p)).unwrap();
        assert_eq!(c.global_white.len(), 2);
        let a = &c.accounts["RocketMQ"];
        assert_eq!(a.secret_key, "12345678", "a YAML number read as a string");
        assert_eq!(a.white, AddressPattern::None);
        assert_eq!(a.default_topic, perm::DENY);
        assert_eq!(a.default_group, perm::SUB);
        assert_eq!(a.resources["topicB"], perm::PUB | perm::SUB);
        assert_eq!(a.resources["%RETRY%groupA"], perm::DENY);
        assert!(c.accounts["rocketmq2"].admin);
        assert_eq!(c.accounts["rocketmq2"].default_topic, perm::DENY);
    }

    #[test]
    fn bad_files_are_refused_with_rocketmqs_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.yml");
        for (text, why) in [
            ("accounts:\n  - accessKey: short\n    secretKey: 12345678\n", "longer than 6"),
            (
                "accounts:\n  - accessKey: long-enough\n    secretKey: 12345678\n    topicPerms: [topicA]\n",
                "Parse resource permission failed for topic:topicA",
            ),
            ("globalWhiteRemoteAddresses: [1.2.3]\n", "Netaddress examine"),
            ("accounts: {", "cannot parse"),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = AclConfig::load(std::slice::from_ref(&p)).unwrap_err();
            assert!(e.to_string().contains(why), "{text}: {e}");
        }
        std::fs::write(&p, "").unwrap();
        assert!(AclConfig::load(std::slice::from_ref(&p))
            .unwrap()
            .accounts
            .is_empty());
    }

    #[test]
    fn permissions_combine_as_rocketmqs() {
        use perm::*;
        assert!(allows(PUB, PUB | SUB));
        assert!(!allows(PUB, SUB));
        assert!(!allows(SUB, DENY | SUB));
        assert!(allows(ANY, SUB));
        assert!(!allows(ANY, DENY));
        assert_eq!(parse(Some(" SUB|PUB ")), PUB | SUB);
        assert_eq!(parse(Some("sub")), DENY);
        assert_eq!(parse(None), DENY);
    }
}
