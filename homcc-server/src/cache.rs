//! The server's content-addressed blob cache: files named by digest under `<dir>/blobs-v1/`,
//! bounded in bytes with least-recently-used eviction, and one upload per missing blob.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use homcc_proto::{codec::decode_chunk, Chunk, Digest};

mod disk;
mod upload;
pub use disk::{copy_new, link_or_copy, space};
use disk::{remove_junk, seal, sealed_owner, touch};
use lru::LruCache;
use tempfile::TempPath;
use tokio::sync::watch;
use tracing::{debug, info, warn};
pub use upload::{Claim, UploadGuard, UploadWaiter};

/// The blob store shared by all jobs of a server; cloning it is cheap.
#[derive(Clone, Debug)]
pub struct Cache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `<dir>/blobs-v1`: blobs live in `<2 hex>/<64 hex>` below it.
    blobs: PathBuf,
    /// `<dir>/blobs-v1/tmp`: files being written, renamed into place when complete.
    tmp: PathBuf,
    max_bytes: u64,
    next_tmp: AtomicU64,
    /// Manifest chunks decoded lately, so that a compile names a directory's files without a
    /// read (content-addressed: a chunk's digest fixes its files).
    chunks: Mutex<LruCache<Digest, Arc<Chunk>>>,
    /// Invariant: a digest is in `lru` exactly when its file exists; the renames and unlinks
    /// that change this happen while the lock is held (never across an `.await`).
    state: Mutex<State>,
}

/// How often a blob's file mtime follows its use: a restart orders blobs by it, and an hour's
/// precision is plenty for that, so most uses write nothing to the disk.
const TOUCH_EVERY: Duration = Duration::from_secs(3600);

/// How many decoded manifest chunks stay in memory (a chunk is a directory's file list: a few
/// hundred bytes to a few KB).
const DECODED_CHUNKS: std::num::NonZeroUsize = std::num::NonZeroUsize::new(4096).unwrap();

/// A cached blob, as the index knows it.
#[derive(Debug, Clone, Copy)]
struct Blob {
    size: u64,
    /// Its file's inode: a job root's hard link to it has the same.
    inode: u64,
    /// The mtime its file has (set at store, or at use once [`TOUCH_EVERY`] has passed).
    touched: SystemTime,
}

#[derive(Debug)]
struct State {
    /// Digest -> blob, least recently used first.
    lru: LruCache<Digest, Blob>,
    total: u64,
    /// Blobs some job is uploading right now; the receivers are cloned for waiters.
    pending: HashMap<Digest, watch::Receiver<()>>,
}

