//! Embeds the shipped knowledge base (`corpus/*.toml`, `corpus/*.jsonl`) in the binary, so
//! `wabot serve` runs on its defaults from any directory.

use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("toml" | "jsonl")));
    files.sort();
    let mut out = String::from("/// The shipped corpus files: `(file name, contents)`, sorted by name.\n");
    out.push_str("pub static EMBEDDED_FILES: &[(&str, &str)] = &[\n");
    for p in &files {
        println!("cargo:rerun-if-changed={}", p.display());
        let name = p.file_name().and_then(|n| n.to_str()).expect("corpus file names are UTF-8");
        out.push_str(&format!("    ({name:?}, include_str!({:?})),\n", p.display().to_string()));
    }
    out.push_str("];\n");
    let target = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded_corpus.rs");
    std::fs::write(target, out).expect("OUT_DIR is writable");
}
