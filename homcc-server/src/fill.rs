//! Filling a job root: every manifest file is hard-linked from the cache when it is there, and
//! otherwise claimed for upload by this job's client, or awaited from the job already uploading it.

use std::{
    collections::HashMap,
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use homcc_proto::{Chunk, Digest, ManifestEntry};

use crate::{
    cache::{Cache, Claim, UploadGuard, UploadWaiter},
    jobroot::{JobRoot, PathError},
};

/// A manifest the server cannot use.
#[derive(Debug, thiserror::Error)]
pub enum FillError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("manifest lists '{0}' twice or as both a file and a directory")]
    Conflict(PathBuf),
    #[error("job root: {0}")]
    Io(#[from] io::Error),
    #[error("manifest file name in '{}' is not one path component", .0.display())]
    Name(PathBuf),
}

/// A file this job still needs.
#[derive(Debug)]
struct Pending {
    /// Where it goes in the root (one file may sit at several paths).
    dests: Vec<PathBuf>,
    size: u64,
    source: Source,
}

#[derive(Debug)]
enum Source {
    /// This job's client must upload it; `requested` once a `Need` has named it. The guard is
    /// the cache's claim, which another job may hold instead when its upload took too long.
    Client {
        _guard: Option<UploadGuard>,
        requested: bool,
    },
    /// Another job is uploading it.
    OtherJob(UploadWaiter),
}

/// Places the files of one job root.
#[derive(Debug)]
pub struct Filler<'a> {
    job: &'a JobRoot,
    cache: &'a Cache,
    /// Each placed file's first path in the root.
    placed: HashMap<Digest, PathBuf>,
    pending: HashMap<Digest, Pending>,
    pub files: usize,
}

impl<'a> Filler<'a> {
    pub fn new(job: &'a JobRoot, cache: &'a Cache) -> Self {
        Filler {
            job,
            cache,
            placed: HashMap::new(),
            pending: HashMap::new(),
            files: 0,
        }
    }

    /// Places every file of `chunk`, in the chunk's directory (created once here).
    pub fn add_chunk(&mut self, chunk: &Chunk) -> Result<(), FillError> {
        let dir = Path::new(&chunk.dir);
        if let Some(bad) = chunk.files.iter().find(|f| {
            f.name.is_empty() || f.name == "." || f.name == ".." || f.name.contains(['/', '\0'])
        }) {
            return Err(FillError::Name(dir.join(&bad.name)));
        }
        (self.job.create_dir_all(&self.job.map_normal(dir)?))
            .map_err(|_| FillError::Conflict(dir.to_owned()))?;
        for entry in chunk.entries() {
            self.add(&entry)?;
        }
        Ok(())
    }

    fn add(&mut self, entry: &ManifestEntry) -> Result<(), FillError> {
        let dest = self.job.map_normal(&entry.path)?;
        self.files += 1;
        if let Some(pending) = self.pending.get_mut(&entry.digest) {
            pending.dests.push(dest);
            return Ok(());
        }
        if let Some(first) = self.placed.get(&entry.digest) {
            if self.job.keep_left(&dest, &entry.digest)? {
                // A hard link of the cache's file, as the first name is: a copy instead.
                std::fs::remove_file(&dest)?;
            }
            name_again(first, &dest)?;
            self.job.placed(&dest, &entry.digest);
            return Ok(());
        }
        self.place(entry.digest, vec![dest], entry.size)
    }

