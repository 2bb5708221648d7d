//! The header names a file may look up: every `#include`, `#include_next` and `#import`, and
//! every literal `__has_include(...)` (also through an alias such as glibc's
//! `__glibc_has_include`). The scan cache re-checks where each name would be found; it may use a
//! recorded scan only if it knows every name the preprocessor may have searched for, so a lookup
//! it cannot name (`#include MACRO`, `__has_include(MACRO)`) makes the file's compile uncacheable.
//!
//! A small lexer, erring on the side of more names: comments, string and character literals,
//! raw strings and pp-numbers are skipped as the preprocessor skips them (so a `/*` in a string
//! hides nothing); a directive is a `#` (or `%:`) first on its line, also after a comment; line
//! splices are undone first. Names in directives that are never reached (`#ifdef _WIN32`) are
//! names too: re-checking them costs a `stat`, never a wrong result.

use std::borrow::Cow;

/// How a header name was written, which chooses the directories searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Delimiter {
    /// `"name"`: the includer's directory, the quote dirs, then the bracket dirs.
    Quote,
    /// `<name>`: the bracket dirs.
    Angle,
}

/// One name a file may look up.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lookup {
    pub name: Vec<u8>,
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
            name: name.to_vec(),
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
struct Line {
    /// The directive's name, when the line is a directive.
    directive: Option<Vec<u8>>,
    /// For `#define`: the macro's name, once read.
    defines: Option<Vec<u8>>,
    /// The identifier before the current one on this line.
    previous: Option<Vec<u8>>,
}

struct Lexer<'a> {
    text: &'a [u8],
    at: usize,
    /// Nothing but whitespace and comments since the last newline.
    line_start: bool,
    line: Line,
    found: Vec<Lookup>,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b'$' || b >= 0x80
}

fn is_ident(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit()
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.text.get(self.at + ahead).copied()
    }

    fn run(&mut self) -> Result<(), String> {
        while let Some(b) = self.peek(0) {
            match b {
                b'\n' => {
                    self.at += 1;
                    self.line_start = true;
                    self.line = Line::default();
                }
                b' ' | b'\t' | b'\r' | b'\x0b' | b'\x0c' => self.at += 1,
                b'/' if self.peek(1) == Some(b'/') => self.skip_to_newline(),
                b'/' if self.peek(1) == Some(b'*') => self.skip_block_comment(),
                b'"' | b'\'' => {
                    self.line_start = false;
                    self.skip_literal(b);
                }
                b'#' if self.line_start => self.directive(1)?,
                b'%' if self.line_start && self.peek(1) == Some(b':') => self.directive(2)?,
                b'.' if self.peek(1).is_some_and(|d| d.is_ascii_digit()) => self.pp_number(),
                b'0'..=b'9' => self.pp_number(),
                b if is_ident_start(b) => self.identifier()?,
                _ => {
                    self.line_start = false;
                    self.at += 1;
                }
            }
        }
        Ok(())
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

    /// A preprocessing number (`1'000`, `0x1p-3`, `1.e+5`): its `'` and signs are not literals.
    fn pp_number(&mut self) {
        self.line_start = false;
        self.at += 1;
        while let Some(b) = self.peek(0) {
            let sign = (b == b'+' || b == b'-')
                && matches!(self.text[self.at - 1], b'e' | b'E' | b'p' | b'P');
            let separator = b == b'\'' && self.peek(1).is_some_and(is_ident);
            if !(is_ident(b) || b == b'.' || sign || separator) {
                return;
            }
            self.at += if separator { 2 } else { 1 };
        }
    }

    fn read_identifier(&mut self) -> &[u8] {
        let start = self.at;
        while self.peek(0).is_some_and(is_ident) {
            self.at += 1;
        }
        &self.text[start..self.at]
    }

    fn identifier(&mut self) -> Result<(), String> {
        self.line_start = false;
        let ident = self.read_identifier().to_vec();
        match self.peek(0) {
            Some(b'"') if matches!(&ident[..], b"R" | b"LR" | b"uR" | b"UR" | b"u8R") => {
                self.skip_raw_string();
            }
            Some(q @ (b'"' | b'\'')) if matches!(&ident[..], b"L" | b"u" | b"U" | b"u8") => {
                self.skip_literal(q);
            }
            _ if memchr::memmem::find(&ident, b"has_include").is_some() => {
                self.has_include(&ident)?;
            }
            _ => {}
        }
        if self.line.directive.as_deref() == Some(b"define") && self.line.defines.is_none() {
            self.line.defines = Some(ident.clone());
        }
        self.line.previous = Some(ident);
        Ok(())
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
        let name = self.read_identifier().to_vec();
        let next = name == b"include_next";
        if next || name == b"include" || name == b"import" {
            self.skip_blanks();
            let Some((header, delimiter)) = self.header_name() else {
                return Err("an #include of a macro (a computed include)".into());
            };
            self.found.push(Lookup {
                name: header,
                delimiter,
                next,
                existence: false,
            });
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
                        name,
                        delimiter,
                        next: ident.ends_with(b"_next"),
                        existence: true,
                    });
                    return Ok(());
                }
            }
        }
        self.at = after_ident;
        let directive = self.line.directive.as_deref();
        let tested = matches!(directive, Some(b"ifdef" | b"ifndef" | b"undef"))
            || self.line.previous.as_deref() == Some(b"defined");
        let defined = directive == Some(b"define")
            && (self.line.defines.is_none()
                || (self.line.defines.as_deref())
                    .is_some_and(|d| memchr::memmem::find(d, b"has_include").is_some()));
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
