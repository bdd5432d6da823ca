"""Validates Kubernetes manifests: built-in kinds against the Kubernetes OpenAPI schemas
(kubernetes-validate, strict), our custom resources against the CRDs in crds/ with unknown
fields rejected. Usage: validate.py CRD_DIR FILE...; exits non-zero on any failure."""
import copy
import glob
import sys

import jsonschema
import kubernetes_validate
import yaml

K8S_VERSION = "1.33.0"


def strict(schema):
    """Rejects properties the schema does not declare (the API server would prune them)."""
    s = copy.deepcopy(schema)

    def walk(node):
        if not isinstance(node, dict):
            return
        if "properties" in node and "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
        for key in ("properties",):
            for v in node.get(key, {}).values():
                walk(v)
        if isinstance(node.get("items"), dict):
            walk(node["items"])
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"])
        for key in ("anyOf", "oneOf", "allOf"):
            for v in node.get(key, []):
                walk(v)

    walk(s)
    # metadata, apiVersion and kind are the API server's business.
    s.setdefault("properties", {})
    for k in ("metadata", "apiVersion", "kind"):
        s["properties"][k] = {}
    return s


def main():
    crd_dir, files = sys.argv[1], sys.argv[2:]
    crds = {}
    for path in glob.glob(f"{crd_dir}/*.yaml"):
        crd = yaml.safe_load(open(path))
        group = crd["spec"]["group"]
        for v in crd["spec"]["versions"]:
            crds[(f"{group}/{v['name']}", crd["spec"]["names"]["kind"])] = strict(v["schema"]["openAPIV3Schema"])
    failures = 0
    checked = 0
    for path in files:
        for doc in yaml.safe_load_all(open(path)):
            if not doc:
                continue
            checked += 1
            key = (doc.get("apiVersion"), doc.get("kind"))
            try:
                if key in crds:
                    jsonschema.validate(doc, crds[key])
                else:
                    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            except Exception as e:  # noqa: BLE001 — report every failure, then fail
                failures += 1
                name = doc.get("metadata", {}).get("name")
                print(f"{path}: {doc.get('kind')}/{name}: {str(e).splitlines()[0]}")
    print(f"validated {checked} objects, {failures} failures")
    sys.exit(1 if failures or checked == 0 else 0)


if __name__ == "__main__":
    main()
