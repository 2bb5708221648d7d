//! The scan cache (ccache's "direct mode" for the file list): a compile whose compiler, arguments,
//! working directory and environment are those of a recorded scan, whose every listed file is
//! unchanged and whose every lookup still finds what it found ([`Probe`]), reads the same files,
//! so it reuses the recorded list, digests and dependency file without running the preprocessor.
//!
//! Records live in `<cache dir>/scans/<2 hex>/<digest of the key>`, written to a temporary file
//! and renamed (any number of homcc processes may read and write them at once); each of the 256
//! directories holds at most 1/256 of [`MAX_BYTES`], the least recently used records going first.

use std::{
    ffi::OsStr,
    fs::File,
    io::Write,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    time::SystemTime,
};

use homcc_proto::{
    codec::{decode_record, encode_record},
    Digest, ManifestEntry,
};
use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};

use super::{
    closure::RecordedSearch,
    facts::FactStore,
    probes::{Probe, ProbedDir},
    stamp::Stamp,
    ScannedFile,
};

/// The most bytes all records take together.
pub const MAX_BYTES: u64 = 256 << 20;
const SHARDS: u64 = 256;

/// Part of every key: a new homcc release, or a new record format, starts afresh.
const FORMAT: &str = concat!(env!("CARGO_PKG_VERSION"), "/scan-3");

/// The variables that change what the preprocessor reads (most make the compile local: they
/// are in the key all the same).
const VARIABLES: &[&str] = &[
    "CPATH",
    "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH",
    "OBJC_INCLUDE_PATH",
    "DEPENDENCIES_OUTPUT",
    "SUNPRO_DEPENDENCIES",
    "GCC_EXEC_PREFIX",
    "COMPILER_PATH",
    "CCC_OVERRIDE_OPTIONS",
    "GCC_COMPARE_DEBUG",
];

/// The scan cache under a directory, with the facts of the files scans read.
#[derive(Debug, Clone)]
pub struct ScanCache {
    dir: PathBuf,
    facts: FactStore,
}

/// What identifies a scan, as a digest: every input of it but the files it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key(Digest);

/// A file the scan read: its manifest path, digest and size, where it was read and its stamp
/// then.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Read {
    pub path: PathBuf,
    pub digest: Digest,
    pub size: u64,
    pub read_from: PathBuf,
    pub stamp: Stamp,
}

/// A recorded scan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub files: Vec<Read>,
    /// Files the compiler driver read that are not sent (clang's configuration files).
    pub driver_files: Vec<Read>,
    pub probes: Vec<Probe>,
    /// The directories probes are in, with the stamps they kept since before the scan: while
    /// one keeps its stamp, its probes hold (but those of symlinks).
    pub probed_dirs: Vec<ProbedDir>,
    /// The user's dependency file, as the compiler wrote it.
    pub depfile: Option<Vec<u8>>,
}

/// What a lookup found.
#[derive(Debug)]
pub enum Replay {
    /// The recorded scan holds: its files, and the dependency file to write.
    Hit {
        files: Vec<ScannedFile>,
        depfile: Option<Vec<u8>>,
    },
    /// It does not (or there is none): why.
    Miss { why: String },
}

impl Key {
    /// The key of a scan run by `compiler` (whose compiler proper is `proper`) with `args` in
    /// `cwd`; none when a compiler binary cannot be stamped.
    pub fn new(compiler: &Path, proper: &Path, args: &[&OsStr], cwd: &Path) -> Option<Key> {
        let mut hasher = blake3::Hasher::new();
        let mut part = |bytes: &[u8]| {
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        part(FORMAT.as_bytes());
        for binary in [compiler, proper] {
            let stamp = Stamp::of(&binary.metadata().ok()?);
            part(binary.as_os_str().as_bytes());
            part(&encode_record(&stamp).ok()?);
        }
        part(cwd.as_os_str().as_bytes());
        for arg in args {
            part(arg.as_bytes());
        }
        for var in VARIABLES {
            part(var.as_bytes());
            match std::env::var_os(var) {
                Some(value) => part(&[b"=", value.as_bytes()].concat()),
                None => part(b"-"),
            }
        }
        Some(Key(Digest(*hasher.finalize().as_bytes())))
    }
}

impl ScanCache {
    pub fn new(cache_dir: &Path) -> ScanCache {
        ScanCache {
            dir: cache_dir.join("scans"),
            facts: FactStore::new(cache_dir),
        }
    }

