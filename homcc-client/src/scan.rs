//! The dependency scan: the compiler itself lists every file the compile reads (`-M`: sources,
//! project headers and system headers); each is hashed with blake3, in parallel. When the user
//! asked for a dependency file, the same local run writes it, so it has the local bytes: one
//! preprocessor run per compile, also for `-MMD` (whose file leaves out system headers: the
//! full list then comes from the line markers of `-E`, see `markers`).

use std::{
    ffi::{OsStr, OsString},
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use anyhow::Context;
use homcc_proto::{Digest, ManifestEntry};
use rayon::prelude::*;

use crate::{
    classify::{Depfile, RemoteJob},
    depfile::parse_dependencies,
    markers::entered_files,
    paths::absolute,
};

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

/// Lists every file `job` reads (writing its dependency file, if any) and hashes them.
pub fn scan(compiler: &Path, job: &RemoteJob, cwd: &Path) -> Result<Vec<ScannedFile>, ScanError> {
    if job.language.is_preprocessed() {
        // Nothing else is read: the preprocessor already ran.
        return hash_files(cwd, std::slice::from_ref(&job.source)).map_err(ScanError::Other);
    }
    let listing = |extra: &[OsString]| {
        let mut cmd = Command::new(compiler);
        let scan_args = job.scan_args.iter().filter(|a| !shapes_output_only(a));
        cmd.args(scan_args)
            .args(extra)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    let with_depfile = |dep: &Depfile, flag: &str| {
        let mut args: Vec<OsString> = vec![flag.into()];
        args.extend(dep.shape_args.iter().cloned());
        args.extend(["-MF".into(), dep.path.clone().into_os_string()]);
        args
    };
    let deps = match &job.depfile {
        None => parse(&checked(listing(&["-M".into()]).output())?.stdout)?,
        Some(dep) if dep.user_headers_only => {
            // The manifest needs the system headers -MMD leaves out: they are the files the
            // preprocessed output's line markers enter (as -M, -w is implied: no warnings).
            let mut args = with_depfile(dep, "-MMD");
            args.extend(["-E".into(), "-w".into()]);
            let output = checked(listing(&args).stdout(Stdio::piped()).output())?;
            let mut deps = vec![job.source.clone()];
            deps.extend(entered_files(&output.stdout));
            deps
        }
        Some(dep) => {
            let args = with_depfile(dep, "-M");
            checked(listing(&args).stdout(Stdio::null()).output())?;
            parse(&std::fs::read(&dep.path).map_err(|e| ScanError::Other(e.into()))?)?
        }
    };
    hash_files(cwd, &deps).map_err(ScanError::Other)
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

fn checked(run: std::io::Result<Output>) -> Result<Output, ScanError> {
    let out = run
        .context("cannot run the compiler")
        .map_err(ScanError::Other)?;
    if !out.status.success() {
        return Err(ScanError::CompilerFailed);
    }
    Ok(out)
}

/// Reads and hashes `paths` (relative to `cwd`) in parallel.
pub fn hash_files(cwd: &Path, paths: &[PathBuf]) -> anyhow::Result<Vec<ScannedFile>> {
    paths
        .par_iter()
        .map(|p| {
            let read_from = cwd.join(p);
            let bytes = std::fs::read(&read_from)
                .with_context(|| format!("cannot read {}", read_from.display()))?;
            Ok(ScannedFile {
                entry: ManifestEntry {
                    path: absolute(cwd, p),
                    digest: Digest::of(&bytes),
                    size: bytes.len() as u64,
                },
                read_from,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_flags_that_shape_the_output_of_e_are_left_out_of_the_scan() {
        let left_out = ["-P", "-fdirectives-only", "-dM", "-dMD", "-dDM"];
        let kept = [
            "-dD",
            "-dI",
            "-d",
            "-dumpbase",
            "-dumpdir",
            "-MD",
            "-Pfoo",
            "-I",
            "-D",
        ];
        assert!(left_out.iter().all(|a| shapes_output_only(OsStr::new(a))));
        assert!(!kept.iter().any(|a| shapes_output_only(OsStr::new(a))));
    }
}
