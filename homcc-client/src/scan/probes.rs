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
//! Each path is looked at without following a last component that is a symlink (then followed):
//! so the record knows which probes are of symlinks. Every directory probes are in joins the
//! record with its stamp ([`ProbedDir`]) when that had settled before the scan: the probes saw it
//! as it was all along. While such a directory keeps its stamp, its entries are the same, and so
//! is every probe in it but those of symlinks, whose targets may change without it: a replay
//! checks the directory, not its probes.
//!
//! Recording races with the tree: a lookup the compiler made may be answered otherwise a moment
//! later, when the paths are tried here. So a path that exists here but was not read must have
//! been there, unchanged, since before the scan (its stamp settled), a directory the compiler
//! found missing must still be missing, and a name only tested (`__has_include`) and not found
//! must be missing from a directory that has not changed since before the scan. Otherwise the
//! scan is not recorded.

use std::{
    collections::HashSet,
    ffi::{OsStr, OsString},
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    time::SystemTime,
};

use rustc_hash::{FxHashMap, FxHashSet};
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
    /// Whether it must be tried even where its directory kept its stamp: what is there is a
    /// symlink, whose target can change without the directory.
    pub linked: bool,
}

/// A directory probes are in, and its stamp when they were made (settled before the scan).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbedDir {
    pub path: PathBuf,
    pub stamp: Stamp,
}

/// What the lookups of a scan found: the probes, and the directories they are in that had
/// settled.
#[derive(Debug, Default)]
pub struct Probes {
    pub probes: Vec<Probe>,
    pub dirs: Vec<ProbedDir>,
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
    fn seen(path: PathBuf, is: Found) -> Probe {
        Probe {
            path,
            is,
            linked: false,
        }
    }

    /// A directory found missing: `linked` if anything is there (a symlink may come to point to
    /// a directory without its own directory changing).
    fn no_dir(path: PathBuf) -> Probe {
        Probe {
            linked: std::fs::symlink_metadata(&path).is_ok(),
            ..Probe::seen(path, Found::NoDir)
        }
    }

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

/// [`found`], and whether `path`'s last component is a symlink (looked at first, unfollowed).
fn found_here(path: &Path) -> (bool, Option<std::fs::Metadata>, bool) {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_symlink() => {
            let (present, meta) = found(path);
            (present, meta, true)
        }
        Ok(meta) => (!meta.is_dir(), Some(meta), false),
        Err(_) => (false, None, false),
    }
}

/// The files a `__has_include` of one of `files` (each with its names) may find: every file its
/// search passes. The compiler lists only the files it read, and one only tested is not read;
/// the remote compile must find it all the same, so it joins the manifest.
pub fn tested_files<'a>(
    search: &SearchList,
    cwd: &Path,
    files: impl Iterator<Item = (&'a Path, &'a [Lookup])>,
) -> Vec<PathBuf> {
    let absolute_dirs =
        |dirs: &[PathBuf]| -> Vec<PathBuf> { dirs.iter().map(|d| cwd.join(d)).collect() };
    let (quote, bracket) = (absolute_dirs(&search.quote), absolute_dirs(&search.bracket));
    let mut seen = HashSet::new();
    let mut tested = Vec::new();
    for (file, names) in files {
        let includer = file.parent().unwrap_or(Path::new("/"));
        for lookup in names.iter().filter(|l| l.existence) {
            let Some(name) = &lookup.name else { continue };
            let quoted = lookup.quoted();
            let dirs = (quoted.then_some(includer).into_iter())
                .chain(quote.iter().filter(|_| quoted).map(PathBuf::as_path))
                .chain(bracket.iter().map(PathBuf::as_path));
            for dir in dirs {
                let path = dir.join(OsStr::from_bytes(name));
                if path.is_file() && seen.insert(path.clone()) {
                    tested.push(path);
                }
            }
        }
    }
    tested
}

/// A file a scan read, as the lookups need it.
#[derive(Debug)]
pub struct Includer<'a> {
    /// As the compiler named it (from the working directory, or absolute).
    pub read_from: &'a Path,
    /// Absolute and normal.
    pub path: &'a Path,
    /// The names it may look up.
    pub names: &'a [Lookup],
}

/// What a scan read, as the lookups need it.
#[derive(Debug)]
pub struct Lookups<'a> {
    pub search: &'a SearchList,
    pub cwd: &'a Path,
    /// Every file read.
    pub files: Vec<Includer<'a>>,
    /// `-include` and `-imacros` names: searched from the working directory on.
    pub forced: Vec<PathBuf>,
    /// Headers the compiler includes on its own (`stdc-predef.h`): searched like `<name>`.
    pub implicit: Vec<PathBuf>,
    /// Whether the compiler names each file read by the path it built (gcc), so that the name
    /// a computed include used can be told from the files read.
    pub paths_as_built: bool,
}

