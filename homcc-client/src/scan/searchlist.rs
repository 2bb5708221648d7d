//! The include search list a compiler prints with `-v` (in the C locale; gcc's and clang's
//! format): the directories of `#include "..."` only, then those of both forms, in search order,
//! and the directories it left out because they do not exist.

use std::{ffi::OsStr, os::unix::ffi::OsStrExt, path::PathBuf};

/// Where `#include` looks, as the compiler printed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchList {
    /// Searched for `"name"` only (`-iquote`), after the includer's own directory.
    pub quote: Vec<PathBuf>,
    /// Searched for both forms (`-I`, `-isystem`, the built-in dirs, `-idirafter`).
    pub bracket: Vec<PathBuf>,
    /// Named (by a flag, a variable or the compiler itself) but left out because they do not
    /// exist: one created later joins the search.
    pub missing: Vec<PathBuf>,
    /// Left out as the same directory as one listed earlier (`-Ia -Ib` where `b` links to `a`):
    /// one that becomes a directory of its own joins the search.
    pub duplicates: Vec<PathBuf>,
    /// Entries that are no plain directory: clang's header maps and framework directories.
    pub unusual: Vec<String>,
    /// Configuration files the compiler driver read (clang's `Configuration file: ...`).
    pub config_files: Vec<PathBuf>,
    /// Whether the compiler printed a search list at all.
    pub printed: bool,
}

/// Reads the search list from `-v` output.
pub fn parse(text: &[u8]) -> SearchList {
    let mut list = SearchList::default();
    let mut section = None;
    for line in text.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b"#include \"...\" search starts here:") {
            section = Some(false);
        } else if line.starts_with(b"#include <...> search starts here:") {
            section = Some(true);
            list.printed = true;
        } else if line.starts_with(b"End of search list.") {
            section = None;
        } else if let Some(dir) = quoted_after(line, b"ignoring nonexistent directory \"") {
            list.missing.push(dir);
        } else if let Some(dir) = not_a_directory(line) {
            list.missing.push(dir);
        } else if let Some(dir) = quoted_after(line, b"ignoring duplicate directory \"") {
            list.duplicates.push(dir);
        } else if let Some(file) = line.strip_prefix(b"Configuration file: ") {
            list.config_files.push(path(file));
        } else if let (Some(bracket), Some(dir)) = (section, line.strip_prefix(b" ")) {
            if dir.ends_with(b" (framework directory)") || dir.ends_with(b" (headermap)") {
                list.unusual.push(String::from_utf8_lossy(dir).into_owned());
                continue;
            }
            match bracket {
                true => list.bracket.push(path(dir)),
                false => list.quote.push(path(dir)),
            }
        }
    }
    list
}

fn path(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

/// gcc's `cc1: warning: DIR: not a directory` (`-I` of a file), which it leaves out.
fn not_a_directory(line: &[u8]) -> Option<PathBuf> {
    let at = memchr::memmem::find(line, b": warning: ")?;
    let rest = line[at + 11..].strip_suffix(b": not a directory")?;
    Some(path(rest))
}

fn quoted_after(line: &[u8], prefix: &[u8]) -> Option<PathBuf> {
    let rest = line.strip_prefix(prefix)?;
    Some(path(rest.strip_suffix(b"\"")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gcc_and_clang_lists() {
        let text = b"ignoring duplicate directory \"/usr/include/x\"\n\
ignoring nonexistent directory \"/usr/local/include/x86_64-linux-gnu\"\n\
#include \"...\" search starts here:\n /quote\n#include <...> search starts here:\n inc/\n \
/usr/lib/gcc/x86_64-linux-gnu/12/include\n /usr/include\nEnd of search list.\n\
 /not/a/dir (after the list)\nConfiguration file: /usr/lib/llvm-16/bin/clang.cfg\n";
        let list = parse(text);
        let paths = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();
        assert_eq!(list.quote, paths(&["/quote"]));
        assert_eq!(
            list.bracket,
            paths(&[
                "inc/",
                "/usr/lib/gcc/x86_64-linux-gnu/12/include",
                "/usr/include"
            ])
        );
        assert_eq!(
            list.missing,
            paths(&["/usr/local/include/x86_64-linux-gnu"])
        );
        assert_eq!(
            list.config_files,
            paths(&["/usr/lib/llvm-16/bin/clang.cfg"])
        );
        assert!(list.printed);
        assert_eq!(parse(b"nothing"), SearchList::default());
    }
}
