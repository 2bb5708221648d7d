//! The header names a file may look up: every `#include`, `#include_next` and `#import`, and
//! every literal `__has_include(...)` (also through an alias such as glibc's
//! `__glibc_has_include`). The scan cache re-checks where each name would be found; it may use a
//! recorded scan only if it knows every name the preprocessor may have searched for: a computed
//! `#include MACRO` is marked as such (the name it found is among the files read: `probes`), and
//! a lookup that may find nothing it read (`__has_include(MACRO)`) makes the compile uncacheable.
//!
//! A small lexer, erring on the side of more names: comments, string and character literals,
//! raw strings and pp-numbers are skipped as the preprocessor skips them (so a `/*` in a string
//! hides nothing); a directive is a `#` (or `%:`) first on its line, also after a comment; line
//! splices are undone first. Names in directives that are never reached (`#ifdef _WIN32`) are
//! names too: re-checking them costs a `stat`, never a wrong result.

use std::{borrow::Cow, os::unix::ffi::OsStrExt, path::Path};

use serde::{Deserialize, Serialize};

mod lexer;

/// How a header name was written, which chooses the directories searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Delimiter {
    /// `"name"`: the includer's directory, the quote dirs, then the bracket dirs.
    Quote,
    /// `<name>`: the bracket dirs.
    Angle,
}

/// One name a file may look up.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Lookup {
    /// `None` for a computed include (`#include MACRO`), whose name is known only to the
    /// preprocessor.
    #[serde(with = "serde_bytes")]
    pub name: Option<Vec<u8>>,
    pub delimiter: Delimiter,
    /// `#include_next`, `__has_include_next`: the search starts after the includer's own
    /// directory in the list, which only the whole list covers.
    pub next: bool,
    /// `__has_include`: the answer depends on the name's existence, not on a file read.
    pub existence: bool,
    /// Of a computed include that is one macro name alone (`#include HEADER`), that name.
    #[serde(with = "serde_bytes")]
    pub macro_name: Option<Vec<u8>>,
}

impl Lookup {
    /// Whether the search starts in the includer's directory: `"name"`, and every `_next` (which
    /// starts after the includer's place, somewhere in the whole list).
    pub fn quoted(&self) -> bool {
        self.next || self.delimiter == Delimiter::Quote
    }

    /// Names this search for `name` from a file in `includer`: the same name searched the same
    /// way from the same place tries the same paths (the system headers of a compile look up
    /// many names many times). With `existence`, a `__has_include` is a search of its own.
    pub fn search_key(&self, includer: &Path, name: &[u8], existence: bool) -> Vec<u8> {
        let quoted = self.quoted();
        let flags = u8::from(self.next) | u8::from(quoted) << 1 | u8::from(existence) << 2;
        let mut key = vec![flags];
        if quoted {
            key.extend_from_slice(includer.as_os_str().as_bytes());
            key.push(0);
        }
        key.extend_from_slice(name);
        key
    }

    /// A name as `#include` looks it up.
    pub fn include(name: &[u8], delimiter: Delimiter) -> Lookup {
        Lookup {
            name: Some(name.to_vec()),
            delimiter,
            next: false,
            existence: false,
            macro_name: None,
        }
    }
}

/// What a file's directives tell the scans.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Names {
    /// Every name it may look up.
    pub lookups: Vec<Lookup>,
    /// It holds a trigraph (`??=`, `??/`): where trigraphs are on (`-trigraphs`, `-std=c99`,
    /// ...), a directive or a line splice may hide in one, which the lexer does not see.
    pub trigraphs: bool,
    /// It holds what the lexer took for a raw string (`R"x(...)x"`, C++11) or a digit separator
    /// (`1'000`, C++14): in C and older C++, which have not, a directive may hide behind one.
    pub raw_strings: bool,
    pub digit_separators: bool,
    /// The macros it defines as a header name (`#define HEADER "x.h"`), which a computed
    /// include may use.
    pub header_macros: Vec<HeaderMacro>,
    /// The hashes ([`macro_hash`]) of the names of the other macros it defines.
    pub other_macros: Vec<u64>,
    /// Identifiers with `has_include` in them used other than with a header name (`x =
    /// __has_include;`, `__glibc_has_include (HEADER)`, a member `has_include`): where one is the
    /// operator or a macro, the lookup it makes cannot be named.
    pub has_include_uses: Vec<Vec<u8>>,
}

/// `#define NAME "header"` or `#define NAME <header>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderMacro {
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub header: Vec<u8>,
    pub delimiter: Delimiter,
}

/// A macro name's hash, as [`Names::other_macros`] keeps it.
pub fn macro_hash(name: &[u8]) -> u64 {
    use std::hash::Hasher as _;
    let mut hasher = rustc_hash::FxHasher::default();
    hasher.write(name);
    hasher.finish()
}

/// Every name `text` may look up and the macros it defines, or why some lookup cannot be named.
pub fn lookups(text: &[u8]) -> Result<Names, String> {
    let trigraphs = memchr::memmem::find(text, b"??=").is_some()
        || memchr::memmem::find(text, b"??/").is_some();
    // A byte order mark is no part of the text (the compilers skip it).
    let text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
    let text = unspliced(text);
    let mut names = lexer::names(
        &text,
        Names {
            trigraphs,
            ..Names::default()
        },
    )?;
    names.lookups.sort();
    names.lookups.dedup();
    names.other_macros.sort_unstable();
    names.other_macros.dedup();
    Ok(names)
}

/// `text` as the preprocessor's first phases leave it: every line ending a `\n` (a lone `\r`
/// ends a line too), and every line splice removed: a backslash, any blanks (gcc and clang allow
/// them, with a warning) and a line ending (translation phase 2).
fn unspliced(text: &[u8]) -> Cow<'_, [u8]> {
    let lone_cr = memchr::memchr_iter(b'\r', text).any(|at| text.get(at + 1) != Some(&b'\n'));
    if !lone_cr && memchr::memchr(b'\\', text).is_none() {
        return Cow::Borrowed(text);
    }
    let line_end = |at: usize| match (text.get(at), text.get(at + 1)) {
        (Some(b'\r'), Some(b'\n')) => 2,
        (Some(b'\n' | b'\r'), _) => 1,
        _ => 0,
    };
    let mut out = Vec::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        if text[at] == b'\\' {
            let blanks = (text[at + 1..].iter())
                .take_while(|b| matches!(b, b' ' | b'\t' | b'\x0b' | b'\x0c'))
                .count();
            let end = line_end(at + 1 + blanks);
            if end > 0 {
                at += 1 + blanks + end;
                continue;
            }
        }
        match line_end(at) {
            0 => out.push(text[at]),
            end => {
                out.push(b'\n');
                at += end - 1;
            }
        }
        at += 1;
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests;
