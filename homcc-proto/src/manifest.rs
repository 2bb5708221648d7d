//! The manifest: every file a compile reads, as (client path, digest, size), grouped into chunks of
//! one directory each. A chunk is named by the digest of its encoding, so a warm request carries
//! 32 bytes per directory instead of every path and digest (docs/protocol.md §6).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{codec, Digest};

/// One file of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Absolute, normalised client path.
    pub path: PathBuf,
    pub digest: Digest,
    pub size: u64,
}

/// The files of one directory, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Absolute client directory (UTF-8, so that the encoding and the digest never fail).
    pub dir: String,
    #[serde(deserialize_with = "codec::counted_files")]
    pub files: Vec<ChunkFile>,
}

/// One file in a chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkFile {
    /// A single path component.
    pub name: String,
    pub digest: Digest,
    pub size: u64,
}

impl Chunk {
    /// The chunk's name: blake3 of its encoding, which is deterministic.
    pub fn digest(&self) -> Digest {
        Digest::of(&codec::encode_chunk(self))
    }

    /// The chunk's files with their full client paths.
    pub fn entries(&self) -> impl Iterator<Item = ManifestEntry> + '_ {
        self.files.iter().map(|f| ManifestEntry {
            path: Path::new(&self.dir).join(&f.name),
            digest: f.digest,
            size: f.size,
        })
    }
}

/// Groups entries by directory into chunks, sorted by directory then name, so that the same set
/// of files always gives the same chunks. Entries need a parent directory and a UTF-8 file name;
/// the first one without is returned as the error.
pub fn chunk_entries(entries: &[ManifestEntry]) -> Result<Vec<Chunk>, PathBuf> {
    let mut dirs: BTreeMap<&str, Vec<ChunkFile>> = BTreeMap::new();
    for e in entries {
        let dir = e.path.parent().and_then(|d| d.to_str());
        let name = e.path.file_name().and_then(|n| n.to_str());
        let (Some(dir), Some(name)) = (dir, name) else {
            return Err(e.path.clone());
        };
        dirs.entry(dir).or_default().push(ChunkFile {
            name: name.to_owned(),
            digest: e.digest,
            size: e.size,
        });
    }
    Ok(dirs
        .into_iter()
        .map(|(dir, mut files)| {
            files.sort_by(|a, b| a.name.cmp(&b.name));
            files.dedup_by(|a, b| a.name == b.name);
            Chunk {
                dir: dir.to_owned(),
                files,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, content: &[u8]) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            digest: Digest::of(content),
            size: content.len() as u64,
        }
    }

    #[test]
    fn groups_by_directory_in_a_stable_order() {
        let a = [
            entry("/p/b.h", b"b"),
            entry("/usr/x.h", b"x"),
            entry("/p/a.c", b"a"),
        ];
        let b = [
            entry("/usr/x.h", b"x"),
            entry("/p/a.c", b"a"),
            entry("/p/b.h", b"b"),
        ];
        let (ca, cb) = (chunk_entries(&a).unwrap(), chunk_entries(&b).unwrap());
        assert_eq!(ca, cb);
        assert_eq!(ca.len(), 2);
        assert_eq!(ca[0].dir, "/p");
        assert_eq!(
            ca[0]
                .files
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>(),
            ["a.c", "b.h"]
        );
        assert_eq!(ca[0].digest(), cb[0].digest());
        assert_ne!(ca[0].digest(), ca[1].digest());
    }

    #[test]
    fn entries_round_trip() {
        let a = [entry("/p/a.c", b"a"), entry("/p/b.h", b"b")];
        let chunks = chunk_entries(&a).unwrap();
        let back: Vec<_> = chunks.iter().flat_map(|c| c.entries()).collect();
        assert_eq!(back, a);
    }

    #[test]
    fn content_changes_the_chunk_digest() {
        let one = chunk_entries(&[entry("/p/a.c", b"a")]).unwrap();
        let two = chunk_entries(&[entry("/p/a.c", b"A")]).unwrap();
        assert_ne!(one[0].digest(), two[0].digest());
    }

    #[test]
    fn root_has_no_parent() {
        assert_eq!(chunk_entries(&[entry("/", b"")]), Err(PathBuf::from("/")));
    }
}
