//! What homcc knows of each file it read, by stamp: its digest and size, and the header names it
//! may look up (`directives`), so that a build hashes and lexes each header once, not once per
//! compile. A fact holds while the file has the stamp it had when it was read, and is recorded
//! only if the file had settled before it was read (then any later change changes the stamp).
//!
//! One record per directory (`<cache dir>/facts/<2 hex>/<digest of the directory's path>`, the
//! facts of the files read in it), read once per compile that reads there, written (temp file
//! and rename) when a fact was added: concurrent homcc processes may each lose the other's new
//! facts, which only costs a read and a hash later.

use std::{
    collections::HashMap,
    ffi::OsString,
    io::Read as _,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    time::SystemTime,
};

use anyhow::Context;
use homcc_proto::{codec::decode_record, Digest};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{cache::store_in_shard, directives, stamp::Stamp};

/// The most bytes all directory records take together.
const MAX_BYTES: u64 = 64 << 20;
const SHARDS: u64 = 256;
/// Part of every record's name: a new homcc release, or a new format, starts afresh.
const FORMAT: &str = concat!(env!("CARGO_PKG_VERSION"), "/facts-3");
/// Below this many bytes to read, files are read on this thread: starting a thread pool costs
/// more than it saves.
const PARALLEL_BYTES: u64 = 4 << 20;

/// Where the facts live.
#[derive(Debug, Clone)]
pub struct FactStore {
    dir: PathBuf,
}

/// A file's facts.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Fact {
    stamp: Stamp,
    digest: Digest,
    size: u64,
    /// The names it may look up, or why some cannot be named; `None` until it is lexed.
    names: Option<Result<directives::Names, String>>,
}

/// A file as a scan read it.
#[derive(Debug, Clone)]
pub struct ReadFile {
    /// Where it was read (the compiler's name for it, from the working directory).
    pub read_from: PathBuf,
    /// Its path in the manifest: absolute and normal.
    pub path: PathBuf,
    pub stamp: Stamp,
    pub digest: Digest,
    pub size: u64,
    /// The names it may look up, when they were asked for.
    pub names: Option<Result<directives::Names, String>>,
    /// Whether it had settled before it was read.
    pub settled: bool,
}

impl FactStore {
    pub fn new(cache_dir: &Path) -> FactStore {
        FactStore {
            dir: cache_dir.join("facts"),
        }
    }

    fn file(&self, dir: &Path) -> PathBuf {
        let mut hasher = blake3::Hasher::new();
        hasher.update(FORMAT.as_bytes());
        hasher.update(dir.as_os_str().as_bytes());
        let hex = Digest(*hasher.finalize().as_bytes()).to_hex();
        self.dir.join(&hex[..2]).join(&hex[2..])
    }

    fn load(&self, dir: &Path) -> HashMap<OsString, Fact> {
        (std::fs::read(self.file(dir)).ok())
            .and_then(|bytes| decode_record(&bytes).ok())
            .unwrap_or_default()
    }

    fn store(&self, dir: &Path, facts: &HashMap<OsString, Fact>) {
        store_in_shard(&self.file(dir), facts, MAX_BYTES / SHARDS);
    }
}

/// Stamps, hashes and (with `names`) lexes `paths` (relative to `cwd`; the first of each file's
/// spellings counts), from `store`'s facts where the stamp is unchanged.
pub fn read_files(
    cwd: &Path,
    paths: &[PathBuf],
    store: Option<&FactStore>,
    names: bool,
) -> anyhow::Result<Vec<ReadFile>> {
    let mut session = Session::new(store);
    let files = session.read_files(cwd, paths, names);
    session.finish();
    files
}

/// The facts of the directories a scan reads files in, each loaded from the store once however
/// many times the scan reads there; new facts are written back at the end (`finish`).
#[derive(Debug)]
pub struct Session<'a> {
    store: Option<&'a FactStore>,
    /// Each directory's facts, and whether a fact was added.
    dirs: HashMap<PathBuf, (HashMap<OsString, Fact>, bool)>,
}

