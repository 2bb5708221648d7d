//! The lexer of [`super::lookups`]: one pass over the (unspliced) text that finds the directives
//! and `__has_include` uses, skipping comments and literals as the preprocessor does.

use super::{macro_hash, Delimiter, HeaderMacro, Lookup, Names};

/// The names `text` looks up and the macros it defines, added to `names`.
pub(super) fn names(text: &[u8], names: Names) -> Result<Names, String> {
    let mut lexer = Lexer {
        text,
        at: 0,
        line_start: true,
        line: Line::default(),
        names,
    };
    lexer.run()?;
    Ok(lexer.names)
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
    names: Names,
}

/// What a byte is to the lexer's fast path: a blank, plain code, or one it must look at.
const BLANK: u8 = 0;
const CODE: u8 = 1;
const SPECIAL: u8 = 2;
static CLASS: [u8; 256] = {
    let mut class = [CODE; 256];
    // A NUL is a blank to the compilers too (gcc warns that it is ignored).
    let (blanks, specials) = (b" \t\r\x0b\x0c\0", b"\n/\"'#%");
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
                b'"' if self.raw_string_prefix() => {
                    self.names.raw_strings = true;
                    self.skip_raw_string();
                }
                b'\'' if self.digit_separator() => {
                    self.names.digit_separators = true;
                    self.at += 1;
                }
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
                Some(b' ' | b'\t' | b'\r' | b'\x0b' | b'\x0c' | b'\0') => self.at += 1,
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

    /// Whether only blanks and comments are left on the line.
    fn at_line_end(&mut self) -> bool {
        self.skip_blanks();
        match self.peek(0) {
            None | Some(b'\n') => true,
            Some(b'/') => self.peek(1) == Some(b'/'),
            _ => false,
        }
    }

    /// The macro name that is all that is left of the line (`#include HEADER`), if it is.
    fn macro_alone(&mut self) -> Option<Vec<u8>> {
        if !self.peek(0).is_some_and(is_ident_start) {
            return None;
        }
        let name = self.read_identifier();
        self.at_line_end().then(|| name.to_vec())
    }

    /// The definition of macro `name` (after `#define`): a header name alone, or something else.
    fn definition(&mut self, name: &'a [u8]) {
        if name.is_empty() {
            return;
        }
        let object_like = self.peek(0) != Some(b'(');
        self.skip_blanks();
        let header = match object_like {
            true => self.header_name().filter(|_| self.at_line_end()),
            false => None,
        };
        match header {
            Some((header, delimiter)) => self.names.header_macros.push(HeaderMacro {
                name: name.to_vec(),
                header,
                delimiter,
            }),
            None => self.names.other_macros.push(macro_hash(name)),
        }
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
            let (name, delimiter, macro_name) = match self.header_name() {
                Some((header, delimiter)) => (Some(header), delimiter, None),
                None => (None, Delimiter::Quote, self.macro_alone()),
            };
            self.names.lookups.push(Lookup {
                name,
                delimiter,
                next,
                existence: false,
                macro_name,
            });
        }
        if name == b"define" {
            self.skip_blanks();
            let defines = self.read_identifier();
            if memchr::memmem::find(defines, b"has_include").is_some() {
                self.line.defines_has_include = true;
            }
            self.definition(defines);
        }
        self.line.directive = Some(name);
        Ok(())
    }

    /// An identifier with `has_include` in it: a literal argument is a lookup; a test of it
    /// (`defined`, `#ifdef`), its own definition or an alias's, or a member, is none; any other
    /// use is noted (`Names::has_include_uses`).
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
                    self.names.lookups.push(Lookup {
                        name: Some(name),
                        delimiter,
                        next: ident.ends_with(b"_next"),
                        existence: true,
                        macro_name: None,
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
        // A member (`state->has_include`, `s.has_include`) is not the operator.
        let member = before.ends_with(b"->") || before.ends_with(b".") && !before.ends_with(b"..");
        let tested = member
            || matches!(directive, Some(b"ifdef" | b"ifndef" | b"undef"))
            || before.ends_with(b"defined")
                && !before[..before.len() - 7]
                    .last()
                    .is_some_and(|&b| is_ident(b));
        let defined = directive == Some(b"define") && self.line.defines_has_include;
        if !(tested || defined || self.names.has_include_uses.iter().any(|u| u == ident)) {
            self.names.has_include_uses.push(ident.to_vec());
        }
        Ok(())
    }
}
