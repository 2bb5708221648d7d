//! What a job root holds, so that the next compile of the same client can build its root from
//! the last one's instead of from nothing: most of two compiles' files and directories are the
//! same (the system headers, the project's), and on many file systems a directory costs a
//! tenth of a millisecond to make and to remove.
//!
//! A finished job's root is scrubbed (`release`): everything homccd did not put there (outputs,
//! anything the compiler wrote, a file it replaced) is removed, and what is left is exactly its
//! [`Tree`]. The next job of the same client address (and only of it) takes it from the
//! [`Pool`]: it keeps each left file that it needs at the same path with the same digest, and
//! removes every other left file and directory before its compile runs, so that its root holds
//! exactly what a fresh one would.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    io,
    net::IpAddr,
    os::unix::fs::DirEntryExt,
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
};

use homcc_proto::Digest;
use tempfile::TempDir;

/// The directories and files homccd put in a job root (normal paths under `R`).
#[derive(Debug, Default)]
pub struct Tree {
    pub dirs: HashSet<PathBuf>,
    pub files: HashMap<PathBuf, Digest>,
}

/// A scrubbed root of a finished job, waiting for its client's next compile.
#[derive(Debug)]
pub struct Kept {
    pub dir: TempDir,
    pub root: PathBuf,
    pub tmp: PathBuf,
    /// Exactly what is in `root`.
    pub tree: Tree,
}

/// The kept roots, at most `max` (the oldest go first), each for its client address only.
#[derive(Debug)]
pub struct Pool {
    max: usize,
    kept: Mutex<VecDeque<(IpAddr, Kept)>>,
}

impl Pool {
    pub fn new(max: usize) -> Pool {
        Pool {
            max,
            kept: Mutex::new(VecDeque::new()),
        }
    }

    /// The root `client`'s last compile left, if one is kept.
    pub fn take(&self, client: IpAddr) -> Option<Kept> {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let at = kept.iter().rposition(|(owner, _)| *owner == client)?;
        kept.remove(at).map(|(_, root)| root)
    }

    /// Keeps `root` for `client`'s next compile; deletes the oldest kept root when there are
    /// more than `max` (on the caller's thread: call it off the async threads).
    pub fn put(&self, client: IpAddr, root: Kept) {
        let oldest = {
            let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
            kept.push_back((client, root));
            (kept.len() > self.max).then(|| kept.pop_front())
        };
        drop(oldest);
    }
}

/// Scrubs a finished job's `root` (and empties `tmp`) down to what homccd put there: the
/// directories of `tree`, and each file of `tree` that is still the cache's file (the inode
/// `inode` gives for its digest), at its path. Returns what is left.
pub fn scrub(
    root: &Path,
    tmp: &Path,
    tree: &Tree,
    inode: impl Fn(&Digest) -> Option<u64>,
) -> io::Result<Tree> {
    std::fs::remove_dir_all(tmp)?;
    std::fs::create_dir(tmp)?;
    let mut left = Tree::default();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let (path, kind) = (entry.path(), entry.file_type()?);
            if kind.is_dir() && tree.dirs.contains(&path) {
                left.dirs.insert(path.clone());
                dirs.push(path);
                continue;
            }
            let digest = tree.files.get(&path);
            if kind.is_file() && digest.and_then(&inode) == Some(entry.ino()) {
                left.files.insert(path, *digest.expect("checked above"));
                continue;
            }
            match kind.is_dir() {
                true => std::fs::remove_dir_all(&path)?,
                false => std::fs::remove_file(&path)?,
            }
        }
    }
    Ok(left)
}

/// Removes what `left` still holds and `wanted` does not: its files, then its directories that
/// `wanted` has not, the deepest first.
pub fn clear(left: Tree, wanted: &HashSet<PathBuf>) -> io::Result<()> {
    for file in left.files.keys() {
        std::fs::remove_file(file)?;
    }
    let mut dirs: Vec<&PathBuf> = left.dirs.iter().filter(|d| !wanted.contains(*d)).collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for dir in dirs {
        std::fs::remove_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
