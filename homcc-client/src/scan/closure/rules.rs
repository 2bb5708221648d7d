//! What the lexer's reading of a file and the command's macros mean for the closure: the
//! dialect (trigraphs, raw strings, digit separators) and the macros a computed include may use.

use std::{ffi::OsString, os::unix::ffi::OsStrExt};

use homcc_proto::flags::{self, Token};
use rustc_hash::{FxHashMap, FxHashSet};

use super::super::{
    directives::{macro_hash, Delimiter, Names},
    facts::ReadFile,
};
use crate::classify::Language;

/// How the command's language reads what the lexer cannot tell alone.
#[derive(Debug, Clone, Copy)]
pub(in crate::scan) struct Dialect {
    trigraphs: bool,
    /// Raw strings are C++11's, digit separators C++14's.
    cxx11: bool,
    cxx14: bool,
}

impl Dialect {
    /// The dialect of a compile of `language` with the preprocessor flags `args`.
    pub(in crate::scan) fn of(language: Language, args: &[OsString]) -> Dialect {
        let args = || args.iter().map(|arg| arg.as_bytes());
        let std = |std: &[u8]| args().any(|arg| arg.strip_prefix(b"-std=") == Some(std));
        // Trigraphs are on with `-trigraphs`, clang's `-ftrigraphs` (also through `-Xclang`),
        // `-ansi` or an ISO `-std` (only the GNU dialects leave them off; the ISO C++17 and
        // later have none, which is not told apart).
        let trigraphs = args().any(|arg| {
            matches!(arg, b"-trigraphs" | b"-ftrigraphs" | b"-ansi")
                || arg
                    .strip_prefix(b"-std=")
                    .is_some_and(|std| !std.starts_with(b"gnu"))
        });
        let cxx = matches!(language, Language::Cxx | Language::ObjCxx);
        let before = |stds: &[&str]| stds.iter().any(|old| std(old.as_bytes()));
        let cxx98 = ["c++98", "c++03", "gnu++98", "gnu++03"];
        let cxx11 = ["c++0x", "c++11", "gnu++0x", "gnu++11"];
        Dialect {
            trigraphs,
            cxx11: cxx && !before(&cxx98),
            cxx14: cxx && !before(&cxx98) && !before(&cxx11),
        }
    }

    /// The names `file` may look up, as lexed, unless the lexer may have read it other than
    /// the compiler does (or could not read it): then why.
    pub(in crate::scan) fn names_of<'a>(&self, file: &'a ReadFile) -> Result<&'a Names, String> {
        let at = file.read_from.display();
        match &file.names {
            Some(Ok(names)) => match self.misread(names) {
                Some(why) => Err(format!("{at}: {why}")),
                None => Ok(names),
            },
            Some(Err(why)) => Err(format!("{at}: {why}")),
            None => Err(format!("{at}: not lexed")),
        }
    }

    /// Why the lexer may have read a file with `names` other than the compiler does.
    pub(in crate::scan) fn misread(&self, names: &Names) -> Option<&'static str> {
        if names.trigraphs && self.trigraphs {
            return Some("a trigraph (??= or ??/), with trigraphs on");
        }
        if names.raw_strings && !self.cxx11 {
            return Some("a raw string, which this language has not");
        }
        if names.digit_separators && !self.cxx14 {
            return Some("a digit separator, which this language has not");
        }
        None
    }
}

/// The macros a computed include may use: defined as a header name (on the command line or in
/// a file of the closure), or otherwise.
#[derive(Debug, Default)]
pub(super) struct Macros {
    headers: FxHashMap<Vec<u8>, Vec<(Vec<u8>, Delimiter)>>,
    /// Hashes of the names of macros defined otherwise ([`macro_hash`]).
    others: FxHashSet<u64>,
    /// Identifiers with `has_include` in them used without a header name.
    has_include_uses: FxHashSet<Vec<u8>>,
}

impl Macros {
    /// The command's `-D` macros (also through `-Xclang` and `-Xpreprocessor`), or why they
    /// cannot be told.
    pub(super) fn from_command(args: &[OsString]) -> Result<Macros, String> {
        let mut macros = Macros::default();
        for token in flags::tokens(args) {
            let Token::Flag(flag) = token else { continue };
            let Some(value) = flag.value() else { continue };
            let value = match flag.rule.spelling {
                "-D" => value.as_bytes(),
                "-Xclang" | "-Xpreprocessor" => match value.as_bytes().strip_prefix(b"-D") {
                    Some([]) => {
                        return Err(format!("{} -D with its macro apart", flag.rule.spelling))
                    }
                    Some(value) => value,
                    None => continue,
                },
                _ => continue,
            };
            let name_end = (value.iter())
                .position(|&b| b == b'=' || b == b'(')
                .unwrap_or(value.len());
            let name = &value[..name_end];
            let header = (value.get(name_end) == Some(&b'='))
                .then(|| header_name(value[name_end + 1..].trim_ascii()))
                .flatten();
            match header {
                Some(header) => macros
                    .headers
                    .entry(name.to_vec())
                    .or_default()
                    .push(header),
                None => {
                    macros.others.insert(macro_hash(name));
                }
            }
        }
        Ok(macros)
    }

    /// The macros a file of the closure defines.
    pub(super) fn add(&mut self, names: &Names) {
        for defined in &names.header_macros {
            let headers = self.headers.entry(defined.name.clone()).or_default();
            let header = (defined.header.clone(), defined.delimiter);
            if !headers.contains(&header) {
                headers.push(header);
            }
        }
        self.others.extend(names.other_macros.iter().copied());
        (self.has_include_uses).extend(names.has_include_uses.iter().cloned());
    }

    /// A use of `__has_include` (or of a macro with `has_include` in its name) whose lookup
    /// cannot be named: the operator itself, or a macro, used without a header name.
    pub(super) fn unnamed_has_include(&self) -> Option<&[u8]> {
        let operator = |name: &[u8]| name == b"__has_include" || name == b"__has_include_next";
        (self.has_include_uses.iter())
            .find(|name| operator(name) || self.other(name) || self.headers.contains_key(*name))
            .map(Vec::as_slice)
    }

    /// The header names `name` is defined as, so far.
    pub(super) fn headers(&self, name: &[u8]) -> Vec<(Vec<u8>, Delimiter)> {
        self.headers.get(name).cloned().unwrap_or_default()
    }

    /// Whether `name` is (maybe: by its hash) defined other than as a header name.
    pub(super) fn other(&self, name: &[u8]) -> bool {
        self.others.contains(&macro_hash(name))
    }
}

/// `"name"` or `<name>`, as a macro's whole value.
pub(super) fn header_name(value: &[u8]) -> Option<(Vec<u8>, Delimiter)> {
    let (delimiter, inner) = match value {
        [b'"', inner @ .., b'"'] => (Delimiter::Quote, inner),
        [b'<', inner @ .., b'>'] => (Delimiter::Angle, inner),
        _ => return None,
    };
    let closing = if delimiter == Delimiter::Quote {
        b'"'
    } else {
        b'>'
    };
    (!inner.is_empty() && !inner.contains(&closing) && !inner.contains(&b'\n'))
        .then(|| (inner.to_vec(), delimiter))
}
