//! The validator and the gate against RocketMQ's rules, request by request.

use super::*;

const ACL: &str = r#"
globalWhiteRemoteAddresses:
  - 10.10.103.*
accounts:
  - accessKey: RocketMQ
    secretKey: 12345678
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms: [topicA=DENY, topicB=PUB|SUB, topicC=SUB]
    groupPerms: [groupA=DENY, groupB=PUB|SUB]
  - accessKey: rocketmq2
    secretKey: 87654321
    whiteRemoteAddress: 192.168.1.*
    admin: true
"#;

fn acl() -> (tempfile::TempDir, Arc<PlainAcl>) {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("conf/plain_acl.yml");
    std::fs::create_dir_all(main.parent().unwrap()).unwrap();
    std::fs::write(&main, ACL).unwrap();
    let acl = PlainAcl::load(main, dir.path().join("conf/acl")).unwrap();
    (dir, Arc::new(acl))
}

fn send(topic: &str) -> RemotingCommand {
    let mut r = RemotingCommand::request(RequestCode::SEND_MESSAGE_V2);
    r.ext_fields.insert("a".into(), "pg".into());
    r.ext_fields.insert("b".into(), topic.into());
    r.body = bytes::Bytes::from_static(b"payload");
    r
}

fn pull(topic: &str, group: &str) -> RemotingCommand {
    let mut r = RemotingCommand::request(RequestCode::PULL_MESSAGE);
    r.ext_fields.insert("topic".into(), topic.into());
    r.ext_fields.insert("consumerGroup".into(), group.into());
    r
}

fn signed(mut r: RemotingCommand, ak: &str, sk: &str) -> RemotingCommand {
    Credentials::new(ak, sk).sign(&mut r);
    r
}

const OUTSIDE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(172, 16, 0, 9));

#[test]
fn accounts_permissions_and_refusals_follow_rocketmq() {
    let (_d, acl) = acl();
    let ok = |r: RemotingCommand| acl.validate(&r, OUTSIDE);
    let refused = |r: RemotingCommand| acl.validate(&r, OUTSIDE).unwrap_err().0;
    assert_eq!(
        ok(signed(send("topicB"), "RocketMQ", "12345678")),
        Ok(Grant::Signed { admin: false })
    );
    assert_eq!(refused(send("topicB")), "No accessKey is configured");
    assert_eq!(
        refused(signed(send("topicB"), "nobody-here", "12345678")),
        "No acl config for nobody-here"
    );
    assert_eq!(
        refused(signed(send("topicB"), "RocketMQ", "wrong-secret")),
        "Check signature failed for accessKey=RocketMQ"
    );
    // A body changed after signing.
    let mut tampered = signed(send("topicB"), "RocketMQ", "12345678");
    tampered.body = bytes::Bytes::from_static(b"other");
    assert!(refused(tampered).starts_with("Check signature failed"));
    assert_eq!(
        refused(signed(send("topicA"), "RocketMQ", "12345678")),
        "No permission for topic:topicA"
    );
    assert_eq!(
        refused(signed(send("topicC"), "RocketMQ", "12345678")),
        "No permission for topic:topicC"
    );
    assert_eq!(
        refused(signed(send("unlisted"), "RocketMQ", "12345678")),
        "No default permission for topic:unlisted"
    );
    // Consumers: topic SUB and the group through its retry topic.
    assert!(ok(signed(pull("topicC", "groupB"), "RocketMQ", "12345678")).is_ok());
    assert!(ok(signed(pull("topicC", "anyGroup"), "RocketMQ", "12345678")).is_ok());
    assert_eq!(
        refused(signed(pull("topicC", "groupA"), "RocketMQ", "12345678")),
        "No permission for group:groupA"
    );
    assert_eq!(
        refused(signed(send("%RETRY%groupA"), "RocketMQ", "12345678")),
        "No permission for group:groupA"
    );
    // Admin-only codes.
    let create = RemotingCommand::request(RequestCode::UPDATE_AND_CREATE_TOPIC);
    assert_eq!(
        refused(signed(create.clone(), "RocketMQ", "12345678")),
        "Need admin permission for request code=17, but accessKey=RocketMQ is not"
    );
    // The trace topic is open to every signed account.
    assert!(ok(signed(send("RMQ_SYS_TRACE_TOPIC"), "RocketMQ", "12345678")).is_ok());
    // White lists: global lets anything through; an account's own skips its signature.
    let white = IpAddr::V4(std::net::Ipv4Addr::new(10, 10, 103, 7));
    assert_eq!(acl.validate(&send("topicA"), white), Ok(Grant::WhiteListed));
    let mine = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 4));
    let mut unsigned_admin = create.clone();
    unsigned_admin
        .ext_fields
        .insert("AccessKey".into(), "rocketmq2".into());
    assert_eq!(
        acl.validate(&unsigned_admin, mine),
        Ok(Grant::AccountAddress { admin: true })
    );
    assert!(acl.validate(&unsigned_admin, OUTSIDE).is_err());
    assert_eq!(
        ok(signed(create, "rocketmq2", "87654321")),
        Ok(Grant::Signed { admin: true })
    );
}

