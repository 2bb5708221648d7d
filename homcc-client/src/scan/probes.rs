//! Where each name a compile may look up is found now: for every `#include` (or `__has_include`,
//! `-include`, implicit include) of every file the scan listed, the paths the preprocessor tries
//! in search order, up to the first that exists, each with whether it exists. A recorded scan is
//! valid while every such path still exists or not as recorded: then each lookup finds what it
//! found, and (with every listed file unchanged) the preprocessor reads the same files.
//!
//! A computed include (`#include MACRO`) found, if it ran, one of the files read, by a name
//! that is that file's path after one of the directories searched: every such name is tried.
//! That holds where the compiler names a file by the path it built (gcc); clang names a file by
//! the first path it met it under, so a computed include makes its compile uncacheable.
//!
//! Recording races with the tree: a lookup the compiler made may be answered otherwise a moment
//! later, when the paths are tried here. So a path that exists here but was not read must have
//! been there, unchanged, since before the scan (its stamp settled), a directory the compiler
//! found missing must still be missing, and a name only tested (`__has_include`) and not found
//! must be missing from a directory that has not changed since before the scan. Otherwise the
//! scan is not recorded.

use std::{
    collections::{HashMap, HashSet},
    ffi::OsStr,
    os::unix::ffi::{OsStrExt, OsStringExt},
    path::{Path, PathBuf},
    time::SystemTime,
};

use serde::{Deserialize, Serialize};

use super::{
    directives::{Delimiter, Lookup},
    searchlist::SearchList,
    stamp::Stamp,
};
use crate::paths::absolute;

/// A path the preprocessor may try (made absolute, as the compiler spelt it otherwise), and what
/// it found there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub path: PathBuf,
    pub is: Found,
}

/// What a lookup finds at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Found {
    File,
    /// Nothing, or a directory (which a lookup of a file skips).
    NoFile,
    /// A search directory that is missing (nothing, or not a directory): the compiler left it out.
    NoDir,
}

impl Probe {
    /// Whether the path still answers as recorded.
    pub fn holds(&self) -> bool {
        match self.is {
            Found::File => found(&self.path).0,
            Found::NoFile => !found(&self.path).0,
            Found::NoDir => !self.path.is_dir(),
        }
    }
}

/// Whether a lookup finds a file at `path` (a directory is skipped, as the compilers skip it),
/// and its metadata if anything is there.
fn found(path: &Path) -> (bool, Option<std::fs::Metadata>) {
    match std::fs::metadata(path) {
        Ok(meta) => (!meta.is_dir(), Some(meta)),
        Err(_) => (false, None),
    }
}

/// What a scan read, as the lookups need it.
#[derive(Debug)]
pub struct Lookups<'a> {
    pub search: &'a SearchList,
    pub cwd: &'a Path,
    /// Every file read, as the compiler named it, with the names it may look up.
    pub files: Vec<(&'a Path, Vec<Lookup>)>,
    /// `-include` and `-imacros` names: searched from the working directory on.
    pub forced: Vec<PathBuf>,
    /// Headers the compiler includes on its own (`stdc-predef.h`): searched like `<name>`.
    pub implicit: Vec<PathBuf>,
    /// Whether the compiler names each file read by the path it built (gcc), so that the name
    /// a computed include used can be told from the files read.
    pub paths_as_built: bool,
}

/// The probes of every lookup, or why the scan cannot be recorded.
pub fn probes(lookups: &Lookups<'_>, scan_start: SystemTime) -> Result<Vec<Probe>, String> {
    let listed: HashSet<PathBuf> = (lookups.files.iter())
        .map(|(path, _)| absolute(lookups.cwd, path))
        .collect();
    let mut walk = Walk {
        search: lookups.search,
        cwd: lookups.cwd,
        read: (lookups.files.iter())
            .map(|(path, _)| lookups.cwd.join(path))
            .collect(),
        paths_as_built: lookups.paths_as_built,
        listed,
        scan_start,
        tried: HashMap::new(),
        missing: HashSet::new(),
        probes: Vec::new(),
    };
    for dir in &lookups.search.missing {
        let probe = Probe {
            path: lookups.cwd.join(dir),
            is: Found::NoDir,
        };
        if !probe.holds() {
            return Err(format!("{} appeared during the scan", dir.display()));
        }
        walk.probes.push(probe);
    }
    for (file, names) in &lookups.files {
        let includer = file.parent().unwrap_or(Path::new(""));
        for lookup in names {
            walk.lookup(includer, lookup)?;
        }
    }
    let forced = (lookups.forced.iter()).map(|name| (name, Delimiter::Quote));
    let implicit = (lookups.implicit.iter()).map(|name| (name, Delimiter::Angle));
    for (name, delimiter) in forced.chain(implicit) {
        let lookup = Lookup::include(name.as_os_str().as_bytes(), delimiter);
        walk.lookup(Path::new(""), &lookup)?;
    }
    Ok(walk.probes)
}

