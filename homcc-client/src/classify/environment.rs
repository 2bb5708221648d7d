//! The compiler's environment variables that change what it reads or writes (gcc's and clang's
//! manuals, "Environment Variables"). homccd runs the compiler with none of them, so each is
//! either carried as the flags that mean the same, or the compile runs locally.

use std::{
    ffi::OsString,
    os::unix::ffi::{OsStrExt, OsStringExt},
};

/// The variables that add include dirs: the built-in search list is probed without them (what
/// they add is the command's, as flags, or makes the compile local).
pub const INCLUDE_PATHS: &[&str] = &[
    "CPATH",
    "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH",
    "OBJC_INCLUDE_PATH",
];

/// Variables whose effect homcc does not carry: a compile with one set runs locally.
const LOCAL: &[(&str, &str)] = &[
    (
        "DEPENDENCIES_OUTPUT",
        "makes the compiler write a dependency file",
    ),
    (
        "SUNPRO_DEPENDENCIES",
        "makes the compiler write a dependency file",
    ),
    ("C_INCLUDE_PATH", "adds system include dirs for C"),
    ("CPLUS_INCLUDE_PATH", "adds system include dirs for C++"),
    (
        "OBJC_INCLUDE_PATH",
        "adds system include dirs for Objective-C",
    ),
    ("GCC_EXEC_PREFIX", "chooses the compiler's own programs"),
    ("COMPILER_PATH", "chooses the compiler's own programs"),
    ("CCC_OVERRIDE_OPTIONS", "rewrites clang's arguments"),
    ("GCC_COMPARE_DEBUG", "makes gcc compile twice and compare"),
];

/// The flags to add to the command for `var`'s variables: `CPATH`'s dirs as `-I` after the
/// command's own (as both gcc and clang search them; an empty element is the working
/// directory), or why the compile runs locally.
pub fn flags(var: impl Fn(&str) -> Option<OsString>) -> Result<Vec<OsString>, String> {
    if let Some((name, effect)) = LOCAL.iter().find(|(name, _)| var(name).is_some()) {
        return Err(format!(
            "{name} is set ({effect} homcc does not reproduce remotely)"
        ));
    }
    let Some(cpath) = var("CPATH") else {
        return Ok(Vec::new());
    };
    if cpath.is_empty() {
        // gcc reads an empty CPATH as the working directory, clang as nothing.
        return Err("CPATH is set but empty (gcc and clang read it differently)".into());
    }
    let mut flags = Vec::new();
    for dir in cpath.as_bytes().split(|b| *b == b':') {
        let dir = if dir.is_empty() { b"." } else { dir };
        flags.push(OsString::from("-I"));
        flags.push(OsString::from_vec(dir.to_vec()));
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> Result<Vec<OsString>, String> {
        flags(|name| {
            (vars.iter())
                .find(|(n, _)| *n == name)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn cpath_becomes_include_flags_and_other_variables_a_local_compile() {
        assert_eq!(with(&[]), Ok(vec![]));
        let dirs: Vec<OsString> = ["-I", "/a", "-I", ".", "-I", "b"].map(Into::into).to_vec();
        assert_eq!(with(&[("CPATH", "/a::b")]), Ok(dirs));
        assert!(with(&[("CPATH", "")]).unwrap_err().contains("empty"));
        for (name, _) in LOCAL {
            let reason = with(&[(name, "x"), ("CPATH", "/a")]).unwrap_err();
            assert!(reason.starts_with(&format!("{name} is set")), "{reason}");
        }
    }
}
