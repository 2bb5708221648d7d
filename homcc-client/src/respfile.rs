//! `@file` response files: expanded on the client, nested ones too, exactly as gcc or clang would.
//!
//! Both compilers split a response file into arguments with shell-like quoting and expand nested
//! `@file`s relative to the directory the compiler runs in. They differ in details (which
//! whitespace separates, a trailing backslash, empty `""` arguments, NUL bytes, byte order marks),
//! so the rules follow a [`Dialect`]. clang's `--rsp-quoting=windows` (and clang-cl) is not
//! supported: the GNU rules are always used.

use std::{
    ffi::{OsStr, OsString},
    fs::{self, File},
    io::Read,
    os::unix::{
        ffi::{OsStrExt, OsStringExt},
        fs::MetadataExt,
    },
    path::{Path, PathBuf},
};

/// How deeply response files may include each other before homcc gives up.
pub const MAX_DEPTH: usize = 64;

/// How many bytes of response files one command line may read in all.
pub const MAX_TOTAL_BYTES: u64 = 16 << 20;

/// gcc (libiberty's `expandargv`) fails at its 2000th `@` argument, whether or not it names a
/// file: "too many @-files encountered".
const GCC_MAX_AT_ARGS: usize = 2000;

/// Whose rules to follow (they differ: quoting details, what counts as whitespace, NUL bytes,
/// byte order marks, a directory after the `@`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Gcc,
    Clang,
}

impl Dialect {
    /// From the compiler's file name: contains "clang" → Clang, else Gcc. Only the last
    /// component counts, so `/opt/clang/bin/gcc` is Gcc.
    pub fn from_compiler_name(name: &OsStr) -> Dialect {
        let file_name = Path::new(name).file_name().unwrap_or(name);
        match file_name.as_bytes().windows(5).any(|w| w == b"clang") {
            true => Dialect::Clang,
            false => Dialect::Gcc,
        }
    }
}

/// A command line whose response files homcc cannot expand the way the compiler would.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RespFileError {
    #[error("response file '{}' includes itself, directly or through other response files: remove the loop", file.display())]
    Recursive { file: PathBuf },
    #[error("response files nest more than {max} levels deep at '{}': flatten them", file.display())]
    TooDeep { file: PathBuf, max: usize },
    #[error("response files add up to more than {max} bytes at '{}': pass fewer or shorter arguments", file.display())]
    TooLarge { file: PathBuf, max: u64 },
    #[error("'@{}' names a directory, which gcc rejects ('@-file refers to a directory'): name a file after the '@'", file.display())]
    Directory { file: PathBuf },
    #[error("response file '{}' is not a regular file (a pipe, socket or device), which homcc cannot read without consuming it: write the arguments to a regular file", file.display())]
    NotRegularFile { file: PathBuf },
    #[error("{max} or more '@' arguments, which gcc rejects ('too many @-files encountered'): use fewer response files")]
    TooManyAtArguments { max: usize },
}

/// Whether any argument starts with `@`, so might be a response file (cheap check so the
/// common case allocates nothing).
pub fn has_response_files(args: &[OsString]) -> bool {
    args.iter().any(|arg| arg.as_bytes().first() == Some(&b'@'))
}

/// Expands every `@file` argument (recursively) as the compiler would; arguments that are not
/// response files are kept as they are. `args` are the arguments after the compiler; `cwd` is
/// where the compiler runs, and every relative `@file`, nested ones too, is found from there.
///
/// An `@file` that cannot be read (missing, `@` alone, unreadable, or for clang a directory or
/// an invalid UTF-16 file) stays as it is, as both compilers leave it. A loop, more than
/// [`MAX_DEPTH`] levels, more than [`MAX_TOTAL_BYTES`] read, a pipe or device, or what gcc
/// itself rejects (a directory, 2000 `@` arguments) is an error.
pub fn expand(
    args: &[OsString],
    cwd: &Path,
    dialect: Dialect,
) -> Result<Vec<OsString>, RespFileError> {
    let mut expander = Expander {
        cwd,
        dialect,
        at_args: 0,
        bytes_read: 0,
        open: Vec::new(),
    };
    let mut out = Vec::with_capacity(args.len());
    for arg in args {
        expander.push(arg.as_bytes().to_vec(), &mut out)?;
    }
    Ok(out)
}

