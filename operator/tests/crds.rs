//! The CRD files in `crds/` are exactly what the Rust types generate, and their schemas are
//! structural (as the API server requires) with the validation users rely on.

use serde_json::Value;

fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn crd_files_match_the_types() {
    // The Helm chart carries its own copy: Helm installs a chart's crds/ before its templates.
    for dir in ["crds", "charts/rocketmq-operator/crds"] {
        for (file, crd) in rmq_operator::crds() {
            let path = repo_root().join(dir).join(file);
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                on_disk == rmq_operator::crd_yaml(&crd),
                "{} differs from the Rust types: run `cargo run -p rmq-operator --bin crdgen` and commit",
                path.display()
            );
        }
    }
}

/// Walks a schema: no `$ref`, and every node outside anyOf/oneOf/allOf branches has a type
/// (or is explicitly int-or-string / preserve-unknown-fields).
fn check_structural(v: &Value, path: &str, in_branch: bool, errors: &mut Vec<String>) {
    let Some(obj) = v.as_object() else { return };
    if obj.contains_key("$ref") {
        errors.push(format!("{path}: $ref is not allowed"));
    }
    let special = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
        || obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if !in_branch && !special && !obj.contains_key("type") {
        errors.push(format!("{path}: no type"));
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            check_structural(p, &format!("{path}.{k}"), false, errors);
        }
    }
    if let Some(items) = obj.get("items") {
        check_structural(items, &format!("{path}[]"), false, errors);
    }
    if let Some(ap) = obj.get("additionalProperties") {
        if ap.is_object() {
            check_structural(ap, &format!("{path}{{}}"), false, errors);
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(branches) = obj.get(key).and_then(Value::as_array) {
            for (i, b) in branches.iter().enumerate() {
                check_structural(b, &format!("{path}.{key}[{i}]"), true, errors);
            }
        }
    }
}

#[test]
fn schemas_are_structural() {
    for (file, crd) in rmq_operator::crds() {
        let v = serde_json::to_value(&crd).unwrap();
        for version in v["spec"]["versions"].as_array().unwrap() {
            let schema = &version["schema"]["openAPIV3Schema"];
            let mut errors = Vec::new();
            check_structural(schema, file, false, &mut errors);
            assert!(errors.is_empty(), "{file}: {errors:#?}");
            assert!(
                version["subresources"]["status"].is_object(),
                "{file}: status subresource"
            );
        }
    }
}

#[test]
fn validation_users_rely_on() {
    let bg = serde_json::to_value(rmq_operator::crds()[1].1.clone()).unwrap();
    let spec =
        &bg["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    assert_eq!(spec["replicas"]["minimum"], 1.0);
    assert_eq!(spec["replicas"]["maximum"], 5.0);
    let roles: Vec<&str> = spec["brokerRole"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(roles, ["SYNC_MASTER", "ASYNC_MASTER"]);
    let flush: Vec<&str> = spec["flushDiskType"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(flush, ["ASYNC_FLUSH", "SYNC_FLUSH"]);
    let required: Vec<&str> = bg["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
        ["spec"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        required.contains(&"storage") && required.contains(&"nameServer"),
        "{required:?}"
    );
    // storage cannot change (StatefulSet volume claim templates are immutable): the API server
    // refuses the edit with this message instead of the operator failing on every reconcile.
    let rules = spec["storage"]["x-kubernetes-validations"]
        .as_array()
        .unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["rule"], "self == oldSelf");
    assert!(rules[0]["message"]
        .as_str()
        .unwrap()
        .starts_with("storage is immutable"));
    let scale = &bg["spec"]["versions"][0]["subresources"]["scale"];
    assert_eq!(scale["specReplicasPath"], ".spec.replicas");

    let topic = serde_json::to_value(rmq_operator::crds()[2].1.clone()).unwrap();
    let tspec = &topic["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"];
    let policies: Vec<&str> = tspec["deletionPolicy"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(policies, ["Delete", "Retain", "DeleteIfEmpty"]);
    assert_eq!(tspec["writeQueueNums"]["maximum"], 1024.0);
    assert!(tspec["topicName"]["pattern"]
        .as_str()
        .unwrap()
        .contains("a-zA-Z0-9"));
}

#[test]
fn example_objects_deserialize() {
    let bg: rmq_operator::crd::BrokerGroup = serde_yaml::from_str(
        r#"
apiVersion: rocketmq.rs/v1alpha1
kind: BrokerGroup
metadata: { name: broker-a }
spec:
  nameServer: { name: rocketmq }
  replicas: 3
  brokerRole: SYNC_MASTER
  storage: { size: 20Gi }
"#,
    )
    .unwrap();
    assert_eq!(bg.spec.replicas, 3);
    assert_eq!(
        bg.spec.broker_role,
        rmq_operator::crd::broker_group::BrokerRole::SyncMaster
    );
    assert_eq!(bg.spec.cluster_name, "DefaultCluster");
    assert!(bg.spec.metrics.enabled);
}
