//! The include closure: every file a compile may read, found without running the preprocessor.
//! From the source (and the `-include` files and the compiler's implicit include), each name a
//! file may look up (`directives`: every `#include`, `#include_next`, `#import` and
//! `__has_include`, in every branch of every conditional) is searched for in the include search
//! list as the preprocessor searches for it, and what it finds is followed in turn. The result is
//! a superset of the files the preprocessor reads: the server, compiling against exactly these
//! files, finds every file the local compiler would, and its preprocessor reads the same ones.
//! The server then writes the dependency file, which names what it read.
//!
//! Where a lookup cannot be followed exactly the closure is not used and the compiler scans
//! (`Err`, with why): a computed include (`#include MACRO`), a header the lexer cannot read
//! (trigraphs), a precompiled header beside a header (`x.h.gch`), a search list the compiler did
//! not print.
//!
//! The search list comes from the compiler itself (`-E -v` on an empty file with the compile's
//! flags but its macros and inputs), recorded per compiler, flags, directory and environment,
//! and reused while each of its directories is the same directory (device and inode) and each
//! directory it left out as missing is still missing.

use std::{
    ffi::{OsStr, OsString},
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use homcc_proto::flags::{self, Token};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use super::{
    cache::{Key, ScanCache},
    captured,
    directives::{macro_hash, Delimiter, Lookup, Names},
    facts::{self, ReadFile},
    forced_includes,
    searchlist::{self, SearchList},
};
use crate::{classify::RemoteJob, compiler::CompilerInfo, paths::absolute};

/// A recorded search list, and what it depends on in the file system.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecordedSearch {
    pub quote: Vec<PathBuf>,
    pub bracket: Vec<PathBuf>,
    /// The directories of both lists, absolute, each with its device and inode.
    pub dirs: Vec<(PathBuf, u64, u64)>,
    /// The directories left out as missing, absolute.
    pub missing: Vec<PathBuf>,
}

impl RecordedSearch {
    /// Whether the compiler would print the same list now.
    fn holds(&self) -> bool {
        let same = |(dir, dev, ino): &(PathBuf, u64, u64)| {
            dir.metadata()
                .is_ok_and(|m| m.is_dir() && m.dev() == *dev && m.ino() == *ino)
        };
        self.dirs.iter().all(same) && !self.missing.iter().any(|dir| dir.is_dir())
    }
}

/// The include search list of `job`: recorded, or printed by the compiler and recorded.
pub(super) fn search_list(
    compiler: &Path,
    info: &CompilerInfo,
    job: &RemoteJob,
    cwd: &Path,
    cache: Option<&ScanCache>,
) -> Result<SearchList, String> {
    let args = search_args(job);
    let key = cache.and(info.proper.as_deref()).and_then(|proper| {
        let mut key_args: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
        key_args.push(OsStr::new("include search list"));
        Key::new(compiler, proper, &key_args, cwd)
    });
    if let (Some(cache), Some(key)) = (cache, key) {
        if let Some(recorded) = cache.search_list(key).filter(RecordedSearch::holds) {
            return Ok(SearchList {
                quote: recorded.quote,
                bracket: recorded.bracket,
                missing: recorded.missing,
                printed: true,
                ..SearchList::default()
            });
        }
    }
    let mut cmd = Command::new(compiler);
    cmd.args(&args)
        .args(["-E", "-v", "-x", job.language.name()])
        .arg("/dev/null")
        .env("LC_ALL", "C")
        .current_dir(cwd)
        .stdin(Stdio::null());
    let output = captured(&mut cmd, false).map_err(|_| "the compiler's -v run failed")?;
    let list = searchlist::parse(&output.stderr);
    if !list.printed {
        return Err("the compiler printed no include search list".into());
    }
    if !list.config_files.is_empty() {
        return Err("the compiler driver reads a configuration file".into());
    }
    if let (Some(cache), Some(key)) = (cache, key) {
        let dirs = (list.quote.iter().chain(&list.bracket))
            .filter_map(|dir| {
                let dir = cwd.join(dir);
                let meta = dir.metadata().ok()?;
                Some((dir, meta.dev(), meta.ino()))
            })
            .collect();
        let recorded = RecordedSearch {
            quote: list.quote.clone(),
            bracket: list.bracket.clone(),
            dirs,
            missing: list.missing.iter().map(|dir| cwd.join(dir)).collect(),
        };
        cache.store_search_list(key, &recorded);
    }
    Ok(list)
}

