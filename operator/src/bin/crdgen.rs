//! `crdgen [DIR]`: writes the CRDs to `DIR` (default `crds/`), one file per resource.

fn main() -> anyhow::Result<()> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "crds".into()));
    std::fs::create_dir_all(&dir)?;
    for (file, crd) in rmq_operator::crds() {
        let path = dir.join(file);
        std::fs::write(&path, rmq_operator::crd_yaml(&crd))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
