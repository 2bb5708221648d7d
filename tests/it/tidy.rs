//! House rules of the repository, checked on every `cargo test` (as rust-analyzer's
//! `xtask/src/tidy.rs` does): every Rust file says what it owns in a `//!` line, no source file
//! of a crate grows past 500 lines, and the docs and doc comments name only files that exist.

use std::path::{Path, PathBuf};

/// The most lines a file under a crate's `src/` may have: split along the data flow before.
const MAX_SOURCE_LINES: usize = 500;

/// File endings whose mentions in docs and doc comments must name a file of the repository.
const MENTIONED: [&str; 4] = [".rs", ".md", ".sh", ".toml"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_owned()
}

/// Every file of the repository, relative to its root: not build output, git or fuzz data.
fn repo_files() -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            let name = entry.file_name();
            let rel = dir.join(&name);
            let skipped = ["target", ".git", "corpus", "artifacts", "coverage"];
            match entry.file_type().unwrap() {
                t if t.is_dir() && !skipped.iter().any(|s| name == *s) => walk(root, &rel, out),
                t if t.is_file() => out.push(rel),
                _ => {}
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo_root(), Path::new(""), &mut files);
    files.sort();
    files
}

fn read(rel: &Path) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap()
}

fn rust_files() -> Vec<PathBuf> {
    (repo_files().into_iter())
        .filter(|f| f.extension().is_some_and(|e| e == "rs"))
        .collect()
}

#[test]
fn every_rust_file_starts_with_a_module_doc_line() {
    let missing: Vec<_> = (rust_files().into_iter())
        .filter(|f| !read(f).starts_with("//!"))
        .collect();
    assert!(
        missing.is_empty(),
        "start these with a `//!` line saying what the file owns: {missing:?}"
    );
}

#[test]
fn no_crate_source_file_is_over_500_lines() {
    let long: Vec<_> = (rust_files().into_iter())
        .filter(|f| f.components().any(|c| c.as_os_str() == "src"))
        .map(|f| (read(&f).lines().count(), f))
        .filter(|(lines, _)| *lines > MAX_SOURCE_LINES)
        .collect();
    assert!(
        long.is_empty(),
        "split these along the data flow (at most {MAX_SOURCE_LINES} lines): {long:?}"
    );
}

/// The words of `line` that look like file names (`docs/protocol.md`, `session.rs`), URLs left
/// out.
fn mentioned_files(line: &str) -> Vec<&str> {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
    (line.split_whitespace())
        .filter(|word| !word.contains("://"))
        .flat_map(|word| word.split(|c| !is_name_char(c)))
        .map(|word| word.trim_end_matches('.'))
        .filter(|word| {
            MENTIONED
                .iter()
                .any(|end| word.ends_with(end) && word.len() > end.len())
        })
        .collect()
}

#[test]
fn docs_and_doc_comments_name_only_files_that_exist() {
    let root = repo_root();
    let files = repo_files();
    let names: std::collections::HashSet<_> = files.iter().filter_map(|f| f.file_name()).collect();
    let mut missing = Vec::new();
    for file in &files {
        let rust = file.extension().is_some_and(|e| e == "rs");
        if !rust && file.extension().is_none_or(|e| e != "md") {
            continue;
        }
        for (number, line) in read(file).lines().enumerate() {
            if rust && !line.trim_start().starts_with("//") {
                continue;
            }
            for name in mentioned_files(line) {
                let here = file.parent().unwrap_or(Path::new("")).join(name);
                let exists = root.join(name).exists()
                    || root.join(here).exists()
                    || Path::new(name)
                        .file_name()
                        .is_some_and(|n| names.contains(n));
                if !exists {
                    missing.push(format!("{}:{}: {name}", file.display(), number + 1));
                }
            }
        }
    }
    assert!(missing.is_empty(), "no such files: {missing:#?}");
}

#[test]
fn file_mentions_are_found_in_text() {
    assert_eq!(
        mentioned_files("see docs/protocol.md §6, (`session.rs`) and DESIGN.md."),
        ["docs/protocol.md", "session.rs", "DESIGN.md"]
    );
    assert_eq!(
        mentioned_files("https://github.com/x/y/blob/trunk/docs/spec.md and .md alone"),
        Vec::<&str>::new()
    );
}