/// The flags of `job` that may change where `#include` looks: all but its inputs, its macros
/// and its forced includes (they change what is read, not where).
fn search_args(job: &RemoteJob) -> Vec<OsString> {
    let mut args = Vec::with_capacity(job.scan_args.len());
    for token in flags::tokens(&job.scan_args) {
        match token {
            Token::Input(_) => {}
            Token::Flag(flag)
                if matches!(flag.rule.spelling, "-D" | "-U" | "-include" | "-imacros") => {}
            Token::Flag(flag) => args.extend(flag.args().map(OsStr::to_owned)),
            Token::ResponseFile(arg) | Token::Unknown(arg) => args.push(arg.to_owned()),
        }
    }
    args
}

/// Every file `job` may read, with its facts, or why the closure cannot tell.
pub(super) fn closure(
    info: &CompilerInfo,
    job: &RemoteJob,
    cwd: &Path,
    search: &SearchList,
    store: Option<&facts::FactStore>,
) -> Result<Vec<ReadFile>, String> {
    let absolute_dirs = |dirs: &[PathBuf]| dirs.iter().map(|d| cwd.join(d)).collect();
    let mut walk = Walk {
        quote: absolute_dirs(&search.quote),
        bracket: absolute_dirs(&search.bracket),
        tried: Tried::default(),
        walked: FxHashSet::default(),
        queued: FxHashSet::default(),
        batch: Vec::new(),
        computed: Vec::new(),
        pch: true,
    };
    walk.queue(cwd.join(&job.source));
    let forced = forced_includes(&job.scan_args).ok_or("a forced include without its name")?;
    for name in &forced {
        walk.lookup(
            cwd,
            &Lookup::include(name.as_os_str().as_bytes(), Delimiter::Quote),
        )?;
    }
    walk.pch = !info.identity.is_clang();
    for implicit in &info.implicit_includes {
        let Some(name) = implicit.file_name() else {
            continue;
        };
        walk.lookup(cwd, &Lookup::include(name.as_bytes(), Delimiter::Angle))?;
    }
    let trigraphs = trigraphs_on(&job.scan_args);
    let mut session = facts::Session::new(store);
    let mut macros = Macros::from_command(&job.scan_args);
    let mut files: Vec<ReadFile> = Vec::new();
    let mut in_manifest: FxHashSet<PathBuf> = FxHashSet::default();
    // Breadth first, a level of the include tree at a time: each level's files are read (or
    // their facts found) together, in parallel when there is much to read. Then the computed
    // includes take every header name their macro may stand for, which may find more files.
    loop {
        while !walk.batch.is_empty() {
            let batch = std::mem::take(&mut walk.batch);
            let read = (session.read_files(cwd, &batch, true)).map_err(|e| format!("{e:#}"))?;
            let mut names: FxHashMap<&Path, &Names> = FxHashMap::default();
            for file in &read {
                let file_names = match &file.names {
                    Some(Ok(names)) if names.trigraphs && trigraphs => {
                        return Err(format!(
                            "{}: a trigraph (??= or ??/), with trigraphs on",
                            file.read_from.display()
                        ))
                    }
                    Some(Ok(names)) => names,
                    Some(Err(why)) => return Err(format!("{}: {why}", file.read_from.display())),
                    None => return Err(format!("{}: not lexed", file.read_from.display())),
                };
                macros.add(file_names);
                names.insert(file.path.as_path(), file_names);
            }
            // Every spelling of a file is an includer of its own: `"name"` searches its
            // directory.
            for path in &batch {
                let Some(names) = names.get(absolute(cwd, path).as_path()) else {
                    continue;
                };
                let includer = path.parent().unwrap_or(Path::new("/"));
                for lookup in &names.lookups {
                    walk.lookup(includer, lookup)?;
                }
            }
            files.extend(
                read.into_iter()
                    .filter(|f| in_manifest.insert(f.path.clone())),
            );
        }
        for (includer, macro_name, next) in walk.computed.clone() {
            for (header, delimiter) in macros.headers(&macro_name) {
                let lookup = Lookup {
                    next,
                    ..Lookup::include(&header, delimiter)
                };
                walk.lookup(&includer, &lookup)?;
            }
        }
        if walk.batch.is_empty() {
            break;
        }
    }
    session.finish();
    if let Some(name) = macros.unnamed_has_include() {
        return Err(format!(
            "{} with an argument that is not a header name",
            String::from_utf8_lossy(name)
        ));
    }
    if let Some((_, name, _)) = (walk.computed.iter()).find(|(_, name, _)| macros.other(name)) {
        return Err(format!(
            "a computed include of {}, a macro defined other than as a header name",
            String::from_utf8_lossy(name)
        ));
    }
    Ok(files)
}

