//! Running the compiler locally, exactly as the user asked: homcc replaces itself with it.

use std::{ffi::OsString, os::unix::process::CommandExt, process::Command};

/// Execs `compiler args...`; returns only if that fails, with the exit code to use.
pub fn exec(compiler: &OsString, args: &[OsString]) -> u8 {
    let err = Command::new(compiler).args(args).exec();
    eprintln!("homcc: cannot run {}: {err}", compiler.to_string_lossy());
    if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}
