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

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

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
}

impl Lookup {
    /// A name as `#include` looks it up.
    pub fn include(name: &[u8], delimiter: Delimiter) -> Lookup {
        Lookup {
            name: Some(name.to_vec()),
            delimiter,
            next: false,
            existence: false,
        }
    }
}

/// Every name `text` may look up, or why some lookup cannot be named.
pub fn lookups(text: &[u8]) -> Result<Vec<Lookup>, String> {
    if memchr::memmem::find(text, b"??=").is_some() || memchr::memmem::find(text, b"??/").is_some()
    {
        return Err("a trigraph (??= or ??/) in a header".into());
    }
    let text = unspliced(text);
    let mut lexer = Lexer {
        text: &text,
        at: 0,
        line_start: true,
        line: Line::default(),
        found: Vec::new(),
    };
    lexer.run()?;
    lexer.found.sort();
    lexer.found.dedup();
    Ok(lexer.found)
}

/// `text` with every backslash-newline removed (translation phase 2).
fn unspliced(text: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(b'\\', text).is_none() {
        return Cow::Borrowed(text);
    }
    let mut out = Vec::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        if text[at] == b'\\' {
            let rest = &text[at + 1..];
            let skip = if rest.starts_with(b"\n") {
                Some(2)
            } else if rest.starts_with(b"\r\n") {
                Some(3)
            } else {
                None
            };
            if let Some(skip) = skip {
                at += skip;
                continue;
            }
        }
        out.push(text[at]);
        at += 1;
    }
    Cow::Owned(out)
}

/// What the current directive line is, for telling a use of `__has_include` from a test or a
/// definition of it.
#[derive(Debug, Default)]
struct Line<'a> {
    /// The directive's name, when the line is a directive.
    directive: Option<&'a [u8]>,
    /// The line is `#define NAME ...` with `has_include` in `NAME` (an alias of it).
    defines_has_include: bool,
}

struct Lexer<'a> {
    text: &'a [u8],
    at: usize,
    /// Nothing but whitespace and comments since the last newline.
    line_start: bool,
    line: Line<'a>,
    found: Vec<Lookup>,
}

/// What a byte is to the lexer's fast path: a blank, plain code, or one it must look at.
const BLANK: u8 = 0;
const CODE: u8 = 1;
const SPECIAL: u8 = 2;
static CLASS: [u8; 256] = {
    let mut class = [CODE; 256];
    let (blanks, specials) = (b" \t\r\x0b\x0c", b"\n/\"'#%");
    let mut i = 0;
    while i < blanks.len() {
        class[blanks[i] as usize] = BLANK;
        i += 1;
    }
    i = 0;
    while i < specials.len() {
        class[specials[i] as usize] = SPECIAL;
        i += 1;
    }
    class
};

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b'$' || b >= 0x80
}

fn is_ident(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit()
}

/// Where the identifier characters that end at `at` in `text` begin (`at` if none).
fn ident_start(text: &[u8], at: usize) -> usize {
    at - (text[..at].iter().rev())
        .take_while(|&&b| is_ident(b))
        .count()
}

