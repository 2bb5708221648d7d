//! A compiler's identity, computed the same way on both sides (if the two drifted apart, no
//! compile would ever match): the version and target from what `cc -v` prints, and for gcc the
//! version line of the assembler it runs, since the assembler writes the object's bytes.
//! `identify` is pure: the caller runs the processes, both binaries with `run_first_line`, the
//! only process this crate knows how to start.

use std::{
    ffi::OsStr,
    process::{Command, Stdio},
};

use crate::CompilerIdentity;

/// `cc -print-prog-name=as` names the assembler gcc runs.
pub const ASSEMBLER_NAME_ARG: &str = "-print-prog-name=as";

/// `as --version` prints the assembler's version line first.
pub const VERSION_ARG: &str = "--version";

/// Why a compiler's identity cannot be known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read the version and target from what -v printed")]
    NoVersion,
    #[error("cannot find the version of the assembler it runs")]
    NoAssembler,
}

/// The identity of the compiler `binary`, invoked as `name`, from `verbose` (what
/// `binary [target flags] -v` printed on stderr in the C locale). For gcc it asks `first_line`
/// for the first stdout line of `program arg` run in the C locale (`None` if that failed):
/// first `binary -print-prog-name=as`, then `<assembler> --version`.
pub fn identify(
    name: &str,
    binary: &OsStr,
    verbose: &str,
    mut first_line: impl FnMut(&OsStr, &str) -> Option<String>,
) -> Result<CompilerIdentity, IdentityError> {
    let identity =
        CompilerIdentity::from_verbose_output(name, verbose).ok_or(IdentityError::NoVersion)?;
    if identity.is_clang() {
        // clang assembles with its integrated assembler: its version says it all.
        return Ok(identity);
    }
    let assembler = first_line(binary, ASSEMBLER_NAME_ARG).ok_or(IdentityError::NoAssembler)?;
    let version = first_line(OsStr::new(&assembler), VERSION_ARG)
        .filter(|line| !line.is_empty())
        .ok_or(IdentityError::NoAssembler)?;
    Ok(identity.with_assembler(&version))
}

/// The first stdout line of `program arg`, run in the C locale with no input (for
/// [`identify`]): `None` if it cannot run or fails.
pub fn run_first_line(program: &OsStr, arg: &str) -> Option<String> {
    let out = Command::new(program)
        .arg(arg)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    first_line(out.status.success(), &out.stdout)
}

/// The first line of what a run printed on stdout, trimmed; `None` unless it succeeded and
/// printed one that is UTF-8.
pub fn first_line(success: bool, stdout: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(stdout).ok()?;
    let line = text.lines().next().unwrap_or_default().trim();
    (success && !line.is_empty()).then(|| line.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GCC: &str = "Target: x86_64-linux-gnu\ngcc version 12.2.0 (Debian 12.2.0-14) \n";
    const CLANG: &str = "Debian clang version 14.0.6\nTarget: x86_64-pc-linux-gnu\n";

    /// A fake run: `gcc -print-prog-name=as` is `as`, `as --version` is binutils 2.40.
    fn runs(program: &OsStr, arg: &str) -> Option<String> {
        match (program.to_str()?, arg) {
            ("/usr/bin/gcc", ASSEMBLER_NAME_ARG) => Some("as".into()),
            ("as", VERSION_ARG) => Some("GNU assembler (GNU Binutils for Debian) 2.40".into()),
            _ => None,
        }
    }

    #[test]
    fn gcc_is_known_by_its_version_and_its_assembler_clang_by_its_version() {
        let gcc = identify("gcc", OsStr::new("/usr/bin/gcc"), GCC, runs).unwrap();
        assert_eq!(
            gcc.build,
            "gcc version 12.2.0 (Debian 12.2.0-14); GNU assembler (GNU Binutils for Debian) 2.40"
        );
        let clang = identify("clang", OsStr::new("/usr/bin/clang"), CLANG, |_, _| None).unwrap();
        assert_eq!(clang.build, "Debian clang version 14.0.6");
        let no_as = identify("gcc", OsStr::new("/opt/gcc"), GCC, runs);
        assert_eq!(no_as, Err(IdentityError::NoAssembler));
        assert_eq!(
            identify("cc", OsStr::new("cc"), "", runs),
            Err(IdentityError::NoVersion)
        );
    }

    #[test]
    fn first_lines() {
        assert_eq!(first_line(true, b" as \nmore\n"), Some("as".into()));
        assert_eq!(first_line(false, b"as\n"), None);
        assert_eq!(first_line(true, b"\n"), None);
        assert_eq!(first_line(true, b"\xff\n"), None);
    }
}
