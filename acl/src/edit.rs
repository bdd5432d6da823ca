//! Changes to the ACL files through the admin requests (UPDATE_AND_CREATE_ACL_CONFIG,
//! DELETE_ACL_CONFIG, UPDATE_GLOBAL_WHITE_ADDRS_CONFIG), as RocketMQ makes them: an account
//! is rewritten in the file that holds it (a new one goes to the main file), the file's
//! `dataVersion` counter goes up, and the merged ACL is reloaded at once. Comments in an
//! edited file are not kept (RocketMQ rewrites it the same way).

use std::path::{Path, PathBuf};

use crate::plain::{self, AccountConfig, DataVersion, PlainAclFile};
use crate::{AclError, PlainAcl};

/// UPDATE_AND_CREATE_ACL_CONFIG's fields; `None` keeps what the account has.
#[derive(Debug, Clone, Default)]
pub struct AccountUpdate {
    pub access_key: String,
    pub secret_key: String,
    pub white_remote_address: Option<String>,
    pub admin: bool,
    pub default_topic_perm: Option<String>,
    pub default_group_perm: Option<String>,
    pub topic_perms: Option<Vec<String>>,
    pub group_perms: Option<Vec<String>>,
}

/// Every `Res=Perm` entry must name a resource and a permission RocketMQ knows.
fn check_resource_perms(list: &[String]) -> Result<(), AclError> {
    for entry in list {
        let Some((res, p)) = entry.split_once('=').filter(|(r, _)| !r.trim().is_empty()) else {
            return Err(AclError::new(format!(
                "Parse Resource format error for {entry}.\nThe expected resource format is 'Res=Perm'. For example: topicA=SUB"
            )));
        };
        let _ = res;
        if !matches!(p.trim(), "PUB" | "SUB" | "PUB|SUB" | "SUB|PUB" | "DENY") {
            return Err(AclError::new(format!(
                "Parse resource permission error for {entry}.\nThe expected permissions are 'SUB' or 'PUB' or 'SUB|PUB' or 'PUB|SUB'."
            )));
        }
    }
    Ok(())
}

fn write_file(path: &Path, mut file: PlainAclFile) -> Result<(), AclError> {
    let previous = file.data_version.first().copied().unwrap_or_default();
    file.data_version = vec![DataVersion {
        counter: previous.counter + 1,
        timestamp: rmq_remoting::util::now_millis(),
    }];
    let text = serde_yaml::to_string(&file).map_err(|e| AclError::new(e.to_string()))?;
    let tmp = path.with_extension(format!("tmp.{:016x}", rand::random::<u64>()));
    let fail = |e: std::io::Error| AclError::new(format!("cannot write {}: {e}", path.display()));
    std::fs::write(&tmp, text).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(e)
    })
}

impl PlainAcl {
    /// The file holding `access_key`, and that file as read.
    fn find_account(&self, access_key: &str) -> Result<Option<(PathBuf, PlainAclFile)>, AclError> {
        for path in self.files() {
            let file = plain::read_file(&path)?;
            if file.accounts.iter().any(|a| a.access_key == access_key) {
                return Ok(Some((path, file)));
            }
        }
        Ok(None)
    }

    /// Creates or updates an account.
    pub fn update_account(&self, u: AccountUpdate) -> Result<(), AclError> {
        if u.access_key.len() <= 6 || u.secret_key.len() <= 6 {
            return Err(AclError::new(format!(
                "The accessKey={} and secretKey cannot be null and length should longer than 6",
                u.access_key
            )));
        }
        for list in [&u.topic_perms, &u.group_perms].into_iter().flatten() {
            check_resource_perms(list)?;
        }
        let _edit = self.edit.lock();
        let (path, mut file) = match self.find_account(&u.access_key)? {
            Some(found) => found,
            None => (self.main.clone(), plain::read_file(&self.main)?),
        };
        let i = match file
            .accounts
            .iter()
            .position(|a| a.access_key == u.access_key)
        {
            Some(i) => i,
            None => {
                file.accounts.push(AccountConfig {
                    access_key: u.access_key.clone(),
                    ..Default::default()
                });
                file.accounts.len() - 1
            }
        };
        let a = &mut file.accounts[i];
        a.secret_key = u.secret_key;
        a.admin = u.admin;
        if let Some(w) = u.white_remote_address {
            a.white_remote_address = w;
        }
        if let Some(p) = u.default_topic_perm {
            a.default_topic_perm = p;
        }
        if let Some(p) = u.default_group_perm {
            a.default_group_perm = p;
        }
        if let Some(p) = u.topic_perms {
            a.topic_perms = p;
        }
        if let Some(p) = u.group_perms {
            a.group_perms = p;
        }
        // Refuse what would not load before it reaches the disk.
        crate::plain::AclConfig::check(&file)?;
        write_file(&path, file)?;
        self.reload()
    }