impl<'a> Lexer<'a> {
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.text.get(self.at + ahead).copied()
    }

    fn run(&mut self) -> Result<(), String> {
        let text = self.text;
        // Where each identifier with `has_include` in it starts: the only identifiers looked at.
        let mut uses = memchr::memmem::find_iter(text, b"has_include")
            .map(|at| ident_start(text, at))
            .peekable();
        while self.at < text.len() {
            while uses.next_if(|&at| at < self.at).is_some() {}
            let next_use = uses.peek().copied().unwrap_or(usize::MAX);
            // Plain code and blanks, up to the next byte that matters.
            let mut code = false;
            while self.at < text.len() && self.at != next_use {
                match CLASS[usize::from(text[self.at])] {
                    SPECIAL => break,
                    class => code |= class == CODE,
                }
                self.at += 1;
            }
            if code {
                self.line_start = false;
            }
            if self.at == next_use {
                self.line_start = false;
                let ident = self.read_identifier();
                self.has_include(ident)?;
                continue;
            }
            let Some(b) = self.peek(0) else { break };
            match b {
                b'\n' => {
                    self.at += 1;
                    self.line_start = true;
                    self.line = Line::default();
                }
                b'/' if self.peek(1) == Some(b'/') => self.skip_to_newline(),
                b'/' if self.peek(1) == Some(b'*') => self.skip_block_comment(),
                b'"' if self.raw_string_prefix() => self.skip_raw_string(),
                b'\'' if self.digit_separator() => self.at += 1,
                b'"' | b'\'' => {
                    self.line_start = false;
                    self.skip_literal(b);
                }
                b'#' if self.line_start => self.directive(1)?,
                b'%' if self.line_start && self.peek(1) == Some(b':') => self.directive(2)?,
                _ => {
                    self.line_start = false;
                    self.at += 1;
                }
            }
        }
        Ok(())
    }

    /// The identifier that ends at the cursor (empty if none).
    fn identifier_before(&self) -> &'a [u8] {
        &self.text[ident_start(self.text, self.at)..self.at]
    }

    /// Whether the `"` at the cursor opens a raw string: `R`, `LR`, `uR`, `UR` or `u8R` before it.
    fn raw_string_prefix(&self) -> bool {
        matches!(
            self.identifier_before(),
            b"R" | b"LR" | b"uR" | b"UR" | b"u8R"
        )
    }

    /// Whether the `'` at the cursor separates digits (`1'000`, `0x1p-3'f`): a preprocessing
    /// number (digits first) before it, and a digit or letter after.
    fn digit_separator(&self) -> bool {
        let len = (self.text[..self.at].iter().rev())
            .take_while(|&&b| is_ident(b) || b == b'.')
            .count();
        let number = &self.text[self.at - len..self.at];
        let starts_number = match number {
            [d, ..] if d.is_ascii_digit() => true,
            [b'.', d, ..] => d.is_ascii_digit(),
            _ => false,
        };
        starts_number && self.peek(1).is_some_and(is_ident)
    }

    fn skip_to_newline(&mut self) {
        self.at =
            memchr::memchr(b'\n', &self.text[self.at..]).map_or(self.text.len(), |n| self.at + n);
    }

    /// Skips `/* ... */`; a comment is whitespace, so a line that starts with one may still hold
    /// a directive after it.
    fn skip_block_comment(&mut self) {
        let body = &self.text[self.at + 2..];
        let len = memchr::memmem::find(body, b"*/").map_or(body.len(), |end| end + 2);
        if memchr::memchr(b'\n', &body[..len.min(body.len())]).is_some() {
            self.line_start = true;
        }
        self.at += 2 + len;
    }

    /// Skips a string or character literal; one left open ends at the end of its line, as the
    /// preprocessor ends it.
    fn skip_literal(&mut self, quote: u8) {
        self.at += 1;
        while let Some(b) = self.peek(0) {
            match b {
                b'\\' => self.at += 2,
                b'\n' => return,
                _ => {
                    self.at += 1;
                    if b == quote {
                        return;
                    }
                }
            }
        }
    }

    /// Skips a raw string `R"delim( ... )delim"` (at its `"`); one that is not well formed is an
    /// ordinary string.
    fn skip_raw_string(&mut self) {
        let open = self.at + 1;
        let delimiter_end = (self.text[open..].iter().take(17)).position(|&b| b == b'(');
        let Some(len) = delimiter_end else {
            return self.skip_literal(b'"');
        };
        let delimiter = &self.text[open..open + len];
        if delimiter.iter().any(|b| b" ()\\\t\x0b\x0c\n".contains(b)) {
            return self.skip_literal(b'"');
        }
        let mut close = Vec::with_capacity(len + 2);
        close.push(b')');
        close.extend_from_slice(delimiter);
        close.push(b'"');
        let body = open + len + 1;
        self.at = memchr::memmem::find(&self.text[body..], &close)
            .map_or(self.text.len(), |end| body + end + close.len());
    }

    fn read_identifier(&mut self) -> &'a [u8] {
        let start = self.at;
        let len = (self.text[start..].iter())
            .position(|&b| !is_ident(b))
            .unwrap_or(self.text.len() - start);
        self.at += len;
        &self.text[start..self.at]
    }

    /// Skips blanks and comments within the line.
    fn skip_blanks(&mut self) {
        loop {
            match self.peek(0) {
                Some(b' ' | b'\t' | b'\r' | b'\x0b' | b'\x0c') => self.at += 1,
                Some(b'/') if self.peek(1) == Some(b'*') => {
                    let body = &self.text[self.at + 2..];
                    self.at += 2 + memchr::memmem::find(body, b"*/").map_or(body.len(), |e| e + 2);
                }
                _ => return,
            }
        }
    }

    /// A `<name>` or `"name"` at the cursor, which is left after it.
    fn header_name(&mut self) -> Option<(Vec<u8>, Delimiter)> {
        let (close, delimiter) = match self.peek(0)? {
            b'<' => (b'>', Delimiter::Angle),
            b'"' => (b'"', Delimiter::Quote),
            _ => return None,
        };
        let start = self.at + 1;
        let len = self.text[start..]
            .iter()
            .position(|&b| b == close || b == b'\n')?;
        if self.text[start + len] != close || len == 0 {
            return None;
        }
        self.at = start + len + 1;
        Some((self.text[start..start + len].to_vec(), delimiter))
    }

    /// After the `#` (`skip` bytes long) that starts a directive line.
    fn directive(&mut self, skip: usize) -> Result<(), String> {
        self.at += skip;
        self.line_start = false;
        self.skip_blanks();
        if !self.peek(0).is_some_and(is_ident_start) {
            return Ok(());
        }
        let name = self.read_identifier();
        let next = name == b"include_next";
        if next || name == b"include" || name == b"import" {
            self.skip_blanks();
            let (name, delimiter) = match self.header_name() {
                Some((header, delimiter)) => (Some(header), delimiter),
                None => (None, Delimiter::Quote),
            };
            self.found.push(Lookup {
                name,
                delimiter,
                next,
                existence: false,
            });
        }
        if name == b"define" {
            self.skip_blanks();
            let defines = self.read_identifier();
            if memchr::memmem::find(defines, b"has_include").is_some() {
                self.line.defines_has_include = true;
            }
        }
        self.line.directive = Some(name);
        Ok(())
    }

    /// An identifier with `has_include` in it: a literal argument is a lookup; a test of it
    /// (`defined`, `#ifdef`), its own definition or an alias's is none; any other use is a lookup
    /// that cannot be named.
    fn has_include(&mut self, ident: &[u8]) -> Result<(), String> {
        let after_ident = self.at;
        self.skip_blanks();
        if self.peek(0) == Some(b'(') {
            self.at += 1;
            self.skip_blanks();
            if let Some((name, delimiter)) = self.header_name() {
                self.skip_blanks();
                if self.peek(0) == Some(b')') {
                    self.at += 1;
                    self.found.push(Lookup {
                        name: Some(name),
                        delimiter,
                        next: ident.ends_with(b"_next"),
                        existence: true,
                    });
                    return Ok(());
                }
            }
        }
        self.at = after_ident;
        let directive = self.line.directive;
        let start = after_ident - ident.len();
        let before = self.text[..start].trim_ascii_end();
        let before = before.strip_suffix(b"(").unwrap_or(before).trim_ascii_end();
        let tested = matches!(directive, Some(b"ifdef" | b"ifndef" | b"undef"))
            || before.ends_with(b"defined")
                && !before[..before.len() - 7]
                    .last()
                    .is_some_and(|&b| is_ident(b));
        let defined = directive == Some(b"define") && self.line.defines_has_include;
        if tested || defined {
            return Ok(());
        }
        Err(format!(
            "{} with an argument that is not a header name",
            String::from_utf8_lossy(ident)
        ))
    }
}

#[cfg(test)]
mod tests;
