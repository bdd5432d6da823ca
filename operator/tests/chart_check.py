"""Lints and renders charts/rocketmq-operator and charts/rocketmq-cluster with Helm's own Go SDK (PyPI helm-python-sdk, no
helm binary), checks what the rendered objects promise, and writes them for schema validation.

Usage: chart_check.py CHARTS_DIR OUT_DIR. Writes OUT_DIR/<scenario>.yaml for the operator
chart's scenarios (built-in kinds) and OUT_DIR/cluster/cluster.yaml (our custom resources, for
the operator's builders); exits non-zero on the first broken promise."""
import json
import os
import sys

import helm_python as helm
import yaml

NEEDED = {
    # (apiGroup, resource): verbs the controllers use.
    ("rocketmq.rs", "nameservers"): {"get", "list", "watch", "patch"},
    ("rocketmq.rs", "brokergroups"): {"get", "list", "watch", "patch"},
    ("rocketmq.rs", "topics"): {"get", "list", "watch", "patch"},
    ("rocketmq.rs", "consumergroups"): {"get", "list", "watch", "patch"},
    ("rocketmq.rs", "topics/status"): {"patch"},
    ("rocketmq.rs", "nameservers/status"): {"patch"},
    ("rocketmq.rs", "brokergroups/status"): {"patch"},
    ("rocketmq.rs", "consumergroups/status"): {"patch"},
    # blockOwnerDeletion on owner references needs update on the owner's finalizers.
    ("rocketmq.rs", "nameservers/finalizers"): {"update"},
    ("rocketmq.rs", "brokergroups/finalizers"): {"update"},
    ("apps", "statefulsets"): {"get", "list", "watch", "create", "patch"},
    ("", "configmaps"): {"create", "patch"},
    ("", "services"): {"create", "patch", "list", "delete"},
    ("policy", "poddisruptionbudgets"): {"create", "patch"},
    ("", "pods"): {"list", "patch"},
    ("networking.k8s.io", "networkpolicies"): {"get", "patch", "delete"},
    ("events.k8s.io", "events"): {"create", "patch"},
}


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def objects(rendered):
    out = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                out.append(doc)
    return out


def by_kind(objs, kind):
    return [o for o in objs if o["kind"] == kind]


def leader_role(objs):
    return [o for o in objs if o["kind"] in ("Role", "RoleBinding") and o["metadata"]["name"].endswith("-leader-election")]


def check_rbac(objs, role_kind, namespaces, release_ns):
    """One role and binding per watched scope, granting what the controllers use; the
    leader-election Role only on Leases, in the release namespace."""
    leader = leader_role(objs)
    objs = [o for o in objs if o not in leader]
    roles = by_kind(objs, role_kind)
    bindings = by_kind(objs, role_kind + "Binding")
    want = len(namespaces) if namespaces else 1
    if len(roles) != want or len(bindings) != want:
        fail(f"want {want} {role_kind} and binding, got {len(roles)} and {len(bindings)}")
    other = "ClusterRole" if role_kind == "Role" else "Role"
    if by_kind(objs, other):
        fail(f"{other} rendered alongside {role_kind}")
    if namespaces and sorted(r["metadata"].get("namespace") for r in roles) != sorted(namespaces):
        fail(f"Role namespaces {[r['metadata'].get('namespace') for r in roles]} != {namespaces}")
    sa = by_kind(objs, "ServiceAccount")[0]["metadata"]["name"]
    for role, binding in zip(roles, bindings):
        granted = {}
        for rule in role["rules"]:
            for g in rule["apiGroups"]:
                for r in rule["resources"]:
                    granted.setdefault((g, r), set()).update(rule["verbs"])
        for key, verbs in NEEDED.items():
            missing = verbs - granted.get(key, set())
            if missing:
                fail(f"{role_kind} lacks {sorted(missing)} on {key}")
        subject = binding["subjects"][0]
        if subject["name"] != sa or binding["roleRef"]["name"] != role["metadata"]["name"]:
            fail("binding does not join the service account to the role")
        if binding["metadata"].get("namespace") != role["metadata"].get("namespace"):
            fail("binding and role in different namespaces")
    if len(leader) != 2:
        fail(f"leader-election Role and binding: {len(leader)} objects")
    lr = by_kind(leader, "Role")[0]
    if lr["metadata"]["namespace"] != release_ns or lr["rules"] != [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}]:
        fail(f"leader-election Role {lr}")


