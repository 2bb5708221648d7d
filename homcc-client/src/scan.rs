//! The dependency scan: the compiler itself lists every file the compile reads (sources, project
//! headers and system headers); each is hashed with blake3. When the user asked for a dependency
//! file, the same local run writes it, so it has the local bytes: one preprocessor run per
//! compile, in every form (`-M`; `-M -MF` for `-MD`; for `-MMD`, whose file leaves out system
//! headers, gcc's `-MM -MF` with `-H` listing every header, or `-E` read through its line markers
//! (`markers`) for clang and when `-include` files are forced in, which `-H` does not list).
//!
//! The run also prints the include search list (`-v`, `searchlist`), and a scan whose inputs are
//! unchanged is answered from the scan cache (`cache`) without running the compiler; `record`
//! makes the record of a new scan.

use std::{
    ffi::{OsStr, OsString},
    io::{Read as _, Seek as _},
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::SystemTime,
};

use anyhow::Context;
use homcc_proto::{
    flags::{self, Token},
    ManifestEntry,
};

use crate::{
    classify::{Depfile, RemoteJob},
    compiler::CompilerInfo,
    depfile::parse_dependencies,
    paths::absolute,
};
pub use cache::ScanCache;
use cache::{Key, Replay};
use facts::ReadFile;
use searchlist::SearchList;
use stamp::Stamp;

mod cache;
mod closure;
mod directives;
mod facts;
pub mod markers;
mod probes;
mod record;
pub(crate) mod searchlist;
mod stamp;

/// A file of the manifest and where the client reads it.
#[derive(Debug, Clone)]
pub struct ScannedFile {
    pub entry: ManifestEntry,
    /// The path as the compiler named it (it may differ from the normalised one through symlinks).
    pub read_from: PathBuf,
}

/// Why the scan gave no file list; the compile then runs locally, where the compiler reports.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("dependency scan failed (the local compile will report why)")]
    CompilerFailed,
    #[error("dependency scan: {0:#}")]
    Other(anyhow::Error),
}

/// The files a compile reads, and what the scan cache did.
#[derive(Debug)]
pub struct Scan {
    pub files: Vec<ScannedFile>,
    pub cache: CacheUse,
    /// Why the include closure was not used, where it was tried.
    pub no_closure: Option<String>,
    /// The record of a closure, to be stored once the compile has written the dependency file.
    pub pending: Option<PendingRecord>,
}

/// The record of an include closure: it is complete, and stored, once the compile's dependency
/// file is written (by the server or locally).
#[derive(Debug)]
pub struct PendingRecord {
    cache: ScanCache,
    key: Key,
    record: cache::Record,
}

impl PendingRecord {
    /// Stores the record with `job`'s dependency file as it is now (once its compile succeeded).
    pub fn store(mut self, job: &RemoteJob) {
        if let Ok(depfile) = record::depfile_bytes(job) {
            self.record.depfile = depfile;
            self.cache.store(self.key, &self.record);
        }
    }
}

/// What the scan cache did for a scan, as `--verbose` says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheUse {
    /// Off, or nothing to scan.
    Off,
    /// The recorded scan held: the compiler did not run.
    Hit,
    /// The compiler ran (the recorded scan did not hold, for this reason) and its scan was
    /// recorded, or could not be (`Err`, why).
    Ran {
        why: String,
        recorded: Result<(), String>,
    },
    /// The files are the include closure (`closure`): the compiler did not run, and the server
    /// writes the dependency file. Its record is stored once the compile succeeds, or cannot be
    /// (`Err`, why).
    Closure { recorded: Result<(), String> },
}

/// What one compiler run listed.
struct Listed {
    /// Every file read, as the compiler named it (relative to the working directory, or absolute).
    files: Vec<PathBuf>,
    search: SearchList,
}

