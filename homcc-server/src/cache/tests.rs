//! The cache on a real directory: insert, read, eviction by size, restarts, upload coordination.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};
use std::time::Duration;

use std::os::unix::fs::PermissionsExt;

use super::disk::BLOB_OWNER;
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

/// A blob whose file was changed while homccd was not running (by hand, or a compile of an
/// older homccd) is found out at its first use after the restart: deleted, reported absent (so
/// the job asks its client for it), and the rest of the cache is kept. An intact one is used.
#[test]
fn a_blob_changed_on_disk_is_dropped_at_its_first_use_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (good, good_bytes) = blob(1, 10);
    let (bad, bad_bytes) = blob(2, 10);
    {
        let cache = Cache::open(dir.path(), 1000).unwrap();
        cache.insert(&good, &good_bytes).unwrap();
        cache.insert(&bad, &bad_bytes).unwrap();
    }
    let path = blob_path(dir.path(), &bad);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&path, b"poisoned!!").unwrap();
    let cache = Cache::open(dir.path(), 1000).unwrap();
    assert_eq!(mode(&path), 0o444, "sealed again at open");
    assert!(!cache.link_into(&bad, &dir.path().join("a.h")).unwrap());
    assert!(!path.exists());
    assert!(cache.link_into(&good, &dir.path().join("b.h")).unwrap());
    assert_eq!(fs::read(dir.path().join("b.h")).unwrap(), good_bytes);
    assert_eq!((cache.len(), cache.total_bytes()), (1, 10));
}

/// A blob written to in place while the cache runs (its inode unchanged, and maybe linked into a
/// job root) is found out at its next use, by `read` as by `link_into` and `holds`: dropped,
/// deleted, and reported absent; the others stay.
#[test]
fn a_blob_damaged_while_running_is_dropped_at_its_next_use() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), 1000).unwrap();
    let blobs: Vec<_> = (1..=3).map(|n| blob(n, 10)).collect();
    for (digest, bytes) in &blobs {
        cache.insert(digest, bytes).unwrap();
    }
    let kept = dir.path().join("kept.h");
    assert!(cache.link_into(&blobs[2].0, &kept).unwrap());
    for (digest, _) in &blobs {
        let path = blob_path(dir.path(), digest);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let mut file = fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all(b"damaged").unwrap();
    }
    assert_eq!(cache.read(&blobs[0].0).unwrap(), None);
    assert!(!cache
        .link_into(&blobs[1].0, &dir.path().join("b.h"))
        .unwrap());
    assert!(
        !dir.path().join("b.h").exists(),
        "the damaged link is removed"
    );
    assert!(!cache.holds(&blobs[2].0, &kept).unwrap());
    for (digest, _) in &blobs {
        assert!(!blob_path(dir.path(), digest).exists());
    }
    assert_eq!((cache.len(), cache.total_bytes()), (0, 0));
}

/// As root, blobs belong to user 65534, whom a compiler (root without capabilities) is not.
#[test]
fn blobs_belong_to_a_user_of_their_own_as_root() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), 1000).unwrap();
    let (d, bytes) = blob(1, 10);
    cache.insert(&d, &bytes).unwrap();
    let uid = fs::metadata(blob_path(dir.path(), &d)).unwrap().uid();
    let expected = match nix::unistd::geteuid().is_root() {
        true => BLOB_OWNER,
        false => nix::unistd::geteuid().as_raw(),
    };
    assert_eq!(uid, expected);
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
    let long_ago = SystemTime::now() - 2 * TOUCH_EVERY;
    // Inserted 0, 1, 2 but with mtimes 2 < 1 < 0; then a read makes 2 the newest.
    let set_mtimes = || {
        for (age, (d, _)) in [3, 2, 1].into_iter().zip(&blobs) {
            let file = File::open(blob_path(dir.path(), d)).unwrap();
            file.set_modified(long_ago + Duration::from_secs(age))
                .unwrap();
        }
    };
    for (d, bytes) in &blobs {
        cache.insert(d, bytes).unwrap();
    }
    // Used within TOUCH_EVERY of its store, a blob's file is not written again.
    set_mtimes();
    assert!(cache.read(&blobs[2].0).unwrap().is_some());
    let mtime = |d| {
        fs::metadata(blob_path(dir.path(), d))
            .unwrap()
            .modified()
            .unwrap()
    };
    assert_eq!(mtime(&blobs[2].0), long_ago + Duration::from_secs(1));
    // Known (from a reopen) to have been used long ago, it is.
    drop(cache);
    let cache = Cache::open(dir.path(), 1000).unwrap();
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
