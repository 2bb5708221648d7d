//! What the paths a walk of the closure tried hold, each looked at once.

use std::{
    ffi::OsString,
    os::unix::ffi::OsStrExt,
    path::{Component, Path, PathBuf},
};

use rustc_hash::FxHashMap;

/// What the paths a walk tried hold, each looked at once.
#[derive(Debug, Default)]
pub(super) struct Tried {
    /// Each path tried, and whether a file is there.
    is_file: FxHashMap<OsString, bool>,
    /// Each directory of a name's own directories (`bits/` of `bits/x.h`) tried, and whether it
    /// is there.
    subdirs: FxHashMap<OsString, bool>,
    /// Each path looked at for a precompiled header or a link, and whether it is there.
    exists: FxHashMap<OsString, bool>,
    links: FxHashMap<OsString, bool>,
}

impl Tried {
    /// Whether a lookup finds a file at `path` (a directory is skipped, as the compilers skip it).
    pub(super) fn is_file(&mut self, path: &Path) -> bool {
        if let Some(&is) = self.is_file.get(path.as_os_str()) {
            return is;
        }
        let is = path.metadata().is_ok_and(|m| !m.is_dir());
        self.is_file.insert(path.as_os_str().to_owned(), is);
        is
    }

    /// Whether anything is at `path`.
    pub(super) fn exists(&mut self, path: &Path) -> bool {
        *(self.exists.entry(path.as_os_str().to_owned()))
            .or_insert_with(|| path.symlink_metadata().is_ok())
    }

    /// Whether a `..` of `path` follows a symbolic link: the kernel climbs from the link's
    /// target, the server (whose tree has no links) from the link's own directory.
    pub(super) fn climbs_a_link(&mut self, path: &Path) -> bool {
        if memchr::memmem::find(path.as_os_str().as_bytes(), b"..").is_none() {
            return false;
        }
        let mut prefix = PathBuf::new();
        for part in path.components() {
            if part != Component::ParentDir {
                prefix.push(part);
                continue;
            }
            let link = *(self.links.entry(prefix.as_os_str().to_owned())).or_insert_with(|| {
                (prefix.symlink_metadata()).is_ok_and(|m| m.file_type().is_symlink())
            });
            if link {
                return true;
            }
            prefix.pop();
        }
        false
    }

    /// Whether a directory of `name` below `dir` is missing (`bits/x.h` where there is no
    /// `bits/`): then nothing below it needs a look of its own.
    pub(super) fn missing_subdir(&mut self, dir: &Path, name: &Path) -> bool {
        let mut subdir = dir.to_owned();
        let mut parts = name.components().peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                break;
            }
            subdir.push(part);
            let exists = match self.subdirs.get(subdir.as_os_str()) {
                Some(&exists) => exists,
                None => {
                    let exists = subdir.is_dir();
                    self.subdirs.insert(subdir.as_os_str().to_owned(), exists);
                    exists
                }
            };
            if !exists {
                return true;
            }
        }
        false
    }
}

/// Whether `name` climbs out of a directory of its own (`sub/../x.h`).
pub(super) fn climbs_within(name: &Path) -> bool {
    let mut parts = name
        .components()
        .skip_while(|part| part == &Component::ParentDir);
    parts.any(|part| part == Component::ParentDir)
}

/// `path` with `suffix` appended to its last component.
pub(super) fn path_with(path: &Path, suffix: &str) -> PathBuf {
    let mut with = path.as_os_str().to_owned();
    with.push(suffix);
    PathBuf::from(with)
}
