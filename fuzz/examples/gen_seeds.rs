//! Writes the seed corpus: `cargo run --example gen_seeds -- DIR` writes
//! `DIR/parse_track/seed-*` and `DIR/parse_only/seed-*` (DIR defaults to
//! `corpus`, next to this crate's Cargo.toml).

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    for (target, seeds) in [
        ("parse_track", ctrack_fuzz::seeds::parse_track()),
        ("parse_only", ctrack_fuzz::seeds::parse_only()),
    ] {
        let d = dir.join(target);
        std::fs::create_dir_all(&d)?;
        for (name, bytes) in seeds {
            std::fs::write(d.join(name), bytes)?;
        }
    }
    for (target, name, bytes) in ctrack_fuzz::helpers::seeds() {
        let d = dir.join(target);
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join(format!("seed-{name}")), bytes)?;
    }
    println!("seeds written under {}", dir.display());
    Ok(())
}
