//! A job root reused by the same client's next compile holds exactly what a fresh one would.

use std::os::unix::fs::MetadataExt;

use super::*;
use crate::jobroot::JobRoot;

/// Every directory and file under `root`, relative to it, sorted.
fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            if entry.file_type().unwrap().is_dir() {
                out.push(format!("{name}/"));
                dirs.push(path);
            } else {
                out.push(name);
            }
        }
    }
    out.sort();
    out
}

/// A stand-in for the cache: one file per digest, whose inode the job root's links share.
struct Blobs(tempfile::TempDir);

impl Blobs {
    fn new(contents: &[&str]) -> Blobs {
        let dir = tempfile::tempdir().unwrap();
        for (i, text) in contents.iter().enumerate() {
            std::fs::write(dir.path().join(i.to_string()), text).unwrap();
        }
        Blobs(dir)
    }
    fn digest(n: u8) -> Digest {
        Digest([n; 32])
    }
    fn path(&self, digest: &Digest) -> PathBuf {
        self.0.path().join(digest.0[0].to_string())
    }
    fn inode(&self, digest: &Digest) -> Option<u64> {
        std::fs::metadata(self.path(digest)).ok().map(|m| m.ino())
    }
    /// Places blob `n` at `rel` in `job` as a job does: kept if left there, else linked.
    fn place(&self, job: &JobRoot, rel: &str, n: u8) {
        let dest = job.path().join(rel);
        job.create_dir_all(dest.parent().unwrap()).unwrap();
        let digest = Blobs::digest(n);
        if !job.keep_left(&dest, &digest).unwrap() {
            std::fs::hard_link(self.path(&digest), &dest).unwrap();
            job.placed(&dest, &digest);
        }
    }
}

#[test]
fn a_reused_root_holds_exactly_what_the_new_job_placed() {
    let jobs = tempfile::tempdir().unwrap();
    let blobs = Blobs::new(&["zero", "one", "two"]);
    let first = JobRoot::create(jobs.path()).unwrap();
    blobs.place(&first, "usr/include/a.h", 0);
    blobs.place(&first, "usr/include/b.h", 1);
    blobs.place(&first, "home/p/old/c.h", 2);
    // What the compile did besides: an output, a stray file and directory, a placed file replaced.
    let root = first.path().to_owned();
    std::fs::write(root.join("home/p/t.o"), "object").unwrap();
    std::fs::create_dir(root.join("home/p/stray")).unwrap();
    std::fs::write(root.join("home/p/stray/s"), "").unwrap();
    std::fs::remove_file(root.join("usr/include/b.h")).unwrap();
    std::fs::write(root.join("usr/include/b.h"), "not the blob").unwrap();
    let kept = first.release(|d| blobs.inode(d)).unwrap();
    assert_eq!(
        listing(&kept.root),
        [
            "home/",
            "home/p/",
            "home/p/old/",
            "home/p/old/c.h",
            "usr/",
            "usr/include/",
            "usr/include/a.h"
        ],
        "only what homccd put there, unchanged"
    );
    let a_inode = std::fs::metadata(kept.root.join("usr/include/a.h"))
        .unwrap()
        .ino();

    // The next job: a.h again, b.h now blob 2, no old/, a new dir.
    let second = JobRoot::reuse(kept);
    blobs.place(&second, "usr/include/a.h", 0);
    blobs.place(&second, "usr/include/b.h", 2);
    blobs.place(&second, "home/p/new/d.h", 1);
    second.clear_left().unwrap();
    let root = second.path();
    assert_eq!(
        listing(root),
        [
            "home/",
            "home/p/",
            "home/p/new/",
            "home/p/new/d.h",
            "usr/",
            "usr/include/",
            "usr/include/a.h",
            "usr/include/b.h"
        ]
    );
    assert_eq!(
        std::fs::metadata(root.join("usr/include/a.h"))
            .unwrap()
            .ino(),
        a_inode,
        "kept, not linked again"
    );
    assert_eq!(std::fs::read(root.join("usr/include/b.h")).unwrap(), b"two");
}

#[test]
fn a_kept_root_serves_only_its_client() {
    let jobs = tempfile::tempdir().unwrap();
    let pool = Pool::new(2);
    let kept = || {
        JobRoot::create(jobs.path())
            .unwrap()
            .release(|_| None)
            .unwrap()
    };
    let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
    pool.put(a, kept());
    assert!(pool.take(b).is_none());
    let first = pool.take(a).expect("kept for a");
    let first_root = first.root.clone();
    pool.put(a, first);
    pool.put(b, kept());
    pool.put(a, kept());
    assert!(
        !first_root.exists(),
        "the oldest of 3 kept roots is deleted"
    );
    assert!(pool.take(a).is_some() && pool.take(b).is_some());
    assert!(pool.take(a).is_none() && pool.take(b).is_none());
}