/// Whether the command turns trigraphs on: `-trigraphs`, `-ansi`, or an ISO `-std` (only the
/// GNU dialects leave them off; the ISO C++17 and later have none, which is not told apart).
pub(super) fn trigraphs_on(args: &[OsString]) -> bool {
    args.iter().any(|arg| {
        let arg = arg.as_bytes();
        arg == b"-trigraphs"
            || arg == b"-ansi"
            || arg
                .strip_prefix(b"-std=")
                .is_some_and(|std| !std.starts_with(b"gnu"))
    })
}

/// The macros a computed include may use: defined as a header name (on the command line or in
/// a file of the closure), or otherwise.
#[derive(Debug, Default)]
struct Macros {
    headers: FxHashMap<Vec<u8>, Vec<(Vec<u8>, Delimiter)>>,
    /// Hashes of the names of macros defined otherwise ([`macro_hash`]).
    others: FxHashSet<u64>,
    /// Identifiers with `has_include` in them used without a header name.
    has_include_uses: FxHashSet<Vec<u8>>,
}

impl Macros {
    /// The command's `-D` macros.
    fn from_command(args: &[OsString]) -> Macros {
        let mut macros = Macros::default();
        for token in flags::tokens(args) {
            let Token::Flag(flag) = token else { continue };
            let Some(value) = flag.value().filter(|_| flag.rule.spelling == "-D") else {
                continue;
            };
            let value = value.as_bytes();
            let name_end = (value.iter())
                .position(|&b| b == b'=' || b == b'(')
                .unwrap_or(value.len());
            let name = &value[..name_end];
            let header = (value.get(name_end) == Some(&b'='))
                .then(|| header_name(value[name_end + 1..].trim_ascii()))
                .flatten();
            match header {
                Some(header) => macros
                    .headers
                    .entry(name.to_vec())
                    .or_default()
                    .push(header),
                None => {
                    macros.others.insert(macro_hash(name));
                }
            }
        }
        macros
    }

    /// The macros a file of the closure defines.
    fn add(&mut self, names: &Names) {
        for defined in &names.header_macros {
            let headers = self.headers.entry(defined.name.clone()).or_default();
            let header = (defined.header.clone(), defined.delimiter);
            if !headers.contains(&header) {
                headers.push(header);
            }
        }
        self.others.extend(names.other_macros.iter().copied());
        (self.has_include_uses).extend(names.has_include_uses.iter().cloned());
    }

    /// A use of `__has_include` (or of a macro with `has_include` in its name) whose lookup
    /// cannot be named: the operator itself, or a macro, used without a header name.
    fn unnamed_has_include(&self) -> Option<&[u8]> {
        let operator = |name: &[u8]| name == b"__has_include" || name == b"__has_include_next";
        (self.has_include_uses.iter())
            .find(|name| operator(name) || self.other(name) || self.headers.contains_key(*name))
            .map(Vec::as_slice)
    }

    /// The header names `name` is defined as, so far.
    fn headers(&self, name: &[u8]) -> Vec<(Vec<u8>, Delimiter)> {
        self.headers.get(name).cloned().unwrap_or_default()
    }

    /// Whether `name` is (maybe: by its hash) defined other than as a header name.
    fn other(&self, name: &[u8]) -> bool {
        self.others.contains(&macro_hash(name))
    }
}

/// `"name"` or `<name>`, as a macro's whole value.
fn header_name(value: &[u8]) -> Option<(Vec<u8>, Delimiter)> {
    let (delimiter, inner) = match value {
        [b'"', inner @ .., b'"'] => (Delimiter::Quote, inner),
        [b'<', inner @ .., b'>'] => (Delimiter::Angle, inner),
        _ => return None,
    };
    let closing = if delimiter == Delimiter::Quote {
        b'"'
    } else {
        b'>'
    };
    (!inner.is_empty() && !inner.contains(&closing) && !inner.contains(&b'\n'))
        .then(|| (inner.to_vec(), delimiter))
}