/// Lists every file `job` reads (writing its dependency file, if any) and hashes them: from the
/// scan cache when a recorded scan holds, else (with `closure`) its include closure, which
/// leaves the dependency file to the server, else by running the compiler (and recording the
/// run).
pub fn scan(
    compiler: &Path,
    info: &CompilerInfo,
    job: &RemoteJob,
    cwd: &Path,
    cache: Option<&ScanCache>,
    closure: bool,
) -> Result<Scan, ScanError> {
    let facts = cache.map(ScanCache::facts);
    let read = |paths: &[PathBuf], names| {
        facts::read_files(cwd, paths, facts, names).map_err(ScanError::Other)
    };
    // The compiler's scan, and every file it lists (or a `__has_include` of theirs may find).
    let scan_now = || -> Result<(Listed, Vec<ReadFile>), ScanError> {
        let listed = run(compiler, info, job, cwd)?;
        let files = with_tested(cwd, &listed, read(&listed.files, true)?, read)?;
        Ok((listed, files))
    };
    if job.language.is_preprocessed() {
        // Nothing else is read: the preprocessor already ran.
        let files = read(std::slice::from_ref(&job.source), false)?;
        return Ok(Scan {
            files: files.iter().map(scanned).collect(),
            cache: CacheUse::Off,
            no_closure: None,
            pending: None,
        });
    }
    let key = cache.and(info.proper.as_deref()).and_then(|proper| {
        let args = key_args(job);
        Key::new(compiler, proper, &args, cwd)
    });
    let why = match (cache, key) {
        (Some(cache), Some(key)) => match cache.replay(key) {
            Replay::Hit { files, depfile } => {
                if let (Some(dep), Some(bytes)) = (&job.depfile, depfile) {
                    crate::output::write_atomically(&dep.path, &bytes)
                        .with_context(|| format!("cannot write {}", dep.path.display()))
                        .map_err(ScanError::Other)?;
                }
                return Ok(Scan {
                    files,
                    cache: CacheUse::Hit,
                    no_closure: None,
                    pending: None,
                });
            }
            Replay::Miss { why } => Some(why),
        },
        _ => None,
    };
    let started = SystemTime::now();
    let no_closure = match closure {
        true => match include_closure(compiler, info, job, cwd, cache) {
            Ok(listed) => {
                let pending = match (cache, key) {
                    (Some(cache), Some(key)) => record::record(
                        info, job, cwd, &listed.0, &listed.1, started, None,
                    )
                    .map(|record| PendingRecord {
                        cache: cache.clone(),
                        key,
                        record,
                    }),
                    _ => Err("the scan cache is off".into()),
                };
                return Ok(Scan {
                    files: listed.1.iter().map(scanned).collect(),
                    cache: CacheUse::Closure {
                        recorded: pending.as_ref().map(|_| ()).map_err(Clone::clone),
                    },
                    no_closure: None,
                    pending: pending.ok(),
                });
            }
            Err(why) => Some(why),
        },
        false => None,
    };
    let started = SystemTime::now();
    let (listed, files) = scan_now()?;
    let cache = match (cache, key, why) {
        (Some(cache), Some(key), Some(why)) => {
            let recorded = record::depfile_bytes(job)
                .and_then(|depfile| {
                    record::record(info, job, cwd, &listed, &files, started, depfile)
                })
                .map(|record| cache.store(key, &record));
            CacheUse::Ran { why, recorded }
        }
        _ => CacheUse::Off,
    };
    Ok(Scan {
        files: files.iter().map(scanned).collect(),
        cache,
        no_closure,
        pending: None,
    })
}

/// The include closure of `job` (`closure`) with the search list it used, or why it is not
/// used: the server writes the dependency file, which it can only where the compiler driver
/// would name the same target.
fn include_closure(
    compiler: &Path,
    info: &CompilerInfo,
    job: &RemoteJob,
    cwd: &Path,
    cache: Option<&ScanCache>,
) -> Result<(Listed, Vec<ReadFile>), String> {
    if let Some(dep) = &job.depfile {
        let targets = (dep.shape_args.iter())
            .any(|a| a.as_bytes().starts_with(b"-MT") || a.as_bytes().starts_with(b"-MQ"));
        if !targets {
            return Err("a dependency file of no named target (the compiler derives it)".into());
        }
    }
    let search = closure::search_list(compiler, info, job, cwd, cache)?;
    let files = closure::closure(info, job, cwd, &search, cache.map(ScanCache::facts))?;
    let listed = Listed {
        files: files.iter().map(|f| f.read_from.clone()).collect(),
        search,
    };
    Ok((listed, files))
}

/// Writes the user's dependency file of `job` with the local compiler (a scan whose list is
/// not needed): after a compile from the include closure whose dependency file the server
/// could not send (it named headers by their paths in its job root).
pub fn write_depfile(
    compiler: &Path,
    info: &CompilerInfo,
    job: &RemoteJob,
    cwd: &Path,
) -> Result<(), ScanError> {
    run(compiler, info, job, cwd).map(|_| ())
}

/// The arguments that make the compile of `job` write its dependency file as the user asked
/// (`-MD` or `-MMD`, the targets, `-MP`, `-MF` with its absolute path), and the file.
pub fn depfile_args(job: &RemoteJob) -> Option<(Vec<OsString>, PathBuf)> {
    let dep = job.depfile.as_ref()?;
    let mut args: Vec<OsString> = vec![if dep.user_headers_only { "-MMD" } else { "-MD" }.into()];
    args.extend(dep.shape_args.iter().cloned());
    args.extend(["-MF".into(), dep.path.clone().into_os_string()]);
    Some((args, dep.path.clone()))
}