    /// The facts of the files scans read.
    pub fn facts(&self) -> &FactStore {
        &self.facts
    }

    fn file(&self, key: Key) -> PathBuf {
        let hex = key.0.to_hex();
        self.dir.join(&hex[..2]).join(&hex[2..])
    }

    /// The recorded scan of `key`, if it still holds.
    pub fn replay(&self, key: Key) -> Replay {
        let file = self.file(key);
        let Some(record) = std::fs::read(&file)
            .ok()
            .and_then(|bytes| decode_record::<Record>(&bytes).ok())
        else {
            return Replay::Miss {
                why: "not recorded".into(),
            };
        };
        let changed = (record.files.iter().chain(&record.driver_files)).find(|r| !unchanged(r));
        let why = match changed {
            Some(read) => format!("{} changed", read.read_from.display()),
            None => match changed_lookup(&record) {
                Some(probe) => format!("a lookup of {} would differ", probe.path.display()),
                None => {
                    // Least recently used goes first: a hit makes the record young again.
                    let _ = File::options()
                        .write(true)
                        .open(&file)
                        .and_then(|f| f.set_modified(SystemTime::now()));
                    return Replay::Hit {
                        files: record.files.into_iter().map(Read::scanned).collect(),
                        depfile: record.depfile,
                    };
                }
            },
        };
        Replay::Miss { why }
    }

    /// The recorded include search list of `key` (`closure`), whether or not it holds.
    pub fn search_list(&self, key: Key) -> Option<RecordedSearch> {
        let bytes = std::fs::read(self.file(key)).ok()?;
        decode_record(&bytes).ok()
    }

    pub fn store_search_list(&self, key: Key, search: &RecordedSearch) {
        store_in_shard(&self.file(key), search, MAX_BYTES / SHARDS);
    }

    /// Records `record` under `key` (a cache that cannot be written only costs a scan later),
    /// then keeps its directory within its share of [`MAX_BYTES`].
    pub fn store(&self, key: Key, record: &Record) {
        store_in_shard(&self.file(key), record, MAX_BYTES / SHARDS);
    }
}

/// Writes `value` to `file` (temp file and rename; any number of homcc processes may do so at
/// once), then keeps its directory within `budget` bytes. Best effort: a record that cannot be
/// written only costs work later.
pub(super) fn store_in_shard<T: Serialize>(file: &Path, value: &T, budget: u64) {
    let Some(dir) = file.parent() else { return };
    let written = encode_record(value).ok().and_then(|bytes| {
        std::fs::create_dir_all(dir).ok()?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).ok()?;
        tmp.write_all(&bytes).ok()?;
        tmp.persist(file).ok()
    });
    if written.is_some() {
        evict(dir, budget);
    }
}

impl Read {
    pub fn scanned(self) -> ScannedFile {
        ScannedFile {
            entry: ManifestEntry {
                path: self.path,
                digest: self.digest,
                size: self.size,
            },
            read_from: self.read_from,
        }
    }
}

/// A probe of `record` that no longer holds: each probe is tried, but those in a directory that
/// kept its stamp (its entries are the same), unless of a symlink.
fn changed_lookup(record: &Record) -> Option<&Probe> {
    let kept: FxHashSet<&Path> = (record.probed_dirs.iter())
        .filter(|dir| {
            dir.path
                .metadata()
                .is_ok_and(|m| Stamp::of(&m) == dir.stamp)
        })
        .map(|dir| dir.path.as_path())
        .collect();
    let covered =
        |probe: &Probe| !probe.linked && probe.path.parent().is_some_and(|dir| kept.contains(dir));
    (record.probes.iter()).find(|probe| !covered(probe) && !probe.holds())
}

/// Whether `read`'s file still has its content: the same stamp, or else the same digest.
fn unchanged(read: &Read) -> bool {
    let Ok(meta) = read.read_from.metadata() else {
        return false;
    };
    Stamp::of(&meta) == read.stamp
        || std::fs::read(&read.read_from).is_ok_and(|bytes| Digest::of(&bytes) == read.digest)
}

/// Removes the least recently used records of `dir` until it holds at most `max` bytes.
fn evict(dir: &Path, max: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut records: Vec<(SystemTime, u64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((meta.modified().ok()?, meta.len(), e.path()))
        })
        .collect();
    let mut total: u64 = records.iter().map(|(_, len, _)| len).sum();
    records.sort();
    for (_, len, path) in records {
        if total <= max {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
        }
    }
}

#[cfg(test)]
mod tests;