struct Walk<'a> {
    search: &'a SearchList,
    cwd: &'a Path,
    /// The files read, as the compiler named them, from the working directory.
    read: Vec<PathBuf>,
    paths_as_built: bool,
    /// The files read, absolute and normal.
    listed: HashSet<PathBuf>,
    scan_start: SystemTime,
    /// Each path tried so far, and whether a file is there.
    tried: HashMap<PathBuf, bool>,
    /// Directories found missing: nothing below them needs a probe of its own.
    missing: HashSet<PathBuf>,
    probes: Vec<Probe>,
}

impl Walk<'_> {
    /// Tries `lookup` from a file in `includer` as the compiler searches: `"name"` in the
    /// includer's directory, the quote dirs, then the bracket dirs; `<name>` in the bracket dirs;
    /// up to the first file found, or through every directory for `_next` (which starts after
    /// the includer's place in the list).
    fn lookup(&mut self, includer: &Path, lookup: &Lookup) -> Result<(), String> {
        let Some(name) = &lookup.name else {
            return self.computed(includer, lookup.next);
        };
        let name = Path::new(OsStr::from_bytes(name));
        for dir in self.dirs(
            includer,
            lookup.next || lookup.delimiter == Delimiter::Quote,
        ) {
            let path = dir.join(name);
            if self.try_path(&path, lookup.existence)? && !lookup.next {
                break;
            }
        }
        Ok(())
    }

    /// The directories a lookup from a file in `includer` searches, in order: for `"name"`
    /// (`quoted`) the includer's, the quote dirs and the bracket dirs, else the bracket dirs.
    fn dirs(&self, includer: &Path, quoted: bool) -> Vec<PathBuf> {
        let search = self.search;
        (quoted.then_some(includer).into_iter())
            .chain(search.quote.iter().filter(|_| quoted).map(PathBuf::as_path))
            .chain(search.bracket.iter().map(PathBuf::as_path))
            .map(|dir| self.cwd.join(dir))
            .collect()
    }

    /// Tries, for a computed include in `includer`, every name it may have used (each file read,
    /// after each directory it searches: `x.h` of `dir/x.h` found in `dir`), in either form.
    fn computed(&mut self, includer: &Path, next: bool) -> Result<(), String> {
        if !self.paths_as_built {
            return Err("a computed include (#include MACRO), with clang".into());
        }
        let mut names = Vec::new();
        for dir in self.dirs(includer, true) {
            let mut prefix = dir.into_os_string().into_vec();
            if !prefix.ends_with(b"/") {
                prefix.push(b'/');
            }
            for file in &self.read {
                if let Some(name) = file.as_os_str().as_bytes().strip_prefix(&prefix[..]) {
                    names.push(name.to_vec());
                }
            }
        }
        names.sort();
        names.dedup();
        // The macro may have given "name" or <name>, whose searches stop at different files.
        for name in names {
            for delimiter in [Delimiter::Quote, Delimiter::Angle] {
                let lookup = Lookup {
                    next,
                    ..Lookup::include(&name, delimiter)
                };
                self.lookup(includer, &lookup)?;
            }
        }
        Ok(())
    }

    /// Whether a file is at `path`, recorded as a probe the first time it is tried.
    fn try_path(&mut self, path: &Path, existence: bool) -> Result<bool, String> {
        if let Some(&present) = self.tried.get(path) {
            return Ok(present);
        }
        if path
            .ancestors()
            .skip(1)
            .any(|dir| self.missing.contains(dir))
        {
            return Ok(false);
        }
        let (present, meta) = found(path);
        let read = self.listed.contains(&absolute(Path::new("/"), path));
        let settled = |meta: &std::fs::Metadata| Stamp::of(meta).settled_before(self.scan_start);
        if present && !read && !meta.as_ref().is_some_and(settled) {
            return Err(format!("{} changed during the scan", path.display()));
        }
        if !present && existence {
            // Tested, not found: it may have been there during the scan only if the directory
            // it would be in changed since.
            let dir = existing_ancestor(path);
            if !dir.metadata().is_ok_and(|m| settled(&m)) {
                return Err(format!(
                    "{} changed while __has_include looked into it",
                    dir.display()
                ));
            }
        }
        self.tried.insert(path.to_owned(), present);
        // `bits/x.h` where there is no `bits/`: one probe of the missing directory covers every
        // name below it.
        let missing = (path.ancestors().skip(1))
            .take_while(|dir| !dir.is_dir())
            .last()
            .filter(|_| meta.is_none());
        let probe = match missing {
            Some(dir) => {
                self.missing.insert(dir.to_owned());
                Probe {
                    path: dir.to_owned(),
                    is: Found::NoDir,
                }
            }
            None => Probe {
                path: path.to_owned(),
                is: if present { Found::File } else { Found::NoFile },
            },
        };
        self.probes.push(probe);
        Ok(present)
    }
}

/// The deepest directory of `path` that exists (a new entry anywhere below it changes it).
fn existing_ancestor(path: &Path) -> &Path {
    let mut dir = path.parent().unwrap_or(Path::new(""));
    loop {
        let here = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if here.is_dir() || here == Path::new("/") || here == Path::new(".") {
            return here;
        }
        dir = dir.parent().unwrap_or(Path::new(""));
    }
}

#[cfg(test)]
mod tests;