/// `files` (what the scan listed, read with their names), and the files a `__has_include` of
/// theirs may find (`probes::tested_files`), which the compiler does not list.
fn with_tested(
    cwd: &Path,
    listed: &Listed,
    mut files: Vec<ReadFile>,
    read: impl Fn(&[PathBuf], bool) -> Result<Vec<ReadFile>, ScanError>,
) -> Result<Vec<ReadFile>, ScanError> {
    let named = (files.iter()).filter_map(|f| {
        let names = f.names.as_ref()?.as_ref().ok()?;
        Some((f.read_from.as_path(), names.lookups.as_slice()))
    });
    let read_already: std::collections::HashSet<&Path> =
        files.iter().map(|f| f.path.as_path()).collect();
    let tested: Vec<PathBuf> = probes::tested_files(&listed.search, cwd, named)
        .into_iter()
        .filter(|path| !read_already.contains(absolute(cwd, path).as_path()))
        .collect();
    if !tested.is_empty() {
        files.extend(read(&tested, true)?);
    }
    Ok(files)
}

/// The manifest's view of a file read.
fn scanned(file: &ReadFile) -> ScannedFile {
    ScannedFile {
        entry: ManifestEntry {
            path: file.path.clone(),
            digest: file.digest,
            size: file.size,
        },
        read_from: file.read_from.clone(),
    }
}

/// Whether a file (or directory) with `meta` last changed long enough before `time` for a scan
/// that reads it at `time` to be recorded.
pub fn settled(meta: &std::fs::Metadata, time: SystemTime) -> bool {
    Stamp::of(meta).settled_before(time)
}

/// Everything of the job that the scan depends on, besides the compiler, the working directory,
/// the environment and the files it reads.
fn key_args(job: &RemoteJob) -> Vec<&OsStr> {
    let mut args: Vec<&OsStr> = job.scan_args.iter().map(OsString::as_os_str).collect();
    args.push(OsStr::new(job.language.name()));
    if let Some(dep) = &job.depfile {
        args.push(OsStr::new(if dep.user_headers_only {
            "-MMD"
        } else {
            "-MD"
        }));
        args.push(dep.path.as_os_str());
        args.extend(dep.shape_args.iter().map(OsString::as_os_str));
    }
    args
}

/// Runs the compiler's scan of `job` (in the C locale, so that its `-v` search list can be read),
/// writing the user's dependency file.
fn run(
    compiler: &Path,
    info: &CompilerInfo,
    job: &RemoteJob,
    cwd: &Path,
) -> Result<Listed, ScanError> {
    let listing = |extra: &[OsString]| {
        let mut cmd = Command::new(compiler);
        let scan_args = job.scan_args.iter().filter(|a| !shapes_output_only(a));
        cmd.args(scan_args)
            .args(extra)
            .arg("-v")
            .env("LC_ALL", "C")
            .current_dir(cwd)
            .stdin(Stdio::null());
        cmd
    };
    let with_depfile = |dep: &Depfile, flag: &str| {
        let mut args: Vec<OsString> = vec![flag.into()];
        args.extend(dep.shape_args.iter().cloned());
        args.extend(["-MF".into(), dep.path.clone().into_os_string()]);
        args
    };
    let Some(dep) = &job.depfile else {
        let output = captured(&mut listing(&["-M".into()]), true)?;
        return Ok(Listed {
            files: parse(&output.stdout)?,
            search: searchlist::parse(&output.stderr),
        });
    };
    if !dep.user_headers_only {
        let output = captured(&mut listing(&with_depfile(dep, "-M")), false)?;
        let depfile = std::fs::read(&dep.path).map_err(|e| ScanError::Other(e.into()))?;
        return Ok(Listed {
            files: parse(&depfile)?,
            search: searchlist::parse(&output.stderr),
        });
    }
    // -MMD leaves out system headers, which the manifest needs: gcc's `-H` lists every header
    // opened, but not `-include` files (and clang's puts system headers in the -MMD file); else
    // the files `-E`'s line markers enter (-w: no warnings, as -M).
    let mut files = vec![job.source.clone()];
    let forced = forced_includes(&job.scan_args);
    if !info.identity.is_clang() && forced.is_some_and(|forced| forced.is_empty()) {
        let mut args = with_depfile(dep, "-MM");
        args.extend(["-H".into(), "-w".into()]);
        let output = captured(&mut listing(&args), false)?;
        let search = searchlist::parse(&output.stderr);
        files.extend(headers_opened(&output.stderr));
        files.extend(implicit_includes(info, &search));
        return Ok(Listed { files, search });
    }
    let mut args = with_depfile(dep, "-MMD");
    args.extend(["-E".into(), "-w".into()]);
    let output = captured(&mut listing(&args), true)?;
    files.extend(markers::entered_files(&output.stdout));
    Ok(Listed {
        files,
        search: searchlist::parse(&output.stderr),
    })
}

