//! One remote job (one source of the command): probe the compiler, scan and hash the files (in
//! a local slot, `prepare`), then take a slot on the host with the most free ones and compile
//! there, up to `remote_compilation_tries` hosts that fail (`round`); a full host is load, not a
//! failure: another host is asked, or the compile waits (in a server's queue) up to
//! `compilation_request_timeout`. The outcome is the compiler's verdict with its outputs
//! written, or why the command must run locally.

mod prepare;
mod round;

use std::{collections::HashSet, ffi::OsStr, path::Path, time::Instant};

use homcc_proto::{
    manifest::{Chunk, ManifestEntry},
    CompileResult, Digest,
};

use crate::{
    classify::RemoteJob,
    compiler,
    config::Settings,
    local::Instead,
    output,
    say::verbose,
    scan::{self, CacheUse, PendingRecord},
    session::Prepared,
};
use prepare::{in_local_slot, prepare_in_local_slot, summary, Ready};

/// A remote verdict whose outputs are not written yet, and what its request was made from.
struct Verdict {
    result: CompileResult,
    /// The index of the host that compiled it.
    host: usize,
    prepared: Prepared,
    pending: Option<PendingRecord>,
    from_closure: bool,
}

/// Runs `job` of the compiler `name` (resolved to `binary`) on the first host that takes it and
/// writes its outputs.
///
/// A compile from the include closure (`scan::CacheUse::Closure`) that fails is checked against
/// the compiler's own scan: when that lists a file the closure did not send, the compile is
/// done again from the scan's list, whose verdict is final, so a file the closure missed cannot
/// fail a build. The dependency file comes from the server, or, when the server's names a
/// header by its path in the job root, from the local compiler.
pub async fn compile(
    settings: &Settings,
    name: &OsStr,
    binary: &Path,
    cwd: &Path,
    job: &RemoteJob,
) -> Result<CompileResult, Instead> {
    let closure = !settings.config.no_include_closure;
    let started = Instant::now();
    let ready = prepare_in_local_slot(settings, name, binary, cwd, job, closure).await?;
    let mut verdict = run(settings, ready, started).await?;
    if verdict.from_closure && verdict.result.exit_code != 0 {
        verdict = check_failure(settings, name, binary, cwd, job, verdict).await?;
    }
    write(settings, name, binary, cwd, job, verdict).await
}

/// Compiles what `ready` holds on a host (prepared since `started`).
async fn run(settings: &Settings, ready: Ready, started: Instant) -> Result<Verdict, Instead> {
    let (prepared, scanned, pending) = ready;
    let from_closure = matches!(scanned.0, CacheUse::Closure { .. });
    let local = (started.elapsed(), scanned);
    let answer = round::on_a_host(settings, &prepared).await?;
    let host = &settings.hosts[answer.host];
    verbose(
        settings,
        &summary(host, &answer.result, &answer.traffic, &local, answer.remote),
    );
    Ok(Verdict {
        result: answer.result,
        host: answer.host,
        prepared,
        pending,
        from_closure,
    })
}

/// The compile from the include closure failed: it stands if the compiler's own scan lists no
/// file the closure did not send; else the compile is done again from the scan's list.
async fn check_failure(
    settings: &Settings,
    name: &OsStr,
    binary: &Path,
    cwd: &Path,
    job: &RemoteJob,
    verdict: Verdict,
) -> Result<Verdict, Instead> {
    let exit = verdict.result.exit_code;
    let started = Instant::now();
    let ready = prepare_in_local_slot(settings, name, binary, cwd, job, false).await?;
    let Some(missed) = missed(&verdict.prepared.chunks, &ready.0.chunks) else {
        verbose(
            settings,
            &format!("the compile from the include closure exited with {exit}, and the compiler's scan lists no file it did not send: that verdict stands"),
        );
        return Ok(verdict);
    };
    verbose(
        settings,
        &format!(
            "the compile from the include closure exited with {exit} without {}: compiling from the compiler's scan",
            missed.path.display()
        ),
    );
    run(settings, ready, started).await
}

