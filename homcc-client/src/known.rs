//! Which manifest chunks a host is known to have: one empty marker file per chunk digest under
//! `<cache dir>/known-chunks/<host>`, written after a compile that host accepted. A chunk the host
//! has since evicted is simply asked for again.

use std::path::{Path, PathBuf};

use homcc_proto::Digest;

/// The record for one host.
#[derive(Debug, Clone)]
pub struct KnownChunks {
    dir: Option<PathBuf>,
}

impl KnownChunks {
    /// The record of the host with file name `key` ([`crate::hosts::Host::key`]) under
    /// `cache_dir`; without a cache dir nothing is known.
    pub fn new(cache_dir: Option<&Path>, key: &str) -> Self {
        KnownChunks {
            dir: cache_dir.map(|d| d.join("known-chunks").join(key)),
        }
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.dir
            .as_ref()
            .is_some_and(|d| d.join(digest.to_hex()).exists())
    }

    /// Records `digests` as held by the host; failures only cost bytes next time.
    pub fn insert_all<'a>(&self, digests: impl IntoIterator<Item = &'a Digest>) {
        let Some(dir) = &self.dir else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        for digest in digests {
            let path = dir.join(digest.to_hex());
            if !path.exists() {
                let _ = std::fs::File::create(path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_host() {
        let dir = tempfile::tempdir().unwrap();
        let a = KnownChunks::new(Some(dir.path()), "__1_3126");
        let b = KnownChunks::new(Some(dir.path()), "10.0.0.5_3126");
        let d = Digest::of(b"chunk");
        assert!(!a.contains(&d));
        a.insert_all([&d]);
        assert!(a.contains(&d));
        assert!(!b.contains(&d));
        assert!(!KnownChunks::new(None, "h_1").contains(&d));
    }
}
