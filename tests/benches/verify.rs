//! Benchmark (prints figures; not a test): what homccd's check of every cached file it hands
//! to a compile costs (docs/cache.md, *Verified at every use*). A typical C++ translation unit's
//! files (the headers `g++ -M` lists for the standard headers of `tests/homccd.sh`'s `write_tu`)
//! are stored in a cache, then placed in a fresh directory again and again, as a compile's job
//! root is filled: with `Cache::link_into` (a hard link, then the link hashed) and, for
//! comparison, with plain hard links of the same files.
//!
//! Run: `tests/bench-verify.sh` (or `cargo bench -p homcc-tests --bench verify`).

use std::{path::PathBuf, process::Command, time::Instant};

use homcc_proto::Digest;
use homcc_server::cache::Cache;

/// Each way of placing runs at least this many rounds and for at least `MIN_SECONDS`.
const MIN_ROUNDS: usize = 20;
const MIN_SECONDS: f64 = 2.0;

const HEADERS: &[&str] = &[
    "map",
    "string",
    "iostream",
    "vector",
    "algorithm",
    "memory",
    "functional",
    "unordered_map",
    "sstream",
];

fn main() {
    let work = tempfile::tempdir().unwrap();
    let tu = work.path().join("tu.cpp");
    let source: String = HEADERS
        .iter()
        .map(|h| format!("#include <{h}>\n"))
        .collect();
    std::fs::write(&tu, source).unwrap();
    let deps = Command::new("g++")
        .arg("-M")
        .arg(&tu)
        .output()
        .expect("g++ runs");
    assert!(
        deps.status.success(),
        "g++ -M: {}",
        String::from_utf8_lossy(&deps.stderr)
    );
    let deps = String::from_utf8(deps.stdout).unwrap();
    let files: Vec<PathBuf> = (deps.split_whitespace())
        .skip(1)
        .filter(|w| *w != "\\")
        .map(PathBuf::from)
        .collect();

    let cache_dir = work.path().join("cache");
    let cache = Cache::open(&cache_dir, 1 << 30).unwrap();
    let mut blobs = Vec::new();
    let mut bytes = 0;
    for file in &files {
        let content = std::fs::read(file).unwrap();
        let digest = Digest::of(&content);
        cache.insert(&digest, &content).unwrap();
        bytes += content.len();
        let hex = digest.to_hex();
        blobs.push((digest, cache_dir.join("blobs-v1").join(&hex[..2]).join(hex)));
    }
    println!(
        "{} files, {:.1} MB (the headers of a C++ TU of {})",
        files.len(),
        bytes as f64 / 1e6,
        HEADERS.join(" ")
    );

    let root = work.path().join("root");
    let place = |verified: bool| -> f64 {
        let started = Instant::now();
        let mut rounds = 0;
        while rounds < MIN_ROUNDS || started.elapsed().as_secs_f64() < MIN_SECONDS {
            std::fs::create_dir(&root).unwrap();
            for (i, (digest, path)) in blobs.iter().enumerate() {
                let dest = root.join(i.to_string());
                match verified {
                    true => assert!(cache.link_into(digest, &dest).unwrap()),
                    false => std::fs::hard_link(path, &dest).unwrap(),
                }
            }
            std::fs::remove_dir_all(&root).unwrap();
            rounds += 1;
        }
        started.elapsed().as_secs_f64() * 1e3 / rounds as f64
    };
    place(true); // the page cache warm for both
    let linked = place(false);
    let verified = place(true);
    let hashing = verified - linked;
    println!("per compile: hard links {linked:.2} ms; links then hashed (homccd) {verified:.2} ms");
    println!(
        "the check costs {hashing:.2} ms a compile ({:.0} MB/s of hashing, one core)",
        bytes as f64 / 1e6 / (hashing / 1e3)
    );
}