    /// Links `dests` from the cache (or keeps them, where the client's last compile left this
    /// file), or records who will bring the file.
    fn place(&mut self, digest: Digest, dests: Vec<PathBuf>, size: u64) -> Result<(), FillError> {
        let mut kept = Vec::new();
        let mut dests_left = Vec::new();
        for dest in dests {
            match self.job.keep_left(&dest, &digest)? {
                true => kept.push(dest),
                false => dests_left.push(dest),
            }
        }
        let mut dests = dests_left;
        // The kept files are links of one file: damaged on disk since the last compile, it is
        // replaced as a missing one would be.
        if kept
            .first()
            .is_some_and(|f| !self.cache.holds(&digest, f).unwrap_or(false))
        {
            for dest in &kept {
                remove_if_there(dest)?;
            }
            dests.append(&mut kept);
        }
        if let Some((first, others)) = kept.split_first() {
            // Its content is the digest's whether or not the cache still has it.
            self.cache.mark_used(&digest);
            // The others are hard links of the cache's file, as the first is: copies instead.
            for other in others {
                std::fs::remove_file(other)?;
            }
            dests.extend_from_slice(others);
            return self.name_all(digest, first, &dests);
        }
        loop {
            let linked = self
                .cache
                .link_into(&digest, &dests[0])
                .map_err(|e| match e.kind() {
                    io::ErrorKind::AlreadyExists => FillError::Conflict(dests[0].clone()),
                    _ => FillError::Io(e),
                })?;
            if linked {
                self.job.placed(&dests[0], &digest);
                return self.name_all(digest, &dests[0], &dests[1..]);
            }
            let source = match self.cache.claim(&digest) {
                Claim::Present => continue,
                Claim::Upload(guard) => Source::Client {
                    _guard: Some(guard),
                    requested: false,
                },
                Claim::Wait(waiter) => Source::OtherJob(waiter),
            };
            self.pending.insert(
                digest,
                Pending {
                    dests,
                    size,
                    source,
                },
            );
            return Ok(());
        }
    }

    /// Files to ask this job's client for that no `Need` has named yet; marks them named.
    pub fn take_unrequested(&mut self) -> Vec<Digest> {
        let mut out = Vec::new();
        for (digest, p) in &mut self.pending {
            if let Source::Client { requested, .. } = &mut p.source {
                if !*requested {
                    *requested = true;
                    out.push(*digest);
                }
            }
        }
        out.sort();
        out
    }

    /// Whether some file must come from this job's client but no `Need` named it yet.
    pub fn has_unrequested(&self) -> bool {
        self.pending.values().any(|p| {
            matches!(
                p.source,
                Source::Client {
                    requested: false,
                    ..
                }
            )
        })
    }

    /// The size the manifest gave for a file this job's client must upload.
    pub fn expected_size(&self, digest: &Digest) -> Option<u64> {
        match self.pending.get(digest) {
            Some(Pending {
                size,
                source: Source::Client {
                    requested: true, ..
                },
                ..
            }) => Some(*size),
            _ => None,
        }
    }

    /// Stores an uploaded, verified file: written once in the root, linked to its other paths,
    /// added to the cache (which wakes other jobs waiting for it).
    pub fn complete_upload(&mut self, digest: &Digest, bytes: &[u8]) -> Result<(), FillError> {
        let Some(pending) = self.pending.remove(digest) else {
            return Ok(());
        };
        let first = &pending.dests[0];
        self.cache
            .with_room(pending.size, || write_new(first, bytes))?;
        self.job.placed(first, digest);
        self.name_all(*digest, first, &pending.dests[1..])?;
        self.cache.insert_file(digest, first, pending.size)?;
        Ok(())
    }

    /// Gives the file `digest` at `first` (a placed file) the further paths `others`, and records
    /// every one as placed.
    fn name_all(
        &mut self,
        digest: Digest,
        first: &Path,
        others: &[PathBuf],
    ) -> Result<(), FillError> {
        for other in others {
            name_again(first, other)?;
            self.job.placed(other, &digest);
        }
        self.placed.insert(digest, first.to_owned());
        Ok(())
    }

    /// Whether files are still expected from other jobs.
    pub fn waiting_on_others(&self) -> bool {
        self.pending
            .values()
            .any(|p| matches!(p.source, Source::OtherJob(_)))
    }

