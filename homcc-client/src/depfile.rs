//! Makefile dependency rules as `gcc -M`/`clang -M` write them: the files a compile read.
//!
//! Both compilers quote file names the same way, which is GNU make's way: a space is `\ `, and the
//! backslashes just before it are doubled (`a\ b` is written `a\\\ b`); `#` is `\#`; `$` is `$$`;
//! lines longer than about 75 columns are continued with `\` + newline. gcc also quotes a tab as
//! `\` + tab; clang writes it bare, so such a name comes back split in two. Nothing else is quoted:
//! `:`, `%`, a backslash not before a space, and non-UTF-8 bytes are written as they are (clang 14
//! turns a lone `\` into `/`, so such a name does not come back at all).

use std::{collections::HashSet, ffi::OsStr, os::unix::ffi::OsStrExt, path::PathBuf};

/// A dependency file that is not a list of `target: prerequisites` rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepfileError {
    #[error("dependency file has no rule, it is empty: let the compiler write it with -M or -MD")]
    Empty,
    #[error("line {line} of the dependency file has no ':' (saw '{seen}'): expected 'target: prerequisites' as -M or -MD write it")]
    NoColon { line: usize, seen: String },
}

/// The prerequisites of the rule(s) in `text`, in order of first appearance, without duplicates,
/// unescaped: `\`+newline continuations (also `\`+CRLF), `\ ` (escaped space), `\#`, `$$` -> `$`,
/// `\\` before a space.
/// Targets are everything before the first unescaped `:` that is followed by whitespace or end of
/// line (so `C:` style is irrelevant on Linux but a target like `a.o` or `dir/a b.o` with escaped
/// spaces works). Several rules (e.g. from -MP phony targets `x.h:`) are allowed; phony rules add
/// nothing new.
///
/// Further details, after GNU make and ninja's depfile parser: `2N+1` backslashes before a space
/// or tab stand for `N` backslashes and the space; `2N` backslashes before one are kept as they are
/// and end the name (gcc does not double backslashes that end a name); `\:` is a `:` that never
/// separates; any other backslash is kept; an unescaped `#` starts a comment to the end of the
/// line.
pub fn parse_dependencies(text: &[u8]) -> Result<Vec<PathBuf>, DepfileError> {
    let mut lexer = Lexer {
        text,
        at: 0,
        line: 1,
    };
    let mut deps = Vec::new();
    let mut seen = HashSet::new();
    let mut rules = 0;
    while let Some(line) = lexer.logical_line() {
        match line {
            Line::Blank => {}
            Line::Words {
                first_line,
                start,
                end,
            } => {
                let seen = String::from_utf8_lossy(&text[start..end]);
                return Err(DepfileError::NoColon {
                    line: first_line,
                    seen: shorten(&seen),
                });
            }
            Line::Rule { prerequisites } => {
                rules += 1;
                for word in prerequisites {
                    if seen.insert(word.clone()) {
                        deps.push(PathBuf::from(OsStr::from_bytes(&word)));
                    }
                }
            }
        }
    }
    match rules {
        0 => Err(DepfileError::Empty),
        _ => Ok(deps),
    }
}

/// One line of the file once continuations are joined.
enum Line {
    /// Only whitespace or a comment.
    Blank,
    /// Names but no separating `:`; `start..end` is its text, `first_line` its first line number.
    Words {
        first_line: usize,
        start: usize,
        end: usize,
    },
    /// `targets: prerequisites`, the prerequisites unescaped.
    Rule { prerequisites: Vec<Vec<u8>> },
}