/// The first file of `needed` (path and content) that `sent` lacks.
fn missed(sent: &[(Digest, Chunk)], needed: &[(Digest, Chunk)]) -> Option<ManifestEntry> {
    let sent: HashSet<_> = (sent.iter())
        .flat_map(|(_, chunk)| chunk.entries())
        .map(|e| (e.path, e.digest))
        .collect();
    (needed.iter())
        .flat_map(|(_, chunk)| chunk.entries())
        .find(|e| !sent.contains(&(e.path.clone(), e.digest)))
}

/// Writes the outputs of `verdict` (the dependency file with the local compiler when the server
/// did not return it), and stores the scan cache record of a successful compile.
async fn write(
    settings: &Settings,
    name: &OsStr,
    binary: &Path,
    cwd: &Path,
    job: &RemoteJob,
    verdict: Verdict,
) -> Result<CompileResult, Instead> {
    let Verdict {
        result,
        host,
        prepared,
        pending,
        ..
    } = verdict;
    let remove_stale = prepared.request.compiler.is_clang() || job.assembly;
    let mut expected = job.outputs.clone();
    expected.extend(prepared.request.depfile.iter().cloned());
    if let Err(e) = output::write_outputs(&result, &expected, remove_stale) {
        if output::is_disk_full(&e) {
            // None of this compile's files stays, as the compiler deletes its output when it
            // fails to write it.
            for path in &expected {
                let _ = std::fs::remove_file(path);
            }
            return Err(Instead::Failed(format!("{e:#}")));
        }
        let host = &settings.hosts[host];
        return Err(Instead::Fallback(format!("{host} {e:#}")));
    }
    if let Some(depfile) = &prepared.request.depfile {
        if !result.outputs.iter().any(|o| &o.path == depfile) {
            write_depfile(settings, name, binary, cwd, job).await?;
        }
    }
    if let (Some(pending), 0) = (pending, result.exit_code) {
        pending.store(job);
    }
    Ok(result)
}

/// Writes the dependency file of `job` with the local compiler, in a local slot.
async fn write_depfile(
    settings: &Settings,
    name: &OsStr,
    binary: &Path,
    cwd: &Path,
    job: &RemoteJob,
) -> Result<(), Instead> {
    let written = in_local_slot(settings, name, binary, cwd, job, |work| {
        let (settings, name, binary, cwd, job) = work;
        let cache_dir = settings.cache_dir.as_deref();
        let info = compiler::info(name, binary, job.language, &job.target_args, cache_dir)
            .map_err(|e| format!("{e:#}"))?;
        scan::write_depfile(binary, &info, job, cwd).map_err(|e| e.to_string())
    })
    .await;
    match written {
        Ok(Ok(())) => Ok(()),
        Ok(Err(why)) => Err(Instead::Fallback(format!("dependency file: {why}"))),
        Err(e) => Err(Instead::Fallback(format!("dependency file: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use homcc_proto::manifest::chunk_entries;

    use super::*;

    fn chunks(files: &[(&str, &[u8])]) -> Vec<(Digest, Chunk)> {
        let entries: Vec<_> = (files.iter())
            .map(|(path, content)| ManifestEntry {
                path: path.into(),
                digest: Digest::of(content),
                size: content.len() as u64,
            })
            .collect();
        let chunks = chunk_entries(&entries).unwrap();
        chunks.into_iter().map(|c| (c.digest(), c)).collect()
    }

    #[test]
    fn a_file_is_missed_when_its_path_or_content_was_not_sent() {
        let sent = chunks(&[("/s/t.c", b"t"), ("/s/a.h", b"a"), ("/i/b.h", b"b")]);
        let fewer = chunks(&[("/s/t.c", b"t"), ("/i/b.h", b"b")]);
        assert!(missed(&sent, &fewer).is_none());
        assert!(missed(&sent, &sent).is_none());
        let other_dir = chunks(&[("/s/t.c", b"t"), ("/j/b.h", b"b")]);
        assert_eq!(missed(&sent, &other_dir).unwrap().path, Path::new("/j/b.h"));
        let changed = chunks(&[("/s/t.c", b"t"), ("/s/a.h", b"a2")]);
        assert_eq!(missed(&sent, &changed).unwrap().path, Path::new("/s/a.h"));
        assert_eq!(missed(&fewer, &sent).unwrap().path, Path::new("/s/a.h"));
    }
}