impl Cache {
    /// Opens or creates the cache under `dir` with a bound of `max_bytes`: creates blobs-v1 and tmp,
    /// deletes leftover temp files, rebuilds the index from the files on disk (oldest mtime first, so
    /// the newest are the most recently used; files whose names are not valid digests are deleted),
    /// then evicts down to the bound.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Cache> {
        let blobs = dir.join("blobs-v1");
        let tmp = blobs.join("tmp");
        fs::create_dir_all(&tmp)?;
        let mut removed = 0usize;
        for entry in fs::read_dir(&tmp)? {
            let entry = entry?;
            remove_junk(&entry.path(), entry.file_type()?.is_dir());
            removed += 1;
        }
        let mut found: Vec<(SystemTime, Digest, u64, u64)> = Vec::new();
        for shard in fs::read_dir(&blobs)? {
            let shard = shard?;
            if shard.file_name() == "tmp" {
                continue;
            }
            if !shard.file_type()?.is_dir() {
                remove_junk(&shard.path(), false);
                removed += 1;
                continue;
            }
            let prefix = shard.file_name();
            for entry in fs::read_dir(shard.path())? {
                let entry = entry?;
                let name = entry.file_name();
                let digest = name.to_str().and_then(Digest::from_hex).filter(|d| {
                    let hex = d.to_hex();
                    name == hex.as_str() && prefix == hex[..2]
                });
                let meta = entry.metadata()?;
                match digest {
                    Some(digest) if meta.is_file() => {
                        if meta.mode() & 0o777 != 0o444
                            || sealed_owner().is_some_and(|o| o != meta.uid())
                        {
                            seal(&entry.path())?;
                        }
                        found.push((meta.modified()?, digest, meta.len(), meta.ino()));
                    }
                    _ => {
                        remove_junk(&entry.path(), meta.is_dir());
                        removed += 1;
                    }
                }
            }
        }
        found.sort();
        let mut state = State {
            lru: LruCache::unbounded(),
            total: 0,
            pending: HashMap::new(),
        };
        for (touched, digest, size, inode) in found {
            let blob = Blob {
                size,
                inode,
                touched,
            };
            state.lru.put(digest, blob);
            state.total += size;
        }
        let inner = Arc::new(Inner {
            blobs,
            tmp,
            max_bytes,
            next_tmp: AtomicU64::new(0),
            chunks: Mutex::new(LruCache::new(DECODED_CHUNKS)),
            state: Mutex::new(state),
        });
        {
            let mut state = inner.lock();
            let evicted = inner.evict(&mut state, max_bytes, false);
            info!(dir = %dir.display(), blobs = state.lru.len(), bytes = state.total, max_bytes,
                removed, evicted, "opened cache");
        }
        Ok(Cache { inner })
    }

    /// If the blob is cached and its file still holds what its name says: hard-links it to `dest`
    /// (whose parent exists; an existing `dest` is an error), marks it most recently used and
    /// returns `Ok(true)`. `Ok(false)` when it is absent, including when its file has vanished
    /// or was damaged on disk (then it is also dropped from the cache, see [`Cache::holds`]).
    pub fn link_into(&self, digest: &Digest, dest: &Path) -> io::Result<bool> {
        let linked = self.inner.use_blob(digest, |src| link_or_copy(src, dest))?;
        let Some(((), due, source)) = linked else {
            return Ok(false);
        };
        // The link is hashed, not the cache's name: what the compile will read is checked.
        if !self.inner.check(digest, File::open(dest)?, source)? {
            fs::remove_file(dest)?;
            return Ok(false);
        }
        if due {
            touch(File::open(dest));
        }
        Ok(true)
    }

    /// Whether the file at `path`, a job root's hard link of the cached file of `digest` kept
    /// from an earlier compile, still holds what `digest` names: a file damaged on disk is
    /// dropped from the cache too, so the compile that needs it asks for it again.
    pub fn holds(&self, digest: &Digest, path: &Path) -> io::Result<bool> {
        let file = File::open(path)?;
        let inode = file.metadata()?.ino();
        self.inner.check(digest, file, inode)
    }

    /// The bytes of a cached blob (used for small manifest chunks and result records), marking
    /// it used; `Ok(None)` if it is absent or was damaged on disk (then it is dropped).
    pub fn read(&self, digest: &Digest) -> io::Result<Option<Vec<u8>>> {
        let Some((mut file, due, inode)) = self.inner.use_blob(digest, |p| File::open(p))? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        if Digest::of(&bytes) != *digest {
            self.inner.damaged(digest, inode);
            return Ok(None);
        }
        if due {
            touch(Ok(file));
        }
        Ok(Some(bytes))
    }

    /// The manifest chunk stored as `digest`, marking it used; `Ok(None)` if it is absent.
    pub fn chunk(&self, digest: &Digest) -> io::Result<Option<Arc<Chunk>>> {
        let decoded = self.inner.decoded().get(digest).cloned();
        if let Some(chunk) = decoded.filter(|_| self.mark_used(digest)) {
            return Ok(Some(chunk));
        }
        let Some(bytes) = self.read(digest)? else {
            return Ok(None);
        };
        let chunk = Arc::new(
            decode_chunk(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
        );
        self.inner.decoded().put(*digest, Arc::clone(&chunk));
        Ok(Some(chunk))
    }

    /// Stores `bytes` (the caller has verified that they hash to `digest`): temp file + rename,
    /// mode 0o444 (not synced to disk: a blob damaged by a crash is found by the hashing of every
    /// blob after a restart, `Inner::verify`), then evicts least recently used entries until the
    /// total fits the bound (the blob just stored is spared, so one larger than the whole bound
    /// stays until the next store).
    /// Storing a digest that is already present just marks it used.
    pub fn insert(&self, digest: &Digest, bytes: &[u8]) -> io::Result<()> {
        if self.mark_used(digest) {
            return Ok(());
        }
        let file = self.with_room(bytes.len() as u64, || {
            let mut file = tempfile::Builder::new()
                .prefix(&digest.to_hex())
                .tempfile_in(&self.inner.tmp)?;
            file.write_all(bytes)?;
            Ok(file)
        })?;
        self.commit(digest, file.into_temp_path(), bytes.len() as u64)
    }

    /// Stores the file at `src` (in a job root, content verified to hash to `digest`) by
    /// hard-linking it to a temp name in the cache and renaming, then as [`Cache::insert`]; copies
    /// instead if `src` is on another filesystem (EXDEV). The content of `src` is left intact, but
    /// a hard-linked `src` shares the cache file's inode and so becomes read-only too.
    pub fn insert_file(&self, digest: &Digest, src: &Path, size: u64) -> io::Result<()> {
        if self.mark_used(digest) {
            return Ok(());
        }
        let n = self.inner.next_tmp.fetch_add(1, Ordering::Relaxed);
        let tmp = TempPath::try_from_path(self.inner.tmp.join(format!("{}.{n}", digest.to_hex())))?;
        match fs::hard_link(src, &tmp) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                fs::copy(src, &tmp)?;
            }
            Err(e) => return Err(e),
        }
        self.commit(digest, tmp, size)
    }

    /// The inode of the cached file of `digest`, if it is cached.
    pub fn inode(&self, digest: &Digest) -> Option<u64> {
        self.inner.lock().lru.peek(digest).map(|blob| blob.inode)
    }

    /// Bytes currently held by the cache.
    pub fn total_bytes(&self) -> u64 {
        self.inner.lock().total
    }

    /// Number of blobs in the cache.
    pub fn len(&self) -> usize {
        self.inner.lock().lru.len()
    }

    /// Whether the cache holds no blob.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `store` (which writes `need` bytes to the cache's disk); if the disk is full, evicts
    /// least recently used blobs to make room ([`Cache::make_room`]) and runs it once more.
    pub fn with_room<T>(
        &self,
        need: u64,
        mut store: impl FnMut() -> io::Result<T>,
    ) -> io::Result<T> {
        match store() {
            Err(e) if is_disk_full(&e) && self.make_room(need) => store(),
            stored => stored,
        }
    }

    /// The disk is full: evicts least recently used blobs worth `need` bytes and a sixteenth
    /// of the cache more, so that the compile that needs them finds room for its outputs and
    /// temporary files too (a blob linked into a running job root frees its space only when
    /// that job ends). Whether any blob went.
    pub fn make_room(&self, need: u64) -> bool {
        let mut state = self.inner.lock();
        let bound = state.total.saturating_sub(need + state.total / 16);
        let evicted = self.inner.evict(&mut state, bound, false);
        warn!(
            evicted,
            total = state.total,
            "disk full: evicted cached files to make room"
        );
        evicted > 0
    }

    /// A compiler ran out of disk (its outputs and temporary files are not the cache's to
    /// count): evicts least recently used blobs until a quarter of the filesystem is free, as
    /// far as the cache can free it, so that the compiles that follow fit. Whether any blob went.
    pub fn make_headroom(&self) -> bool {
        let Some((free, size)) = disk::space(&self.inner.blobs) else {
            return self.make_room(0);
        };
        self.make_room((size / 4).saturating_sub(free))
    }

    /// Marks `digest` most recently used if it is present (in memory, and in its file's mtime
    /// every [`TOUCH_EVERY`]).
    pub fn mark_used(&self, digest: &Digest) -> bool {
        let used = self.inner.lock().used(digest);
        if used == Some(true) {
            touch(File::open(self.inner.path_of(digest)));
        }
        used.is_some()
    }

    /// Seals the complete temp file `tmp` ([`seal`]), renames it into place and indexes it.
    fn commit(&self, digest: &Digest, tmp: TempPath, size: u64) -> io::Result<()> {
        seal(&tmp)?;
        let dest = self.inner.path_of(digest);
        fs::create_dir_all(dest.parent().expect("blob paths have a shard directory"))?;
        let mut state = self.inner.lock();
        if state.lru.get(digest).is_some() {
            return Ok(()); // stored by a concurrent job meanwhile; `tmp` is deleted on drop
        }
        tmp.persist(&dest).map_err(|e| e.error)?;
        let blob = Blob {
            size,
            inode: fs::metadata(&dest)?.ino(),
            touched: SystemTime::now(),
        };
        state.lru.put(*digest, blob);
        state.total += size;
        self.inner.evict(&mut state, self.inner.max_bytes, true);
        Ok(())
    }
}

