//! Preparing a job's request: the compiler's identity, the files it reads (from the scan cache,
//! the include closure or the compiler's scan), hashed and chunked; and the `--verbose` line of
//! how it went.

use std::{
    collections::HashMap,
    ffi::OsStr,
    path::{Component, Path, PathBuf},
    time::Duration,
};

use homcc_proto::{
    manifest::chunk_entries, CompileRequest, CompileResult, FORWARDED_ENV, PROTOCOL_VERSION,
};

use crate::{
    classify::{Language, RemoteJob},
    compiler,
    config::Settings,
    hosts::Host,
    local::Instead,
    paths::absolute,
    say::verbose,
    scan::{self, CacheUse, PendingRecord, ScanError},
    session::{Prepared, Traffic},
};

/// A prepared request, what the scan did, and the scan cache record to store if it succeeds.
pub(super) type Ready = (Prepared, Scanned, Option<PendingRecord>);

/// Probes the compiler and scans and hashes the files, off the runtime (so jobs overlap) and in
/// a local slot (so that `make -j64` does not run 64 scans at once).
pub(super) async fn prepare_in_local_slot(
    settings: &Settings,
    name: &OsStr,
    binary: &Path,
    cwd: &Path,
    job: &RemoteJob,
    closure: bool,
) -> Result<Ready, Instead> {
    let prepared = in_local_slot(settings, name, binary, cwd, job, move |work| {
        prepare(work, closure)
    });
    prepared.await.unwrap_or_else(|e| {
        Err(Instead::Fallback(format!(
            "preparing the compile failed: {e}"
        )))
    })
}

/// A job's settings, compiler name and binary, working directory and the job.
pub(super) type Work<'a> = (&'a Settings, &'a OsStr, &'a Path, &'a Path, &'a RemoteJob);

/// Runs `f` on `job` on a blocking thread, in a local slot: local work (a scan, a compiler run)
/// never runs more often at once than `local_limit` allows.
pub(super) async fn in_local_slot<T: Send + 'static>(
    settings: &Settings,
    name: &OsStr,
    binary: &Path,
    cwd: &Path,
    job: &RemoteJob,
    f: impl FnOnce(Work<'_>) -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    let work = (
        settings.clone(),
        name.to_owned(),
        binary.to_owned(),
        cwd.to_owned(),
        job.clone(),
    );
    tokio::task::spawn_blocking(move || {
        let (settings, name, binary, cwd, job) = work;
        let _slot = (settings.slots.as_ref()).and_then(|s| s.take_local(settings.local_limit));
        f((&settings, &name, &binary, &cwd, &job))
    })
    .await
}

/// What the scan did: the scan cache or the include closure, and why the closure was not used.
pub(super) type Scanned = (CacheUse, Option<String>);

/// Everything the request needs: compiler identity, every file hashed, chunks; and what the
/// scan did.
fn prepare(work: Work<'_>, closure: bool) -> Result<Ready, Instead> {
    let (settings, name, binary, cwd, job) = work;
    let cache_dir = settings.cache_dir.as_deref();
    let quietly_local = |reason: &str| {
        verbose(settings, &format!("compiling locally: {reason}"));
        Instead::Local
    };
    // A compiler that cannot even preprocess this language (gcc without cc1obj) fails the same
    // way locally, where it explains itself.
    let info = compiler::info(name, binary, job.language, &job.target_args, cache_dir)
        .map_err(|e| quietly_local(&format!("{e:#}")))?;
    if job.split_dwarf && !info.identity.is_clang() {
        return Err(quietly_local(
            "gcc's -gsplit-dwarf output depends on the build directory",
        ));
    }
    if job.language == Language::AsmCpp && info.identity.is_clang() {
        return Err(quietly_local(
            "clang's integrated assembler writes the real build directory into debug info",
        ));
    }
    let cache = settings.scan_cache.as_ref();
    let scan = match scan::scan(binary, &info, job, cwd, cache, closure) {
        Ok(scan) => scan,
        Err(ScanError::CompilerFailed) => return Err(quietly_local("the dependency scan failed")),
        Err(e) => return Err(Instead::Fallback(e.to_string())),
    };
    let (files, scanned, pending) = (scan.files, (scan.cache, scan.no_closure), scan.pending);
    // From the closure, the server writes the dependency file.
    let mut args = job.compile_args.clone();
    let mut depfile = None;
    if matches!(scanned.0, CacheUse::Closure { .. }) {
        if let Some((dep_args, path)) = scan::depfile_args(job) {
            args.extend(dep_args);
            depfile = Some(path);
        }
    }
    let entries: Vec<_> = files.iter().map(|f| f.entry.clone()).collect();
    let chunks = chunk_entries(&entries)
        .map_err(|path| quietly_local(&format!("path {} is not UTF-8", path.display())))?;
    let prepared = Prepared {
        request: CompileRequest {
            version: PROTOCOL_VERSION,
            compiler: info.identity,
            args,
            cwd: cwd.to_owned(),
            include_dirs: info.include_dirs,
            implicit_includes: info.implicit_includes,
            preprocessed: job.language.is_preprocessed(),
            dirs: (job.include_flag_dirs.iter())
                .filter(|d| d.is_dir())
                .cloned()
                .chain(climbed_dirs(
                    cwd,
                    files.iter().map(|f| f.read_from.as_path()),
                ))
                .collect(),
            manifest: Vec::new(),
            outputs: job.outputs.clone(),
            env: FORWARDED_ENV
                .iter()
                .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)))
                .collect(),
            compression: settings.compression,
            queue: true,
            depfile,
            environment: settings.environment.clone(),
            no_result_cache: settings.config.no_result_cache,
        },
        chunks: chunks.into_iter().map(|c| (c.digest(), c)).collect(),
        files: files
            .iter()
            .map(|f| (f.entry.digest, f.read_from.clone()))
            .collect::<HashMap<_, _>>(),
    };
    Ok((prepared, scanned, pending))
}

