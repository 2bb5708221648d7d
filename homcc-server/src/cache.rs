//! The server's content-addressed blob cache: files named by digest under `<dir>/blobs-v1/`,
//! bounded in bytes with least-recently-used eviction, and one upload per missing blob.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use homcc_proto::Digest;
use lru::LruCache;
use tempfile::TempPath;
use tokio::sync::watch;
use tracing::{debug, info, warn};

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
    /// Invariant: a digest is in `lru` exactly when its file exists; the renames and unlinks
    /// that change this happen while the lock is held (never across an `.await`).
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Digest -> size in bytes, least recently used first.
    lru: LruCache<Digest, u64>,
    total: u64,
    /// Blobs some job is uploading right now; the receivers are cloned for waiters.
    pending: HashMap<Digest, watch::Receiver<()>>,
}

/// What a job missing a blob should do, from [`Cache::claim`].
#[derive(Debug)]
pub enum Claim {
    /// The blob is in the cache now: retry [`Cache::link_into`].
    Present,
    /// This job uploads it: get it from the client, store it, then drop the guard.
    Upload(UploadGuard),
    /// Another job is uploading it: await [`UploadWaiter::wait`], then retry.
    Wait(UploadWaiter),
}

/// Held by the one job uploading a blob; dropping it (after storing, or on failure) wakes waiters.
#[derive(Debug)]
pub struct UploadGuard {
    inner: Arc<Inner>,
    digest: Digest,
    /// Dropped after `Drop::drop` has removed the pending entry, which wakes the waiters.
    _wake: watch::Sender<()>,
}

