//! Running the compiler locally, exactly as the user asked: homcc replaces itself with it.

use std::{ffi::OsString, os::unix::process::CommandExt, path::Path, process::Command};

/// Execs the compiler `binary` (resolved, so never homcc itself) with `args`; returns only if
/// that fails, with the exit code to use.
pub fn exec(binary: &Path, args: &[OsString]) -> u8 {
    let err = Command::new(binary).args(args).exec();
    eprintln!("homcc: cannot run {}: {err}", binary.display());
    if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}