    /// Waits for the uploads of other jobs, then places those files again: linked if the upload
    /// succeeded, claimed for this job's client if it failed. Another job's upload gets
    /// `patience` in all: a file still missing then is asked of this job's client too, so that
    /// a slow (or hostile, trickling) client cannot hold up the others. Returns at once while
    /// a file must still be asked of this job's own client ([`Filler::has_unrequested`]).
    pub async fn await_other_jobs(&mut self, patience: Duration) -> Result<(), FillError> {
        let deadline = tokio::time::Instant::now() + patience;
        let waiting: Vec<Digest> = self
            .pending
            .iter()
            .filter(|(_, p)| matches!(p.source, Source::OtherJob(_)))
            .map(|(d, _)| *d)
            .collect();
        for digest in waiting {
            // A file this job's client must upload but was not asked for yet (claimed after the
            // last `Need`: placed from a chunk that just came, or evicted again before this job
            // could link it): another job may be waiting for it while holding one this job
            // waits for. The client is asked first.
            if self.has_unrequested() {
                return Ok(());
            }
            let Some(Pending {
                dests,
                size,
                source: Source::OtherJob(waiter),
            }) = self.pending.remove(&digest)
            else {
                continue;
            };
            match tokio::time::timeout_at(deadline, waiter.wait()).await {
                // Links and hashes: blocking file work.
                Ok(()) => tokio::task::block_in_place(|| self.place(digest, dests, size))?,
                Err(_) => {
                    let source = Source::Client {
                        _guard: None,
                        requested: false,
                    };
                    let pending = Pending {
                        dests,
                        size,
                        source,
                    };
                    self.pending.insert(digest, pending);
                }
            }
        }
        Ok(())
    }
}

/// Writes a new file at `path`; one that could not be written whole (a full disk) is removed.
fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(bytes).inspect_err(|_| {
        let _ = std::fs::remove_file(path);
    })
}

/// Gives `first` (a file in the root) the further name `dest`: a copy (with `first`'s mtime),
/// never a hard link. Two names of one inode are one file to a compiler where the client has
/// two: clang resolves the second's quoted includes from the first's directory, and `#pragma
/// once` skips it. gcc takes two files of the same content and mtime (in seconds) for one, as it
/// takes the client's when they were written in the same second: a tree from one checkout.
fn name_again(first: &Path, dest: &Path) -> Result<(), FillError> {
    crate::cache::copy_new(first, dest).map_err(|_| FillError::Conflict(dest.to_owned()))
}

/// Removes the file at `path`, if there is one.
fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use homcc_proto::{Chunk, ChunkFile};

    use super::*;
    use crate::cache::Claim;

    fn file(name: &str, content: &[u8]) -> ChunkFile {
        ChunkFile {
            name: name.into(),
            digest: Digest::of(content),
            size: content.len() as u64,
        }
    }

    /// A job that must upload a file it has not asked its client for yet does not wait for
    /// another job's upload first: that job may be waiting for this file (a deadlock that only
    /// the patience would end, seen as 30 s stalls under a cache far smaller than the work).
    #[tokio::test(flavor = "multi_thread")]
    async fn a_job_asks_for_its_own_files_before_it_waits_for_others() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("cache"), 1 << 20).unwrap();
        std::fs::create_dir(dir.path().join("jobs")).unwrap();
        let job = JobRoot::create(&dir.path().join("jobs")).unwrap();
        let (x, y) = (file("x.h", b"x"), file("y.h", b"y"));
        // Another job uploads y.
        let Claim::Upload(_other) = cache.claim(&y.digest) else {
            panic!("y is not cached")
        };
        let mut filler = Filler::new(&job, &cache);
        filler
            .add_chunk(&Chunk {
                dir: "/p".into(),
                files: vec![x.clone(), y.clone()],
            })
            .unwrap();
        assert!(filler.waiting_on_others() && filler.has_unrequested());
        let patience = Duration::from_secs(30);
        let started = std::time::Instant::now();
        filler.await_other_jobs(patience).await.unwrap();
        assert!(started.elapsed() < patience / 2, "returned at once");
        assert_eq!(filler.take_unrequested(), vec![x.digest]);
        assert!(filler.waiting_on_others(), "still waiting for y");
    }
}