/// Held by a job waiting for another job's upload of the same blob.
#[derive(Debug)]
pub struct UploadWaiter {
    rx: watch::Receiver<()>,
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
        let mut found: Vec<(SystemTime, Digest, u64)> = Vec::new();
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
                        found.push((meta.modified()?, digest, meta.len()));
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
        for (_, digest, size) in found {
            state.lru.put(digest, size);
            state.total += size;
        }
        let inner = Arc::new(Inner {
            blobs,
            tmp,
            max_bytes,
            next_tmp: AtomicU64::new(0),
            state: Mutex::new(state),
        });
        {
            let mut state = inner.lock();
            let evicted = inner.evict(&mut state, false);
            info!(dir = %dir.display(), blobs = state.lru.len(), bytes = state.total, max_bytes,
                removed, evicted, "opened cache");
        }
        Ok(Cache { inner })
    }

    /// If the blob is cached: hard-links it to `dest` (whose parent exists; an existing `dest` is an
    /// error), marks it most recently used and returns `Ok(true)`. `Ok(false)` when it is absent,
    /// including when its file has vanished (then it is also dropped from the index).
    pub fn link_into(&self, digest: &Digest, dest: &Path) -> io::Result<bool> {
        let linked = self
            .inner
            .use_blob(digest, |src| fs::hard_link(src, dest))?;
        if linked.is_some() {
            touch(File::open(dest));
        }
        Ok(linked.is_some())
    }

    /// The bytes of a cached blob (used for small manifest chunks), marking it used; `Ok(None)`
    /// if it is absent.
    pub fn read(&self, digest: &Digest) -> io::Result<Option<Vec<u8>>> {
        let Some(mut file) = self.inner.use_blob(digest, |p| File::open(p))? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        touch(Ok(file));
        Ok(Some(bytes))
    }

    /// Stores `bytes` (the caller has verified that they hash to `digest`): temp file + rename,
    /// mode 0o444, then evicts least recently used entries until the total fits the bound (the
    /// blob just stored is spared, so one larger than the whole bound stays until the next store).
    /// Storing a digest that is already present just marks it used.
    pub fn insert(&self, digest: &Digest, bytes: &[u8]) -> io::Result<()> {
        if self.mark_used(digest) {
            return Ok(());
        }
        let mut file = tempfile::Builder::new()
            .prefix(&digest.to_hex())
            .tempfile_in(&self.inner.tmp)?;
        file.write_all(bytes)?;
        file.as_file().sync_data()?;
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
        File::open(&tmp)?.sync_data()?;
        self.commit(digest, tmp, size)
    }

    /// Coordinates uploads so that concurrent jobs missing the same blob have it uploaded once:
    /// `Present` if it is in the index now, `Upload` for the first job to ask, `Wait` for the others
    /// while that upload runs.
    pub fn claim(&self, digest: &Digest) -> Claim {
        let mut state = self.inner.lock();
        if state.lru.contains(digest) {
            return Claim::Present;
        }
        if let Some(rx) = state.pending.get(digest) {
            return Claim::Wait(UploadWaiter { rx: rx.clone() });
        }
        let (tx, rx) = watch::channel(());
        state.pending.insert(*digest, rx);
        Claim::Upload(UploadGuard {
            inner: Arc::clone(&self.inner),
            digest: *digest,
            _wake: tx,
        })
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

    /// The bound in bytes given to [`Cache::open`].
    pub fn max_bytes(&self) -> u64 {
        self.inner.max_bytes
    }

    /// Marks `digest` most recently used if it is present (in memory and in its file's mtime).
    fn mark_used(&self, digest: &Digest) -> bool {
        let present = self.inner.lock().lru.get(digest).is_some();
        if present {
            touch(File::open(self.inner.path_of(digest)));
        }
        present
    }

    /// Makes the complete temp file `tmp` read-only, renames it into place and indexes it.
    fn commit(&self, digest: &Digest, tmp: TempPath, size: u64) -> io::Result<()> {
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o444))?;
        let dest = self.inner.path_of(digest);
        fs::create_dir_all(dest.parent().expect("blob paths have a shard directory"))?;
        let mut state = self.inner.lock();
        if state.lru.get(digest).is_some() {
            return Ok(()); // stored by a concurrent job meanwhile; `tmp` is deleted on drop
        }
        tmp.persist(&dest).map_err(|e| e.error)?;
        state.lru.put(*digest, size);
        state.total += size;
        self.inner.evict(&mut state, true);
        Ok(())
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn path_of(&self, digest: &Digest) -> PathBuf {
        let hex = digest.to_hex();
        self.blobs.join(&hex[..2]).join(hex)
    }

    /// If `digest` is cached, marks it most recently used and applies `f` to its path under the
    /// lock (so no eviction races it). `None` if absent or if its file has vanished (then it is
    /// also dropped from the index).
    fn use_blob<T>(
        &self,
        digest: &Digest,
        f: impl FnOnce(&Path) -> io::Result<T>,
    ) -> io::Result<Option<T>> {
        let path = self.path_of(digest);
        let mut state = self.lock();
        if state.lru.get(digest).is_none() {
            return Ok(None);
        }
        match f(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && !path.exists() => {
                warn!(%digest, "cached file vanished; dropping it from the index");
                if let Some(size) = state.lru.pop(digest) {
                    state.total -= size;
                }
                Ok(None)
            }
            result => result.map(Some),
        }
    }

    /// Evicts least recently used blobs, deleting their files, until the total fits the bound;
    /// with `spare_newest` the most recently used blob is never evicted. Returns how many went.
    fn evict(&self, state: &mut State, spare_newest: bool) -> usize {
        let mut evicted = 0;
        while state.total > self.max_bytes && state.lru.len() > usize::from(spare_newest) {
            let Some((digest, size)) = state.lru.pop_lru() else {
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

impl Drop for UploadGuard {
    fn drop(&mut self) {
        self.inner.lock().pending.remove(&self.digest);
    }
}

impl UploadWaiter {
    /// Returns once the uploading job has dropped its [`UploadGuard`], whether it succeeded or not.
    pub async fn wait(mut self) {
        let _ = self.rx.changed().await;
    }
}

/// Sets a cached file's mtime to now, so that a restart orders blobs by last use. Best effort.
fn touch(file: io::Result<File>) {
    if let Err(e) = file.and_then(|f| f.set_modified(SystemTime::now())) {
        debug!(error = %e, "cannot update mtime of cached blob");
    }
}

/// Deletes a leftover temp file or a file that is not a blob, found by `Cache::open`.
fn remove_junk(path: &Path, is_dir: bool) {
    debug!(path = %path.display(), "deleting stray file in cache");
    let result = if is_dir {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    if let Err(e) = result {
        warn!(path = %path.display(), error = %e, "cannot delete stray file in cache");
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Waker};
    use std::time::Duration;

    use super::*;

    /// A blob of `len` bytes all equal to `n`, and its digest.
    fn blob(n: u8, len: usize) -> (Digest, Vec<u8>) {
        let bytes = vec![n; len];
        (Digest::of(&bytes), bytes)
    }

    fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
        let hex = digest.to_hex();
        dir.join("blobs-v1").join(&hex[..2]).join(hex)
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn insert_then_link_into_and_read_give_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 1000).unwrap();
        let (d, bytes) = blob(1, 100);
        cache.insert(&d, &bytes).unwrap();
        let dest = dir.path().join("a.h");
        assert!(cache.link_into(&d, &dest).unwrap());
        assert_eq!(fs::read(&dest).unwrap(), bytes);
        assert!(cache.link_into(&d, &dest).is_err(), "existing dest");
        assert_eq!(cache.read(&d).unwrap(), Some(bytes));
        assert_eq!(mode(&blob_path(dir.path(), &d)), 0o444);
        let absent = blob(2, 1).0;
        assert!(!cache.link_into(&absent, &dir.path().join("b.h")).unwrap());
        assert_eq!(cache.read(&absent).unwrap(), None);
        assert_eq!((cache.len(), cache.total_bytes()), (1, 100));
    }

    #[test]
    fn vanished_file_is_dropped_from_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 1000).unwrap();
        let (d, bytes) = blob(1, 10);
        cache.insert(&d, &bytes).unwrap();
        fs::remove_file(blob_path(dir.path(), &d)).unwrap();
        assert!(!cache.link_into(&d, &dir.path().join("a.h")).unwrap());
        assert_eq!((cache.len(), cache.total_bytes()), (0, 0));
    }

    #[test]
    fn least_recently_used_blobs_are_evicted_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 100).unwrap();
        let blobs: Vec<_> = (0..12).map(|n| blob(n, 10)).collect();
        for (d, bytes) in &blobs[..10] {
            cache.insert(d, bytes).unwrap();
        }
        assert!(cache
            .link_into(&blobs[0].0, &dir.path().join("0.h"))
            .unwrap());
        assert!(cache.read(&blobs[1].0).unwrap().is_some());
        cache.insert(&blobs[2].0, &blobs[2].1).unwrap(); // already present: marks it used
        for (d, bytes) in &blobs[10..] {
            cache.insert(d, bytes).unwrap();
        }
        assert_eq!((cache.len(), cache.total_bytes()), (10, 100));
        for (n, (d, _)) in blobs.iter().enumerate() {
            let evicted = n == 3 || n == 4;
            assert_eq!(cache.read(d).unwrap().is_none(), evicted, "blob {n}");
            assert_eq!(blob_path(dir.path(), d).exists(), !evicted, "blob {n}");
        }
    }

    #[test]
    fn a_linked_blob_survives_its_eviction() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 10).unwrap();
        let (a, a_bytes) = blob(1, 10);
        cache.insert(&a, &a_bytes).unwrap();
        let job = tempfile::tempdir().unwrap();
        assert!(cache.link_into(&a, &job.path().join("a.h")).unwrap());
        let (b, b_bytes) = blob(2, 20); // larger than the bound: stays until the next insert
        cache.insert(&b, &b_bytes).unwrap();
        assert_eq!((cache.len(), cache.total_bytes()), (1, 20));
        assert!(!blob_path(dir.path(), &a).exists());
        assert!(!cache.link_into(&a, &job.path().join("again.h")).unwrap());
        assert_eq!(fs::read(job.path().join("a.h")).unwrap(), a_bytes);
    }

    #[test]
    fn reopen_rebuilds_the_index_and_deletes_stray_files() {
        let dir = tempfile::tempdir().unwrap();
        let blobs: Vec<_> = (0..5).map(|n| blob(n, 10 + n as usize)).collect();
        let cache = Cache::open(dir.path(), 1000).unwrap();
        for (d, bytes) in &blobs {
            cache.insert(d, bytes).unwrap();
        }
        drop(cache);
        let root = dir.path().join("blobs-v1");
        let stray = [
            root.join("tmp/partial"),
            root.join("ab/not-a-digest"),
            root.join("junk"),
        ];
        fs::create_dir_all(root.join("ab")).unwrap();
        for path in &stray {
            fs::write(path, b"x").unwrap();
        }
        let cache = Cache::open(dir.path(), 1000).unwrap();
        assert_eq!((cache.len(), cache.total_bytes()), (5, 60));
        for (n, (d, bytes)) in blobs.iter().enumerate() {
            let dest = dir.path().join(format!("{n}.h"));
            assert!(cache.link_into(d, &dest).unwrap());
            assert_eq!(&fs::read(&dest).unwrap(), bytes);
        }
        assert!(stray.iter().all(|path| !path.exists()));
    }

    #[test]
    fn reopen_orders_recency_by_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let blobs: Vec<_> = (0..3).map(|n| blob(n, 10)).collect();
        let cache = Cache::open(dir.path(), 1000).unwrap();
        let long_ago = SystemTime::now() - Duration::from_secs(3600);
        // Inserted 0, 1, 2 but with mtimes 2 < 1 < 0; then a read makes 2 the newest.
        for (age, (d, bytes)) in [3, 2, 1].into_iter().zip(&blobs) {
            cache.insert(d, bytes).unwrap();
            let file = File::open(blob_path(dir.path(), d)).unwrap();
            file.set_modified(long_ago + Duration::from_secs(age))
                .unwrap();
        }
        assert!(cache.read(&blobs[2].0).unwrap().is_some());
        drop(cache);
        let cache = Cache::open(dir.path(), 20).unwrap();
        assert_eq!((cache.len(), cache.total_bytes()), (2, 20));
        assert!(!blob_path(dir.path(), &blobs[1].0).exists());
        let cache = Cache::open(dir.path(), 10).unwrap();
        assert_eq!(cache.len(), 1);
        assert!(cache.read(&blobs[2].0).unwrap().is_some());
    }

    #[test]
    fn insert_file_keeps_the_original_and_files_are_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("cache"), 1000).unwrap();
        let (d, bytes) = blob(7, 50);
        let src = dir.path().join("job.h");
        fs::write(&src, &bytes).unwrap();
        cache.insert_file(&d, &src, 50).unwrap();
        assert_eq!(fs::read(&src).unwrap(), bytes);
        assert_eq!(mode(&blob_path(&dir.path().join("cache"), &d)), 0o444);
        let dest = dir.path().join("linked.h");
        assert!(cache.link_into(&d, &dest).unwrap());
        assert_eq!(fs::read(&dest).unwrap(), bytes);
        assert_eq!((cache.len(), cache.total_bytes()), (1, 50));
        let tmp = dir.path().join("cache/blobs-v1/tmp");
        assert_eq!(fs::read_dir(tmp).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn concurrent_claims_upload_once_and_wake_waiters() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 1000).unwrap();
        let (d, bytes) = blob(1, 10);
        let (Claim::Upload(guard), Claim::Wait(waiter)) = (cache.claim(&d), cache.claim(&d)) else {
            panic!("expected Upload then Wait");
        };
        let mut wait = pin!(waiter.wait());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        cache.insert(&d, &bytes).unwrap();
        assert!(
            wait.as_mut().poll(&mut cx).is_pending(),
            "woken only by the guard"
        );
        drop(guard);
        wait.await;
        assert!(matches!(cache.claim(&d), Claim::Present));
    }

    #[tokio::test]
    async fn a_failed_upload_wakes_waiters_and_can_be_claimed_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 1000).unwrap();
        let d = blob(1, 10).0;
        let (Claim::Upload(guard), Claim::Wait(waiter)) = (cache.claim(&d), cache.claim(&d)) else {
            panic!("expected Upload then Wait");
        };
        let task = tokio::spawn(waiter.wait());
        drop(guard);
        task.await.unwrap();
        assert!(matches!(cache.claim(&d), Claim::Upload(_)));
    }
}