/// The probes of every lookup, or why the scan cannot be recorded.
pub fn probes(lookups: &Lookups<'_>, scan_start: SystemTime) -> Result<Probes, String> {
    let listed: FxHashSet<OsString> = (lookups.files.iter())
        .map(|file| file.path.as_os_str().to_owned())
        .collect();
    let absolute_dirs = |dirs: &[PathBuf]| dirs.iter().map(|d| lookups.cwd.join(d)).collect();
    let mut walk = Walk {
        quote: absolute_dirs(&lookups.search.quote),
        bracket: absolute_dirs(&lookups.search.bracket),
        computed_names: FxHashMap::default(),
        read: (lookups.files.iter())
            .map(|file| lookups.cwd.join(file.read_from))
            .collect(),
        paths_as_built: lookups.paths_as_built,
        listed,
        scan_start,
        tried: FxHashMap::default(),
        walked: FxHashSet::default(),
        dirs: FxHashMap::default(),
        probed_dirs: FxHashSet::default(),
        probes: Vec::new(),
    };
    for dir in &lookups.search.missing {
        let probe = Probe::no_dir(lookups.cwd.join(dir));
        if !probe.holds() {
            return Err(format!("{} appeared during the scan", dir.display()));
        }
        walk.push(probe);
    }
    for file in &lookups.files {
        let includer = file.read_from.parent().unwrap_or(Path::new(""));
        for lookup in file.names {
            walk.lookup(includer, lookup)?;
        }
    }
    let forced = (lookups.forced.iter()).map(|name| (name, Delimiter::Quote));
    let implicit = (lookups.implicit.iter()).map(|name| (name, Delimiter::Angle));
    for (name, delimiter) in forced.chain(implicit) {
        let lookup = Lookup::include(name.as_os_str().as_bytes(), delimiter);
        walk.lookup(Path::new(""), &lookup)?;
    }
    Ok(walk.finish())
}

struct Walk {
    /// The search list's directories, from the working directory.
    quote: Vec<PathBuf>,
    bracket: Vec<PathBuf>,
    /// The names a computed include in each directory may have used.
    computed_names: FxHashMap<PathBuf, Vec<Vec<u8>>>,
    /// The files read, as the compiler named them, from the working directory.
    read: Vec<PathBuf>,
    paths_as_built: bool,
    /// The files read, absolute and normal.
    /// The files read, absolute and normal.
    listed: FxHashSet<OsString>,
    scan_start: SystemTime,
    /// Each path tried so far, and whether a file is there.
    tried: FxHashMap<OsString, bool>,
    /// Each lookup walked so far: how it searches, from where (`"name"`) and the name.
    walked: FxHashSet<Vec<u8>>,
    /// Directories found missing (nothing below them needs a probe of its own), and found.
    dirs: FxHashMap<OsString, bool>,
    /// The directories probes are in.
    probed_dirs: FxHashSet<PathBuf>,
    probes: Vec<Probe>,
}

impl Walk {
    /// Tries `lookup` from a file in `includer` as the compiler searches: `"name"` in the
    /// includer's directory, the quote dirs, then the bracket dirs; `<name>` in the bracket dirs;
    /// up to the first file found, or through every directory for `_next` (which starts after
    /// the includer's place in the list).
    fn lookup(&mut self, includer: &Path, lookup: &Lookup) -> Result<(), String> {
        let Some(name) = &lookup.name else {
            return self.computed(includer, lookup.next);
        };
        let quoted = lookup.quoted();
        if !(self.walked).insert(lookup.search_key(includer, name, lookup.existence)) {
            return Ok(());
        }
        let name = Path::new(OsStr::from_bytes(name));
        for i in 0..self.dirs(quoted) {
            let dir = self.dir(includer, quoted, i).to_owned();
            if self.try_path(&dir, name, lookup.existence)? && !lookup.next {
                break;
            }
        }
        Ok(())
    }

    /// Whether `path` (absolute) is a file read.
    fn is_listed(&self, path: &Path) -> bool {
        let bytes = path.as_os_str().as_bytes();
        let dotted = bytes.windows(3).any(|w| w == b"/./")
            || bytes.ends_with(b"/.")
            || bytes.windows(4).any(|w| w == b"/../");
        let normal = !dotted;
        match normal {
            true => self.listed.contains(path.as_os_str()),
            false => (self.listed).contains(absolute(Path::new("/"), path).as_os_str()),
        }
    }

