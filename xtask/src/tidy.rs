//! House rules checked as a test (it runs inside `cargo xtask test`): every Rust file opens with
//! `//!` docs; no ignored or should-panic tests; `Serialize` derived only in `proto` (wire
//! types) and the relay's `store` (versioned records); no `todo!`, `unimplemented!` or `dbg!`.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" && name != "node_modules" && name != "hyphae-data" {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn tidy() {
    // At run time, not `crate::root()`'s compile time: build caches are shared between clones,
    // so this binary may have been built from a checkout elsewhere.
    let manifest =
        std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).expect("cargo test sets CARGO_MANIFEST_DIR");
    let root = manifest.parent().expect("xtask lives in the workspace").to_owned();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 20, "found only {} Rust files under {}", files.len(), root.display());
    let mut problems = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&root).unwrap_or(file).to_string_lossy().into_owned();
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if !text.trim_start().starts_with("//!") {
            problems.push(format!("{rel}: does not open with //! module docs"));
        }
        // Built from pieces so this file does not flag itself.
        let banned = [
            ["#[", "ignore"].concat(),
            ["#[", "should_panic"].concat(),
            ["todo", "!("].concat(),
            ["unimplemented", "!("].concat(),
            ["dbg", "!("].concat(),
        ];
        for (n, line) in text.lines().enumerate() {
            for b in &banned {
                if line.contains(b.as_str()) {
                    problems.push(format!("{rel}:{}: {b}", n + 1));
                }
            }
            let serializes = line.trim_start().starts_with("#[derive(") && line.contains("Serialize");
            let allowed = rel.starts_with("proto/") || rel.starts_with("relay/src/store/");
            if serializes && !allowed {
                problems.push(format!(
                    "{rel}:{}: derives Serialize outside proto/ and relay/src/store/ (convert at the edge instead)",
                    n + 1
                ));
            }
        }
    }
    assert!(problems.is_empty(), "house rules broken:\n{}", problems.join("\n"));
}