#[test]
fn files_are_reloaded_when_they_change_and_a_bad_edit_keeps_the_last_good_acl() {
    let (dir, acl) = acl();
    assert!(!acl.reload_if_changed());
    let extra = dir.path().join("conf/acl/team.yaml");
    std::fs::create_dir_all(extra.parent().unwrap()).unwrap();
    std::fs::write(
        &extra,
        "accounts:\n  - accessKey: team-key\n    secretKey: team-secret\n    defaultTopicPerm: PUB\n",
    )
    .unwrap();
    assert!(acl.reload_if_changed(), "a new file is noticed");
    assert!(acl
        .validate(&signed(send("x"), "team-key", "team-secret"), OUTSIDE)
        .is_ok());
    std::fs::write(&extra, "accounts: [").unwrap();
    // The modification time may not move within the file system's granularity.
    let f = std::fs::File::options().write(true).open(&extra).unwrap();
    f.set_modified(SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    assert!(!acl.reload_if_changed());
    assert!(
        acl.validate(&signed(send("x"), "team-key", "team-secret"), OUTSIDE)
            .is_ok(),
        "the previous ACL stays in force"
    );
    std::fs::remove_file(&extra).unwrap();
    assert!(acl.reload_if_changed());
    assert!(acl
        .validate(&signed(send("x"), "team-key", "team-secret"), OUTSIDE)
        .is_err());
}

#[test]
fn the_gate_needs_the_admin_credential_for_the_control_plane() {
    let admin = Credentials::new("cluster-admin", "cluster-secret");
    let role = || RemotingCommand::request(RequestCode::NOTIFY_BROKER_ROLE_CHANGED);
    // ACL off, control plane on: data flows unsigned, role changes need the credential.
    let gate = Gate::new(Some(admin.clone()), None, broker_control_plane);
    assert!(gate.check(&send("any"), OUTSIDE).is_ok());
    assert_eq!(
        gate.check(&role(), OUTSIDE),
        Err(Denied::ControlPlane {
            code: RequestCode::NOTIFY_BROKER_ROLE_CHANGED
        })
    );
    assert!(gate
        .check(&signed(role(), "cluster-admin", "wrong"), OUTSIDE)
        .is_err());
    assert!(gate
        .check(&signed(role(), "cluster-admin", "cluster-secret"), OUTSIDE)
        .is_ok());
    let resp = gate.check(&role(), OUTSIDE).unwrap_err().response();
    assert_eq!(resp.code, ResponseCode::NO_PERMISSION);
    // ACL on: an ACL admin account signs its way in; a white-listed address does not.
    let (_d, acl) = acl();
    let gate = Gate::new(Some(admin.clone()), Some(acl), broker_control_plane);
    assert!(gate
        .check(&signed(role(), "rocketmq2", "87654321"), OUTSIDE)
        .is_ok());
    let white = IpAddr::V4(std::net::Ipv4Addr::new(10, 10, 103, 7));
    assert!(gate.check(&role(), white).is_err());
    assert!(gate.check(&send("topicA"), white).is_ok());
    // The admin credential passes the data-plane ACL too (broker-to-broker calls).
    assert!(gate
        .check(
            &signed(send("topicA"), "cluster-admin", "cluster-secret"),
            OUTSIDE
        )
        .is_ok());
    let refusal = gate.check(&send("topicA"), OUTSIDE).unwrap_err().response();
    assert_eq!(refusal.code, ResponseCode::SYSTEM_ERROR);
    assert_eq!(
        refusal.remark.as_deref(),
        Some("org.apache.rocketmq.acl.common.AclException: No accessKey is configured")
    );
    // Control-plane authentication off by choice: only the ACL applies.
    let gate = Gate::new(None, None, broker_control_plane);
    assert!(gate.check(&role(), OUTSIDE).is_ok());
    assert!(namesrv_control_plane(RequestCode::REGISTER_BROKER));
    assert!(!namesrv_control_plane(RequestCode::GET_ROUTEINFO_BY_TOPIC));
}