    /// How many directories a lookup searches: for `"name"` (`quoted`) the includer's, the quote
    /// dirs and the bracket dirs, else the bracket dirs.
    fn dirs(&self, quoted: bool) -> usize {
        match quoted {
            true => 1 + self.quote.len() + self.bracket.len(),
            false => self.bracket.len(),
        }
    }

    /// The `i`th directory a lookup from a file in `includer` searches.
    fn dir<'a>(&'a self, includer: &'a Path, quoted: bool, i: usize) -> &'a Path {
        match (quoted, i) {
            (true, 0) => includer,
            (true, i) if i <= self.quote.len() => &self.quote[i - 1],
            (true, i) => &self.bracket[i - 1 - self.quote.len()],
            (false, i) => &self.bracket[i],
        }
    }

    /// Tries, for a computed include in `includer`, every name it may have used (each file read,
    /// after each directory it searches: `x.h` of `dir/x.h` found in `dir`), in either form.
    fn computed(&mut self, includer: &Path, next: bool) -> Result<(), String> {
        if !self.paths_as_built {
            return Err("a computed include (#include MACRO), with clang".into());
        }
        let names = match self.computed_names.get(includer) {
            Some(names) => names.clone(),
            None => {
                let mut names = Vec::new();
                for i in 0..self.dirs(true) {
                    let mut prefix = self.dir(includer, true, i).as_os_str().as_bytes().to_vec();
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
                self.computed_names
                    .insert(includer.to_owned(), names.clone());
                names
            }
        };
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

    /// Whether a file is at `dir/name`, recorded as a probe the first time it is tried.
    fn try_path(&mut self, dir: &Path, name: &Path, existence: bool) -> Result<bool, String> {
        let path = &dir.join(name);
        // A path an #include tried already: the compile found nothing there then, and a file
        // that appeared for its __has_include would have to be gone again now.
        if let Some(&present) = self.tried.get(path.as_os_str()) {
            return Ok(present);
        }
        let hidden = self.missing_subdir(dir, name);
        let scan_start = self.scan_start;
        let settled = |meta: &std::fs::Metadata| Stamp::of(meta).settled_before(scan_start);
        let (present, meta, linked) = match hidden {
            true => (false, None, false),
            false => found_here(path),
        };
        if present && !meta.as_ref().is_some_and(settled) && !self.is_listed(path) {
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
        self.tried.insert(path.as_os_str().to_owned(), present);
        if !hidden {
            let is = match present {
                true => Found::File,
                false => Found::NoFile,
            };
            self.push(Probe {
                linked,
                ..Probe::seen(path.to_owned(), is)
            });
        }
        Ok(present)
    }

    /// Adds `probe`, noting its directory.
    fn push(&mut self, probe: Probe) {
        if let Some(dir) = probe.path.parent() {
            if !self.probed_dirs.contains(dir) {
                self.probed_dirs.insert(dir.to_owned());
            }
        }
        self.probes.push(probe);
    }

    /// The probes, and the directories they are in that have not changed since before the scan
    /// (looked at now, after the probes): the probes saw them as they were all along.
    fn finish(self) -> Probes {
        let scan_start = self.scan_start;
        let mut dirs: Vec<ProbedDir> = (self.probed_dirs.into_iter())
            .filter_map(|path| {
                let stamp = Stamp::of(&path.metadata().ok()?);
                stamp
                    .settled_before(scan_start)
                    .then_some(ProbedDir { path, stamp })
            })
            .collect();
        dirs.sort_by(|a, b| a.path.cmp(&b.path));
        Probes {
            probes: self.probes,
            dirs,
        }
    }

    /// Whether a directory of `name` below `dir` is missing (`bits/x.h` where there is no
    /// `bits/`): each is looked at once, and the first time one is found missing it is a probe
    /// (it covers every name below it).
    fn missing_subdir(&mut self, dir: &Path, name: &Path) -> bool {
        let mut parts: Vec<&Path> = (name.ancestors().skip(1))
            .filter(|part| !part.as_os_str().is_empty())
            .collect();
        parts.reverse();
        for part in parts {
            let subdir = dir.join(part);
            match self.dirs.get(subdir.as_os_str()) {
                Some(true) => continue,
                Some(false) => return true,
                None => {
                    let exists = subdir.is_dir();
                    self.dirs.insert(subdir.clone().into_os_string(), exists);
                    if !exists {
                        self.push(Probe::no_dir(subdir));
                        return true;
                    }
                }
            }
        }
        false
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