impl<'a> Session<'a> {
    pub fn new(store: Option<&'a FactStore>) -> Session<'a> {
        Session {
            store,
            dirs: HashMap::new(),
        }
    }

    /// [`read_files`], with the facts loaded so far.
    pub fn read_files(
        &mut self,
        cwd: &Path,
        paths: &[PathBuf],
        names: bool,
    ) -> anyhow::Result<Vec<ReadFile>> {
        // Each file once, however the compiler spelt it (`x.h`, `./x.h`): by its manifest path.
        let mut seen = std::collections::HashSet::new();
        let (mut joined, mut manifest_paths) = (Vec::new(), Vec::new());
        for path in paths {
            let manifest_path = crate::paths::absolute(cwd, path);
            if seen.insert(manifest_path.clone()) {
                joined.push(cwd.join(path));
                manifest_paths.push(manifest_path);
            }
        }
        let paths = joined;
        let mut done: Vec<Option<ReadFile>> = vec![None; paths.len()];
        let mut to_read = Vec::new();
        for (i, path) in paths.iter().enumerate() {
            let dir = path.parent().unwrap_or(Path::new("/"));
            let store = self.store;
            let (facts, _) = (self.dirs.entry(dir.to_owned()))
                .or_insert_with(|| (store.map(|s| s.load(dir)).unwrap_or_default(), false));
            let meta =
                (path.metadata()).with_context(|| format!("cannot read {}", path.display()))?;
            let stamp = Stamp::of(&meta);
            let known = (path.file_name())
                .and_then(|name| facts.get(name))
                .filter(|f| f.stamp == stamp && (!names || f.names.is_some()));
            match known {
                Some(fact) => {
                    done[i] = Some(ReadFile {
                        read_from: path.clone(),
                        path: manifest_paths[i].clone(),
                        stamp,
                        digest: fact.digest,
                        size: fact.size,
                        names: fact.names.as_ref().filter(|_| names).cloned(),
                        settled: true,
                    })
                }
                None => to_read.push((i, meta.len())),
            }
        }
        let read_one = |&(i, _): &(usize, u64)| {
            read_file(&paths[i], &manifest_paths[i], names).map(|f| (i, f))
        };
        let bytes: u64 = to_read.iter().map(|(_, len)| len).sum();
        let fresh: Vec<(usize, ReadFile)> = if bytes > PARALLEL_BYTES {
            to_read
                .par_iter()
                .map(read_one)
                .collect::<anyhow::Result<_>>()?
        } else {
            to_read
                .iter()
                .map(read_one)
                .collect::<anyhow::Result<_>>()?
        };
        // New facts of files that had settled go to their directory's record.
        for (i, file) in fresh {
            let dir = paths[i].parent().unwrap_or(Path::new("/"));
            if let (true, Some(name), Some((facts, dirty))) =
                (file.settled, paths[i].file_name(), self.dirs.get_mut(dir))
            {
                let fact = Fact {
                    stamp: file.stamp,
                    digest: file.digest,
                    size: file.size,
                    names: file.names.clone(),
                };
                facts.insert(name.to_owned(), fact);
                *dirty = true;
            }
            done[i] = Some(file);
        }
        Ok(done.into_iter().flatten().collect())
    }

    /// Writes the records of the directories that gained a fact.
    pub fn finish(self) {
        if let Some(store) = self.store {
            for (dir, (facts, dirty)) in &self.dirs {
                if *dirty {
                    store.store(dir, facts);
                }
            }
        }
    }
}

/// Reads, hashes and (with `names`) lexes one file (`manifest_path` in the manifest), stamped as
/// it was when it was read.
fn read_file(path: &Path, manifest_path: &Path, names: bool) -> anyhow::Result<ReadFile> {
    let cannot_read = || format!("cannot read {}", path.display());
    let started = SystemTime::now();
    let mut file = std::fs::File::open(path).with_context(cannot_read)?;
    let stamp = Stamp::of(&file.metadata().with_context(cannot_read)?);
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).with_context(cannot_read)?;
    Ok(ReadFile {
        read_from: path.to_owned(),
        path: manifest_path.to_owned(),
        stamp,
        digest: Digest::of(&bytes),
        size: bytes.len() as u64,
        names: names.then(|| directives::lookups(&bytes)),
        settled: stamp.settled_before(started),
    })
}
