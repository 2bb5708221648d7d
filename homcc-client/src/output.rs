//! Writing a remote result as a local compile would have: output files at their paths (atomically:
//! temp file + rename, with the permissions a compiler's file gets), then stdout and stderr.

use std::{
    fs::Permissions,
    io::Write,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context};
use homcc_proto::CompileResult;

/// The largest output file accepted.
const MAX_OUTPUT: u64 = 4 << 30;

/// Writes the result's files. On a failed compile, if `remove_stale`, expected outputs that did
/// not come back are removed, as the compiler removes what it had opened (clang always; gcc only
/// what cc1 itself writes, the `-S` output: after cc1 fails, `as` never touches the object).
pub fn write_outputs(
    result: &CompileResult,
    expected: &[PathBuf],
    remove_stale: bool,
) -> anyhow::Result<()> {
    for file in &result.outputs {
        if !expected.contains(&file.path) {
            bail!("server returned an unexpected file {}", file.path.display());
        }
        let bytes = file
            .payload
            .unpack(MAX_OUTPUT)
            .with_context(|| format!("output {}", file.path.display()))?;
        write_atomically(&file.path, &bytes)
            .with_context(|| format!("cannot write {}", file.path.display()))?;
    }
    if result.exit_code != 0 && remove_stale {
        for e in expected {
            if !result.outputs.iter().any(|f| &f.path == e) {
                let _ = std::fs::remove_file(e);
            }
        }
    }
    Ok(())
}

/// Whether writing outputs failed because the disk is full (or the user's quota used up).
pub fn is_disk_full(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::{QuotaExceeded, StorageFull};
    (e.chain()).any(|cause| {
        (cause.downcast_ref::<std::io::Error>())
            .is_some_and(|e| matches!(e.kind(), StorageFull | QuotaExceeded))
    })
}

/// Writes `bytes` at `path` as a new file (temp file + rename), with a compiler's permissions.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".homcc-")
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    // The file's own error, which names `path` in the caller's message, not the temp file.
    tmp.as_file_mut().write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Replays the compiler's stdout and stderr.
pub fn replay(result: &CompileResult) {
    let _ = std::io::stdout().write_all(&result.stdout);
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().write_all(&result.stderr);
}
