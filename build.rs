//! Embeds the shipped rubric set: writes `$OUT_DIR/rubrics.rs`, a list of every `rubrics/**/*.toml`
//! as `(path under rubrics/, include_str!(file))`, which `src/assets.rs` includes. Single files
//! (config defaults, calibration, prompts) need no build step: `include_str!` in the source.
//!
//! `rerun-if-changed` on the folder makes cargo re-run this when a rubric is added, removed or
//! edited (cargo scans a directory's whole tree), so the binary always carries the set it was
//! built next to.

use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let dir = root.join("rubrics");
    println!("cargo::rerun-if-changed=rubrics");
    let mut files = Vec::new();
    collect(&dir, &mut files);
    files.sort();
    let mut out = String::from("&[\n");
    for file in &files {
        let rel = file
            .strip_prefix(&dir)
            .expect("under rubrics/")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let abs = file.to_str().expect("rubric paths are UTF-8");
        out.push_str(&format!("    ({rel:?}, include_str!({abs:?})),\n"));
    }
    out.push_str("]\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("rubrics.rs");
    std::fs::write(dest, out).expect("write rubrics.rs");
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e} (the shipped rubric set)", dir.display()));
    for entry in entries {
        let path = entry.expect("read_dir entry").path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}