/// The state of one expansion.
struct Expander<'a> {
    cwd: &'a Path,
    dialect: Dialect,
    /// `@` arguments seen so far (gcc counts them).
    at_args: usize,
    /// Bytes of response files read so far.
    bytes_read: u64,
    /// The response files being expanded, outermost first.
    open: Vec<FileId>,
}

/// A file's `(device, inode)`: the same for every name of the file.
type FileId = (u64, u64);

impl Expander<'_> {
    /// Appends `arg` to `out`, or what it expands to if it is a response file.
    fn push(&mut self, arg: Vec<u8>, out: &mut Vec<OsString>) -> Result<(), RespFileError> {
        let Some(name) = arg.strip_prefix(b"@") else {
            out.push(OsString::from_vec(arg));
            return Ok(());
        };
        if self.dialect == Dialect::Gcc {
            self.at_args += 1;
            if self.at_args >= GCC_MAX_AT_ARGS {
                return Err(RespFileError::TooManyAtArguments {
                    max: GCC_MAX_AT_ARGS,
                });
            }
        }
        match self.read(Path::new(OsStr::from_bytes(name)))? {
            Some((id, text)) => {
                self.open.push(id);
                for nested in self.split(&text) {
                    self.push(nested, out)?;
                }
                self.open.pop();
            }
            None => out.push(OsString::from_vec(arg)),
        }
        Ok(())
    }

    /// The identity and text of response file `name` (as written after the `@`); `None` when
    /// the compiler would keep the argument as it is.
    fn read(&mut self, name: &Path) -> Result<Option<(FileId, Vec<u8>)>, RespFileError> {
        // `cwd.join("")` would be `cwd` itself; both compilers find no file named "".
        if name.as_os_str().is_empty() {
            return Ok(None);
        }
        let path = self.cwd.join(name);
        let file = || name.to_path_buf();
        // `stat` before `open`: opening a FIFO would block.
        let Ok(meta) = fs::metadata(&path) else {
            return Ok(None);
        };
        if meta.is_dir() {
            return match self.dialect {
                Dialect::Gcc => Err(RespFileError::Directory { file: file() }),
                Dialect::Clang => Ok(None),
            };
        }
        if !meta.is_file() {
            return Err(RespFileError::NotRegularFile { file: file() });
        }
        let id = (meta.dev(), meta.ino());
        if self.open.contains(&id) {
            return Err(RespFileError::Recursive { file: file() });
        }
        if self.open.len() >= MAX_DEPTH {
            return Err(RespFileError::TooDeep {
                file: file(),
                max: MAX_DEPTH,
            });
        }
        let Ok(handle) = File::open(&path) else {
            return Ok(None);
        };
        let left = MAX_TOTAL_BYTES - self.bytes_read;
        let mut text = Vec::new();
        if handle.take(left + 1).read_to_end(&mut text).is_err() {
            return Ok(None);
        }
        if text.len() as u64 > left {
            return Err(RespFileError::TooLarge {
                file: file(),
                max: MAX_TOTAL_BYTES,
            });
        }
        self.bytes_read += text.len() as u64;
        Ok(match self.dialect {
            Dialect::Gcc => Some((id, text)),
            Dialect::Clang => clang_text(text).map(|text| (id, text)),
        })
    }

    /// The arguments in a response file's `text`.
    fn split(&self, text: &[u8]) -> Vec<Vec<u8>> {
        match self.dialect {
            Dialect::Gcc => split_gcc(text),
            Dialect::Clang => split_clang(text),
        }
    }
}

