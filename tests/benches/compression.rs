//! Benchmark (prints figures; not a test): ratio and speed of every blob compression on corpora
//! of real files, each file compressed on its own as homcc sends blobs and outputs, through
//! homcc-proto's own `compress` and `decompress` (stored unless smaller, bounded decoding).
//! zstd is also measured at levels other than homcc's, for comparison.
//!
//! Run: `tests/bench-compression.sh`, which builds the corpora (system headers, objects) and runs
//! `cargo bench -p homcc-tests --bench compression -- NAME=PATH[,PATH...]...`; each PATH is a
//! file or a directory read recursively (symlinks are skipped, so no file counts twice).

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use homcc_proto::{compression::ZSTD_LEVEL, Compression};

/// Each measurement runs over its whole corpus at least this many times, and for at least
/// `MIN_SECONDS`.
const MIN_ROUNDS: usize = 3;
const MIN_SECONDS: f64 = 2.0;
/// The links the last columns cost a megabyte over, in MB/s: 100 Mbit/s and 1 Gbit/s.
const LINKS: [f64; 2] = [12.5, 125.0];

type Compress = Box<dyn Fn(&[u8]) -> (Compression, Vec<u8>)>;

fn main() {
    let corpora: Vec<(String, Vec<Vec<u8>>)> = std::env::args()
        .skip(1)
        .filter(|arg| arg != "--bench")
        .map(|arg| {
            let (name, paths) = arg
                .split_once('=')
                .expect("corpus arguments are NAME=PATH[,PATH...]");
            let files = paths.split(',').flat_map(|p| read_tree(Path::new(p)));
            (name.to_string(), files.collect())
        })
        .collect();
    assert!(!corpora.is_empty(), "name a corpus: NAME=PATH[,PATH...]");
    println!(
        "{:<12} {:<8} {:>6} {:>8} {:>8} {:>6} {:>9} {:>9} {:>10} {:>10}",
        "corpus",
        "method",
        "files",
        "MB in",
        "MB out",
        "ratio",
        "comp MB/s",
        "dec MB/s",
        "ms/MB@100M",
        "ms/MB@1G"
    );
    for (name, files) in &corpora {
        for (method, compress) in methods() {
            let row = measure(files, &compress);
            println!(
                "{name:<12} {method:<8} {:>6} {:>8.2} {:>8.2} {:>6.2} {:>9.1} {:>9.1} {:>10.1} {:>10.1}",
                files.len(),
                row.bytes_in / 1e6,
                row.bytes_out / 1e6,
                row.bytes_in / row.bytes_out,
                row.compress_mbs,
                row.decompress_mbs,
                row.cost_per_mb(LINKS[0]),
                row.cost_per_mb(LINKS[1]),
            );
        }
    }
    println!(
        "ratio: bytes in / bytes out; ms/MB@LINK: milliseconds to compress, send and decompress \
         one MB of the corpus over that link (one core each side, nothing overlapped); homcc's \
         zstd level is {ZSTD_LEVEL}"
    );
}

/// The algorithms as homcc runs them, then zstd at other levels.
fn methods() -> Vec<(String, Compress)> {
    let mut methods: Vec<(String, Compress)> = Compression::ALL
        .into_iter()
        .map(|c| -> (String, Compress) {
            let name = match c {
                Compression::Zstd => format!("zstd:{ZSTD_LEVEL}"),
                c => c.to_string(),
            };
            (name, Box::new(move |data| c.compress(data)))
        })
        .collect();
    for level in [-1, 3, 6].into_iter().filter(|&l| l != ZSTD_LEVEL) {
        methods.push((
            format!("zstd:{level}"),
            Box::new(move |data| zstd_at(level, data)),
        ));
    }
    methods
}

/// `data` compressed by zstd at `level`, stored unless that is smaller (as homcc sends it).
fn zstd_at(level: i32, data: &[u8]) -> (Compression, Vec<u8>) {
    match zstd::bulk::compress(data, level) {
        Ok(out) if out.len() < data.len() => (Compression::Zstd, out),
        _ => (Compression::None, data.to_vec()),
    }
}

/// One method on one corpus.
struct Row {
    bytes_in: f64,
    bytes_out: f64,
    compress_mbs: f64,
    decompress_mbs: f64,
}

impl Row {
    /// Milliseconds to compress, send over a link of `link` MB/s, and decompress one MB.
    fn cost_per_mb(&self, link: f64) -> f64 {
        let ratio = self.bytes_out / self.bytes_in;
        1000.0 * (1.0 / self.compress_mbs + ratio / link + 1.0 / self.decompress_mbs)
    }
}

fn measure(files: &[Vec<u8>], compress: &Compress) -> Row {
    let bytes_in: usize = files.iter().map(Vec::len).sum();
    let packed: Vec<(Compression, Vec<u8>)> = files.iter().map(|f| compress(f)).collect();
    let bytes_out: usize = packed.iter().map(|(_, data)| data.len()).sum();
    let compress_mbs = throughput(bytes_in, || {
        for file in files {
            std::hint::black_box(compress(file));
        }
    });
    let decompress_mbs = throughput(bytes_in, || {
        for ((used, data), file) in packed.iter().zip(files) {
            let size = file.len() as u64;
            let back = used.decompress(data, size, size).expect("decompresses");
            assert_eq!(back.len(), file.len());
        }
    });
    Row {
        bytes_in: bytes_in as f64,
        bytes_out: bytes_out as f64,
        compress_mbs,
        decompress_mbs,
    }
}

/// MB/s of `run` over `bytes`: the median round of at least [`MIN_ROUNDS`] that together took at
/// least [`MIN_SECONDS`] (the median, since other work on the machine slows some rounds).
fn throughput(bytes: usize, mut run: impl FnMut()) -> f64 {
    let started = Instant::now();
    let mut rounds = Vec::new();
    while rounds.len() < MIN_ROUNDS || started.elapsed().as_secs_f64() < MIN_SECONDS {
        let round = Instant::now();
        run();
        rounds.push(round.elapsed().as_secs_f64());
    }
    rounds.sort_by(f64::total_cmp);
    bytes as f64 / 1e6 / rounds[rounds.len() / 2]
}

/// Every regular file under `path` (or `path` itself), read whole.
fn read_tree(path: &Path) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    let mut pending: Vec<PathBuf> = vec![path.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta =
            std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if meta.is_dir() {
            let entries = std::fs::read_dir(&path).unwrap();
            pending.extend(entries.map(|e| e.unwrap().path()));
        } else if meta.is_file() {
            files.push(std::fs::read(&path).unwrap());
        }
    }
    files
}
