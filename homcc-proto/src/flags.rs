//! The one description of gcc's and clang's flags (`table`), and the one walk over a command
//! line by it (`tokens`). Each row says how a flag's value is attached ([`Attach`]), what the
//! value is (a path read, a path written, a prefix map or text: [`Operand`]) and what homccd does
//! with the flag ([`Verdict`]). homccd's argument policy (`policy`), its path mapping into the
//! job root and its care for the files a compile writes, and homcc's classification all read the
//! same [`Token`]s, so the code that checks a flag and the code that maps its path cannot
//! disagree about where its value is.

use std::{ffi::OsStr, os::unix::ffi::OsStrExt};

mod table;

pub use table::{ASSEMBLER, CLANG, LANGUAGES, PREPROCESSOR, RULES};

/// How a flag's value is attached, and so how a row matches an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// No value: the argument is the spelling (`-c`).
    None,
    /// A family: every argument that starts with the spelling (`-O2`, `-std=c++17`, `-Wa,x,y`);
    /// the value is the rest. A `*` in the spelling stands for any text (`-f*list=`).
    Joined,
    /// The next argument (`-Xclang x`).
    Separate,
    /// The next argument, or joined (`-o a.o`, `-oa.o`).
    Either,
}

/// What a flag's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    /// Text that names no file (`-DX=/a/b`, `-x c++`, `-O2`).
    Text,
    /// A path the compiler reads (`-I dir`, `-include file`, `--sysroot=dir`).
    Read,
    /// A path the compiler writes (`-o file`, `-MF file`).
    Written,
    /// `OLD=NEW`, whose old prefix is a path (`-fdebug-prefix-map=/home/u=.`).
    PrefixMap,
}

/// What homccd does with an argument that matches a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Allowed, and the compile stops before linking (`-c`, `-S`, `-E`, `-M`, `-MM`).
    Stop,
    /// Allowed if the value names no path (has no `/`): a file name without one stays in the
    /// compiler's working directory, inside the job root.
    NoPath,
    /// Allowed if the value is one of these.
    OneOf(&'static [&'static str]),
    /// Passed on to another program: each of its options (split at commas when joined, `-Wa,x,y`)
    /// must be allowed by this table, and none may name a path.
    Inner(&'static [Rule]),
    /// In an inner table: as on the compiler's own command line, with a joined value only.
    Outer,
    /// Refused: the note says why.
    Refuse,
}

/// One row of the table.
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    pub spelling: &'static str,
    pub attach: Attach,
    pub operand: Operand,
    pub verdict: Verdict,
    /// What the flag is for, or (refused) what it does: "loads code into the compiler".
    pub note: &'static str,
}

const fn rule(
    spelling: &'static str,
    attach: Attach,
    verdict: Verdict,
    note: &'static str,
) -> Rule {
    Rule {
        spelling,
        attach,
        operand: Operand::Text,
        verdict,
        note,
    }
}

const NONE: Attach = Attach::None;

impl Rule {
    const fn with(self, operand: Operand) -> Rule {
        Rule { operand, ..self }
    }
    const fn reads(self) -> Rule {
        self.with(Operand::Read)
    }
    const fn writes(self) -> Rule {
        self.with(Operand::Written)
    }
    const fn maps(self) -> Rule {
        self.with(Operand::PrefixMap)
    }

    fn matches(&self, arg: &[u8]) -> bool {
        let spelling = self.spelling.as_bytes();
        match self.attach {
            Attach::None | Attach::Separate => arg == spelling,
            Attach::Joined | Attach::Either => match self.spelling.split_once('*') {
                Some((head, tail)) => arg
                    .strip_prefix(head.as_bytes())
                    .is_some_and(|rest| rest.windows(tail.len()).any(|w| w == tail.as_bytes())),
                None => arg.starts_with(spelling),
            },
        }
    }
}

/// One argument of a command line, or a flag with its value, as the table reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token<'a> {
    /// Not a flag: a source, an object, a library.
    Input(&'a OsStr),
    /// `@file`: the compiler would read more arguments from that file.
    ResponseFile(&'a OsStr),
    /// A flag that no row matches (also `-`, standard input, and a joined value that starts
    /// with `-`, which is more likely another flag: `-I-`).
    Unknown(&'a OsStr),
    Flag(Flag<'a>),
}

/// A flag, by its row, with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag<'a> {
    pub rule: &'static Rule,
    /// The argument that matched the row.
    pub arg: &'a OsStr,
    pub value: Value<'a>,
}

/// Where a flag's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// The flag takes none.
    None,
    /// In the argument, after the spelling (possibly empty: `-Wl,`).
    Joined(&'a OsStr),
    /// The next argument.
    Separate(&'a OsStr),
    /// The flag takes the next argument, and there is none.
    Missing,
}

impl<'a> Flag<'a> {
    /// The value, wherever it is attached.
    pub fn value(&self) -> Option<&'a OsStr> {
        match self.value {
            Value::Joined(v) | Value::Separate(v) => Some(v),
            Value::None | Value::Missing => None,
        }
    }

    /// The arguments the flag took: itself, and its separate value.
    pub fn args(&self) -> impl Iterator<Item = &'a OsStr> {
        let value = match self.value {
            Value::Separate(v) => Some(v),
            _ => None,
        };
        std::iter::once(self.arg).chain(value)
    }

    /// The argument without its joined value (`-I` of `-I/x`, `--sysroot=` of `--sysroot=/x`).
    pub fn head(&self) -> &'a OsStr {
        let bytes = self.arg.as_bytes();
        match self.value {
            Value::Joined(v) => OsStr::from_bytes(&bytes[..bytes.len() - v.len()]),
            _ => self.arg,
        }
    }

    /// The path the flag names for the compiler to read or write, if it names one.
    pub fn path(&self) -> Option<&'a OsStr> {
        matches!(self.rule.operand, Operand::Read | Operand::Written)
            .then(|| self.value())
            .flatten()
    }
}