/// libiberty's `buildargv`, as gcc reads a response file. The text is a C string: it ends at
/// the first NUL. Whitespace is space, `\t`, `\n`, `\v`, `\f`, `\r`; a backslash takes the next
/// byte literally, inside quotes too, and is dropped at the end; `'…'` and `"…"` quote, and an
/// unclosed quote runs to the end; `""` is an empty argument; `#` is an ordinary byte.
fn split_gcc(text: &[u8]) -> Vec<Vec<u8>> {
    let text = text.split(|&b| b == 0).next().unwrap_or_default();
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    let mut args = Vec::new();
    let mut at = text
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(text.len());
    while at < text.len() {
        let mut arg = Vec::new();
        let mut quote = None;
        let mut escaped = false;
        while let Some(&b) = text.get(at) {
            match (escaped, quote) {
                (true, _) => {
                    arg.push(b);
                    escaped = false;
                }
                _ if b == b'\\' => escaped = true,
                (false, Some(q)) if b == q => quote = None,
                (false, Some(_)) => arg.push(b),
                (false, None) if is_space(b) => break,
                (false, None) if b == b'\'' || b == b'"' => quote = Some(b),
                (false, None) => arg.push(b),
            }
            at += 1;
        }
        args.push(arg);
        while text.get(at).is_some_and(|&b| is_space(b)) {
            at += 1;
        }
    }
    args
}

/// The text clang 14 tokenizes: a UTF-16 file (one starting with a BOM) converted to UTF-8, a
/// UTF-8 BOM dropped; `None` (clang cannot read the file) for an odd length or a lone surrogate,
/// which LLVM's strict conversion rejects.
fn clang_text(raw: Vec<u8>) -> Option<Vec<u8>> {
    let big_endian = match raw.as_slice() {
        [0xff, 0xfe, ..] => false,
        [0xfe, 0xff, ..] => true,
        [0xef, 0xbb, 0xbf, ..] => return Some(raw[3..].to_vec()),
        _ => return Some(raw),
    };
    let pairs = raw[2..].chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return None;
    }
    let units = pairs.map(|pair| match big_endian {
        true => u16::from_be_bytes([pair[0], pair[1]]),
        false => u16::from_le_bytes([pair[0], pair[1]]),
    });
    let text = char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .ok()?;
    Some(text.into_bytes())
}

