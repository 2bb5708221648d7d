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
mod tests;
