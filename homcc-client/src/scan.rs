//! The dependency scan: the compiler itself lists every file the compile reads (`-M`: sources,
//! project headers and system headers); each is hashed with blake3, in parallel. When the user
//! asked for a dependency file, the same local run writes it, so it has the local bytes.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use anyhow::Context;
use homcc_proto::{Digest, ManifestEntry};
use rayon::prelude::*;

use crate::{classify::RemoteJob, depfile::parse_dependencies, paths::absolute};

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
        cmd.args(&job.scan_args)
            .args(extra)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    let deps = match &job.depfile {
        None => checked(listing(&["-M".into()]).output())?.stdout,
        Some(dep) => {
            let mut write_depfile: Vec<OsString> =
                vec![if dep.user_headers_only { "-MM" } else { "-M" }.into()];
            write_depfile.extend(dep.shape_args.iter().cloned());
            write_depfile.extend(["-MF".into(), dep.path.clone().into_os_string()]);
            if dep.user_headers_only {
                // The manifest needs system headers, which -MM leaves out: a second run, in parallel.
                let mut user = listing(&write_depfile)
                    .stdout(Stdio::null())
                    .spawn()
                    .map_err(|e| ScanError::Other(e.into()))?;
                let all = checked(listing(&["-M".into()]).output());
                checked(user.wait().map(|status| Output {
                    status,
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                }))?;
                all?.stdout
            } else {
                checked(listing(&write_depfile).stdout(Stdio::null()).output())?;
                std::fs::read(&dep.path).map_err(|e| ScanError::Other(e.into()))?
            }
        }
    };
    let deps = parse_dependencies(&deps).map_err(|e| ScanError::Other(e.into()))?;
    hash_files(cwd, &deps).map_err(ScanError::Other)
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
