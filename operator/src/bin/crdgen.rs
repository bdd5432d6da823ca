//! `crdgen [DIR...]`: writes the CRDs, one file per resource, to each `DIR` (default: `crds/`
//! and the Helm chart's `charts/rocketmq-operator/crds/`, which Helm installs before the chart).

fn main() -> anyhow::Result<()> {
    let mut dirs: Vec<std::path::PathBuf> = std::env::args().skip(1).map(Into::into).collect();
    if dirs.is_empty() {
        dirs = vec!["crds".into(), "charts/rocketmq-operator/crds".into()];
    }
    for dir in dirs {
        std::fs::create_dir_all(&dir)?;
        for (file, crd) in rmq_operator::crds() {
            let path = dir.join(file);
            std::fs::write(&path, rmq_operator::crd_yaml(&crd))?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}
