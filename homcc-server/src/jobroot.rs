//! The job root `R`: a directory per compile in which each client path `/p` lives at `R/p`.
//! Every path that comes from a client is checked here, lexically, never to leave `R`; and no
//! file the compile may write is a hard link into the cache. A request's root is made here
//! (`for_request`: fresh, or from the last root of the same client, `tree`), its outputs are
//! read back from it (`read_outputs`, then `pack_outputs` for the client), and it is kept for
//! the client's next compile (`release`). The job tracks every directory and file it puts in
//! `R` (a `Tree`).

use std::{
    ffi::OsStr,
    io,
    os::unix::ffi::OsStrExt,
    path::{Component, Path, PathBuf},
    sync::{Mutex, MutexGuard, PoisonError},
};

use homcc_proto::{CompileRequest, Compression, Digest, OutputFile, Payload};
use tempfile::TempDir;

use crate::{
    cache::is_disk_full,
    ending::{internal, invalid, limit, storage, Ending},
    tree::{self, Kept, Tree},
};

/// The longest client path accepted, in bytes (Linux's PATH_MAX).
pub const MAX_PATH_LEN: usize = 4096;
/// The most components a client path may have: real trees stay below a few dozen, and each
/// directory of a path `n` deep costs a lookup of all `n` when it is created.
pub const MAX_PATH_COMPONENTS: usize = 256;

/// A client path the server will not use.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("path '{0}' is not absolute")]
    NotAbsolute(PathBuf),
    #[error("path '{0}' is not normal: no '.', '..' or empty components are allowed")]
    NotNormal(PathBuf),
    #[error("path '{0}' leaves the job root through '..'")]
    Escapes(PathBuf),
    #[error("path '{}...' is longer than {MAX_PATH_LEN} bytes or {MAX_PATH_COMPONENTS} components, or contains a NUL byte", .0.display().to_string().chars().take(60).collect::<String>())]
    Unusable(PathBuf),
    #[error("cannot create '{path}' in the job root: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// A job: the root `R` (`<jobs dir>/job-XXXX/root`) and a directory for the compiler's temporary
/// files beside it; deleted with everything in them when dropped (unless `release`d).
#[derive(Debug)]
pub struct JobRoot {
    dir: TempDir,
    root: PathBuf,
    tmp: PathBuf,
    /// What this job put in `R` so far.
    made: Mutex<Tree>,
    /// What the last job of the same client left in `R` and this one has not taken (yet).
    left: Mutex<Tree>,
}

impl JobRoot {
    /// Creates a fresh job under `jobs_dir` (on the cache's filesystem, for hard links).
    pub fn create(jobs_dir: &Path) -> io::Result<JobRoot> {
        let dir = tempfile::Builder::new()
            .prefix("job-")
            .tempdir_in(jobs_dir)?;
        let (root, tmp) = (dir.path().join("root"), dir.path().join("tmp"));
        std::fs::create_dir(&root)?;
        std::fs::create_dir(&tmp)?;
        Ok(JobRoot::with(dir, root, tmp, Tree::default()))
    }

    /// A job in the root its client's last compile left (`tree::Kept`).
    pub fn reuse(kept: Kept) -> JobRoot {
        JobRoot::with(kept.dir, kept.root, kept.tmp, kept.tree)
    }

    fn with(dir: TempDir, root: PathBuf, tmp: PathBuf, left: Tree) -> JobRoot {
        JobRoot {
            dir,
            root,
            tmp,
            made: Mutex::default(),
            left: Mutex::new(left),
        }
    }

    fn made(&self) -> MutexGuard<'_, Tree> {
        self.made.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn left(&self) -> MutexGuard<'_, Tree> {
        self.left.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the directory `dir` of `R` (normal) if it is not there, and notes that this job
    /// needs it.
    fn mkdir(&self, dir: &Path) -> io::Result<()> {
        let there = self.made().dirs.contains(dir) || self.left().dirs.contains(dir);
        if !there {
            match std::fs::create_dir(dir) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
        }
        self.made().dirs.insert(dir.to_owned());
        Ok(())
    }