def env_of(deploy):
    c = deploy["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in c["env"] if "value" in e}, c


def lint(chart_dir):
    report = helm.lint(chart_dir, strict=True, kube_version="v1.33.0")
    problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    if problems or report.get("errors"):
        fail(f"helm lint {chart_dir}: {json.dumps(problems or report['errors'])}")


def refuses(chart, bad_values):
    for bad in bad_values:
        try:
            chart.render(bad, name="rmq", namespace="x")
        except helm.HelmError:
            continue
        fail(f"{chart.name}: values {bad} accepted")


def cluster_chart(chart_dir, out_dir):
    lint(chart_dir)
    chart = helm.Chart.load(chart_dir)
    values = {
        "clusterName": "Prod",
        "nameServer": {"replicas": 3, "metricsPort": 5557},
        "brokerGroups": [
            {"name": "broker-a", "replicas": 2, "brokerRole": "SYNC_MASTER", "flushDiskType": "SYNC_FLUSH",
             "storage": {"size": "50Gi"}, "metrics": {"enabled": True, "port": 5557}},
            {"name": "broker-b", "replicas": 2, "brokerRole": "SYNC_MASTER", "storage": {"size": "50Gi"},
             "config": {"sendMessageThreadPoolNums": "8"}},
        ],
        "topics": [
            {"name": "orders", "readQueueNums": 8, "writeQueueNums": 8, "deletionPolicy": "DeleteIfEmpty"},
            {"name": "audit", "topicName": "AuditLog", "brokerGroups": ["broker-a"], "order": True},
        ],
        "consumerGroups": [{"name": "billing", "retryMaxTimes": 3, "consumeMessageOrderly": True}],
        "podMonitor": {"enabled": True},
    }
    objs = objects(chart.render(values, name="prod", namespace="mq", is_install=True))
    kinds = sorted(o["kind"] for o in objs)
    want = sorted(["NameServer", "BrokerGroup", "BrokerGroup", "Topic", "Topic", "ConsumerGroup", "PodMonitor"])
    if kinds != want:
        fail(f"cluster chart kinds {kinds}")
    ns = by_kind(objs, "NameServer")[0]
    if ns["metadata"]["name"] != "prod-namesrv" or ns["spec"] != {"replicas": 3, "metricsPort": 5557}:
        fail(f"NameServer {ns}")
    for bg in by_kind(objs, "BrokerGroup"):
        if bg["spec"]["clusterName"] != "Prod" or bg["spec"]["nameServer"] != {"name": "prod-namesrv"}:
            fail(f"BrokerGroup {bg['metadata']['name']} not joined to the cluster: {bg['spec']}")
        if bg["metadata"]["namespace"] != "mq":
            fail("BrokerGroup outside the release namespace")
    topics = {t["metadata"]["name"]: t["spec"] for t in by_kind(objs, "Topic")}
    if topics["orders"].get("clusterName") != "Prod" or "clusterName" in topics["audit"]:
        fail(f"topic targets {topics}")
    pm = by_kind(objs, "PodMonitor")[0]
    instances = pm["spec"]["selector"]["matchExpressions"][0]["values"]
    if sorted(instances) != ["broker-a", "broker-b", "prod-namesrv"]:
        fail(f"PodMonitor instances {instances}")
    os.makedirs(os.path.join(out_dir, "cluster"), exist_ok=True)
    with open(os.path.join(out_dir, "cluster", "cluster.yaml"), "w") as f:
        yaml.safe_dump_all([o for o in objs if o["kind"] != "PodMonitor"], f)

    # The Grafana dashboard ConfigMap carries the dashboard file unchanged, for the sidecar.
    objs = objects(chart.render({"grafanaDashboard": {"enabled": True, "namespace": "monitoring"}},
                                name="prod", namespace="mq"))
    cms = by_kind(objs, "ConfigMap")
    if len(cms) != 1 or cms[0]["metadata"]["namespace"] != "monitoring" or cms[0]["metadata"]["labels"].get("grafana_dashboard") != "1":
        fail(f"dashboard ConfigMap {cms}")
    with open(os.path.join(chart_dir, "dashboards", "rocketmq-brokers.json")) as f:
        if json.loads(cms[0]["data"]["rocketmq-brokers.json"]) != json.load(f):
            fail("dashboard ConfigMap differs from dashboards/rocketmq-brokers.json")
    with open(os.path.join(out_dir, "dashboard.yaml"), "w") as f:
        yaml.safe_dump_all(cms, f)

    # Defaults alone make a working cluster: a name server and one broker group.
    objs = objects(chart.render(name="rmq", namespace="default"))
    if sorted(o["kind"] for o in objs) != ["BrokerGroup", "NameServer"]:
        fail(f"default cluster {[o['kind'] for o in objs]}")
    refuses(chart, ({"brokerGroups": []}, {"brokerGroups": [{"name": "Broker_A"}]},
                    {"brokerGroups": [{"name": "b", "brokerRole": "SLAVE"}]}, {"topics": [{"readQueueNums": 4}]}))


def main():
    charts_dir, out_dir = sys.argv[1], sys.argv[2]
    cluster_chart(os.path.join(charts_dir, "rocketmq-cluster"), out_dir)
    chart_dir = os.path.join(charts_dir, "rocketmq-operator")
    lint(chart_dir)
    chart = helm.Chart.load(chart_dir)
    app_version = chart.metadata["appVersion"]
    crd_names = sorted(os.path.basename(c["name"]) for c in chart.crds)
    if crd_names != ["brokergroups.yaml", "consumergroups.yaml", "nameservers.yaml", "topics.yaml"]:
        fail(f"chart CRDs: {crd_names}")

    # 1. Defaults: cluster-wide.
    objs = objects(chart.render(name="rmq", namespace="rocketmq-system", is_install=True))
    check_rbac(objs, "ClusterRole", None, "rocketmq-system")
    deploy = by_kind(objs, "Deployment")[0]
    env, c = env_of(deploy)
    if env["WATCH_NAMESPACE"] != "":
        fail(f"default WATCH_NAMESPACE {env['WATCH_NAMESPACE']!r}")
    if c["image"] != f"rocketmq-rust/rocketmq-operator:{app_version}":
        fail(f"default image {c['image']}")
    if deploy["spec"]["replicas"] != 1 or deploy["spec"]["strategy"]["type"] != "RollingUpdate":
        fail(f"default replicas/strategy {deploy['spec']['replicas']} {deploy['spec']['strategy']}")
    if env["LOG_FORMAT"] != "json":
        fail(f"default log format {env['LOG_FORMAT']!r}")
    if env["LEADER_ELECTION"] != "true":
        fail(f"leader election off by default: {env}")
    fields = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in c["env"]}
    if fields.get("POD_NAMESPACE") != "metadata.namespace" or fields.get("POD_NAME") != "metadata.name":
        fail(f"downward API env {fields}")
    if deploy["metadata"]["namespace"] != "rocketmq-system":
        fail("Deployment not in the release namespace")
    svc = by_kind(objs, "Service")[0]
    if svc["spec"]["selector"] != deploy["spec"]["selector"]["matchLabels"]:
        fail("metrics Service does not select the operator pod")
    if by_kind(objs, "ServiceMonitor"):
        fail("ServiceMonitor rendered while disabled")
    with open(os.path.join(out_dir, "defaults.yaml"), "w") as f:
        yaml.safe_dump_all(objs, f)

    # 2. One namespace: Role + RoleBinding in that namespace, env set.
    objs = objects(chart.render({"watchNamespace": "team-a", "image": {"tag": "dev"}, "httpPort": 9090},
                                name="ops", namespace="ops"))
    check_rbac(objs, "Role", ["team-a"], "ops")
    env, c = env_of(by_kind(objs, "Deployment")[0])
    if env["WATCH_NAMESPACE"] != "team-a" or env["HTTP_ADDR"] != "0.0.0.0:9090":
        fail(f"namespaced env {env}")
    if c["image"] != "rocketmq-rust/rocketmq-operator:dev":
        fail(f"image tag override: {c['image']}")
    with open(os.path.join(out_dir, "namespaced.yaml"), "w") as f:
        yaml.safe_dump_all(objs, f)

    # 2b. Several namespaces, two replicas: a Role per namespace, one leader Lease.
    objs = objects(chart.render({"watchNamespace": "team-a, team-b", "replicaCount": 2},
                                name="ops", namespace="ops"))
    check_rbac(objs, "Role", ["team-a", "team-b"], "ops")
    deploy = by_kind(objs, "Deployment")[0]
    if deploy["spec"]["replicas"] != 2 or env_of(deploy)[0]["WATCH_NAMESPACE"] != "team-a, team-b":
        fail("multi-namespace deployment")
    with open(os.path.join(out_dir, "multi-namespace.yaml"), "w") as f:
        yaml.safe_dump_all(objs, f)
    # Without a lease: one replica, never two at once.
    objs = objects(chart.render({"leaderElection": {"enabled": False}}, name="ops", namespace="ops"))
    if leader_role(objs) or by_kind(objs, "Deployment")[0]["spec"]["strategy"]["type"] != "Recreate":
        fail("leader election off: no Lease role, Recreate strategy")
    refuses(chart, ({"replicaCount": 2, "leaderElection": {"enabled": False}},))

    # 3. ServiceMonitor on (a prometheus-operator kind: checked here, not by schema).
    objs = objects(chart.render({"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}},
                                name="rmq", namespace="rocketmq-system"))
    sm = by_kind(objs, "ServiceMonitor")
    if len(sm) != 1 or sm[0]["metadata"]["labels"].get("release") != "prom" or sm[0]["spec"]["endpoints"][0]["port"] != "http":
        fail(f"ServiceMonitor: {sm}")

    # 4. Bad values are refused by values.schema.json.
    refuses(chart, ({"httpPort": 0}, {"watchNamespace": "Not_A_Namespace"}, {"watchNamespace": "a,,b"},
                    {"image": {"pullPolicy": "Sometimes"}}, {"replicaCount": 0}, {"logFormat": "xml"}))
    print("charts ok")


if __name__ == "__main__":
    main()
