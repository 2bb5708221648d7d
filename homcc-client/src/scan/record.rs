//! The record of a scan that ran: its files with their stamps and digests, the probes of every
//! lookup they may make (`probes`, from the header names `directives` finds in them), the driver's
//! own files and the user's dependency file; or why the scan cannot be recorded exactly.

use std::{path::PathBuf, time::SystemTime};

use homcc_proto::Digest;

use super::{
    cache::{Read, Record},
    closure::Dialect,
    facts::ReadFile,
    forced_includes,
    probes::{probes, Includer, Lookups, Probes},
    stamp::Stamp,
    Listed,
};
use crate::{classify::RemoteJob, compiler::CompilerInfo};

/// The record of the scan of `job` that started at `started`, listed `listed` and read `files`
/// (with their names).
pub(super) fn record(
    info: &CompilerInfo,
    job: &RemoteJob,
    cwd: &std::path::Path,
    listed: &Listed,
    files: &[ReadFile],
    started: SystemTime,
    depfile: Option<Vec<u8>>,
) -> Result<Record, String> {
    if !listed.search.printed {
        return Err("the compiler printed no include search list".into());
    }
    if let Some(entry) = listed.search.unusual.first() {
        return Err(format!("the include search list has {entry}"));
    }
    // A file changed within the stamps' resolution of the scan may have been read in another
    // version than the one hashed, and a later change could keep its stamp.
    if let Some(file) = files.iter().find(|f| !f.stamp.settled_before(started)) {
        return Err(format!(
            "{} changed just before the scan",
            file.read_from.display()
        ));
    }
    let forced = forced_includes(&job.scan_args).ok_or("a forced include without its name")?;
    let dialect = Dialect::of(job.language, &job.scan_args);
    let names = files
        .iter()
        .map(|file| {
            let names = dialect.names_of(file)?;
            if let Some(used) = names.has_include_uses.first() {
                return Err(format!(
                    "{}: {} with an argument that is not a header name",
                    file.read_from.display(),
                    String::from_utf8_lossy(used)
                ));
            }
            Ok(Includer {
                read_from: &file.read_from,
                path: &file.path,
                names: &names.lookups,
            })
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
    let Probes { probes, dirs } = probes(&lookups, started)?;
    let driver_files = (listed.search.config_files.iter())
        .map(|file| driver_file(file, started))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Record {
        files: (files.iter())
            .map(|file| Read {
                path: file.path.clone(),
                digest: file.digest,
                size: file.size,
                read_from: file.read_from.clone(),
                stamp: file.stamp,
            })
            .collect(),
        driver_files,
        probes,
        probed_dirs: dirs,
        depfile,
    })
}

/// The bytes of `job`'s dependency file, as written, if it has one.
pub(super) fn depfile_bytes(job: &RemoteJob) -> Result<Option<Vec<u8>>, String> {
    match &job.depfile {
        Some(dep) => {
            let bytes = std::fs::read(&dep.path);
            Ok(Some(
                bytes.map_err(|e| format!("{}: {e}", dep.path.display()))?,
            ))
        }
        None => Ok(None),
    }
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