    /// Makes the directory `dir` of `R` (normal) and every one above it up to `R`.
    pub fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let below = dir.strip_prefix(&self.root).map_err(io::Error::other)?;
        let mut current = self.root.clone();
        for part in below.components() {
            current.push(part);
            self.mkdir(&current)?;
        }
        Ok(())
    }

    /// Whether the file at `dest` (normal, in `R`) that the last job left is `digest` and so
    /// stays (and is this job's now); a left file of other content is removed.
    pub fn keep_left(&self, dest: &Path, digest: &Digest) -> io::Result<bool> {
        let left = self.left().files.remove(dest);
        match left {
            Some(d) if d == *digest => {
                self.placed(dest, digest);
                Ok(true)
            }
            Some(_) => std::fs::remove_file(dest).map(|()| false),
            None => Ok(false),
        }
    }

    /// Notes that `dest` holds the cached file `digest`.
    pub fn placed(&self, dest: &Path, digest: &Digest) {
        self.made().files.insert(dest.to_owned(), *digest);
    }

    /// Removes what the last job left that this one has not taken: after its files are placed,
    /// before its compile, so that its root holds exactly what a fresh one would.
    pub fn clear_left(&self) -> io::Result<()> {
        let left = std::mem::take(&mut *self.left());
        tree::clear(left, &self.made().dirs)
    }

    /// Scrubs the root of this finished job down to what it put there (`inode` gives each cached
    /// file's inode), to be reused by the client's next compile.
    pub fn release(self, inode: impl Fn(&Digest) -> Option<u64>) -> io::Result<Kept> {
        let tree = tree::scrub(&self.root, &self.tmp, &self.made(), inode)?;
        Ok(Kept {
            dir: self.dir,
            root: self.root,
            tmp: self.tmp,
            tree,
        })
    }

    /// The compiler's view for this job: the system's files, `compiler`'s install dir (the
    /// parent of its real path's directory) and this job (root and temporary dir).
    pub fn sandbox(&self, compiler: &Path) -> io::Result<crate::sandbox::Sandbox> {
        let real = std::fs::canonicalize(compiler)?;
        let install = real.parent().and_then(Path::parent).map(Path::to_path_buf);
        let job = self.path().parent().unwrap_or(self.path());
        crate::sandbox::Sandbox::for_job(job, install.as_slice())
    }

    /// The root `R`.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Where a compile in an environment notes that it started (`environments::Runner`),
    /// outside `R`.
    pub fn started(&self) -> PathBuf {
        self.dir.path().join("started")
    }

    /// The compiler's `TMPDIR`, outside `R`.
    pub fn tmp(&self) -> &Path {
        &self.tmp
    }

    /// `R/p` for an absolute, normal client path `p` (a manifest or output path).
    pub fn map_normal(&self, client: &Path) -> Result<PathBuf, PathError> {
        check_usable(client)?;
        let mut parts = client.components();
        if parts.next() != Some(Component::RootDir) {
            return Err(PathError::NotAbsolute(client.to_owned()));
        }
        if !parts.all(|c| matches!(c, Component::Normal(_))) || has_dot_component(client) {
            return Err(PathError::NotNormal(client.to_owned()));
        }
        Ok(self.join(client))
    }

    /// `R/p` for an absolute client path that may contain `..` (as compilers spell include dirs,
    /// `/usr/lib/gcc/x86_64-linux-gnu/12/../../../../include`), keeping its spelling; it may not
    /// climb above `/`.
    pub fn map_spelt(&self, client: &Path) -> Result<PathBuf, PathError> {
        check_usable(client)?;
        if !client.is_absolute() {
            return Err(PathError::NotAbsolute(client.to_owned()));
        }
        check_stays_inside(Path::new("/"), client)?;
        Ok(self.join(client))
    }

    /// Checks that `path`, relative to the client directory `cwd`, stays inside the root.
    pub fn check_relative(&self, cwd: &Path, path: &Path) -> Result<(), PathError> {
        check_usable(path)?;
        check_stays_inside(cwd, path)
    }

    /// Creates `R/p` and every directory along its spelling (so that the `..` in it resolve in `R`
    /// as they did on the client), returning `R/p`.
    pub fn create_dir_spelt(&self, client: &Path) -> Result<PathBuf, PathError> {
        let mapped = self.map_spelt(client)?;
        // `R` holds no symlink homccd made, so `..` can be applied to the path itself.
        let mut current = self.path().to_owned();
        for part in client.components() {
            match part {
                Component::Normal(name) => {
                    current.push(name);
                    self.mkdir(&current).map_err(|source| PathError::Io {
                        path: client.to_owned(),
                        source,
                    })?;
                }
                Component::ParentDir => {
                    current.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        Ok(mapped)
    }

    /// Removes every occurrence of the root's path from `text` (stdout, stderr, dependency files),
    /// which turns `R/home/u/a.c` back into `/home/u/a.c`.
    pub fn unmap_text(&self, text: &[u8]) -> Vec<u8> {
        let root = self.path().as_os_str().as_bytes();
        let mut out = Vec::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = find(rest, root) {
            out.extend_from_slice(&rest[..at]);
            rest = &rest[at + root.len()..];
        }
        out.extend_from_slice(rest);
        out
    }

    fn join(&self, client: &Path) -> PathBuf {
        let mut bytes = self.path().as_os_str().as_bytes().to_vec();
        bytes.extend_from_slice(client.as_os_str().as_bytes());
        PathBuf::from(OsStr::from_bytes(&bytes))
    }
}

/// An output path in the root must not exist before the compile: it could be a hard link into the
/// cache, which the compiler would then overwrite.
pub fn prepare_output(job: &JobRoot, path: &std::path::Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        job.create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn has_dot_component(path: &Path) -> bool {
    path.as_os_str()
        .as_bytes()
        .split(|b| *b == b'/')
        .skip(1)
        .any(|c| c.is_empty() || c == b"." || c == b"..")
}

fn check_usable(path: &Path) -> Result<(), PathError> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() > MAX_PATH_LEN
        || bytes.contains(&0)
        || path.components().count() > MAX_PATH_COMPONENTS
    {
        return Err(PathError::Unusable(path.to_owned()));
    }
    Ok(())
}

/// Walks `path` from `base` lexically; fails if a `..` climbs above `/`.
fn check_stays_inside(base: &Path, path: &Path) -> Result<(), PathError> {
    let mut depth: usize = 0;
    for part in base.join(path).components() {
        match part {
            Component::Normal(_) => depth += 1,
            Component::ParentDir => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| PathError::Escapes(path.to_owned()))?
            }
            Component::RootDir => depth = 0,
            Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(())
}

/// Where `needle` first occurs in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A fresh job root for `req`, with the client's working directory (returned, mapped), its
/// compiler's include dirs as spelt and the dirs its include flags name; in the root `kept`
/// from the client's last compile, if there is one.
pub fn for_request(
    kept: Option<Kept>,
    jobs_dir: &Path,
    req: &CompileRequest,
) -> Result<(JobRoot, PathBuf), Ending> {
    let job = match kept {
        Some(kept) => JobRoot::reuse(kept),
        None => JobRoot::create(jobs_dir).map_err(storage)?,
    };
    let cwd = job.create_dir_spelt(&req.cwd)?;
    for dir in &req.include_dirs {
        job.create_dir_spelt(dir)?;
    }
    for dir in &req.dirs {
        let mapped = job.map_normal(dir).map_err(invalid)?;
        job.create_dir_all(&mapped)
            .map_err(|e| match is_disk_full(&e) {
                true => storage(e),
                false => invalid(format!("directory {}: {e}", dir.display())),
            })?;
    }
    Ok((job, cwd))
}

/// A file the compile may write, and whether it goes back to the client.
#[derive(Debug)]
pub struct Output {
    /// Where the client wants it.
    pub client: PathBuf,
    /// Where the compiler writes it, in the job root.
    pub path: PathBuf,
    pub returned: Returned,
}

/// When an output that the compiler wrote goes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    /// Only if the job root's path is nowhere in it (a dependency file that names a header by
    /// its absolute path names it in the root: the client writes that one itself).
    IfPortable,
}

/// The outputs the compiler wrote (regular files at their paths in the job root `root`), each
/// at most `max` bytes, by client path; a dependency file that names the job root is left out.
pub fn read_outputs(
    outputs: Vec<Output>,
    root: &Path,
    max: u64,
) -> Result<Vec<(PathBuf, Vec<u8>)>, Ending> {
    let mut files = Vec::new();
    for Output {
        client: out,
        path,
        returned,
    } in outputs
    {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        if meta.len() > max {
            return Err(limit(format!(
                "output {} is larger than {max} bytes (max_output_size)",
                out.display()
            )));
        }
        let bytes = std::fs::read(&path).map_err(internal)?;
        let names_root = || memchr::memmem::find(&bytes, root.as_os_str().as_bytes()).is_some();
        if returned == Returned::IfPortable && names_root() {
            continue;
        }
        files.push((out, bytes));
    }
    Ok(files)
}

/// `files` as the client gets them, compressed with `compression`.
pub fn pack_outputs<'a>(
    files: impl IntoIterator<Item = (&'a Path, &'a [u8])>,
    compression: Compression,
) -> Vec<OutputFile> {
    (files.into_iter())
        .map(|(path, bytes)| OutputFile {
            path: path.to_owned(),
            payload: Payload::pack(compression, bytes),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (TempDir, JobRoot) {
        let jobs = tempfile::tempdir().unwrap();
        let job = JobRoot::create(jobs.path()).unwrap();
        (jobs, job)
    }

    #[test]
    fn maps_normal_paths_and_refuses_others() {
        let (_jobs, job) = root();
        let check = |p: &str, ok: bool| assert_eq!(job.map_normal(Path::new(p)).is_ok(), ok, "{p}");
        check("/usr/include/stdio.h", true);
        check("/home/u/a b/ü.c", true);
        check("/home/u/.hidden/a.h", true);
        check("relative/a.h", false);
        check("/../../etc/passwd", false);
        check("/usr/./include/a.h", false);
        check("/usr//include/a.h", false);
        check("/usr/include/..", false);
        check("/a\0b", false);
        check(&format!("/{}", "a".repeat(5000)), false);
        assert_eq!(
            job.map_normal(Path::new("/usr/x.h")).unwrap(),
            PathBuf::from(format!("{}/usr/x.h", job.path().display()))
        );
    }

    #[test]
    fn spelt_dirs_keep_their_dots_but_stay_inside() {
        let (_jobs, job) = root();
        let dir = Path::new("/usr/lib/gcc/x86_64-linux-gnu/12/../../../../include/c++/12");
        let mapped = job.create_dir_spelt(dir).unwrap();
        assert!(mapped.ends_with("12/../../../../include/c++/12"));
        assert!(mapped.is_dir());
        assert!(job.path().join("usr/include/c++/12").is_dir());
        assert!(job.map_spelt(Path::new("/usr/../../etc")).is_err());
        assert!(job.map_spelt(Path::new("usr/include")).is_err());
    }

    #[test]
    fn relative_paths_may_not_climb_out() {
        let (_jobs, job) = root();
        let cwd = Path::new("/home/u/p");
        assert!(job.check_relative(cwd, Path::new("../inc")).is_ok());
        assert!(job.check_relative(cwd, Path::new("../../../inc")).is_ok());
        assert!(job
            .check_relative(cwd, Path::new("../../../../etc"))
            .is_err());
    }

    #[test]
    fn unmaps_text() {
        let (_jobs, job) = root();
        let r = job.path().display().to_string();
        let text = format!("{r}/home/u/a.c:1:2: error\nIn file included from {r}/usr/x.h:3\n");
        assert_eq!(
            job.unmap_text(text.as_bytes()),
            b"/home/u/a.c:1:2: error\nIn file included from /usr/x.h:3\n"
        );
        assert_eq!(job.unmap_text(b"no root here"), b"no root here");
    }

    #[test]
    fn deleted_on_drop() {
        let (_jobs, job) = root();
        let path = job.path().parent().unwrap().to_owned();
        job.create_dir_spelt(Path::new("/a/b")).unwrap();
        drop(job);
        assert!(!path.exists());
    }
}