struct Walk {
    /// The search list's directories, absolute.
    quote: Vec<PathBuf>,
    bracket: Vec<PathBuf>,
    /// What the paths tried hold.
    tried: Tried,
    /// Whether the compiler looks for a precompiled header (`x.h.gch`) beside every header it
    /// includes (gcc; clang only for `-include`).
    pch: bool,
    /// Each lookup walked: how it searches, from where (`"name"`) and the name.
    walked: FxHashSet<Vec<u8>>,
    /// Every file found, as found (absolute, not normalised).
    queued: FxHashSet<PathBuf>,
    /// The files found since the last level was read.
    batch: Vec<PathBuf>,
    /// The computed includes met: the includer's directory, the macro and whether `_next`.
    computed: Vec<(PathBuf, Vec<u8>, bool)>,
}

impl Walk {
    fn queue(&mut self, path: PathBuf) {
        if self.queued.insert(path.clone()) {
            self.batch.push(path);
        }
    }

    /// Searches `lookup` from a file in `includer` as the preprocessor does: `"name"` in the
    /// includer's directory, the quote dirs, then the bracket dirs; `<name>` in the bracket dirs;
    /// up to the first file found. `_next` starts after the includer's own place in the list,
    /// which depends on how the includer was found: every file it may find is taken. A computed
    /// include is noted, to be searched for each header name its macro may stand for.
    fn lookup(&mut self, includer: &Path, lookup: &Lookup) -> Result<(), String> {
        let Some(name) = &lookup.name else {
            let Some(macro_name) = &lookup.macro_name else {
                return Err("a computed include (#include MACRO) of more than a macro name".into());
            };
            let computed = (includer.to_owned(), macro_name.clone(), lookup.next);
            if !self.computed.contains(&computed) {
                self.computed.push(computed);
            }
            return Ok(());
        };
        let quoted = lookup.quoted();
        if !self.walked.insert(lookup.search_key(includer, name, false)) {
            return Ok(());
        }
        let name = Path::new(OsStr::from_bytes(name));
        let dirs = match quoted {
            true => 1 + self.quote.len() + self.bracket.len(),
            false => self.bracket.len(),
        };
        for i in 0..dirs {
            let dir = match (quoted, i) {
                (true, 0) => includer,
                (true, i) if i <= self.quote.len() => &self.quote[i - 1],
                (true, i) => &self.bracket[i - 1 - self.quote.len()],
                (false, i) => &self.bracket[i],
            };
            if self.tried.missing_subdir(dir, name) {
                continue;
            }
            let path = dir.join(name);
            if self.tried.is_file(&path) {
                if self.pch && std::fs::symlink_metadata(path_with(&path, ".gch")).is_ok() {
                    return Err(format!("a precompiled header beside {}", path.display()));
                }
                self.queue(path);
                if !lookup.next {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// What the paths a walk tried hold, each looked at once.
#[derive(Debug, Default)]
struct Tried {
    /// Each path tried, and whether a file is there.
    is_file: FxHashMap<OsString, bool>,
    /// Each directory of a name's own directories (`bits/` of `bits/x.h`) tried, and whether it
    /// is there.
    subdirs: FxHashMap<OsString, bool>,
}

impl Tried {
    /// Whether a lookup finds a file at `path` (a directory is skipped, as the compilers skip it).
    fn is_file(&mut self, path: &Path) -> bool {
        if let Some(&is) = self.is_file.get(path.as_os_str()) {
            return is;
        }
        let is = path.metadata().is_ok_and(|m| !m.is_dir());
        self.is_file.insert(path.as_os_str().to_owned(), is);
        is
    }

    /// Whether a directory of `name` below `dir` is missing (`bits/x.h` where there is no
    /// `bits/`): then nothing below it needs a look of its own.
    fn missing_subdir(&mut self, dir: &Path, name: &Path) -> bool {
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

/// `path` with `suffix` appended to its last component.
fn path_with(path: &Path, suffix: &str) -> PathBuf {
    let mut with = path.as_os_str().to_owned();
    with.push(suffix);
    PathBuf::from(with)
}

#[cfg(test)]
mod tests;