/// The directories a compiler's spelling of a file climbs out of (`sub` of `a/sub/../x.h`): the
/// server's tree needs them, though it may hold no file of theirs, for the path to resolve.
fn climbed_dirs<'a>(cwd: &Path, read_from: impl Iterator<Item = &'a Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for path in read_from.filter(|p| p.components().any(|c| c == Component::ParentDir)) {
        let mut prefix = PathBuf::new();
        for part in path.components() {
            if part == Component::ParentDir && cwd.join(&prefix).is_dir() {
                let dir = absolute(cwd, &prefix);
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
            prefix.push(part);
        }
    }
    dirs
}

/// The `--verbose` line of a remote compile: what crossed the wire and where the time went
/// (`local`: probe, scan and hashing, and what the scan cache did; `remote`: connecting to
/// receiving the result, and whether the compile waited in the server's queue).
pub(super) fn summary(
    host: &Host,
    result: &CompileResult,
    t: &Traffic,
    (local, (scanned, no_closure)): &(Duration, Scanned),
    remote: Duration,
) -> String {
    let scan = match scanned {
        CacheUse::Off => String::new(),
        CacheUse::Closure { recorded: Ok(()) } => " (include closure; recorded)".into(),
        CacheUse::Closure { recorded: Err(not) } => {
            format!(" (include closure; not recorded: {not})")
        }
        CacheUse::Hit => " (scan cached)".into(),
        CacheUse::Ran {
            why,
            recorded: Ok(()),
        } => format!(" (scanned: {why}; recorded)"),
        CacheUse::Ran {
            why,
            recorded: Err(not),
        } => {
            format!(" (scanned: {why}; not recorded: {not})")
        }
    } + &no_closure
        .as_ref()
        .map_or(String::new(), |why| format!(" (no include closure: {why})"));
    let place = (result.environment.as_ref()).map_or(String::new(), |env| format!(" (in {env})"));
    let exit_code = result.exit_code;
    let cached = if result.cached {
        " (cached result)"
    } else {
        ""
    };
    format!(
        "{host}{place}: {} files in {} chunks ({} sent inline); uploaded {} files ({} bytes, {} compressed); \
         request {} bytes sent, {} bytes received; exit {exit_code}{cached}; local {} ms{scan}, remote {} ms",
        t.files,
        t.chunks,
        t.chunks_inline,
        t.blobs,
        t.blob_bytes,
        t.blob_bytes_compressed,
        t.sent,
        t.received,
        local.as_millis(),
        remote.as_millis()
    ) + &t.queued.map_or(String::new(), |place| format!(" (waited in its queue, place {place})"))
        + &cpu_so_far()
}

/// `; cpu: homcc X ms, compiler Y ms`: the CPU time of this process and of its finished
/// children (the scans) so far.
fn cpu_so_far() -> String {
    use nix::sys::{
        resource::{getrusage, UsageWho},
        time::TimeValLike,
    };
    let ms = |who| {
        getrusage(who).map_or(0.0, |usage| {
            (usage.user_time() + usage.system_time()).num_microseconds() as f64 / 1000.0
        })
    };
    let (own, children) = (ms(UsageWho::RUSAGE_SELF), ms(UsageWho::RUSAGE_CHILDREN));
    format!("; cpu: homcc {own:.1} ms, compiler {children:.1} ms")
}
