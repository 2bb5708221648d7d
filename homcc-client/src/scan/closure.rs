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
//! (`Err`, with why): a computed include of an unknown header, a file the lexer may misread for
//! the command's dialect (`rules::Dialect`: trigraphs, raw strings, digit separators), a
//! precompiled header the compiler may use, a name or path that climbs where the server's tree
//! would climb elsewhere, Microsoft's include rules, a search list the compiler did not print or
//! with a header map or framework in it (docs/include-closure.md lists them all).
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
    directives::{Delimiter, Lookup, Names},
    facts::{self, ReadFile},
    forced_includes,
    searchlist::{self, SearchList},
};
mod rules;
mod tried;

pub(super) use rules::Dialect;
use rules::Macros;
use tried::{climbs_within, path_with, Tried};

use crate::{classify::RemoteJob, compiler::CompilerInfo, paths::absolute};

/// A recorded search list, and what it depends on in the file system.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecordedSearch {
    pub quote: Vec<PathBuf>,
    pub bracket: Vec<PathBuf>,
    /// The directories of both lists and those left out as duplicates, absolute, each with its
    /// device and inode.
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
    if let Some(entry) = list.unusual.first() {
        return Err(format!("the include search list has {entry}"));
    }
    if let (Some(cache), Some(key)) = (cache, key) {
        let dirs = (list
            .quote
            .iter()
            .chain(&list.bracket)
            .chain(&list.duplicates))
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
    let ms = ["-fms-compatibility", "-fms-extensions", "--driver-mode=cl"];
    if let Some(flag) =
        (job.scan_args.iter()).find(|arg| ms.iter().any(|ms| arg.as_bytes() == ms.as_bytes()))
    {
        // clang then searches the directory of every includer up the stack, and follows
        // `#pragma include_alias`.
        return Err(format!(
            "{}: Microsoft's include rules",
            flag.to_string_lossy()
        ));
    }
    let mut macros = Macros::from_command(&job.scan_args)?;
    let clang = info.identity.is_clang();
    let absolute_dirs = |dirs: &[PathBuf]| dirs.iter().map(|d| cwd.join(d)).collect();
    let mut walk = Walk {
        quote: absolute_dirs(&search.quote),
        bracket: absolute_dirs(&search.bracket),
        tried: Tried::default(),
        walked: FxHashSet::default(),
        queued: FxHashSet::default(),
        batch: Vec::new(),
        computed: Vec::new(),
        pch: !clang,
        pch_everywhere: !clang,
    };
    walk.queue(cwd.join(&job.source));
    let forced = forced_includes(&job.scan_args).ok_or("a forced include without its name")?;
    // clang's driver turns `-include x.h` into the precompiled `x.h.pch` or `x.h.gch` beside the
    // name as given.
    let pch = (forced.iter().filter(|_| clang))
        .flat_map(|name| [".pch", ".gch"].map(|suffix| cwd.join(path_with(name, suffix))))
        .find(|pch| pch.symlink_metadata().is_ok());
    if let Some(pch) = pch {
        return Err(format!("a precompiled header {}", pch.display()));
    }
    for name in &forced {
        walk.lookup(
            cwd,
            &Lookup::include(name.as_os_str().as_bytes(), Delimiter::Quote),
        )?;
    }
    for implicit in &info.implicit_includes {
        let Some(name) = implicit.file_name() else {
            continue;
        };
        walk.lookup(cwd, &Lookup::include(name.as_bytes(), Delimiter::Angle))?;
    }
    let dialect = Dialect::of(job.language, &job.scan_args);
    let mut session = facts::Session::new(store);
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
                let file_names = dialect.names_of(file)?;
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
            // gcc takes a precompiled header only for the first include of the source.
            walk.pch_everywhere = false;
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
    // A macro defined nowhere cannot be reached (the preprocessor would stop), unless the
    // compiler defines it (`__FILE__`, `__BASE_FILE__`: a reserved name).
    let reserved = |name: &[u8]| matches!(name, [b'_', b'_' | b'A'..=b'Z', ..]);
    let unknown = (walk.computed.iter())
        .find(|(_, name, _)| reserved(name) && macros.headers(name).is_empty());
    if let Some((_, name, _)) = unknown {
        return Err(format!(
            "a computed include of {}, which the compiler may define",
            String::from_utf8_lossy(name)
        ));
    }
    Ok(files)
}

struct Walk {
    /// The search list's directories, absolute.
    quote: Vec<PathBuf>,
    bracket: Vec<PathBuf>,
    /// What the paths tried hold.
    tried: Tried,
    /// Whether a precompiled header (`x.h.gch`) beside a header found declines the closure
    /// (gcc), and whether one in any directory searched does (gcc, for the `-include` files and
    /// the source's own includes: gcc looks for one in each directory before the header).
    pch: bool,
    pch_everywhere: bool,
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
        if climbs_within(name) {
            // `sub/../x.h` needs `sub/` to exist, which the server has only with a file in it.
            return Err(format!(
                "#include of {}, a name that climbs",
                name.display()
            ));
        }
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
            if self.tried.climbs_a_link(&path) {
                return Err(format!("{}: a .. after a symbolic link", path.display()));
            }
            if self.pch_everywhere && self.tried.exists(&path_with(&path, ".gch")) {
                return Err(format!("a precompiled header for {}", path.display()));
            }
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

#[cfg(test)]
mod tests;
