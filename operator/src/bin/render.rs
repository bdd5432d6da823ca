//! `render DIR`: builds every example in `examples/` with the pure builders and writes the
//! resulting Kubernetes objects to `DIR/<example>.yaml`, for schema validation and review.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rmq_operator::build::{broker_group, nameserver, Owner};
use rmq_operator::crd::{BrokerGroup, NameServer};
use serde::Deserialize;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().unwrap_or_else(|| "target/rendered".into()));
    let examples = PathBuf::from(args.next().unwrap_or_else(|| "examples".into()));
    std::fs::create_dir_all(&out)?;
    for file in yaml_files(&examples)? {
        let text = std::fs::read_to_string(&file)?;
        let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
            .map(serde_yaml::Value::deserialize)
            .collect::<Result<_, _>>()
            .with_context(|| format!("{}", file.display()))?;
        let mut rendered = Vec::new();
        let namespace = "default";
        for d in &docs {
            let kind = d["kind"].as_str().unwrap_or_default();
            let name = d["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let owner = Owner {
                api_version: "rocketmq.rs/v1alpha1".into(),
                kind: kind.into(),
                name: name.clone(),
                namespace: namespace.into(),
                uid: "00000000-0000-0000-0000-000000000000".into(),
            };
            match kind {
                "NameServer" => {
                    let ns: NameServer = serde_yaml::from_value(d.clone())?;
                    let o = nameserver::build(&ns, &owner)?;
                    rendered.push(serde_yaml::to_value(&o.config)?);
                    rendered.push(serde_yaml::to_value(&o.headless)?);
                    rendered.push(serde_yaml::to_value(&o.service)?);
                    rendered.push(serde_yaml::to_value(&o.stateful_set)?);
                    rendered.push(serde_yaml::to_value(&o.pdb)?);
                }
                "BrokerGroup" => {
                    let bg: BrokerGroup = serde_yaml::from_value(d.clone())?;
                    let addr = match (&bg.spec.name_server.name, &bg.spec.name_server.address) {
                        (Some(n), _) => nameserver::headless_address(n, namespace),
                        (None, Some(a)) => a.clone(),
                        _ => String::new(),
                    };
                    let o = broker_group::build(&bg, &owner, &addr)?;
                    rendered.push(serde_yaml::to_value(&o.config)?);
                    rendered.push(serde_yaml::to_value(&o.headless)?);
                    rendered.push(serde_yaml::to_value(&o.master)?);
                    rendered.push(serde_yaml::to_value(&o.stateful_set)?);
                    rendered.push(serde_yaml::to_value(&o.pdb)?);
                    if let Some(np) = &o.network_policy {
                        rendered.push(serde_yaml::to_value(np)?);
                    }
                    for svc in &o.external {
                        rendered.push(serde_yaml::to_value(svc)?);
                    }
                    let load_balanced = bg.spec.addressing.external.as_ref().is_some_and(|e| {
                        e.type_ == rmq_operator::crd::broker_group::ExternalType::LoadBalancer
                    });
                    if load_balanced && !o.external.is_empty() {
                        // As first applied: no load-balancer address known yet.
                        let labels = o.config.metadata.labels.clone().unwrap_or_default();
                        let none = vec![None; o.external.len()];
                        rendered.push(serde_yaml::to_value(
                            rmq_operator::build::external::hosts_config(
                                &owner,
                                &owner.name,
                                &labels,
                                &none,
                            ),
                        )?);
                    }
                }
                _ => {}
            }
        }
        if rendered.is_empty() {
            continue;
        }
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("example");
        let path = out.join(format!("{stem}.yaml"));
        let text: Vec<String> = rendered
            .iter()
            .map(|v| serde_yaml::to_string(v).unwrap_or_default())
            .collect();
        std::fs::write(&path, text.join("---\n"))?;
        println!("{}", path.display());
    }
    Ok(())
}

fn yaml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            out.extend(yaml_files(&p)?);
        } else if p.extension().and_then(|e| e.to_str()) == Some("yaml")
            && !p.ends_with("kustomization.yaml")
        {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}
