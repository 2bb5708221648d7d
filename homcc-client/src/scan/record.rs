//! The record of a scan that ran: its files with their stamps and digests, the probes of every
//! lookup they may make (`probes`, from the header names `directives` finds in them), the driver's
//! own files and the user's dependency file; or why the scan cannot be recorded exactly.

use std::{path::PathBuf, time::SystemTime};

use homcc_proto::Digest;
use rayon::prelude::*;

use super::{
    cache::{Read, Record},
    directives, forced_includes,
    probes::{probes, Lookups},
    stamp::Stamp,
    Listed,
};
use crate::{classify::RemoteJob, compiler::CompilerInfo};

/// The record of the scan of `job` that started at `started`, listed `listed` and read `hashed`
/// (each file with its bytes).
pub(super) fn record(
    info: &CompilerInfo,
    job: &RemoteJob,
    cwd: &std::path::Path,
    listed: &Listed,
    hashed: &[(Read, Vec<u8>)],
    started: SystemTime,
) -> Result<Record, String> {
    if !listed.search.printed {
        return Err("the compiler printed no include search list".into());
    }
    // A file changed within the stamps' resolution of the scan may have been read in another
    // version than the one hashed, and a later change could keep its stamp.
    if let Some((read, _)) = hashed
        .iter()
        .find(|(r, _)| !r.stamp.settled_before(started))
    {
        return Err(format!(
            "{} changed just before the scan",
            read.read_from.display()
        ));
    }
    let forced = forced_includes(&job.scan_args).ok_or("a forced include without its name")?;
    let names = hashed
        .par_iter()
        .map(|(read, bytes)| {
            let names = directives::lookups(bytes)
                .map_err(|why| format!("{}: {why}", read.read_from.display()))?;
            Ok((read.read_from.as_path(), names))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let lookups = Lookups {
        search: &listed.search,
        cwd,
        files: names,
        forced,
        implicit: (info.implicit_includes.iter())
            .filter_map(|p| p.file_name().map(PathBuf::from))
            .collect(),
        paths_as_built: !info.identity.is_clang(),
    };
    let probes = probes(&lookups, started)?;
    let driver_files = (listed.search.config_files.iter())
        .map(|file| driver_file(file, started))
        .collect::<Result<Vec<_>, String>>()?;
    let depfile = match &job.depfile {
        Some(dep) => {
            Some(std::fs::read(&dep.path).map_err(|e| format!("{}: {e}", dep.path.display()))?)
        }
        None => None,
    };
    Ok(Record {
        files: hashed.iter().map(|(read, _)| read.clone()).collect(),
        driver_files,
        probes,
        depfile,
    })
}

/// A file the compiler driver read (a configuration file), stamped and hashed.
fn driver_file(file: &std::path::Path, started: SystemTime) -> Result<Read, String> {
    let failed = |e: std::io::Error| format!("{}: {e}", file.display());
    let stamp = Stamp::of(&file.metadata().map_err(failed)?);
    let bytes = std::fs::read(file).map_err(failed)?;
    if !stamp.settled_before(started) {
        return Err(format!("{} changed just before the scan", file.display()));
    }
    Ok(Read {
        path: file.to_owned(),
        digest: Digest::of(&bytes),
        size: bytes.len() as u64,
        read_from: file.to_owned(),
        stamp,
    })
}