/// LLVM's `TokenizeGNUCommandLine`, as clang 14 reads a response file (after [`clang_text`]).
/// Whitespace is space, `\t`, `\n`, `\r` only; a backslash takes the next byte literally, inside
/// quotes too, and is kept at the end; `'…'` and `"…"` quote, and an unclosed quote runs to the
/// end; empty arguments (`""`) are dropped; `#` is an ordinary byte. Each argument ends at its
/// first NUL (clang passes them on as C strings).
fn split_clang(text: &[u8]) -> Vec<Vec<u8>> {
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let mut args = Vec::new();
    let mut token = Vec::new();
    let mut at = 0;
    while let Some(&b) = text.get(at) {
        match b {
            b'\\' if at + 1 < text.len() => {
                token.push(text[at + 1]);
                at += 2;
            }
            b'\'' | b'"' => {
                at += 1;
                while let Some(&c) = text.get(at).filter(|&&c| c != b) {
                    if c == b'\\' && at + 1 < text.len() {
                        at += 1;
                    }
                    token.push(text[at]);
                    at += 1;
                }
                at += 1;
            }
            _ if is_space(b) => {
                if !token.is_empty() {
                    args.push(std::mem::take(&mut token));
                }
                at += 1;
            }
            _ => {
                token.push(b);
                at += 1;
            }
        }
    }
    if !token.is_empty() {
        args.push(token);
    }
    for arg in &mut args {
        if let Some(nul) = arg.iter().position(|&b| b == 0) {
            arg.truncate(nul);
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry of a test directory.
    enum Entry<'a> {
        /// A regular file and its content.
        F(&'a str, &'a [u8]),
        /// A directory.
        D(&'a str),
        /// A symbolic link and its target.
        L(&'a str, &'a str),
    }
    use Entry::{D, F, L};

    /// Expands `args` as `dialect` would in a fresh directory holding `entries`; arguments as
    /// bytes, an error as its message.
    fn expand_in(
        entries: &[Entry],
        args: &[&[u8]],
        dialect: Dialect,
    ) -> Result<Vec<Vec<u8>>, String> {
        let dir = tempfile::tempdir().unwrap();
        for entry in entries {
            match entry {
                F(name, content) => fs::write(dir.path().join(name), content).unwrap(),
                D(name) => fs::create_dir(dir.path().join(name)).unwrap(),
                L(name, target) => {
                    std::os::unix::fs::symlink(target, dir.path().join(name)).unwrap()
                }
            }
        }
        let args: Vec<OsString> = args
            .iter()
            .map(|a| OsString::from_vec(a.to_vec()))
            .collect();
        expand(&args, dir.path(), dialect)
            .map(|out| out.into_iter().map(OsString::into_vec).collect())
            .map_err(|e| e.to_string())
    }

    /// Compares the arguments as escaped text (exact, and readable with non-UTF-8 bytes).
    fn assert_expands(
        actual: Result<Vec<Vec<u8>>, String>,
        expected: Result<&[&[u8]], &str>,
        what: &str,
    ) {
        let show = |args: &[Vec<u8>]| {
            args.iter()
                .map(|a| a.escape_ascii().to_string())
                .collect::<Vec<_>>()
        };
        let actual = actual.map(|args| show(&args));
        let expected = expected
            .map(|args| show(&args.iter().map(|a| a.to_vec()).collect::<Vec<_>>()))
            .map_err(String::from);
        assert_eq!(actual, expected, "{what}");
    }

    /// `@f` where `f` holds `content`, expanded as gcc and as clang would.
    fn check(content: &[u8], gcc: &[&[u8]], clang: &[&[u8]]) {
        let what = |d| format!("{d:?}, @f = {:?}", content.escape_ascii().to_string());
        let file = [F("f", content)];
        assert_expands(
            expand_in(&file, &[b"@f"], Dialect::Gcc),
            Ok(gcc),
            &what(Dialect::Gcc),
        );
        assert_expands(
            expand_in(&file, &[b"@f"], Dialect::Clang),
            Ok(clang),
            &what(Dialect::Clang),
        );
    }

    /// `check` where both compilers agree.
    fn both(content: &[u8], expected: &[&[u8]]) {
        check(content, expected, expected);
    }

    /// `args` in a directory holding `entries`, expanded as gcc and as clang would.
    fn check_tree(
        entries: &[Entry],
        args: &[&[u8]],
        gcc: Result<&[&[u8]], &str>,
        clang: Result<&[&[u8]], &str>,
    ) {
        let what = |d| {
            format!(
                "{d:?}, args {:?}",
                args.iter()
                    .map(|a| a.escape_ascii().to_string())
                    .collect::<Vec<_>>()
            )
        };
        assert_expands(
            expand_in(entries, args, Dialect::Gcc),
            gcc,
            &what(Dialect::Gcc),
        );
        assert_expands(
            expand_in(entries, args, Dialect::Clang),
            clang,
            &what(Dialect::Clang),
        );
    }

    const LOOP_F: &str = "response file 'f' includes itself, directly or through other response files: remove the loop";

    #[rustfmt::skip]
    #[test]
    fn whitespace() {
        both(b"a b\tc\nd\re", &[b"a", b"b", b"c", b"d", b"e"]);
        both(b"  a  \n\n\n  b\n", &[b"a", b"b"]);
        both(b"\r\na\r\nb c\r\n", &[b"a", b"b", b"c"]);
        both(b"", &[]);
        both(b" \n\t\r ", &[]);
        check(b"a\x0bb\x0cc", &[b"a", b"b", b"c"], &[b"a\x0bb\x0cc"]);
        check(b"\x0b\x0c", &[], &[b"\x0b\x0c"]);
    }

    #[rustfmt::skip]
    #[test]
    fn quotes() {
        both(br#"'a b' "c d" 'e"f' "g'h""#, &[b"a b", b"c d", b"e\"f", b"g'h"]);
        both(br#"a'b c'd e"f g"h"#, &[b"ab cd", b"ef gh"]);
        both(b"'a\nb' \"c\td\"", &[b"a\nb", b"c\td"]);
        both(br#"a "b c"#, &[b"a", b"b c"]);
        both(b"a 'b c", &[b"a", b"b c"]);
        both(br#"x"" y''"#, &[b"x", b"y"]);
        check(br#"x "" y"#, &[b"x", b"", b"y"], &[b"x", b"y"]);
        check(b"x '' y", &[b"x", b"", b"y"], &[b"x", b"y"]);
        check(br#""""#, &[b""], &[]);
        check(br#"-D "" -D foo"#, &[b"-D", b"", b"-D", b"foo"], &[b"-D", b"-D", b"foo"]);
    }

    #[rustfmt::skip]
    #[test]
    fn backslashes() {
        both(br#"\a \\b c\ d \"e\" \'f"#, &[b"a", b"\\b", b"c d", b"\"e\"", b"'f"]);
        both(br#""a\"b" "a\\b" "a\zb""#, &[b"a\"b", b"a\\b", b"azb"]);
        both(br"'a\'b' 'a\\b' 'a\zb'", &[b"a'b", b"a\\b", b"azb"]);
        both(b"a\\\nb", &[b"a\nb"]);
        both(b"a\\\r\nb", &[b"a\r", b"b"]);
        check(b"a\\", &[b"a"], &[b"a\\"]);
        check(b"a \\", &[b"a", b""], &[b"a", b"\\"]);
        check(b"-D \\\n", &[b"-D", b"\n"], &[b"-D", b"\n"]);
        check(br#"a "b\"#, &[b"a", b"b"], &[b"a", b"b\\"]);
        check(br"a 'b\", &[b"a", b"b"], &[b"a", b"b\\"]);
    }

    #[rustfmt::skip]
    #[test]
    fn comments_are_ordinary_bytes() {
        both(b"# comment\na #b c#d", &[b"#", b"comment", b"a", b"#b", b"c#d"]);
    }

    #[rustfmt::skip]
    #[test]
    fn bytes() {
        both(b"a\xff\xfe b\x80", &[b"a\xff\xfe", b"b\x80"]);
        // gcc stops at the first NUL; clang cuts each argument at its first NUL.
        check(b"a\0b c", &[b"a"], &[b"a", b"c"]);
        check(b"-D \0zz -D c", &[b"-D"], &[b"-D", b"", b"-D", b"c"]);
        check(b"\0a", &[], &[b""]);
        // clang drops a UTF-8 BOM and reads UTF-16 with a BOM; gcc takes the bytes as they are.
        check(b"\xef\xbb\xbfa b", &[b"\xef\xbb\xbfa", b"b"], &[b"a", b"b"]);
        check(b"\xff\xfea\0 \0b\0", &[b"\xff\xfea"], &[b"a", b"b"]);
        check(b"\xfe\xff\0a\0 \0b", &[b"\xfe\xff"], &[b"a", b"b"]);
        check(b"\xff\xfe\x3d\xd8\x00\xde \0b\0", &[b"\xff\xfe=\xd8"], &[b"\xf0\x9f\x98\x80", b"b"]);
        check(b"\xff\xfe", &[b"\xff\xfe"], &[]);
        // UTF-16 clang cannot convert (odd length, lone surrogate): it keeps the `@f` argument.
        check(b"\xff\xfea\0 \0b", &[b"\xff\xfea"], &[b"@f"]);
        check(b"\xff\xfea\0 \0\0\xd8", &[b"\xff\xfea"], &[b"@f"]);
    }

    #[rustfmt::skip]
    #[test]
    fn not_response_files() {
        check_tree(&[], &[], Ok(&[]), Ok(&[]));
        check_tree(&[F("out", b"x1")], &[b"-c", b"x.c", b"-Wl,@out", b"-DA=@out", b""], Ok(&[b"-c", b"x.c", b"-Wl,@out", b"-DA=@out", b""]), Ok(&[b"-c", b"x.c", b"-Wl,@out", b"-DA=@out", b""]));
        check_tree(&[], &[b"@nope", b"x.c"], Ok(&[b"@nope", b"x.c"]), Ok(&[b"@nope", b"x.c"]));
        check_tree(&[], &[b"@"], Ok(&[b"@"]), Ok(&[b"@"]));
        check_tree(&[F("f", b"x")], &[b"@f/"], Ok(&[b"@f/"]), Ok(&[b"@f/"]));
        check_tree(&[F("f", b"@nope @ @g/"), F("g", b"x")], &[b"@f"], Ok(&[b"@nope", b"@", b"@g/"]), Ok(&[b"@nope", b"@", b"@g/"]));
    }

    #[rustfmt::skip]
    #[test]
    fn expanded_wherever_an_argument_starts_with_at() {
        // The value of `-o` is expanded too: expansion comes before option parsing.
        check_tree(&[F("out", b"x1")], &[b"-c", b"x.c", b"-o", b"@out"], Ok(&[b"-c", b"x.c", b"-o", b"x1"]), Ok(&[b"-c", b"x.c", b"-o", b"x1"]));
        check_tree(&[F("@f", b"x")], &[b"@@f"], Ok(&[b"x"]), Ok(&[b"x"]));
        check_tree(&[F("f", br#""@g" \@g @"g""#), F("g", b"g1")], &[b"@f"], Ok(&[b"g1", b"g1", b"g1"]), Ok(&[b"g1", b"g1", b"g1"]));
        check_tree(&[F("f", b"@g @g"), F("g", b"g1")], &[b"@f", b"-c", b"@f"], Ok(&[b"g1", b"g1", b"-c", b"g1", b"g1"]), Ok(&[b"g1", b"g1", b"-c", b"g1", b"g1"]));
        check_tree(&[F("f", b"a @g d"), F("g", b"b @h"), F("h", b"c")], &[b"@f"], Ok(&[b"a", b"b", b"c", b"d"]), Ok(&[b"a", b"b", b"c", b"d"]));
    }

    #[rustfmt::skip]
    #[test]
    fn nested_relative_names_are_found_from_cwd() {
        check_tree(&[D("sub"), F("sub/a.rsp", b"@b.rsp"), F("sub/b.rsp", b"in_sub"), F("b.rsp", b"in_cwd")], &[b"@sub/a.rsp"], Ok(&[b"in_cwd"]), Ok(&[b"in_cwd"]));
        check_tree(&[D("sub"), F("sub/a.rsp", b"@b.rsp"), F("sub/b.rsp", b"in_sub")], &[b"@sub/a.rsp"], Ok(&[b"@b.rsp"]), Ok(&[b"@b.rsp"]));
        check_tree(&[D("sub"), F("sub/a.rsp", b"@sub/b.rsp"), F("sub/b.rsp", b"in_sub")], &[b"@sub/a.rsp"], Ok(&[b"in_sub"]), Ok(&[b"in_sub"]));
    }

    #[rustfmt::skip]
    #[test]
    fn directories() {
        const DIR: &str = "'@sub' names a directory, which gcc rejects ('@-file refers to a directory'): name a file after the '@'";
        check_tree(&[D("sub")], &[b"@sub"], Err(DIR), Ok(&[b"@sub"]));
        check_tree(&[D("sub"), F("f", b"a @sub b")], &[b"@f"], Err(DIR), Ok(&[b"a", b"@sub", b"b"]));
    }

    #[rustfmt::skip]
    #[test]
    fn loops_are_errors() {
        // gcc fails with "too many @-files encountered"; clang keeps the inner `@f`, then finds
        // no input file of that name.
        check_tree(&[F("f", b"a @f b")], &[b"@f"], Err(LOOP_F), Err(LOOP_F));
        check_tree(&[F("f", b"a @./f")], &[b"@f"], Err("response file './f' includes itself, directly or through other response files: remove the loop"), Err("response file './f' includes itself, directly or through other response files: remove the loop"));
        check_tree(&[F("f", b"a @l"), L("l", "f")], &[b"@f"], Err("response file 'l' includes itself, directly or through other response files: remove the loop"), Err("response file 'l' includes itself, directly or through other response files: remove the loop"));
        check_tree(&[F("f", b"a @g"), F("g", b"b @f")], &[b"@f"], Err(LOOP_F), Err(LOOP_F));
    }

    #[rustfmt::skip]
    #[test]
    fn limits() {
        const DEEP: &str = "response files nest more than 64 levels deep at 'r65': flatten them";
        const LARGE: &str = "response files add up to more than 16777216 bytes at 'big': pass fewer or shorter arguments";
        const MANY: &str = "2000 or more '@' arguments, which gcc rejects ('too many @-files encountered'): use fewer response files";
        // r1 includes r2, ..., r64 holds `end`: 64 levels are fine, 65 are not.
        let names: Vec<String> = (1..=65).map(|i| format!("r{i}")).collect();
        let includes: Vec<Vec<u8>> = (1..=65).map(|i| format!("@r{}", i + 1).into_bytes()).collect();
        let chain = |levels: usize| -> Vec<Entry> { (0..levels).map(|i| F(&names[i], if i + 1 == levels { b"end" } else { &includes[i] })).collect() };
        check_tree(&chain(64), &[b"@r1"], Ok(&[b"end"]), Ok(&[b"end"]));
        check_tree(&chain(65), &[b"@r1"], Err(DEEP), Err(DEEP));
        // At most 16 MiB in all, counting every time a file is read.
        let big = vec![b'x'; 1 << 20];
        let times = |n: usize| b"@big ".repeat(n);
        let fifteen: Vec<&[u8]> = vec![&big[..]; 15];
        check_tree(&[F("big", &big), F("f", &times(15))], &[b"@f"], Ok(&fifteen), Ok(&fifteen));
        check_tree(&[F("big", &big), F("f", &times(16))], &[b"@f"], Err(LARGE), Err(LARGE));
        check_tree(&[F("big", &[b'x'; 17 << 20])], &[b"@big"], Err(LARGE), Err(LARGE));
        // gcc gives up at its 2000th `@` argument, response file or not: here `@f` and 1999 more.
        let nopes = |n: usize| b"@nope ".repeat(n);
        let kept: Vec<&[u8]> = vec![b"@nope"; 1998];
        check_tree(&[F("f", &nopes(1998))], &[b"@f"], Ok(&kept), Ok(&kept));
        let kept: Vec<&[u8]> = vec![b"@nope"; 1999];
        check_tree(&[F("f", &nopes(1999))], &[b"@f"], Err(MANY), Ok(&kept));
    }

    #[rustfmt::skip]
    #[test]
    fn devices_and_pipes_are_errors() {
        const NULL: &str = "response file '/dev/null' is not a regular file (a pipe, socket or device), which homcc cannot read without consuming it: write the arguments to a regular file";
        check_tree(&[], &[b"@/dev/null"], Err(NULL), Err(NULL));
        check_tree(&[F("f", b"@/dev/null")], &[b"@f"], Err(NULL), Err(NULL));
    }

    #[rustfmt::skip]
    #[test]
    fn dialect_from_compiler_name() {
        let check = |name: &str, expected| assert_eq!(Dialect::from_compiler_name(OsStr::new(name)), expected, "{name}");
        check("gcc", Dialect::Gcc);
        check("g++", Dialect::Gcc);
        check("cc", Dialect::Gcc);
        check("/usr/bin/x86_64-linux-gnu-gcc-12", Dialect::Gcc);
        check("/opt/clang/bin/gcc", Dialect::Gcc);
        check("clang", Dialect::Clang);
        check("/usr/lib/llvm-14/bin/clang++", Dialect::Clang);
        check("clang-14", Dialect::Clang);
        check("x86_64-linux-gnu-clang", Dialect::Clang);
    }

    #[rustfmt::skip]
    #[test]
    fn has_response_files_cases() {
        let check = |args: &[&str], expected| assert_eq!(has_response_files(&args.iter().map(OsString::from).collect::<Vec<_>>()), expected, "{args:?}");
        check(&[], false);
        check(&["-c", "x.c", "-o", "x.o"], false);
        check(&["-Wl,@f", "-DA=@b", ""], false);
        check(&["-c", "@f"], true);
        check(&["-o", "@out"], true);
        check(&["@"], true);
    }
}