/// The `-include` and `-imacros` files of `args`, or `None` when some may hide where the lexer
/// of header names cannot see them.
fn forced_includes(args: &[OsString]) -> Option<Vec<PathBuf>> {
    let mut forced = Vec::new();
    for token in flags::tokens(args) {
        if let Token::Flag(flag) = token {
            match flag.rule.spelling {
                "-include" | "-imacros" => forced.push(PathBuf::from(flag.value()?)),
                _ => {}
            }
        }
    }
    Some(forced)
}

/// The headers `-H` printed (`. name`, one dot per include depth), in order.
fn headers_opened(stderr: &[u8]) -> impl Iterator<Item = PathBuf> + '_ {
    stderr.split(|&b| b == b'\n').filter_map(|line| {
        let dots = line.iter().take_while(|&&b| b == b'.').count();
        let name = line[dots..].strip_prefix(b" ").filter(|_| dots > 0)?;
        (!name.is_empty()).then(|| PathBuf::from(OsStr::from_bytes(name)))
    })
}

/// The files the compiler includes on its own (gcc's `stdc-predef.h`), as this command's
/// `<...>` search finds them: `-H` does not list them.
fn implicit_includes<'a>(
    info: &'a CompilerInfo,
    search: &'a SearchList,
) -> impl Iterator<Item = PathBuf> + 'a {
    info.implicit_includes.iter().filter_map(|implicit| {
        let name = implicit.file_name()?;
        (search.bracket.iter().map(|dir| dir.join(name))).find(|path| path.is_file())
    })
}

/// Whether `arg` only shapes what `-E` prints (`-P`: no line markers, `-dM`: only the macros,
/// `-fdirectives-only`: markers that miss files), so that the scan, which reads the markers,
/// leaves it out; the compile has it, and it changes neither the files read nor the `-MMD` file.
fn shapes_output_only(arg: &OsStr) -> bool {
    let arg = arg.as_bytes();
    let dump_letters = arg
        .strip_prefix(b"-d")
        .filter(|l| !l.is_empty() && l.iter().all(|b| b"DMNIU".contains(b)) && l.contains(&b'M'));
    arg == b"-P" || arg == b"-fdirectives-only" || dump_letters.is_some()
}

fn parse(depfile: &[u8]) -> Result<Vec<PathBuf>, ScanError> {
    parse_dependencies(depfile).map_err(|e| ScanError::Other(e.into()))
}

/// Runs `cmd` to its end, its stderr (and with `stdout`, its stdout) into unnamed files in memory
/// (else temporary files) read once it has exited: a pipe would be read line by line as the
/// compiler writes, a system call per line (per header, with `-H`).
fn captured(cmd: &mut Command, stdout: bool) -> Result<Output, ScanError> {
    let failed = |e: std::io::Error| {
        ScanError::Other(anyhow::Error::new(e).context("cannot run the compiler"))
    };
    let file = || {
        memory_file()
            .or_else(|_| tempfile::tempfile())
            .map_err(failed)
    };
    let err = file()?;
    let out = if stdout { Some(file()?) } else { None };
    cmd.stderr(err.try_clone().map_err(failed)?);
    match &out {
        Some(out) => cmd.stdout(out.try_clone().map_err(failed)?),
        None => cmd.stdout(Stdio::null()),
    };
    let status = cmd.status().map_err(failed)?;
    if !status.success() {
        return Err(ScanError::CompilerFailed);
    }
    let read = |file: Option<std::fs::File>| -> Result<Vec<u8>, ScanError> {
        let mut bytes = Vec::new();
        if let Some(mut file) = file {
            file.seek(std::io::SeekFrom::Start(0)).map_err(failed)?;
            file.read_to_end(&mut bytes).map_err(failed)?;
        }
        Ok(bytes)
    };
    Ok(Output {
        status,
        stdout: read(out)?,
        stderr: read(Some(err))?,
    })
}

/// An unnamed file in memory (`memfd_create`): a compiler writes `-H`'s lines one `write` at a
/// time (its stderr is unbuffered), and a write there costs less than to a file on disk.
fn memory_file() -> std::io::Result<std::fs::File> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    Ok(memfd_create(c"homcc-scan", MFdFlags::MFD_CLOEXEC)?.into())
}

#[cfg(test)]
mod tests;
