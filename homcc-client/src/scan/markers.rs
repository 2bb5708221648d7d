//! The files a preprocessor run entered, read from the line markers of its output
//! (`# 12 "dir/x.h" 1 3`, flag 1: the start of a file; gcc's and clang's `-E` format). They
//! are the files `-M` lists, minus the source: the scan uses them where one run must both
//! write the user's `-MMD` file and give the full list.

use std::{collections::HashSet, ffi::OsStr, os::unix::ffi::OsStrExt, path::PathBuf};

/// Names in markers that are no file.
const PSEUDO_FILES: &[&[u8]] = &[b"<built-in>", b"<command-line>", b"<command line>"];

/// Every file a marker of `output` enters, once each, in order of their first entry.
pub fn entered_files(output: &[u8]) -> Vec<PathBuf> {
    let mut seen = HashSet::new();
    let mut files = Vec::new();
    for line in output.split(|&b| b == b'\n') {
        let Some(name) = entered(line) else { continue };
        if !PSEUDO_FILES.contains(&name.as_slice()) && seen.insert(name.clone()) {
            files.push(PathBuf::from(OsStr::from_bytes(&name)));
        }
    }
    files
}

/// The file a line marker starts (its first flag is 1), unquoted.
fn entered(line: &[u8]) -> Option<Vec<u8>> {
    let rest = line.strip_prefix(b"# ")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let quoted = rest[digits..].strip_prefix(b" \"").filter(|_| digits > 0)?;
    let (name, after) = unquote(quoted)?;
    (after.split(|&b| b == b' ').nth(1) == Some(b"1")).then_some(name)
}

/// A name up to its closing quote, with `\\`, `\"`, `\n` and octal `\ooo` escapes undone, and
/// what follows the quote.
fn unquote(text: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut name = Vec::new();
    let mut at = 0;
    loop {
        match *text.get(at)? {
            b'"' => return Some((name, &text[at + 1..])),
            b'\\' => {
                let next = *text.get(at + 1)?;
                let octal = text[at + 1..]
                    .iter()
                    .take(3)
                    .take_while(|b| (b'0'..=b'7').contains(b))
                    .count();
                if octal > 0 {
                    let digits = &text[at + 1..at + 1 + octal];
                    let value = digits.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
                    name.push(u8::try_from(value).ok()?);
                    at += 1 + octal;
                } else {
                    name.push(if next == b'n' { b'\n' } else { next });
                    at += 2;
                }
            }
            byte => {
                name.push(byte);
                at += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entered_files_come_from_flag_1_markers_once_each() {
        let output = b"# 0 \"a.c\"\n# 0 \"<built-in>\"\n# 1 \"<built-in>\" 1\n\
# 1 \"/usr/include/stdc-predef.h\" 1 3 4\n# 0 \"<command-line>\" 2\n# 1 \"./forced.h\" 1\n\
# 1 \"a.c\"\nint x;\n# 1 \"b.h\" 1\n# 2 \"a.c\" 2\n# 1 \"b.h\" 1\n# 5 \"not entered.h\"\n\
#pragma once\n  # 1 \"indented.h\" 1\n";
        let want = ["/usr/include/stdc-predef.h", "./forced.h", "b.h"];
        assert_eq!(entered_files(output), want.map(PathBuf::from));
    }

    #[test]
    fn quoted_names_are_unescaped() {
        let output = b"# 1 \"sp ace/q\\\"uote\\\\back.h\" 1\n# 3 \"caf\\303\\251.h\" 1 3\n";
        let want = [&b"sp ace/q\"uote\\back.h"[..], "café.h".as_bytes()];
        assert_eq!(
            entered_files(output),
            want.map(|n| PathBuf::from(OsStr::from_bytes(n)))
        );
    }
}
