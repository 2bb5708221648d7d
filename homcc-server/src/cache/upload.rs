//! One upload per missing blob: the first job that lacks a blob asks its client for it, and
//! the others that lack it meanwhile wait for that upload.

use std::sync::Arc;

use homcc_proto::Digest;
use tokio::sync::watch;

use super::{Cache, Inner};

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