    /// Removes an account; an error if no file holds it.
    pub fn delete_account(&self, access_key: &str) -> Result<(), AclError> {
        let _edit = self.edit.lock();
        let Some((path, mut file)) = self.find_account(access_key)? else {
            return Err(AclError::new(format!(
                "The accesskey[{access_key}] corresponding to accessConfig has been deleted failed."
            )));
        };
        file.accounts.retain(|a| a.access_key != access_key);
        write_file(&path, file)?;
        self.reload()
    }

    /// Replaces the global white list of `file` (the main file if `None`), which must be one
    /// of the ACL files.
    pub fn update_global_white(
        &self,
        addrs: &[String],
        file: Option<&Path>,
    ) -> Result<(), AclError> {
        for a in addrs {
            crate::address::AddressPattern::parse(a).map_err(|e| AclError::new(e.to_string()))?;
        }
        let _edit = self.edit.lock();
        let path = match file {
            None => self.main.clone(),
            Some(p) => self.files().into_iter().find(|f| f == p).ok_or_else(|| {
                AclError::new(format!("{} is not one of the ACL files", p.display()))
            })?,
        };
        let mut f = plain::read_file(&path)?;
        f.global_white_remote_addresses = addrs.to_vec();
        write_file(&path, f)?;
        self.reload()
    }

    /// The main file's data version and every file's.
    pub fn versions(&self) -> (DataVersion, Vec<(PathBuf, DataVersion)>) {
        let config = self.config();
        let main = config
            .files
            .iter()
            .find(|(p, _)| *p == self.main)
            .map(|(_, v)| *v)
            .unwrap_or_default();
        (main, config.files.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plain::perm;

    fn acl() -> (tempfile::TempDir, PlainAcl) {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("conf/plain_acl.yml");
        std::fs::create_dir_all(dir.path().join("conf/acl")).unwrap();
        std::fs::write(
            dir.path().join("conf/acl/team.yml"),
            "accounts:\n  - accessKey: team-key\n    secretKey: team-secret\n",
        )
        .unwrap();
        let acl = PlainAcl::load(main, dir.path().join("conf/acl")).unwrap();
        (dir, acl)
    }

    #[test]
    fn accounts_are_created_updated_in_their_own_file_and_deleted() {
        let (dir, acl) = acl();
        let update = AccountUpdate {
            access_key: "new-account".into(),
            secret_key: "new-secret".into(),
            default_topic_perm: Some("PUB".into()),
            topic_perms: Some(vec!["Orders=PUB|SUB".into()]),
            ..Default::default()
        };
        acl.update_account(update.clone()).unwrap();
        let c = acl.config();
        assert_eq!(
            c.accounts["new-account"].resources["Orders"],
            perm::PUB | perm::SUB
        );
        let (main_version, all) = acl.versions();
        assert_eq!(main_version.counter, 1);
        assert_eq!(all.len(), 2);
        // The team's account stays in the team's file.
        acl.update_account(AccountUpdate {
            access_key: "team-key".into(),
            secret_key: "team-secret-2".into(),
            admin: true,
            ..Default::default()
        })
        .unwrap();
        let team = std::fs::read_to_string(dir.path().join("conf/acl/team.yml")).unwrap();
        assert!(
            team.contains("team-secret-2") && team.contains("counter: 1"),
            "{team}"
        );
        assert!(acl.config().accounts["team-key"].admin);
        // Refusals, with RocketMQ's words; nothing written.
        let bad = AccountUpdate {
            topic_perms: Some(vec!["Orders".into()]),
            ..update.clone()
        };
        assert!(acl
            .update_account(bad)
            .unwrap_err()
            .0
            .starts_with("Parse Resource format error for Orders."));
        let bad = AccountUpdate {
            group_perms: Some(vec!["g=ALL".into()]),
            ..update.clone()
        };
        assert!(acl
            .update_account(bad)
            .unwrap_err()
            .0
            .starts_with("Parse resource permission error for g=ALL."));
        let short = AccountUpdate {
            secret_key: "short".into(),
            ..update
        };
        assert!(acl.update_account(short).is_err());
        acl.delete_account("new-account").unwrap();
        assert!(!acl.config().accounts.contains_key("new-account"));
        assert!(acl
            .delete_account("new-account")
            .unwrap_err()
            .0
            .contains("has been deleted failed"));
        // Global white list of the main file, or of a named ACL file only.
        acl.update_global_white(&["10.0.0.*".into()], None).unwrap();
        assert_eq!(acl.config().global_white.len(), 1);
        assert!(acl
            .update_global_white(&["10.0.0.*".into()], Some(Path::new("/etc/passwd")))
            .is_err());
        assert!(acl.update_global_white(&["1.2.3".into()], None).is_err());
    }
}