/// The arguments of a compiler's command line, read by [`RULES`].
pub fn tokens<A: AsRef<OsStr>>(args: &[A]) -> impl Iterator<Item = Token<'_>> {
    let mut rest = args.iter().map(AsRef::as_ref);
    std::iter::from_fn(move || {
        let arg = rest.next()?;
        Some(token(arg, RULES, || rest.next()))
    })
}

/// One argument read by `table`; a separate value is taken from `next` (which yields nothing
/// for the options inside `-Xclang` and `-Wa,`).
pub fn token<'a>(
    arg: &'a OsStr,
    table: &'static [Rule],
    next: impl FnOnce() -> Option<&'a OsStr>,
) -> Token<'a> {
    let bytes = arg.as_bytes();
    if bytes.starts_with(b"@") {
        return Token::ResponseFile(arg);
    }
    if !bytes.starts_with(b"-") {
        return Token::Input(arg);
    }
    let Some(rule) = table.iter().find(|r| r.matches(bytes)) else {
        return Token::Unknown(arg);
    };
    let joined = OsStr::from_bytes(&bytes[rule.spelling.len().min(bytes.len())..]);
    let take = || next().map_or(Value::Missing, Value::Separate);
    let value = match rule.attach {
        Attach::None => Value::None,
        Attach::Joined => Value::Joined(joined),
        Attach::Separate => take(),
        Attach::Either if joined.as_bytes().starts_with(b"-") => return Token::Unknown(arg),
        Attach::Either if !joined.is_empty() => Value::Joined(joined),
        Attach::Either => take(),
    };
    Token::Flag(Flag { rule, arg, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(line: &str) -> Vec<String> {
        let args: Vec<&str> = line.split(' ').collect();
        tokens(&args)
            .map(|t| match t {
                Token::Input(a) => format!("in {}", a.to_string_lossy()),
                Token::ResponseFile(a) => format!("@ {}", a.to_string_lossy()),
                Token::Unknown(a) => format!("? {}", a.to_string_lossy()),
                Token::Flag(f) => format!("{} {:?} {:?}", f.rule.spelling, f.rule.operand, f.value),
            })
            .collect()
    }

    #[test]
    fn reads_each_argument_by_its_row() {
        assert_eq!(
            read("-c a.c -o a.o -Iinc -isystem /s --sysroot=/r -DX=/y -MF d -x c++ @r -I- -Xclang"),
            [
                "-c Text None",
                "in a.c",
                "-o Written Separate(\"a.o\")",
                "-I Read Joined(\"inc\")",
                "-isystem Read Separate(\"/s\")",
                "--sysroot= Read Joined(\"/r\")",
                "-D Text Joined(\"X=/y\")",
                "-MF Written Separate(\"d\")",
                "-x Text Separate(\"c++\")",
                "@ @r",
                "? -I-",
                "-Xclang Text Missing",
            ]
        );
    }

    #[test]
    fn gives_back_the_flag_without_its_value() {
        let args = ["--sysroot=/r", "-o", "x"];
        let flags: Vec<Flag> = tokens(&args)
            .filter_map(|t| match t {
                Token::Flag(f) => Some(f),
                _ => None,
            })
            .collect();
        assert_eq!(flags[0].head(), "--sysroot=");
        assert_eq!(flags[0].path(), Some(OsStr::new("/r")));
        assert_eq!(flags[1].head(), "-o");
        assert_eq!(flags[1].args().collect::<Vec<_>>(), ["-o", "x"]);
    }

    /// The first matching row decides: a row that an earlier one always matches first would be
    /// dead, and the flag would be read by the wrong row.
    #[test]
    fn no_row_is_hidden_behind_an_earlier_one() {
        for table in [RULES, CLANG, ASSEMBLER, PREPROCESSOR] {
            for (i, row) in table.iter().enumerate() {
                let example = row.spelling.replace('*', "x");
                let first = table.iter().position(|r| r.matches(example.as_bytes()));
                assert_eq!(first, Some(i), "{} is read by an earlier row", row.spelling);
            }
        }
    }
}