impl State {
    /// Marks `digest` most recently used; whether its file's mtime is due to follow (then the
    /// caller sets it). `None` if it is not cached.
    fn used(&mut self, digest: &Digest) -> Option<bool> {
        let blob = self.lru.get_mut(digest)?;
        let now = SystemTime::now();
        let due = now
            .duration_since(blob.touched)
            .map_or(true, |age| age >= TOUCH_EVERY);
        if due {
            blob.touched = now;
        }
        Some(due)
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The manifest chunks decoded lately.
    fn decoded(&self) -> MutexGuard<'_, LruCache<Digest, Arc<Chunk>>> {
        self.chunks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn path_of(&self, digest: &Digest) -> PathBuf {
        let hex = digest.to_hex();
        self.blobs.join(&hex[..2]).join(hex)
    }

    /// If `digest` is cached, marks it most recently used and applies `f` to its path under the
    /// lock (so no eviction races it), with whether its file's mtime is due to follow. `None` if
    /// absent or if its file has vanished (then it is also dropped from the index).
    fn use_blob<T>(
        &self,
        digest: &Digest,
        f: impl FnOnce(&Path) -> io::Result<T>,
    ) -> io::Result<Option<(T, bool, u64)>> {
        let path = self.path_of(digest);
        let mut state = self.lock();
        let Some(due) = state.used(digest) else {
            return Ok(None);
        };
        let inode = state.lru.peek(digest).map_or(0, |blob| blob.inode);
        match f(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && !path.exists() => {
                warn!(%digest, "cached file vanished; dropping it from the index");
                if let Some(blob) = state.lru.pop(digest) {
                    state.total -= blob.size;
                }
                Ok(None)
            }
            result => result.map(|t| Some((t, due, inode))),
        }
    }

    /// Hashes `file`, a name of the cached file of `digest` (whose inode is `inode`): whether it
    /// holds what `digest` names. One that does not (written to, truncated or damaged on disk
    /// after it was stored) is dropped from the cache.
    fn check(&self, digest: &Digest, file: File, inode: u64) -> io::Result<bool> {
        if Digest::of_reader(file)? == *digest {
            return Ok(true);
        }
        self.damaged(digest, inode);
        Ok(false)
    }

    /// The cached file of `digest` whose inode is `inode` does not hold what its name says:
    /// drops it from the index and deletes it (unless a new upload has replaced it meanwhile).
    fn damaged(&self, digest: &Digest, inode: u64) {
        let mut state = self.lock();
        if state
            .lru
            .peek(digest)
            .is_none_or(|blob| blob.inode != inode)
        {
            return;
        }
        warn!(%digest, "cached file does not hold what its name says; deleting it");
        if let Some(blob) = state.lru.pop(digest) {
            state.total -= blob.size;
        }
        remove_junk(&self.path_of(digest), false);
    }

    /// Evicts least recently used blobs, deleting their files, until the total fits `bound`;
    /// with `spare_newest` the most recently used blob is never evicted. Returns how many went.
    fn evict(&self, state: &mut State, bound: u64, spare_newest: bool) -> usize {
        let mut evicted = 0;
        while state.total > bound && state.lru.len() > usize::from(spare_newest) {
            let Some((digest, Blob { size, .. })) = state.lru.pop_lru() else {
                break;
            };
            state.total -= size;
            evicted += 1;
            debug!(%digest, size, total = state.total, "evicting cached blob");
            match fs::remove_file(self.path_of(&digest)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    warn!(%digest, error = %e, "cannot delete evicted blob");
                }
                _ => {}
            }
        }
        evicted
    }
}

/// Whether `e` says the disk is full (or the user's quota used up).
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

#[cfg(test)]
mod tests;