struct Lexer<'a> {
    text: &'a [u8],
    at: usize,
    /// The 1-based number of the line `at` is on.
    line: usize,
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.text.get(self.at + ahead).copied()
    }

    /// The length of the newline (`\n` or `\r\n`) at `at + ahead`, if one is there.
    fn newline(&self, ahead: usize) -> Option<usize> {
        match (self.peek(ahead), self.peek(ahead + 1)) {
            (Some(b'\n'), _) => Some(1),
            (Some(b'\r'), Some(b'\n')) => Some(2),
            _ => None,
        }
    }

    /// Whether the text at `at + ahead` ends a word: whitespace, a line end (continued or not) or
    /// the end of the text. This is what makes a `:` the rule's separator.
    fn ends_word(&self, ahead: usize) -> bool {
        match self.peek(ahead) {
            None | Some(b' ' | b'\t' | b'\r' | b'\n') => true,
            Some(b'\\') => self.newline(ahead + 1).is_some(),
            Some(_) => false,
        }
    }

    /// Reads one logical line, its continuations joined; `None` at the end of the text.
    fn logical_line(&mut self) -> Option<Line> {
        if self.at >= self.text.len() {
            return None;
        }
        let (first_line, start) = (self.line, self.at);
        let mut words = Vec::new();
        let mut colon = None;
        let mut word = Vec::new();
        while let Some(byte) = self.peek(0) {
            match byte {
                b'\n' => {
                    self.at += 1;
                    self.line += 1;
                    break;
                }
                b' ' | b'\t' | b'\r' => {
                    end_word(&mut word, &mut words);
                    self.at += 1;
                }
                b'#' => {
                    end_word(&mut word, &mut words);
                    self.skip_comment();
                }
                b'$' => {
                    word.push(b'$');
                    self.at += if self.peek(1) == Some(b'$') { 2 } else { 1 };
                }
                b':' if colon.is_none() && self.ends_word(1) => {
                    end_word(&mut word, &mut words);
                    colon = Some(words.len());
                    self.at += 1;
                }
                b'\\' => {
                    let run = self.text[self.at..]
                        .iter()
                        .take_while(|&&b| b == b'\\')
                        .count();
                    if let Some(newline) = self.newline(run) {
                        // A continuation: the last backslash and the newline are a space.
                        word.extend(std::iter::repeat_n(b'\\', run - 1));
                        end_word(&mut word, &mut words);
                        self.at += run + newline;
                        self.line += 1;
                        continue;
                    }
                    self.at += run;
                    match self.peek(0) {
                        Some(space @ (b' ' | b'\t')) if run % 2 == 1 => {
                            word.extend(std::iter::repeat_n(b'\\', run / 2));
                            word.push(space);
                            self.at += 1;
                        }
                        Some(escaped @ (b'#' | b':')) => {
                            word.extend(std::iter::repeat_n(b'\\', run - 1));
                            word.push(escaped);
                            self.at += 1;
                        }
                        _ => word.extend(std::iter::repeat_n(b'\\', run)),
                    }
                }
                _ => {
                    word.push(byte);
                    self.at += 1;
                }
            }
        }
        end_word(&mut word, &mut words);
        Some(match colon {
            Some(targets) => Line::Rule {
                prerequisites: words.split_off(targets),
            },
            None if words.is_empty() => Line::Blank,
            None => Line::Words {
                first_line,
                start,
                end: self.at,
            },
        })
    }

    /// Skips a comment up to (not including) its line's end; `\` + newline continues it (make).
    fn skip_comment(&mut self) {
        while let Some(byte) = self.peek(0) {
            match byte {
                b'\n' => return,
                b'\\' if self.newline(1).is_some() => {
                    self.at += 1 + self.newline(1).unwrap_or(0);
                    self.line += 1;
                }
                _ => self.at += 1,
            }
        }
    }
}

/// Moves a finished name, if any, to the line's names.
fn end_word(word: &mut Vec<u8>, words: &mut Vec<Vec<u8>>) {
    if !word.is_empty() {
        words.push(std::mem::take(word));
    }
}

/// The text of a bad line for a one-line message: whitespace runs as one space, at most 80 chars.
fn shorten(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `input`; prerequisites are compared in their `Debug` form (exact, and readable
    /// with non-UTF-8 bytes), an error by its message.
    fn check(input: &[u8], expected: Result<&[&[u8]], &str>) {
        let debug = |path: &OsStr| format!("{path:?}");
        let actual = parse_dependencies(input)
            .map(|deps| {
                deps.iter()
                    .map(|d| debug(d.as_os_str()))
                    .collect::<Vec<_>>()
            })
            .map_err(|e| e.to_string());
        let expected = expected
            .map(|deps| {
                deps.iter()
                    .map(|d| debug(OsStr::from_bytes(d)))
                    .collect::<Vec<_>>()
            })
            .map_err(String::from);
        assert_eq!(
            actual,
            expected,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }

    #[rustfmt::skip]
    #[test]
    fn simple_rules() {
        check(b"a.o: a.c\n", Ok(&[b"a.c"]));
        check(b"a.o: a.c", Ok(&[b"a.c"]));
        check(b"a.o:", Ok(&[]));
        check(b"a.o : a.c b.h", Ok(&[b"a.c", b"b.h"]));
        check(b"a.o b.o: a.c b.h\n", Ok(&[b"a.c", b"b.h"]));
        check(b"a.o:\ta.c\tb.h", Ok(&[b"a.c", b"b.h"]));
        check(b"a.o: a.c \\\n b.h \\\n  c.h\n", Ok(&[b"a.c", b"b.h", b"c.h"]));
        check(b"a.o: a.c \\\r\n b.h\r\n", Ok(&[b"a.c", b"b.h"]));
        check(b"a.o:\\\n a.c", Ok(&[b"a.c"]));
        check(b"a.o: a.c b.h a.c\nb.h:\n", Ok(&[b"a.c", b"b.h"]));
        check(b"a.o: a.c b.h\n\nb.h:\n\nc.h:\n", Ok(&[b"a.c", b"b.h"]));
        check(b"a.o: a.c\nb.o: b.c a.c\n", Ok(&[b"a.c", b"b.c"]));
        check(b"# a comment\na.o: a.c # trailing \\\n still comment\n", Ok(&[b"a.c"]));
        check(b"\n\n  \na.o: a.c\n\n", Ok(&[b"a.c"]));
        check(b"/abs/dir/a.o: /usr/include/stdio.h ../rel.h", Ok(&[b"/usr/include/stdio.h", b"../rel.h"]));
    }

    #[rustfmt::skip]
    #[test]
    fn escapes() {
        check(b"a.o: my\\ src.c", Ok(&[b"my src.c"]));
        check(b"dir/a\\ b.o: x.c", Ok(&[b"x.c"]));
        check(b"a.o: h\\#ash.h", Ok(&[b"h#ash.h"]));
        check(b"a.o: d$$ol.h", Ok(&[b"d$ol.h"]));
        check(b"a.o: d$ol.h", Ok(&[b"d$ol.h"]));
        check(b"a.o: back\\slash.h", Ok(&[b"back\\slash.h"]));
        check(b"a.o: bs\\\\\\ sp.h", Ok(&[b"bs\\ sp.h"]));
        check(b"a.o: bs2\\\\\\\\\\ sp.h", Ok(&[b"bs2\\\\ sp.h"]));
        check(b"a.o: end\\\\ next.h", Ok(&[b"end\\\\", b"next.h"]));
        check(b"a.o: a\\\\#b.h", Ok(&[b"a\\#b.h"]));
        check(b"a.o: tab\\\tb.h", Ok(&[b"tab\tb.h"]));
        check(b"a.o: co:lon.h", Ok(&[b"co:lon.h"]));
        check(b"co:lon.o: x.c\nco:lon.h:\n", Ok(&[b"x.c"]));
        check(b"a\\:b.o: x.c", Ok(&[b"x.c"]));
        check(b"a.o: weird: x.c", Ok(&[b"weird:", b"x.c"]));
        check(b"a.o: last\\", Ok(&[b"last\\"]));
        check(b"a.o: lat\xe9.h", Ok(&[b"lat\xe9.h"]));
    }

    #[rustfmt::skip]
    #[test]
    fn errors() {
        check(b"", Err("dependency file has no rule, it is empty: let the compiler write it with -M or -MD"));
        check(b" \n\n# only a comment\n", Err("dependency file has no rule, it is empty: let the compiler write it with -M or -MD"));
        check(b"a.c b.h\n", Err("line 1 of the dependency file has no ':' (saw 'a.c b.h'): expected 'target: prerequisites' as -M or -MD write it"));
        check(b"a.o: a.c\n\nstray \\\n words\n", Err("line 3 of the dependency file has no ':' (saw 'stray \\ words'): expected 'target: prerequisites' as -M or -MD write it"));
        check(b"C:/x.o", Err("line 1 of the dependency file has no ':' (saw 'C:/x.o'): expected 'target: prerequisites' as -M or -MD write it"));
    }

    /// Exact outputs of gcc 12.2, g++ 12.2, clang 14.0.6 and clang++ 14.0.6 (Debian 12) for a
    /// source `my src#1$x.c` (and `.cpp`) including `inc dir/sp ace.h`, `hash#dir/h#ash.h`,
    /// `dol$dir/d$ol.h`, `back\slash.h`, `co:lon.h`, `tab<TAB>b.h`, `pct%.h` and `sp end .h`;
    /// for `m.c` including `bs\ sp.h`, `bs2\\ sp.h` and `endbs\`; for `u.c` including `lat\xe9.h`.
    #[rustfmt::skip]
    #[test]
    fn real_compiler_output() {
        const ALL_GCC: &[&[u8]] = &[b"inc dir/sp ace.h", b"hash#dir/h#ash.h", b"dol$dir/d$ol.h", b"back\\slash.h", b"co:lon.h", b"tab\tb.h", b"pct%.h", b"sp end .h"];
        // clang writes `back\slash.h` as `back/slash.h` and leaves the tab unquoted.
        const ALL_CLANG: &[&[u8]] = &[b"inc dir/sp ace.h", b"hash#dir/h#ash.h", b"dol$dir/d$ol.h", b"back/slash.h", b"co:lon.h", b"tab", b"b.h", b"pct%.h", b"sp end .h"];
        let with = |first: &[&'static [u8]], rest: &[&'static [u8]]| -> Vec<&'static [u8]> { [first, rest].concat() };
        let predef: &[u8] = b"/usr/include/stdc-predef.h";

        // gcc -M 'my src#1$x.c'
        check(b"my\\ src\\#1$$x.o: my\\ src\\#1$$x.c /usr/include/stdc-predef.h \\\n inc\\ dir/sp\\ ace.h hash\\#dir/h\\#ash.h dol$$dir/d$$ol.h back\\slash.h \\\n co:lon.h tab\\\tb.h pct%.h sp\\ end\\ .h\n", Ok(&with(&[b"my src#1$x.c", predef], ALL_GCC)));
        // g++ -M 'my src#1$x.cpp'
        check(b"my\\ src\\#1$$x.o: my\\ src\\#1$$x.cpp /usr/include/stdc-predef.h \\\n inc\\ dir/sp\\ ace.h hash\\#dir/h\\#ash.h dol$$dir/d$$ol.h back\\slash.h \\\n co:lon.h tab\\\tb.h pct%.h sp\\ end\\ .h\n", Ok(&with(&[b"my src#1$x.cpp", predef], ALL_GCC)));
        // clang -M 'my src#1$x.c'
        check(b"my\\ src\\#1$$x.o: my\\ src\\#1$$x.c inc\\ dir/sp\\ ace.h hash\\#dir/h\\#ash.h \\\n  dol$$dir/d$$ol.h back/slash.h co:lon.h tab\tb.h pct%.h sp\\ end\\ .h\n", Ok(&with(&[b"my src#1$x.c"], ALL_CLANG)));
        // clang++ -M 'my src#1$x.cpp'
        check(b"my\\ src\\#1$$x.o: my\\ src\\#1$$x.cpp inc\\ dir/sp\\ ace.h hash\\#dir/h\\#ash.h \\\n  dol$$dir/d$$ol.h back/slash.h co:lon.h tab\tb.h pct%.h sp\\ end\\ .h\n", Ok(&with(&[b"my src#1$x.cpp"], ALL_CLANG)));
        // gcc -MM -MP 'my src#1$x.c'
        check(b"my\\ src\\#1$$x.o: my\\ src\\#1$$x.c inc\\ dir/sp\\ ace.h hash\\#dir/h\\#ash.h \\\n dol$$dir/d$$ol.h back\\slash.h co:lon.h tab\\\tb.h pct%.h sp\\ end\\ .h\ninc\\ dir/sp\\ ace.h:\nhash\\#dir/h\\#ash.h:\ndol$$dir/d$$ol.h:\nback\\slash.h:\nco:lon.h:\ntab\\\tb.h:\npct%.h:\nsp\\ end\\ .h:\n", Ok(&with(&[b"my src#1$x.c"], ALL_GCC)));
        // clang -MM -MP 'my src#1$x.c'
        check(b"my\\ src\\#1$$x.o: my\\ src\\#1$$x.c inc\\ dir/sp\\ ace.h hash\\#dir/h\\#ash.h \\\n  dol$$dir/d$$ol.h back/slash.h co:lon.h tab\tb.h pct%.h sp\\ end\\ .h\n\ninc\\ dir/sp\\ ace.h:\n\nhash\\#dir/h\\#ash.h:\n\ndol$$dir/d$$ol.h:\n\nback/slash.h:\n\nco:lon.h:\n\ntab\tb.h:\n\npct%.h:\n\nsp\\ end\\ .h:\n", Ok(&with(&[b"my src#1$x.c"], ALL_CLANG)));
        // gcc -MM -MQ 'out dir/a$b#c.o' -MT tt.o 'my src#1$x.c'
        check(b"tt.o out\\ dir/a$$b\\#c.o: my\\ src\\#1$$x.c inc\\ dir/sp\\ ace.h \\\n hash\\#dir/h\\#ash.h dol$$dir/d$$ol.h back\\slash.h co:lon.h tab\\\tb.h \\\n pct%.h sp\\ end\\ .h\n", Ok(&with(&[b"my src#1$x.c"], ALL_GCC)));
        // clang -MM -MQ 'out dir/a$b#c.o' -MT tt.o 'my src#1$x.c'
        check(b"out\\ dir/a$$b\\#c.o tt.o: my\\ src\\#1$$x.c inc\\ dir/sp\\ ace.h hash\\#dir/h\\#ash.h \\\n  dol$$dir/d$$ol.h back/slash.h co:lon.h tab\tb.h pct%.h sp\\ end\\ .h\n", Ok(&with(&[b"my src#1$x.c"], ALL_CLANG)));
        // gcc -M m.c: `endbs\` + newline reads as a continuation, as make reads it.
        check(b"m.o: m.c /usr/include/stdc-predef.h bs\\\\\\ sp.h bs2\\\\\\\\\\ sp.h endbs\\\n", Ok(&[b"m.c", predef, b"bs\\ sp.h", b"bs2\\\\ sp.h", b"endbs"]));
        // clang -M mc.c (m.c without `endbs\`, which clang cannot include): names changed by clang.
        check(b"mc.o: mc.c bs/\\ sp.h bs2//\\ sp.h\n", Ok(&[b"mc.c", b"bs/ sp.h", b"bs2// sp.h"]));
        // gcc -MD -MF - -c u.c -o 'o b$j.o'
        check(b"o\\ b$$j.o: u.c /usr/include/stdc-predef.h lat\xe9.h\n", Ok(&[b"u.c", predef, b"lat\xe9.h"]));
        // clang -MD -MF - -c u.c -o 'o b$j.o'
        check(b"o\\ b$$j.o: u.c lat\xe9.h\n", Ok(&[b"u.c", b"lat\xe9.h"]));
    }
}
